//! Integrity zome of the `agent_registry` DNA: what a node advert, a heartbeat and a capability-index
//! entry are, and the rules every peer checks before it stores one.
//!
//! This crate declares; `validation.rs` decides. The rules are written down, with their IDs, in
//! `docs/integrity/agent_registry.md`. Changing anything compiled into this crate changes the DNA
//! hash and so forks every network: coordinator-facing API types live in the coordinator crates.
use hdi::prelude::*;

pub mod heartbeat;
pub mod index;
pub mod node_advert;
pub mod properties;
pub mod rules;
mod validation;

pub use heartbeat::{HeartbeatSample, HEARTBEAT_TAG_MAX_BYTES};
pub use index::{AdvertIndexTag, IndexKey};
pub use node_advert::*;
pub use properties::RegistryProperties;
pub use rules::{Rule, RuleViolation};

#[hdk_entry_types]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// What a node offers (the spec's NodeCapability, §10.3). One per agent, updated in place.
    NodeAdvert(NodeAdvert),
}

#[hdk_link_types]
pub enum LinkTypes {
    /// Capability index path (`IndexKey`) → the advertising agent; tag: `AdvertIndexTag`.
    CapabilityToNodes,
    /// Heartbeat anchor (time bucket × key shard) → the beating agent; tag: `HeartbeatSample`.
    BucketToHeartbeats,
}

#[hdk_extern]
pub fn validate(op: Op) -> ExternResult<ValidateCallbackResult> {
    validation::validate(op)
}

/// Admission (MP1–MP3, `membrane`): no chain starts on this network without an invitation.
#[cfg(target_arch = "wasm32")]
#[hdk_extern]
pub fn genesis_self_check(data: GenesisSelfCheckData) -> ExternResult<ValidateCallbackResult> {
    membrane::genesis_self_check(data)
}

#[cfg(test)]
mod tests;
