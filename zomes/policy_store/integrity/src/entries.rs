//! The entries and the rules that need nothing but their own fields (PB2, DC2, AU1).
use hdi::prelude::*;
use sha2::{Digest, Sha256};

use crate::rules::{ensure, Rule, RuleViolation};

pub const PACKAGE_MAX: usize = 64;
pub const REGO_MAX: usize = 64 * 1024;
pub const DATA_MAX: usize = 256 * 1024;
pub const DESCRIPTION_MAX: usize = 500;
pub const ACTION_MAX: usize = 96;
pub const REASONS_MAX: usize = 16;
pub const REASON_MAX: usize = 500;
pub const SUBJECT_MAX: usize = 256;
pub const DETAIL_MAX: usize = 2048;
pub const REFERENCES_MAX: usize = 16;
pub const REFERENCE_MAX: usize = 128;

/// One version of a Rego v1 package (e.g. `tools.call`), with optional JSON data the policy reads
/// as `data.<package>…`. Published by an admin; a new version is an update of an earlier one.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct PolicyBundle {
    pub package: String,
    pub version: u64,
    pub rego: String,
    /// A JSON object, as text, or none.
    pub data: Option<String>,
    pub description: String,
}

/// What a node decided before it ran a gated action. Committed before the action, so a crash
/// between the two leaves the decision.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct Decision {
    /// The deciding node: the action's author (DC1).
    pub decider: AgentPubKey,
    /// The gated tool or command, e.g. `resources.allocate`.
    pub action: String,
    pub package: String,
    /// 0 with no `bundle` when the built-in default policy decided (the network had none yet).
    pub version: u64,
    pub bundle: Option<ActionHash>,
    /// `policy_digest` of the bundle evaluated.
    pub policy_sha256: String,
    /// sha256 of the input document as the sidecar serialised it (the input itself stays local).
    pub input_sha256: String,
    pub allowed: bool,
    /// Why it was denied: one line per failed rule. Empty when allowed.
    pub reasons: Vec<String>,
}

/// Something worth auditing: a gated action's outcome, an inference disagreement, a publish, ….
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Dotted, e.g. `policy.decision`, `inference.response`, `artifacts.publish`.
    pub category: String,
    /// What it is about: a tool name, a CID, a model, an allocation id, ….
    pub subject: String,
    /// Lower-case word: `allowed`, `denied`, `ok`, `failed`, `disagreement`, ….
    pub outcome: String,
    pub detail: String,
    /// Hashes, CIDs, trace ids this event refers to.
    pub references: Vec<String>,
}

/// The "version hash" decisions quote: sha256 of the Rego source, a zero byte, and the data text
/// (empty when none), in lower-case hex. Anyone holding the bundle can recompute it.
pub fn policy_digest(rego: &str, data: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rego.as_bytes());
    hasher.update([0u8]);
    hasher.update(data.unwrap_or_default().as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl PolicyBundle {
    /// Rule PB2: a package name, Rego that declares it, data that is a JSON object, in bounds.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(is_dotted_name(&self.package, 4, PACKAGE_MAX), Rule::PB2, || {
            format!(
                "package `{}` must be 1-4 dot-separated names of [a-z][a-z0-9_]*, at most {PACKAGE_MAX} bytes",
                clip(&self.package)
            )
        })?;
        ensure(self.rego.len() <= REGO_MAX, Rule::PB2, || format!("Rego source over {REGO_MAX} bytes"))?;
        let declared = declared_package(&self.rego);
        ensure(declared == Some(self.package.as_str()), Rule::PB2, || match declared {
            Some(other) => format!("the Rego source declares package `{}`, not `{}`", clip(other), self.package),
            None => format!("the Rego source must start with `package {}`", self.package),
        })?;
        if let Some(data) = &self.data {
            ensure(data.len() <= DATA_MAX, Rule::PB2, || format!("data over {DATA_MAX} bytes"))?;
            let object = serde_json::from_str::<serde_json::Value>(data).map(|v| v.is_object()).unwrap_or(false);
            ensure(object, Rule::PB2, || "data must be a JSON object".into())?;
        }
        ensure(self.description.len() <= DESCRIPTION_MAX, Rule::PB2, || {
            format!("description over {DESCRIPTION_MAX} bytes")
        })?;
        ensure(self.version >= 1, Rule::PB3, || "versions start at 1".into())
    }

    pub fn digest(&self) -> String {
        policy_digest(&self.rego, self.data.as_deref())
    }
}

