//! Integrity zome of the `memory_shards` DNA: which node holds which replica of which shard of a
//! vector-memory collection, and how far each replica has synced (spec §10.7). The DHT holds the
//! shard maps, the claims and the checkpoints; every sidecar computes placement and routing from
//! them, with no coordinator.
//!
//! This crate declares; `validation.rs` decides. The rules are written down, with their IDs, in
//! `docs/integrity/memory_shards.md`. Changing anything compiled into this crate changes the DNA
//! hash and so forks every network: coordinator-facing API types live in `memory_shards_types`.
use hdi::prelude::*;

pub mod anchors;
pub mod entries;
pub mod rules;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod validation;

pub use entries::*;
pub use rules::{Rule, RuleViolation};

// Natively the externs are left out: the sidecar and the tests link the other DNAs' integrity
// crates too, whose unmangled `__num_entry_types`, `validate`, … would clash.
#[cfg_attr(target_arch = "wasm32", hdk_entry_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_entry_types(skip_hdk_extern = true))]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// How a collection is split and replicated. By the collection's owner; immutable.
    ShardMap(ShardMap),
    /// "This node holds replica r of shard s", by the holding node; released by deleting it.
    ShardClaim(ShardClaim),
    /// How far one replica has synced, by its holder; advanced by updating it.
    SyncCheckpoint(SyncCheckpoint),
}

#[cfg_attr(target_arch = "wasm32", hdk_link_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_link_types(skip_no_mangle = true))]
pub enum LinkTypes {
    /// `collection.<name>` anchor → maps of that name. No tag.
    CollectionToMaps,
    /// `collections.<first hex digit of sha256(name)>` anchor → every map, in 16 shards. No tag.
    AllMaps,
    /// Map → the claims on its shards. No tag.
    MapToClaims,
    /// Claim → the latest version of its replica's checkpoint. No tag.
    ClaimToCheckpoints,
}

#[cfg(target_arch = "wasm32")]
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

/// Whether `action` writes an entry of this zome's type `unit`.
pub fn is_entry_type(action: &Action, unit: UnitEntryTypes) -> ExternResult<bool> {
    let Some(def) = action.app_entry_def() else {
        return Ok(false);
    };
    let scoped = ScopedEntryDefIndex::try_from(unit)?;
    Ok(def.zome_index == scoped.zome_index && def.entry_index == scoped.zome_type)
}
