//! Rule IDs shared by validators, docs (`docs/integrity/agent_registry.md`) and tests.
use std::fmt;

/// One rule of the agent_registry integrity model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Advert fields are within their documented bounds.
    AR1,
    /// An agent creates its advert once, early in its chain.
    AR2,
    /// An advert is updated only by its author, always against the original create.
    AR3,
    /// Adverts are never deleted.
    AR4,
    /// A capability-index link points at its own author.
    IX1,
    /// A capability-index link is implied by the author's advert version named in its tag.
    IX2,
    /// Only the author of a capability-index link may delete it.
    IX3,
    /// A heartbeat is written by the node about itself.
    HB1,
    /// A heartbeat sample is small (≤ 256 bytes) and within range.
    HB2,
    /// A heartbeat sits under the anchor of its own time bucket and key shard.
    HB3,
    /// Heartbeats are at least the minimum interval apart.
    HB4,
    /// Heartbeats are never deleted.
    HB5,
}

/// A broken rule: the rule and what exactly was wrong. Rendered as `"AR1: …"`, which is the text
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