impl Decision {
    /// Rule DC2: names, digests, and reasons exactly when denied.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(is_dotted_name(&self.action, 6, ACTION_MAX), Rule::DC2, || {
            format!("action `{}` must be a dotted name like `resources.allocate`", clip(&self.action))
        })?;
        ensure(is_dotted_name(&self.package, 4, PACKAGE_MAX), Rule::DC2, || {
            format!("package `{}` is not a package name", clip(&self.package))
        })?;
        ensure(is_sha256_hex(&self.policy_sha256), Rule::DC2, || {
            "policy_sha256 must be 64 lower-case hex digits".into()
        })?;
        ensure(is_sha256_hex(&self.input_sha256), Rule::DC2, || {
            "input_sha256 must be 64 lower-case hex digits".into()
        })?;
        ensure(self.allowed == self.reasons.is_empty(), Rule::DC2, || {
            "a denial gives at least one reason and an allowance none".into()
        })?;
        ensure(self.reasons.len() <= REASONS_MAX, Rule::DC2, || format!("at most {REASONS_MAX} reasons"))?;
        for reason in &self.reasons {
            ensure(!reason.is_empty() && reason.len() <= REASON_MAX, Rule::DC2, || {
                format!("a reason is 1-{REASON_MAX} bytes")
            })?;
        }
        Ok(())
    }
}

impl AuditEvent {
    /// Rule AU1: category, subject, outcome, detail and references in bounds.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(is_dotted_name(&self.category, 4, PACKAGE_MAX), Rule::AU1, || {
            format!("category `{}` must be a dotted name like `policy.decision`", clip(&self.category))
        })?;
        ensure(is_text(&self.subject, SUBJECT_MAX), Rule::AU1, || {
            format!("subject must be 1-{SUBJECT_MAX} bytes without control characters")
        })?;
        let outcome_ok =
            (1..=32).contains(&self.outcome.len()) && self.outcome.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        ensure(outcome_ok, Rule::AU1, || format!("outcome `{}` must be a lower-case word", clip(&self.outcome)))?;
        ensure(self.detail.len() <= DETAIL_MAX, Rule::AU1, || format!("detail over {DETAIL_MAX} bytes"))?;
        ensure(self.references.len() <= REFERENCES_MAX, Rule::AU1, || format!("at most {REFERENCES_MAX} references"))?;
        for reference in &self.references {
            ensure(is_text(reference, REFERENCE_MAX) && !reference.contains(' '), Rule::AU1, || {
                format!("reference `{}` must be 1-{REFERENCE_MAX} bytes without spaces", clip(reference))
            })?;
        }
        Ok(())
    }
}

/// The package a Rego source declares: its first statement, `package a.b.c`, comments and blank
/// lines before it skipped. None if it starts with anything else.
pub fn declared_package(rego: &str) -> Option<&str> {
    let first = rego.lines().map(|line| line.split('#').next().unwrap_or("").trim()).find(|line| !line.is_empty())?;
    let mut words = first.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("package"), Some(name), None) => Some(name),
        _ => None,
    }
}

