//! Integrity zome of the `policy_store` DNA: Rego policy bundles published by the network's admins,
//! the decisions nodes make with them (written before the action they gate), and audit events
//! indexed by hour and by subject.
//!
//! This crate declares; `validation.rs` decides. The rules are written down, with their IDs, in
//! `docs/integrity/policy_store.md`. Changing anything compiled into this crate changes the DNA
//! hash and so forks every network.
use hdi::prelude::*;

pub mod anchors;
pub mod entries;
pub mod properties;
pub mod rules;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod validation;

pub use entries::*;
pub use properties::PolicyProperties;
pub use rules::{Rule, RuleViolation};

// Natively the externs are left out: the sidecar and the tests link the other DNAs' integrity
// crates too, whose unmangled `__num_entry_types`, `validate`, … would clash.
#[cfg_attr(target_arch = "wasm32", hdk_entry_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_entry_types(skip_hdk_extern = true))]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// One version of a Rego package, by an admin.
    PolicyBundle(PolicyBundle),
    /// A gate's verdict, by the deciding node, before the action. Immutable.
    Decision(Decision),
    /// An audited event. Immutable.
    AuditEvent(AuditEvent),
}

#[cfg_attr(target_arch = "wasm32", hdk_link_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_link_types(skip_no_mangle = true))]
pub enum LinkTypes {
    /// `policy.<package>` anchor → every version of that package.
    PackageToBundles,
    /// `policies.all` anchor → every bundle (admins only write these, so it stays small).
    AllBundles,
    /// `decisions.<hour>` anchor → the decisions made in that hour.
    DecisionsByHour,
    /// `audit.<hour>` anchor → the audit events of that hour.
    AuditByHour,
    /// `subject.<subject>` anchor → the audit events about it.
    AuditBySubject,
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
