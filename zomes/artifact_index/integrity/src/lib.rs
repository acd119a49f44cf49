//! Integrity zome of the `artifact_index` DNA: content-addressed artifacts (IPFS CIDs with their
//! sha256), their provenance as in-toto/SLSA statements signed by the builder's source chain, and
//! replica leases ("this node pins this CID until T") from which the sidecars repair
//! under-replicated artifacts.
//!
//! This crate declares; `validation.rs` decides. The rules are written down, with their IDs, in
//! `docs/integrity/artifact_index.md`. Changing anything compiled into this crate changes the DNA
//! hash and so forks every network: coordinator-facing API types live in `artifact_index_types`.
use hdi::prelude::*;

pub mod anchors;
pub mod entries;
pub mod rules;
pub mod statement;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod validation;

pub use entries::*;
pub use rules::{Rule, RuleViolation};
pub use statement::{agent_uri, Statement, PREDICATE_TYPE, STATEMENT_TYPE};

// Natively the externs are left out: the sidecar and the tests link the other DNAs' integrity
// crates too, whose unmangled `__num_entry_types`, `validate`, … would clash.
#[cfg_attr(target_arch = "wasm32", hdk_entry_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_entry_types(skip_hdk_extern = true))]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// A CID and what its bytes are. Anyone may register; immutable.
    Artifact(Artifact),
    /// An in-toto Statement about a registered artifact, by its builder. Immutable.
    Provenance(Provenance),
    /// A replica lease by the pinning node, renewed by updating it.
    ReplicaClaim(ReplicaClaim),
}

#[cfg_attr(target_arch = "wasm32", hdk_link_types)]
#[cfg_attr(not(target_arch = "wasm32"), hdk_link_types(skip_no_mangle = true))]
pub enum LinkTypes {
    /// `cid.<cid>` anchor → artifact registrations of that CID. No tag.
    CidToArtifacts,
    /// `sha256.<hex>` anchor → artifact registrations with that digest. No tag.
    DigestToArtifacts,
    /// `name.<name>` anchor → artifacts of that name. No tag.
    NameToArtifacts,
    /// `label.<label>` anchor → artifacts carrying that label. No tag.
    LabelToArtifacts,
    /// `artifacts.<first hex digit of sha256>` anchor → every artifact, in 16 shards (no hot anchor).
    AllArtifacts,
    /// Artifact registration → provenance statements about it. No tag.
    ArtifactToProvenance,
    /// `cid.<cid>` anchor → the latest version of each node's replica claim. No tag.
    CidToReplicaClaims,
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
