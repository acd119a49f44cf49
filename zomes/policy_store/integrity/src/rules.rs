//! Rule IDs shared by validators, docs (`docs/integrity/policy_store.md`) and tests.
use std::fmt;

/// One rule of the policy_store integrity model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Only an admin named in the DNA properties publishes or updates a policy bundle.
    PB1,
    /// A bundle names a package, holds Rego that declares exactly that package, and optional data
    /// that is a JSON object; all within bounds.
    PB2,
    /// Versions only go up: a package starts at version 1, and an update keeps the package and
    /// raises the version.
    PB3,
    /// A decision is authored by the node it says decided.
    DC1,
    /// A decision's fields are well formed: action and package names, sha256 digests, and reasons
    /// exactly when it denies.
    DC2,
    /// A decision names the bundle it evaluated: a policy bundle of that package and version whose
    /// digest it quotes (or version 0 and no bundle: the built-in default).
    DC3,
    /// An audit event's fields are well formed and bounded.
    AU1,
    /// Links connect what they claim to, under the anchor their target belongs to, written by the
    /// target's author.
    LK1,
    /// Decisions and audit events are immutable, and nothing is deleted.
    DL1,
}

/// A broken rule: the rule and what exactly was wrong. Rendered as `"PB3: …"`, which is the text
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
