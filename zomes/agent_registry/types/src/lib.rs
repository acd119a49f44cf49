//! Inputs and outputs of the agent_registry coordinator zomes (`capabilities`, `heartbeat`,
//! `discovery`), shared by the zomes, the sidecar and the tests. Not a zome: it exports no externs
//! and is not part of the DNA hash.
use hdi::prelude::*;

pub use agent_registry_integrity::{
    Availability, Compute, Gpu, HardwareClass, HeartbeatSample, Inference, Memory, Network, NodeAdvert,
    RegistryProperties, Storage, AGENT_NAME_MAX, BANDWIDTH_MBPS_MAX, CPU_CORES_MAX, ENDPOINT_MAX, GPUS_MAX, LABEL_MAX,
    MAX_BATCH_SIZE_MAX, MODELS_MAX, MODEL_NAME_MAX, RAM_GB_MAX, STORAGE_GB_MAX, TOKENS_PER_SECOND_MAX,
    VECTOR_SHARDS_MAX, VRAM_GB_MAX,
};
/// Admission: what `capabilities.sign_invitation` signs and returns (the membrane proof).
pub use membrane::{Invitation, SignedInvitation};

/// Every message `capabilities.sign_peer_request` signs starts with this, so a signature made for
/// a peer request can never pass for one over an invitation, an action or any other statement.
pub const PEER_REQUEST_CONTEXT: &[u8] = b"ripple-peer-request-v1\n";

/// A version of a node's advert as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AdvertRecord {
    /// The action that wrote this version (create or update).
    pub version: ActionHash,
    /// The create action that all versions update.
    pub original: ActionHash,
    pub advert: NodeAdvert,
}

/// A heartbeat as a reader sees it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HeartbeatSeen {
    pub agent: AgentPubKey,
    /// When the node wrote it (the action timestamp).
    pub at: Timestamp,
    pub sample: HeartbeatSample,
}

/// Filters of `discovery.query_peers`; all given filters must hold. Text filters ignore case.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryQuery {
    pub gpu_vendor: Option<String>,
    /// At least one GPU with at least this much VRAM.
    pub min_vram_gb: Option<u32>,
    /// A model the node has loaded.
    pub model: Option<String>,
    pub cpu_arch: Option<String>,
    pub region: Option<String>,
    pub min_cpu_cores: Option<u32>,
    pub min_ram_gb: Option<u32>,
    /// Total storage (local SSD + IPFS + S3) in GB.
    pub min_storage_gb: Option<u64>,
    /// Only nodes seen in the current or previous heartbeat bucket.
    pub online_only: bool,
    /// At most this many results (online nodes first).
    pub limit: Option<u32>,
}

impl DiscoveryQuery {
    /// Whether `advert` passes every filter given (liveness and `limit` aside). The discovery zome
    /// and the sidecar's mesh view both filter with this, so they agree on every answer.
    pub fn matches(&self, advert: &NodeAdvert) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have));
        let at_least = |want: Option<u64>, have: Option<u64>| want.is_none_or(|w| have.is_some_and(|h| h >= w));
        let a = advert;
        eq(&self.cpu_arch, &a.compute.cpu_arch)
            && eq(&self.region, &a.network.region)
            && self.gpu_vendor.as_ref().is_none_or(|v| a.compute.gpus.iter().any(|g| g.vendor.eq_ignore_ascii_case(v)))
            && self
                .model
                .as_ref()
                .is_none_or(|m| a.inference.models_loaded.iter().any(|have| have.eq_ignore_ascii_case(m)))
            && at_least(self.min_vram_gb.map(u64::from), a.max_vram_gb().map(u64::from))
            && at_least(self.min_cpu_cores.map(u64::from), Some(a.compute.cpu_cores.into()))
            && at_least(self.min_ram_gb.map(u64::from), Some(a.compute.ram_gb.into()))
            && at_least(self.min_storage_gb, Some(a.storage_gb()))
    }
}

/// A node's advert as a registry read found it: the version and when it was written.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AdvertSeen {
    pub agent: AgentPubKey,
    pub version: ActionHash,
    /// The timestamp of the action that wrote this version.
    pub at: Timestamp,
    pub advert: NodeAdvert,
}

/// `discovery.read_changes`: what the registry holds that was written after a moment (every
/// node's current advert and the whole online window when no moment is given).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegistryChanges {
    /// When the read started, on the reading node's clock.
    pub read_at: Timestamp,
    /// Each listed node's newest readable advert (of those listed after `since`).
    pub adverts: Vec<AdvertSeen>,
    /// Each node's newest heartbeat in the online window (of those written after `since`).
    pub heartbeats: Vec<HeartbeatSeen>,
}

/// One node found by discovery: the `holochain.query_peers` result row.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PeerRecord {
    pub agent: AgentPubKey,
    /// The advert version this row was read from.
    pub advert_version: ActionHash,
    pub advert: NodeAdvert,
    /// The newest heartbeat in the online window, if any.
    pub last_heartbeat: Option<HeartbeatSeen>,
    /// Seen in the current or previous heartbeat bucket.
    pub online: bool,
}

/// `capabilities.get_publish_progress`: own actions since a given one, and how many of them at
/// least one validator has acknowledged with a receipt.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishProgress {
    pub actions: u32,
    pub acknowledged: u32,
}

/// What agent_registry signals to the node's app clients (the web dashboard): the node's own
/// heartbeats and advert changes as it writes them, and peers' advert changes, which they send to
/// the nodes they see online and each node re-emits locally. Send-and-forget: a page that missed
/// one reads discovery again. `Liveness` carries the sidecars' liveness protocol (probes and
/// their answers) from one node to one other; its payload is the sidecar's to read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RegistrySignal {
    Heartbeat { agent: AgentPubKey, at: Timestamp, sample: HeartbeatSample },
    Advert { agent: AgentPubKey, at: Timestamp, advert: NodeAdvert },
    Liveness { agent: AgentPubKey, payload: String },
}

impl RegistrySignal {
    /// The node that sent the news; the receiving zome passes on only what a node says itself.
    pub fn agent(&self) -> &AgentPubKey {
        match self {
            RegistrySignal::Heartbeat { agent, .. }
            | RegistrySignal::Advert { agent, .. }
            | RegistrySignal::Liveness { agent, .. } => agent,
        }
    }
}

/// The longest liveness message a node sends (`capabilities.send_liveness`), in bytes: a probe
/// with its piggybacked news is a few hundred; a restarted node's agent infos for five DNAs a
/// few thousand.
pub const LIVENESS_PAYLOAD_MAX: usize = 64 * 1024;

/// One liveness message for `capabilities.send_liveness`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LivenessMessage {
    pub to: AgentPubKey,
    pub payload: String,
}