/// 1..=`max_segments` names of `[a-z][a-z0-9_]*` joined by dots, at most `max_len` bytes.
pub fn is_dotted_name(s: &str, max_segments: usize, max_len: usize) -> bool {
    let segment_ok = |seg: &str| {
        seg.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && seg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    !s.is_empty() && s.len() <= max_len && s.split('.').count() <= max_segments && s.split('.').all(segment_ok)
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn is_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// At most 80 characters of untrusted input, for messages.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGO: &str = "# default gate for tool calls\n\npackage tools.call\n\ndefault allow := true\n";

    fn bundle() -> PolicyBundle {
        PolicyBundle {
            package: "tools.call".into(),
            version: 1,
            rego: REGO.into(),
            data: Some(r#"{"denied_tools": []}"#.into()),
            description: "every tool allowed".into(),
        }
    }

    fn decision() -> Decision {
        Decision {
            decider: AgentPubKey::from_raw_36(vec![7; 36]),
            action: "resources.allocate".into(),
            package: "resources.allocate".into(),
            version: 2,
            bundle: Some(ActionHash::from_raw_36(vec![1; 36])),
            policy_sha256: policy_digest(REGO, None),
            input_sha256: policy_digest("{}", None),
            allowed: false,
            reasons: vec!["duration over 3600 s".into()],
        }
    }

    fn audit() -> AuditEvent {
        AuditEvent {
            category: "policy.decision".into(),
            subject: "resources.allocate".into(),
            outcome: "denied".into(),
            detail: String::new(),
            references: vec!["uhCkkAAAA".into()],
        }
    }

    fn rule<T>(r: Result<T, RuleViolation>) -> Result<T, Rule> {
        r.map_err(|v| v.rule)
    }

    #[test]
    fn a_bundle_declares_its_own_package_and_carries_an_object() {
        assert_eq!(bundle().check(), Ok(()));
        assert_eq!(declared_package("package a.b # trailing\nallow := true"), Some("a.b"));
        assert_eq!(declared_package("allow := true\npackage a"), None);
        assert_eq!(rule(PolicyBundle { package: "Tools.Call".into(), ..bundle() }.check()), Err(Rule::PB2));
        assert_eq!(rule(PolicyBundle { package: "a.b.c.d.e".into(), ..bundle() }.check()), Err(Rule::PB2));
        assert_eq!(rule(PolicyBundle { package: "resources.allocate".into(), ..bundle() }.check()), Err(Rule::PB2));
        assert_eq!(rule(PolicyBundle { data: Some("[1,2]".into()), ..bundle() }.check()), Err(Rule::PB2));
        assert_eq!(rule(PolicyBundle { data: Some("{".into()), ..bundle() }.check()), Err(Rule::PB2));
        assert_eq!(rule(PolicyBundle { rego: "x".repeat(REGO_MAX + 1), ..bundle() }.check()), Err(Rule::PB2));
        assert_eq!(rule(PolicyBundle { version: 0, ..bundle() }.check()), Err(Rule::PB3));
    }

    #[test]
    fn the_digest_covers_rego_and_data() {
        let b = bundle();
        assert_eq!(b.digest(), policy_digest(REGO, Some(r#"{"denied_tools": []}"#)));
        assert_ne!(b.digest(), policy_digest(REGO, None));
        assert_ne!(policy_digest("ab", Some("c")), policy_digest("a", Some("bc")), "the separator keeps them apart");
        assert!(is_sha256_hex(&b.digest()));
    }

    #[test]
    fn a_decision_gives_reasons_exactly_when_it_denies() {
        assert_eq!(decision().check(), Ok(()));
        assert_eq!(Decision { allowed: true, reasons: vec![], ..decision() }.check(), Ok(()));
        assert_eq!(rule(Decision { allowed: true, ..decision() }.check()), Err(Rule::DC2));
        assert_eq!(rule(Decision { reasons: vec![], ..decision() }.check()), Err(Rule::DC2));
        assert_eq!(rule(Decision { input_sha256: "ABC".into(), ..decision() }.check()), Err(Rule::DC2));
        assert_eq!(rule(Decision { action: "rm -rf".into(), ..decision() }.check()), Err(Rule::DC2));
        assert_eq!(rule(Decision { reasons: vec![String::new()], ..decision() }.check()), Err(Rule::DC2));
    }

    #[test]
    fn audit_events_are_bounded() {
        assert_eq!(audit().check(), Ok(()));
        assert_eq!(rule(AuditEvent { category: "Policy".into(), ..audit() }.check()), Err(Rule::AU1));
        assert_eq!(rule(AuditEvent { subject: "a\nb".into(), ..audit() }.check()), Err(Rule::AU1));
        assert_eq!(rule(AuditEvent { outcome: "Denied!".into(), ..audit() }.check()), Err(Rule::AU1));
        assert_eq!(rule(AuditEvent { references: vec!["a b".into()], ..audit() }.check()), Err(Rule::AU1));
        let many = vec!["r".to_string(); REFERENCES_MAX + 1];
        assert_eq!(rule(AuditEvent { references: many, ..audit() }.check()), Err(Rule::AU1));
    }
}
