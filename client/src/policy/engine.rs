//! Rego v1 evaluation with regorus, one compiled engine per policy package.
//!
//! A package is a gate: it must define `allow` (a boolean; undefined counts as false) and may define
//! `deny` (a set of strings, one reason each). An action is allowed when `allow` is true and `deny`
//! is empty. A bundle's data, a JSON object, is the `data` document seen by that package only.
use std::sync::Mutex;
use std::time::Duration;

use policy_store_integrity::{declared_package, is_dotted_name, policy_digest, PACKAGE_MAX};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A runaway policy is stopped after this long and the gate denies.
const EVAL_TIME_LIMIT: Duration = Duration::from_millis(500);

/// One version of a package, as published (or built in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub package: String,
    /// 0 for a built-in default.
    pub version: u64,
    /// The PolicyBundle action (`uhCkk…`), none for a built-in default.
    pub bundle: Option<String>,
    pub rego: String,
    pub data: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("`{0}` is not a package name: 1-4 dot-separated names of [a-z][a-z0-9_]*")]
    BadPackageName(String),
    #[error("{package}: the Rego source must begin with `package {package}`{found}")]
    WrongPackage { package: String, found: String },
    #[error("{package}: invalid Rego at line {line}, column {column}: {message}")]
    Syntax { package: String, line: u32, column: u32, message: String },
    #[error("{package}: {message}")]
    Invalid { package: String, message: String },
    #[error("{package}: evaluation failed: {message}")]
    Evaluation { package: String, message: String },
}

/// The outcome of one evaluation, with what a Decision records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub package: String,
    pub version: u64,
    /// The bundle's action hash; absent for a built-in default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    pub policy_sha256: String,
    pub input_sha256: String,
    pub allowed: bool,
    /// Why it was denied, one line per rule; empty when allowed.
    pub reasons: Vec<String>,
}

/// A package compiled and ready to evaluate.
pub struct CompiledPolicy {
    source: PolicySource,
    digest: String,
    has_deny: bool,
    engine: Mutex<regorus::Engine>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("package", &self.source.package)
            .field("version", &self.source.version)
            .finish()
    }
}

impl CompiledPolicy {
    /// Parses and checks a package: its name, its `package` line, its data, and that it defines
    /// `allow`. Syntax errors carry the line and column regorus reports.
    pub fn compile(source: PolicySource) -> Result<Self, PolicyError> {
        let package = source.package.clone();
        if !is_dotted_name(&package, 4, PACKAGE_MAX) {
            return Err(PolicyError::BadPackageName(package));
        }
        match declared_package(&source.rego) {
            Some(declared) if declared == package => {}
            found => {
                let found = found.map(|p| format!(", not `package {p}`")).unwrap_or_default();
                return Err(PolicyError::WrongPackage { package, found });
            }
        }
        let file = format!("{package}.rego");
        let mut engine = regorus::Engine::new();
        engine.add_policy(file.clone(), source.rego.clone()).map_err(|e| syntax_error(&package, &e.to_string()))?;
        if let Some(data) = &source.data {
            let value = regorus::Value::from_json_str(data).map_err(|e| PolicyError::Invalid {
                package: package.clone(),
                message: format!("data is not JSON: {e}"),
            })?;
            if value.as_object().is_err() {
                return Err(PolicyError::Invalid { package, message: "data must be a JSON object".into() });
            }
            engine
                .add_data(value)
                .map_err(|e| PolicyError::Invalid { package: package.clone(), message: e.to_string() })?;
        }
        let declares = |rule: &str| engine.has_declared_rule_rooted_at(&file, rule).unwrap_or(false);
        if !declares("allow") {
            return Err(PolicyError::Invalid { package, message: "a gate package must define `allow`".into() });
        }
        let has_deny = declares("deny");
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: EVAL_TIME_LIMIT,
            check_interval: std::num::NonZeroU32::new(1000).expect("non-zero"),
        });
        let digest = policy_digest(&source.rego, source.data.as_deref());
        let compiled = Self { source, digest, has_deny, engine: Mutex::new(engine) };
        // Rules that fail on every input (a type error in `allow`) are caught now, not at the gate.
        compiled.evaluate(&serde_json::json!({}))?;
        Ok(compiled)
    }

    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Evaluates the gate for `input`.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<Verdict, PolicyError> {
        let input_json = input.to_string();
        let input_sha256 = hex_sha256(input_json.as_bytes());
        let package = &self.source.package;
        let failed = |e: anyhow::Error| PolicyError::Evaluation { package: package.clone(), message: e.to_string() };
        let mut engine = self.engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        engine.set_input(regorus::Value::from_json_str(&input_json).map_err(failed)?);
        let allow = engine.eval_rule(format!("data.{package}.allow")).map_err(failed)?;
        let mut reasons = Vec::new();
        if self.has_deny {
            match engine.eval_rule(format!("data.{package}.deny")).map_err(failed)? {
                regorus::Value::Undefined => {}
                regorus::Value::Set(set) => reasons
                    .extend(set.iter().map(|v| v.as_string().map(|s| s.to_string()).unwrap_or_else(|_| v.to_string()))),
                other => {
                    return Err(PolicyError::Evaluation {
                        package: package.clone(),
                        message: format!("`deny` must be a set of strings, not {other}"),
                    })
                }
            }
        }
        let allowed = match allow {
            regorus::Value::Bool(b) => b,
            regorus::Value::Undefined => false,
            other => {
                return Err(PolicyError::Evaluation {
                    package: package.clone(),
                    message: format!("`allow` must be a boolean, not {other}"),
                })
            }
        };
        if !allowed && reasons.is_empty() {
            reasons.push(format!("`allow` is not true in {package} version {}", self.source.version));
        }
        let allowed = allowed && reasons.is_empty();
        Ok(Verdict {
            package: package.clone(),
            version: self.source.version,
            bundle: self.source.bundle.clone(),
            policy_sha256: self.digest.clone(),
            input_sha256,
            allowed,
            reasons: if allowed { Vec::new() } else { reasons },
        })
    }
}

