//! What an AI agent declared about this node over MCP (`holochain.join_mesh`,
//! `holochain.register_node`): its name and the capabilities a probe cannot measure. Kept in
//! `<data>/declared.json` so a restarted node (stdio MCP hosts restart servers freely) keeps them;
//! applied over `ripple.toml` and flags. Delete the file to go back to the configuration.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use agent_registry_types::{HardwareClass, NodeAdvert};

use super::NodeSettings;

pub const DECLARED_FILE: &str = "declared.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Declared {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// The `capabilities` argument, grouped as the advert is. Every field is optional: left out means
/// "keep what is configured".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<DeclaredCompute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<DeclaredStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference: Option<DeclaredInference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<DeclaredMemory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<DeclaredNetwork>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredCompute {
    pub hardware_class: Option<HardwareClass>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredStorage {
    pub s3_available_gb: Option<u64>,
    pub ipfs_api_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredInference {
    pub endpoint: Option<String>,
    pub max_batch_size: Option<u32>,
    pub tokens_per_second: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredMemory {
    pub vector_shards: Option<u32>,
    pub redis_memory_gb: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredNetwork {
    /// The spec's NodeCapability calls it `latency_region`.
    #[serde(alias = "latency_region")]
    pub region: Option<String>,
    pub bandwidth_mbps: Option<u32>,
}

impl Declared {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(DECLARED_FILE)
    }

    /// The declarations kept for `data_dir` (none when the file does not exist).
    pub fn load(data_dir: &Path) -> Result<Self, String> {
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e} (delete it to reset)", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes atomically, so a crash leaves the old or the new file, never half of one.
    pub fn save(&self, data_dir: &Path) -> Result<(), String> {
        let path = Self::path(data_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// These declarations with `newer`'s on top, field by field.
    pub fn merged(&self, newer: &Declared) -> Declared {
        let mut base = serde_json::to_value(self).unwrap_or_default();
        merge(&mut base, serde_json::to_value(newer).unwrap_or_default());
        serde_json::from_value(base).unwrap_or_else(|_| newer.clone())
    }

    pub fn is_empty(&self) -> bool {
        self == &Declared::default()
    }

    pub fn apply(&self, s: &mut NodeSettings) {
        if let Some(name) = &self.agent_name {
            s.agent_name = name.clone();
        }
        let Some(c) = &self.capabilities else { return };
        let url = |text: &Option<String>| {
            text.as_deref().and_then(|t| crate::config::parse_url("URL", t, &["http", "https"]).ok())
        };
        if let Some(compute) = &c.compute {
            s.hardware_class = compute.hardware_class.or(s.hardware_class);
        }
        if let Some(storage) = &c.storage {
            s.s3_available_gb = storage.s3_available_gb.unwrap_or(s.s3_available_gb);
            s.sources.ipfs_api_url = url(&storage.ipfs_api_url).or(s.sources.ipfs_api_url.take());
        }
        if let Some(inference) = &c.inference {
            s.sources.localai_url = url(&inference.endpoint).or(s.sources.localai_url.take());
            s.max_batch_size = inference.max_batch_size.unwrap_or(s.max_batch_size);
            s.tokens_per_second = inference.tokens_per_second.unwrap_or(s.tokens_per_second);
        }
        if let Some(memory) = &c.memory {
            s.vector_shards = memory.vector_shards.unwrap_or(s.vector_shards);
            s.redis_memory_gb = memory.redis_memory_gb.unwrap_or(s.redis_memory_gb);
        }
        if let Some(network) = &c.network {
            s.region = network.region.clone().unwrap_or(std::mem::take(&mut s.region));
            s.bandwidth_mbps = network.bandwidth_mbps.unwrap_or(s.bandwidth_mbps);
        }
    }
}

/// Fields of the spec's capability advert (§10.3) that the hardware probe measures. An agent may
/// send them (the spec's `holochain.join_mesh` example does); they are never applied, and the
/// answer reports each beside what was measured.
const MEASURED: &[(&str, &str)] = &[
    ("compute", "cpu_cores"),
    ("compute", "cpu_arch"),
    ("compute", "ram_gb"),
    ("compute", "gpu"),
    ("compute", "gpus"),
    ("storage", "local_ssd_gb"),
    ("storage", "ipfs_pinned_gb"),
    ("inference", "models_loaded"),
];

/// A measured field an agent declared: what it said, kept only to report back.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredClaim {
    pub field: String,
    pub declared: Value,
}

impl Capabilities {
    /// Reads a `capabilities` argument in the spec's shape: measured fields are taken out as
    /// claims, the rest must be fields this node can be told.
    pub fn from_spec_shape(mut value: Value) -> Result<(Capabilities, Vec<MeasuredClaim>), String> {
        let mut claims = vec![];
        for (group, field) in MEASURED {
            if let Some(declared) = value.get_mut(*group).and_then(Value::as_object_mut).and_then(|g| g.remove(*field))
            {
                claims.push(MeasuredClaim { field: format!("{group}.{field}"), declared });
            }
        }
        let capabilities =
            serde_json::from_value(value).map_err(|e| format!("invalid arguments: `capabilities`: {e}"))?;
        Ok((capabilities, claims))
    }

    /// The fields this declaration sets, as `group.field`.
    pub fn fields(&self) -> Vec<String> {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut fields = vec![];
        for (group, inner) in value.as_object().into_iter().flatten() {
            for (field, v) in inner.as_object().into_iter().flatten() {
                if !v.is_null() {
                    fields.push(format!("{group}.{field}"));
                }
            }
        }
        fields
    }
}

/// What became of a `capabilities` argument: the declared fields now in the advert, and each
/// measured field beside the value the probe put in the advert instead.
pub fn capabilities_report(declared: &Capabilities, claims: &[MeasuredClaim], advert: &NodeAdvert) -> Value {
    let measured = |field: &str| match field {
        "compute.cpu_cores" => json!(advert.compute.cpu_cores),
        "compute.cpu_arch" => json!(advert.compute.cpu_arch),
        "compute.ram_gb" => json!(advert.compute.ram_gb),
        "compute.gpu" | "compute.gpus" => json!(advert.compute.gpus),
        "storage.local_ssd_gb" => json!(advert.storage.local_ssd_gb),
        "storage.ipfs_pinned_gb" => json!(advert.storage.ipfs_pinned_gb),
        "inference.models_loaded" => json!(advert.inference.models_loaded),
        _ => Value::Null,
    };
    json!({
        "kept": declared.fields(),
        "measured": claims
            .iter()
            .map(|c| json!({"field": c.field, "declared": c.declared, "measured": measured(&c.field)}))
            .collect::<Vec<_>>(),
    })
}

/// Deep merge of JSON objects; `overlay`'s non-null leaves win.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (_, Value::Null) => {}
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_declarations_win_field_by_field_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("ripple-declared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Declared::load(&dir).unwrap().is_empty());
        let first: Declared = serde_json::from_value(json!({
            "agent_name": "a", "capabilities": { "memory": { "vector_shards": 2 }, "network": { "region": "eu" } }
        }))
        .unwrap();
        let second: Declared = serde_json::from_value(json!({
            "capabilities": { "memory": { "redis_memory_gb": 4 }, "network": { "region": "us" } }
        }))
        .unwrap();
        let merged = first.merged(&second);
        merged.save(&dir).unwrap();
        let loaded = Declared::load(&dir).unwrap();
        assert_eq!(loaded, merged);
        let c = loaded.capabilities.unwrap();
        assert_eq!(loaded.agent_name.as_deref(), Some("a"));
        assert_eq!(c.memory, Some(DeclaredMemory { vector_shards: Some(2), redis_memory_gb: Some(4) }));
        assert_eq!(c.network.unwrap().region.as_deref(), Some("us"));
        std::fs::write(Declared::path(&dir), "{\"colour\": 1}").unwrap();
        assert!(Declared::load(&dir).unwrap_err().contains("delete it to reset"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The spec's §10.3 example: measured fields come out as claims, the rest is declared.
    #[test]
    fn the_spec_shape_splits_into_declared_fields_and_measured_claims() {
        let spec = json!({
            "compute": {"cpu_cores": 16, "cpu_arch": "x86_64", "ram_gb": 64,
                "gpu": {"vendor": "nvidia", "model": "RTX 4090", "vram_gb": 24}},
            "storage": {"local_ssd_gb": 2000, "ipfs_pinned_gb": 500, "s3_available_gb": 10000},
            "inference": {"models_loaded": ["gemma-3n-E2B"], "max_batch_size": 32, "tokens_per_second": 150},
            "memory": {"vector_shards": 4, "redis_memory_gb": 16},
            "network": {"bandwidth_mbps": 1000, "latency_region": "us-west"}
        });
        let (declared, claims) = Capabilities::from_spec_shape(spec).unwrap();
        let claimed: Vec<&str> = claims.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            claimed,
            [
                "compute.cpu_cores",
                "compute.cpu_arch",
                "compute.ram_gb",
                "compute.gpu",
                "storage.local_ssd_gb",
                "storage.ipfs_pinned_gb",
                "inference.models_loaded"
            ]
        );
        assert_eq!(claims[0].declared, json!(16));
        assert_eq!(
            declared.fields(),
            [
                "storage.s3_available_gb",
                "inference.max_batch_size",
                "inference.tokens_per_second",
                "memory.vector_shards",
                "memory.redis_memory_gb",
                "network.region",
                "network.bandwidth_mbps"
            ]
        );
        assert_eq!(declared.network.unwrap().region.as_deref(), Some("us-west"));
        let unknown = Capabilities::from_spec_shape(json!({"compute": {"colour": 1}}));
        assert!(unknown.unwrap_err().contains("unknown field `colour`"));
    }
}
