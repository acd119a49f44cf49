//! `NodeAdvert`: the spec's NodeCapability (§10.3) without `node_id`, `last_heartbeat` and `load`,
//! which the action's author, the heartbeat links and their samples already carry.
use hdi::prelude::*;

use crate::rules::{ensure, Rule, RuleViolation};

pub const AGENT_NAME_MAX: usize = 64;
pub const CPU_CORES_MAX: u32 = 4096;
pub const RAM_GB_MAX: u32 = 65_536;
pub const GPUS_MAX: usize = 16;
pub const VRAM_GB_MAX: u32 = 1024;
pub const STORAGE_GB_MAX: u64 = 1_000_000_000;
pub const MODELS_MAX: usize = 64;
pub const MODEL_NAME_MAX: usize = 128;
pub const ENDPOINT_MAX: usize = 256;
pub const LABEL_MAX: usize = 32;

#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct NodeAdvert {
    /// Human-chosen node name, e.g. `gpu-box-01`. Not unique; the agent key is the identity.
    pub agent_name: String,
    pub hardware_class: HardwareClass,
    pub compute: Compute,
    pub storage: Storage,
    pub inference: Inference,
    pub memory: Memory,
    pub network: Network,
    pub availability: Availability,
}

/// §10.3 hardware classes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HardwareClass {
    CloudVm,
    EdgeServer,
    Desktop,
    IotArm,
    Mobile,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Compute {
    pub cpu_cores: u32,
    /// Lower-case architecture name as `uname -m` prints it, e.g. `x86_64`, `aarch64`.
    pub cpu_arch: String,
    pub ram_gb: u32,
    pub gpus: Vec<Gpu>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Lower-case vendor, e.g. `nvidia`, `amd`, `intel`, `apple`.
    pub vendor: String,
    pub model: String,
    pub vram_gb: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub local_ssd_gb: u64,
    pub ipfs_pinned_gb: u64,
    pub s3_available_gb: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    /// Model names as the inference server reports them (case kept; indexed lower-case).
    pub models_loaded: Vec<String>,
    pub max_batch_size: u32,
    pub tokens_per_second: u32,
    /// OpenAI-compatible base URL of the node's inference server, if it serves one.
    pub endpoint: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub vector_shards: u32,
    pub redis_memory_gb: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub bandwidth_mbps: u32,
    /// Latency region, e.g. `us-west`; empty when unknown.
    pub region: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Draining,
    Maintenance,
    Offline,
}

impl NodeAdvert {
    /// AR1: every field within its documented bound (`docs/integrity/agent_registry.md`).
    pub fn check(&self) -> Result<(), RuleViolation> {
        let name_ok = |s: &str, max: usize, extra: &str| {
            !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        };
        let label_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= LABEL_MAX
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
        };
        ensure(name_ok(&self.agent_name, AGENT_NAME_MAX, "._-"), Rule::AR1, || {
            format!("agent_name must be 1-{AGENT_NAME_MAX} characters of [A-Za-z0-9._-], got {:?}", self.agent_name)
        })?;

        let c = &self.compute;
        ensure((1..=CPU_CORES_MAX).contains(&c.cpu_cores), Rule::AR1, || {
            format!("compute.cpu_cores must be 1-{CPU_CORES_MAX}, got {}", c.cpu_cores)
        })?;
        ensure(label_ok(&c.cpu_arch), Rule::AR1, || {
            format!("compute.cpu_arch must be 1-{LABEL_MAX} characters of [a-z0-9_-], got {:?}", c.cpu_arch)
        })?;
        ensure(c.ram_gb <= RAM_GB_MAX, Rule::AR1, || {
            format!("compute.ram_gb must be at most {RAM_GB_MAX}, got {}", c.ram_gb)
        })?;
        ensure(c.gpus.len() <= GPUS_MAX, Rule::AR1, || format!("at most {GPUS_MAX} GPUs, got {}", c.gpus.len()))?;
        for (i, gpu) in c.gpus.iter().enumerate() {
            ensure(label_ok(&gpu.vendor), Rule::AR1, || {
                format!("compute.gpus[{i}].vendor must be 1-{LABEL_MAX} characters of [a-z0-9_-], got {:?}", gpu.vendor)
            })?;
            ensure(name_ok(&gpu.model, MODEL_NAME_MAX, " ._-()+"), Rule::AR1, || {
                format!("compute.gpus[{i}].model must be 1-{MODEL_NAME_MAX} printable characters, got {:?}", gpu.model)
            })?;
            ensure(gpu.vram_gb <= VRAM_GB_MAX, Rule::AR1, || {
                format!("compute.gpus[{i}].vram_gb must be at most {VRAM_GB_MAX}, got {}", gpu.vram_gb)
            })?;
        }

