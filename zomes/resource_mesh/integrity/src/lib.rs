//! Integrity zome of the `resource_mesh` DNA: what providers offer, what requesters ask for, and
//! the ledger of grants from which every validator proves that a provider never grants more than
//! it offered — no coordinator, only the provider's own chain.
//!
//! This crate declares; `validation.rs` decides. The rules are written down, with their IDs, in
//! `docs/integrity/resource_mesh.md`. Changing anything compiled into this crate changes the DNA
//! hash and so forks every network: coordinator-facing API types live in `resource_mesh_types`.
use hdi::prelude::*;

pub mod capacity;
pub mod entries;
pub mod rules;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod validation;

pub use capacity::{Capacity, Holding, LedgerError};
pub use entries::*;
pub use rules::{Rule, RuleViolation};

// Natively the externs are left out: the sidecar and the tests link agent_registry_integrity too,
// whose unmangled `__num_entry_types`, `validate`, … would clash. In wasm they are as the DNA needs.
#[cfg_attr(target_arch = "wasm32", hdk_entry_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_entry_types(skip_hdk_extern = true))]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// What a provider offers. Created once per provider, updated in place.
    ResourceOffer(ResourceOffer),
    AllocationRequest(AllocationRequest),
    /// Its action hash is the allocation id.
    AllocationGrant(AllocationGrant),
    AllocationRejection(AllocationRejection),
    AllocationRelease(AllocationRelease),
    UsageReceipt(UsageReceipt),
    UsageAck(UsageAck),
}

#[cfg_attr(target_arch = "wasm32", hdk_link_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_link_types(skip_no_mangle = true))]
pub enum LinkTypes {
    /// Provider's agent key → a request addressed to it, or a release of one of its grants; written
    /// by the requester or releaser, removed by the provider once handled (its inbox).
    ProviderInbox,
    /// Request → the provider's grant or rejection.
    RequestToAnswer,
    /// Grant → its releases and usage receipt; receipt → its acknowledgement.
    Followups,
    /// Provider's agent key → its current offer version (replaced on every update).
    ProviderToOffer,
    /// Provider's agent key → its latest grant (replaced on every grant), so schedulers read a
    /// provider's load in one hop.
    ProviderToLedger,
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
