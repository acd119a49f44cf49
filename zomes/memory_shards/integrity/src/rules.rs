//! Rule IDs shared by validators, docs (`docs/integrity/memory_shards.md`) and tests.
use std::fmt;

/// One rule of the memory_shards integrity model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A map names its collection, shard count, replication factor, hash function and epoch in bounds.
    SM1,
    /// A claim is authored by the node it names as holder.
    SC1,
    /// A claim names a shard map, a shard below its shard count, a replica below its replication
    /// factor, and its epoch.
    SC2,
    /// The holder advertises vector capacity.
    SC3,
    /// Claims are never updated; only the holder releases (deletes) its claim.
    SC4,
    /// A checkpoint is for a claim of its own author, with that claim's shard and replica.
    CP1,
    /// Vector count and snapshot CID are in bounds.
    CP2,
    /// A checkpoint advances by an update of its author's checkpoint on the same claim, with a
    /// higher sequence.
    CP3,
    /// Links connect what they claim to, under the base their target belongs to, written by the
    /// target's author.
    LK1,
    /// Only claim and checkpoint links are removed, and only by their writer.
    LK2,
    /// Maps are never updated; maps and checkpoints are never deleted.
    DL1,
}

/// A broken rule: the rule and what exactly was wrong. Rendered as `"SC2: …"`, which is the text
/// peers put in their `Invalid` result and in the warrant they issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    pub rule: Rule,
    pub detail: String,
}

impl RuleViolation {
    pub fn new(rule: Rule, detail: impl Into<String>) -> Self {
        Self { rule, detail: detail.into() }
    }
}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.rule, self.detail)
    }
}

impl std::error::Error for RuleViolation {}

/// `Err(RuleViolation)` unless `ok`.
pub(crate) fn ensure(ok: bool, rule: Rule, detail: impl FnOnce() -> String) -> Result<(), RuleViolation> {
    if ok {
        Ok(())
    } else {
        Err(RuleViolation::new(rule, detail()))
    }
}
