//! Inputs and outputs of the artifact_index coordinator zomes (`artifacts`, `provenance`,
//! `replication`), shared by the zomes, the sidecar and the tests. Not a zome: it exports no
//! externs and is not part of the DNA hash.
use hdi::prelude::*;

pub use artifact_index_integrity::statement::{
    BuildDefinition, Builder, ResourceDescriptor, RunDetails, SlsaProvenance,
};
pub use artifact_index_integrity::{
    agent_uri, anchors, is_cid, is_entry_type, is_label, is_sha256_hex, Artifact, Provenance, ReplicaClaim, Statement,
    UnitEntryTypes, LABELS_MAX, LABEL_MAX, LEASE_MAX_SECS, LEASE_MIN_SECS, MEDIA_TYPE_MAX, NAME_MAX, PREDICATE_TYPE,
    STATEMENT_TYPE,
};

/// A registration of an artifact as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    /// The registration's action hash.
    pub artifact_id: ActionHash,
    pub registrant: AgentPubKey,
    pub registered_at: Timestamp,
    pub artifact: Artifact,
}

impl ArtifactRecord {
    pub fn from_record(record: &Record) -> Option<Self> {
        if !is_entry_type(record.action(), UnitEntryTypes::Artifact).ok()? {
            return None;
        }
        Some(Self {
            artifact_id: record.action_address().clone(),
            registrant: record.action().author().clone(),
            registered_at: record.action().timestamp(),
            artifact: record.entry().to_app_option::<Artifact>().ok()??,
        })
    }
}

/// `provenance.attest`: a statement (JSON) about an artifact registration, by this agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AttestInput {
    pub artifact_id: ActionHash,
    pub statement: String,
}

/// A provenance statement with everything needed to check it offline: the signed action and the
/// entry (`record`), and what the builder's chain says about that action.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProvenanceRecord {
    pub provenance_id: ActionHash,
    pub builder: AgentPubKey,
    pub record: Record,
    pub provenance: Provenance,
    pub chain: ChainCheck,
}

/// The builder's source chain as the DHT's agent-activity authorities report it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChainCheck {
    /// The statement's position on the builder's chain.
    pub seq: u32,
    /// The authorities hold this very action at that position.
    pub on_chain: bool,
    /// Warrants against the builder (proofs that it broke a rule somewhere).
    pub warrants: u32,
    /// `valid` (the chain runs unbroken from the action back to genesis), `broken`, or
    /// `unavailable` (the authorities could not be reached).
    pub status: String,
}

/// `replication.claim_replica`: pin-holder's lease on a CID, created or renewed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClaimReplicaInput {
    pub cid: String,
    pub lease_secs: u32,
    pub endpoint: Option<String>,
}

/// A node's replica claim, latest version.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReplicaRecord {
    /// The action that wrote this version (create or renewal).
    pub claim_id: ActionHash,
    pub holder: AgentPubKey,
    pub claim: ReplicaClaim,
    /// The lease has not run out (at the time of the call).
    pub live: bool,
}

/// The 16 shards of the all-artifacts index.
pub const SHARDS: u8 = 16;

/// The build type of statements Ripple writes itself (`ripple artifact add --material …`).
pub const RIPPLE_BUILD_TYPE: &str = "https://ripple.mesh/artifact-add/v1";

/// A statement by `builder` that `name` (sha256 `sha256`) was made from `materials` (CIDs), with
/// the builder's own `external_parameters` (e.g. the command that made it).
pub fn statement_for(
    builder: &AgentPubKey,
    name: &str,
    sha256: &str,
    materials: &[String],
    build_type: &str,
    external_parameters: serde_json::Map<String, serde_json::Value>,
) -> Statement {
    let digest = |d: &str| std::iter::once(("sha256".to_string(), d.to_string())).collect();
    Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![ResourceDescriptor { name: Some(name.into()), uri: None, digest: digest(sha256) }],
        predicate_type: PREDICATE_TYPE.into(),
        predicate: SlsaProvenance {
            build_definition: BuildDefinition {
                build_type: build_type.into(),
                external_parameters,
                resolved_dependencies: materials
                    .iter()
                    .map(|cid| ResourceDescriptor {
                        name: None,
                        uri: Some(format!("ipfs://{cid}")),
                        digest: Default::default(),
                    })
                    .collect(),
            },
            run_details: RunDetails { builder: Builder { id: agent_uri(builder) } },
        },
    }
}
