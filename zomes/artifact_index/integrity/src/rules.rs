//! Rule IDs shared by validators, docs (`docs/integrity/artifact_index.md`) and tests.
use std::fmt;

/// One rule of the artifact_index integrity model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// An artifact names a CID.
    AF1,
    /// An artifact's sha256 is 64 lower-case hex digits.
    AF2,
    /// Name, media type and labels are within bounds.
    AF3,
    /// A provenance statement is an in-toto Statement v1 with a SLSA Provenance v1 predicate.
    PV1,
    /// A statement's subjects include the digest of the artifact it is attached to.
    PV2,
    /// Materials are named by CID (`ipfs://<cid>`).
    PV3,
    /// The builder is the statement's author.
    PV4,
    /// A replica claim names a CID, a bounded lease and an http(s) endpoint if any.
    RC1,
    /// A claim is renewed only by its holder, for the same CID, never shortened.
    RC2,
    /// Links connect what they claim to, under the anchor their target belongs to, written by the
    /// target's author.
    LK1,
    /// Only replica links are removed, and only by their holder.
    LK2,
    /// Artifacts and statements are immutable; nothing is deleted.
    DL1,
}

/// A broken rule: the rule and what exactly was wrong. Rendered as `"PV2: …"`, which is the text
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