        let s = &self.storage;
        for (field, v) in [
            ("local_ssd_gb", s.local_ssd_gb),
            ("ipfs_pinned_gb", s.ipfs_pinned_gb),
            ("s3_available_gb", s.s3_available_gb),
        ] {
            ensure(v <= STORAGE_GB_MAX, Rule::AR1, || {
                format!("storage.{field} must be at most {STORAGE_GB_MAX}, got {v}")
            })?;
        }

        let inf = &self.inference;
        ensure(inf.models_loaded.len() <= MODELS_MAX, Rule::AR1, || {
            format!("at most {MODELS_MAX} loaded models, got {}", inf.models_loaded.len())
        })?;
        let mut seen = Vec::with_capacity(inf.models_loaded.len());
        for (i, model) in inf.models_loaded.iter().enumerate() {
            ensure(name_ok(model, MODEL_NAME_MAX, "._:/-"), Rule::AR1, || {
                format!("inference.models_loaded[{i}] must be 1-{MODEL_NAME_MAX} characters of [A-Za-z0-9._:/-], got {model:?}")
            })?;
            let key = model.to_ascii_lowercase();
            ensure(!seen.contains(&key), Rule::AR1, || format!("inference.models_loaded lists {model:?} twice"))?;
            seen.push(key);
        }
        ensure(inf.max_batch_size <= MAX_BATCH_SIZE_MAX, Rule::AR1, || {
            format!("inference.max_batch_size must be at most 65536, got {}", inf.max_batch_size)
        })?;
        ensure(inf.tokens_per_second <= TOKENS_PER_SECOND_MAX, Rule::AR1, || {
            format!("inference.tokens_per_second must be at most 10000000, got {}", inf.tokens_per_second)
        })?;
        if let Some(endpoint) = &inf.endpoint {
            let ok = endpoint.len() <= ENDPOINT_MAX
                && (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                && endpoint.chars().all(|c| c.is_ascii_graphic());
            ensure(ok, Rule::AR1, || {
                format!(
                    "inference.endpoint must be an http(s) URL of at most {ENDPOINT_MAX} characters, got {endpoint:?}"
                )
            })?;
        }

        ensure(self.memory.vector_shards <= VECTOR_SHARDS_MAX, Rule::AR1, || {
            format!("memory.vector_shards must be at most 4096, got {}", self.memory.vector_shards)
        })?;
        ensure(self.memory.redis_memory_gb <= RAM_GB_MAX, Rule::AR1, || {
            format!("memory.redis_memory_gb must be at most {RAM_GB_MAX}, got {}", self.memory.redis_memory_gb)
        })?;
        ensure(self.network.bandwidth_mbps <= BANDWIDTH_MBPS_MAX, Rule::AR1, || {
            format!("network.bandwidth_mbps must be at most 10000000, got {}", self.network.bandwidth_mbps)
        })?;
        ensure(self.network.region.is_empty() || label_ok(&self.network.region), Rule::AR1, || {
            format!(
                "network.region must be empty or 1-{LABEL_MAX} characters of [a-z0-9_-], got {:?}",
                self.network.region
            )
        })
    }

    /// The largest VRAM of any single GPU (what "at least N GB of VRAM" asks about).
    pub fn max_vram_gb(&self) -> Option<u32> {
        self.compute.gpus.iter().map(|g| g.vram_gb).max()
    }

    /// Total storage the node offers, in GB.
    pub fn storage_gb(&self) -> u64 {
        let s = &self.storage;
        s.local_ssd_gb.saturating_add(s.ipfs_pinned_gb).saturating_add(s.s3_available_gb)
    }
}

// The caps above, kept here at the end: declared earlier they would move the line numbers the
// wasm carries in its panic locations, and with them every network's DNA hash.
pub const MAX_BATCH_SIZE_MAX: u32 = 65_536;
pub const TOKENS_PER_SECOND_MAX: u32 = 10_000_000;
pub const VECTOR_SHARDS_MAX: u32 = 4096;
pub const BANDWIDTH_MBPS_MAX: u32 = 10_000_000;
