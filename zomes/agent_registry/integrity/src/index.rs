//! Capability index: which paths an advert puts its agent under, so discovery reads a few small
//! link sets instead of every advert (no hot anchors: the "all nodes" list is sharded by key, and
//! numeric minimums use power-of-two buckets).
use hdi::prelude::*;

use crate::node_advert::NodeAdvert;

/// Shards of the "all nodes" list (by the first byte of the agent key).
pub const ALL_NODES_SHARDS: u8 = 16;
const ROOT: &str = "ripple.idx";

/// One capability-index path. Text keys are lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IndexKey {
    AllNodes {
        shard: u8,
    },
    GpuVendor(String),
    /// Nodes with a GPU whose VRAM falls in `[bucket, 2*bucket)` (bucket 0: VRAM of 0 GB).
    GpuVram {
        bucket: u64,
    },
    Model(String),
    CpuArch(String),
    Region(String),
    CpuCores {
        bucket: u64,
    },
    RamGb {
        bucket: u64,
    },
    StorageGb {
        bucket: u64,
    },
}

impl IndexKey {
    /// The path, e.g. `ripple.idx / gpu.vendor / nvidia`. Components are explicit so values that
    /// contain dots (model `phi-3.5`) stay one component.
    pub fn path(&self) -> Path {
        let (kind, value) = match self {
            IndexKey::AllNodes { shard } => ("all", shard.to_string()),
            IndexKey::GpuVendor(v) => ("gpu.vendor", v.clone()),
            IndexKey::GpuVram { bucket } => ("gpu.vram_gb", bucket.to_string()),
            IndexKey::Model(v) => ("model", v.clone()),
            IndexKey::CpuArch(v) => ("cpu.arch", v.clone()),
            IndexKey::Region(v) => ("region", v.clone()),
            IndexKey::CpuCores { bucket } => ("cpu.cores", bucket.to_string()),
            IndexKey::RamGb { bucket } => ("ram_gb", bucket.to_string()),
            IndexKey::StorageGb { bucket } => ("storage_gb", bucket.to_string()),
        };
        Path::from(vec![Component::from(ROOT), Component::from(kind), Component::from(value)])
    }

    pub fn path_hash(&self) -> ExternResult<EntryHash> {
        self.path().path_entry_hash()
    }

    pub fn all_nodes_for(agent: &AgentPubKey) -> Self {
        let first = agent.get_raw_32().first().copied().unwrap_or(0);
        IndexKey::AllNodes { shard: first % ALL_NODES_SHARDS }
    }

    /// Every path an advert by `agent` is listed under.
    pub fn for_advert(agent: &AgentPubKey, advert: &NodeAdvert) -> Vec<IndexKey> {
        let mut keys = vec![
            IndexKey::all_nodes_for(agent),
            IndexKey::CpuArch(advert.compute.cpu_arch.to_ascii_lowercase()),
            IndexKey::CpuCores { bucket: pow2_bucket(advert.compute.cpu_cores.into()) },
            IndexKey::RamGb { bucket: pow2_bucket(advert.compute.ram_gb.into()) },
            IndexKey::StorageGb { bucket: pow2_bucket(advert.storage_gb()) },
        ];
        if !advert.network.region.is_empty() {
            keys.push(IndexKey::Region(advert.network.region.to_ascii_lowercase()));
        }
        keys.extend(advert.compute.gpus.iter().map(|g| IndexKey::GpuVendor(g.vendor.to_ascii_lowercase())));
        if let Some(vram) = advert.max_vram_gb() {
            keys.push(IndexKey::GpuVram { bucket: pow2_bucket(vram.into()) });
        }
        keys.extend(advert.inference.models_loaded.iter().map(|m| IndexKey::Model(m.to_ascii_lowercase())));
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The power-of-two bucket a value falls in: 0 → 0, 1 → 1, 2..=3 → 2, 4..=7 → 4, …
pub fn pow2_bucket(v: u64) -> u64 {
    if v == 0 {
        0
    } else {
        1u64 << (63 - v.leading_zeros())
    }
}

/// The buckets that may hold values `>= min`, up to the bucket of `max` (the field's bound).
pub fn buckets_at_least(min: u64, max: u64) -> Vec<u64> {
    let mut buckets = vec![];
    let mut b = pow2_bucket(min);
    let top = pow2_bucket(max);
    if b == 0 {
        buckets.push(0);
        b = 1;
    }
    while b <= top {
        buckets.push(b);
        b <<= 1;
    }
    buckets
}

/// Tag of a `CapabilityToNodes` link: the advert version that put the agent on this path, so a
/// reader fetches the advert in one step and a validator can check the claim (IX2).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, SerializedBytes)]
pub struct AdvertIndexTag {
    pub advert: ActionHash,
}

impl AdvertIndexTag {
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        let bytes = SerializedBytes::try_from(self.clone()).map_err(|e| wasm_error!(e))?;
        Ok(LinkTag::new(bytes.bytes().clone()))
    }

    pub fn from_tag(tag: &LinkTag) -> Option<Self> {
        Self::try_from(SerializedBytes::from(UnsafeBytes::from(tag.0.clone()))).ok()
    }
}