/// regorus reports `--> FILE:LINE:COL`, the source line, a caret, then `error: MESSAGE`.
fn syntax_error(package: &str, text: &str) -> PolicyError {
    let position = text.lines().find_map(|line| {
        let location = line.trim().strip_prefix("--> ")?;
        let mut parts = location.rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        Some((line, column))
    });
    let message = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: ").to_string())
        .unwrap_or_else(|| text.trim().to_string());
    match position {
        Some((line, column)) => PolicyError::Syntax { package: package.into(), line, column, message },
        None => PolicyError::Invalid { package: package.into(), message },
    }
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(package: &str, rego: &str, data: Option<&str>) -> PolicySource {
        PolicySource {
            package: package.into(),
            version: 3,
            bundle: None,
            rego: rego.into(),
            data: data.map(str::to_string),
        }
    }

    const ALLOCATE: &str = r#"package resources.allocate

default allow := true

deny contains msg if {
    input.duration_secs > data.max_duration_secs
    msg := sprintf("duration %d s is over the %d s limit", [input.duration_secs, data.max_duration_secs])
}
"#;

    #[test]
    fn allow_and_deny_decide_and_deny_reasons_name_the_rule() {
        let policy =
            CompiledPolicy::compile(source("resources.allocate", ALLOCATE, Some(r#"{"max_duration_secs": 3600}"#)))
                .unwrap();
        let ok = policy.evaluate(&json!({"duration_secs": 60})).unwrap();
        assert!(ok.allowed);
        assert!(ok.reasons.is_empty());
        let denied = policy.evaluate(&json!({"duration_secs": 7200})).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.reasons, vec!["duration 7200 s is over the 3600 s limit".to_string()]);
        assert_eq!(denied.version, 3);
        assert_eq!(denied.policy_sha256, policy_digest(ALLOCATE, Some(r#"{"max_duration_secs": 3600}"#)));
        assert_eq!(denied.input_sha256, hex_sha256(json!({"duration_secs": 7200}).to_string().as_bytes()));
        assert_ne!(ok.input_sha256, denied.input_sha256);
    }

    #[test]
    fn an_undefined_allow_denies_and_says_so() {
        let rego = "package tools.call\n\nallow if input.tool == \"holochain.query_peers\"\n";
        let policy = CompiledPolicy::compile(source("tools.call", rego, None)).unwrap();
        assert!(policy.evaluate(&json!({"tool": "holochain.query_peers"})).unwrap().allowed);
        let denied = policy.evaluate(&json!({"tool": "holochain.install_dna"})).unwrap();
        assert_eq!(denied.reasons, vec!["`allow` is not true in tools.call version 3".to_string()]);
    }

    #[test]
    fn invalid_rego_is_refused_with_line_and_column() {
        let rego = "package tools.call\n\ndefault allow := true\n\ndeny contains msg if {\n    msg := )\n}\n";
        match CompiledPolicy::compile(source("tools.call", rego, None)) {
            Err(PolicyError::Syntax { line, column, message, .. }) => {
                assert_eq!(line, 6, "{message}");
                assert!((1..=12).contains(&column), "column {column}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn the_package_line_data_and_allow_are_checked() {
        let wrong = CompiledPolicy::compile(source("tools.call", "package tools.other\ndefault allow := true\n", None));
        assert!(matches!(wrong, Err(PolicyError::WrongPackage { .. })), "{wrong:?}");
        let bad_name = CompiledPolicy::compile(source("Tools", "package Tools\ndefault allow := true\n", None));
        assert!(matches!(bad_name, Err(PolicyError::BadPackageName(_))), "{bad_name:?}");
        let no_allow = CompiledPolicy::compile(source("tools.call", "package tools.call\nx := 1\n", None));
        assert!(matches!(no_allow, Err(PolicyError::Invalid { .. })), "{no_allow:?}");
        let array =
            CompiledPolicy::compile(source("tools.call", "package tools.call\ndefault allow := true\n", Some("[1]")));
        assert!(matches!(array, Err(PolicyError::Invalid { .. })), "{array:?}");
    }

    #[test]
    fn a_non_boolean_allow_is_an_error_at_compile_time() {
        let rego = "package tools.call\n\nallow := \"yes\"\n";
        let err = CompiledPolicy::compile(source("tools.call", rego, None)).unwrap_err();
        assert!(err.to_string().contains("must be a boolean"), "{err}");
    }
}
