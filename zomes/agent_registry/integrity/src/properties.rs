//! DNA properties of agent_registry (set in `dnas/agent_registry/dna.yaml`; part of the DNA hash).
use hdi::prelude::*;

/// Timing of liveness. Every node derives "online" from these, so they are fixed per network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, SerializedBytes)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryProperties {
    /// Width of a heartbeat time bucket. "Online" = seen in the current or the previous bucket.
    pub heartbeat_bucket_secs: u32,
    /// Minimum spacing between two heartbeats of one node (HB4).
    pub heartbeat_min_interval_secs: u32,
    /// Who signs invitations (MP1–MP3, read by the `membrane` crate); empty on an open network.
    pub network_admins: Vec<AgentPubKeyB64>,
}

impl Default for RegistryProperties {
    fn default() -> Self {
        Self { heartbeat_bucket_secs: 3600, heartbeat_min_interval_secs: 30, network_admins: vec![] }
    }
}

impl RegistryProperties {
    /// Reads the properties of the running DNA; absent properties mean the defaults.
    pub fn current() -> ExternResult<Self> {
        let bytes = dna_info()?.modifiers.properties;
        if matches!(bytes.bytes().as_slice(), [] | [0xc0]) {
            return Ok(Self::default()); // msgpack nil: `properties: ~`
        }
        let props: Self = bytes
            .try_into()
            .map_err(|e| wasm_error!(WasmErrorInner::Guest(format!("agent_registry DNA properties: {e:?}"))))?;
        props.check().map_err(|e| wasm_error!(WasmErrorInner::Guest(e)))?;
        Ok(props)
    }

    /// Properties that would make liveness meaningless are a broken DNA, not a broken op.
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat_bucket_secs == 0 {
            return Err("heartbeat_bucket_secs must be at least 1".into());
        }
        if self.heartbeat_min_interval_secs >= self.heartbeat_bucket_secs {
            return Err("heartbeat_min_interval_secs must be shorter than heartbeat_bucket_secs".into());
        }
        Ok(())
    }

    pub fn bucket_micros(&self) -> i64 {
        i64::from(self.heartbeat_bucket_secs) * 1_000_000
    }

    /// The bucket a moment falls into.
    pub fn bucket_of(&self, at: Timestamp) -> i64 {
        at.as_micros().div_euclid(self.bucket_micros())
    }
}
