//! Rule IDs shared by validators, docs (`docs/integrity/resource_mesh.md`) and tests.
use std::fmt;

/// One rule of the resource_mesh integrity model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Offer fields are within bounds.
    OF1,
    /// An offer is updated only by its author, always against the original create.
    OF2,
    /// Request fields are within bounds.
    RQ1,
    /// Only the provider a request names may grant it.
    GR1,
    /// A grant's own holding is exactly what its request asked for, within its answer window.
    GR2,
    /// A grant follows the provider's previous grant and latest offer, and the provider's holdings fit
    /// the offer.
    GR3,
    /// A request is granted at most once.
    GR4,
    /// Only the provider a request names may reject it.
    RJ1,
    /// A rejection gives a short reason.
    RJ2,
    /// An answer carries the request it names, as its requester signed it.
    AN1,
    /// Only the provider or the requester of an allocation may release it.
    RL1,
    /// Only the provider of an allocation writes its usage receipt.
    UR1,
    /// A usage receipt covers exactly the allocation's lifetime, after it ended.
    UR2,
    /// Only the requester of an allocation acknowledges its receipt.
    UA1,
    /// Links connect what they claim to, written by the party that owns them.
    LK1,
    /// Inbox, offer and ledger links are removed only by their owner; others never.
    LK2,
    /// Nothing but offers is updated, and nothing is deleted.
    DL1,
}

/// A broken rule: the rule and what exactly was wrong. Rendered as `"GR3: …"`, which is the text
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
