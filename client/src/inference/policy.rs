//! `manifests/distributed/inference_policy.yaml` (spec §10.4): which models and providers a
//! multi-model query asks, with what weights and deadlines, and how their answers are merged.
//! Parsed strictly: a typo in a key the sidecar reads is an error naming it.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum InferencePolicyError {
    #[error("cannot read the inference policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the inference policy {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Every named policy in the file; the first is the default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferencePolicies {
    pub policies: Vec<InferencePolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferencePolicy {
    pub name: String,
    /// For the agent frameworks that decide when to fan out; not read here.
    #[serde(default)]
    pub trigger: Option<String>,
    pub local_tier: LocalTier,
    pub cloud_tier: CloudTier,
    pub reducer: Reducer,
    pub audit: Audit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTier {
    pub min_parallel: usize,
    pub max_parallel: usize,
    pub models: Vec<LocalModel>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalModel {
    pub name: String,
    pub weight: f64,
    #[serde(default)]
    pub specialization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTier {
    pub min_parallel: usize,
    pub max_parallel: usize,
    pub providers: Vec<CloudProvider>,
    pub timeout_ms: u64,
    pub fallback_on_timeout: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudProvider {
    pub name: String,
    pub weight: f64,
    pub priority: u32,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The environment variable holding the API key [default: RIPPLE_CLOUD_<NAME>_API_KEY].
    #[serde(default)]
    pub api_key_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reducer {
    pub strategy: String,
    pub min_agreement: f64,
    pub policy_gate: String,
    pub conflict_resolution: String,
    #[serde(default)]
    pub embeddings_model: Option<String>,
    #[serde(default = "default_similarity")]
    pub similarity_threshold: f64,
}

fn default_similarity() -> f64 {
    0.92
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub log_all_responses: bool,
    pub store_disagreements: bool,
    pub trace_id_propagation: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    inference_policy: InferencePolicy,
    #[serde(default)]
    more_policies: Vec<InferencePolicy>,
}

/// A cloud provider ready to be asked: its API key is in the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredProvider {
    pub name: String,
    pub weight: f64,
    pub priority: u32,
    pub base_url: url::Url,
    pub model: String,
    pub api_key: String,
}

impl InferencePolicies {
    pub fn path(manifests: &Path) -> PathBuf {
        manifests.join("distributed/inference_policy.yaml")
    }

    pub fn load(manifests: &Path) -> Result<Self, InferencePolicyError> {
        let path = Self::path(manifests);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| InferencePolicyError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|reason| InferencePolicyError::Invalid { path, reason })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let policies: Vec<InferencePolicy> = std::iter::once(file.inference_policy).chain(file.more_policies).collect();
        let mut names = Vec::new();
        for p in &policies {
            p.check().map_err(|e| format!("policy `{}`: {e}", p.name))?;
            if names.contains(&&p.name) {
                return Err(format!("two policies are named `{}`", p.name));
            }
            names.push(&p.name);
        }
        Ok(Self { policies })
    }

    /// The default policy, or the one named (`policy_override`).
    pub fn get(&self, name: Option<&str>) -> Result<&InferencePolicy, String> {
        match name {
            None => Ok(&self.policies[0]),
            Some(name) => self.policies.iter().find(|p| p.name == name).ok_or_else(|| {
                let have: Vec<&str> = self.policies.iter().map(|p| p.name.as_str()).collect();
                format!("no inference policy named `{name}` (inference_policy.yaml has {have:?})")
            }),
        }
    }
}

impl InferencePolicy {
    fn check(&self) -> Result<(), String> {
        let tier = |name: &str, min: usize, max: usize, timeout_ms: u64| {
            if min > max {
                return Err(format!("{name}.min_parallel {min} is above max_parallel {max}"));
            }
            if max == 0 && name == "local_tier" {
                return Err("local_tier.max_parallel must be at least 1".into());
            }
            if !(1..=600_000).contains(&timeout_ms) {
                return Err(format!("{name}.timeout_ms must be 1-600000, got {timeout_ms}"));
            }
            Ok(())
        };
        let l = &self.local_tier;
        tier("local_tier", l.min_parallel, l.max_parallel, l.timeout_ms)?;
        let c = &self.cloud_tier;
        tier("cloud_tier", c.min_parallel, c.max_parallel, c.timeout_ms)?;
        let weights =
            l.models.iter().map(|m| (&m.name, m.weight)).chain(c.providers.iter().map(|p| (&p.name, p.weight)));
        for (name, weight) in weights {
            if !(weight.is_finite() && weight > 0.0 && weight <= 100.0) {
                return Err(format!("weight of `{name}` must be above 0 and at most 100, got {weight}"));
            }
        }
        if l.models.is_empty() {
            return Err("local_tier.models is empty".into());
        }
        let r = &self.reducer;
        if r.strategy != "weighted_consensus" {
            return Err(format!("reducer.strategy `{}` is not supported: use weighted_consensus", r.strategy));
        }
        if r.conflict_resolution != "highest_weight_wins" {
            return Err(format!(
                "reducer.conflict_resolution `{}` is not supported: use highest_weight_wins",
                r.conflict_resolution
            ));
        }
        if !(0.0..=1.0).contains(&r.min_agreement) {
            return Err(format!("reducer.min_agreement must be 0-1, got {}", r.min_agreement));
        }
        if !(0.0..=1.0).contains(&r.similarity_threshold) {
            return Err(format!("reducer.similarity_threshold must be 0-1, got {}", r.similarity_threshold));
        }
        self.gate_package()?;
        Ok(())
    }

    /// `opa://inference/merge` → the Rego package `inference.merge`.
    pub fn gate_package(&self) -> Result<String, String> {
        let gate = &self.reducer.policy_gate;
        let path = gate
            .strip_prefix("opa://")
            .filter(|p| {
                !p.is_empty()
                    && p.split('/').all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            })
            .ok_or_else(|| format!("reducer.policy_gate `{gate}` must look like opa://inference/merge"))?;
        Ok(path.replace('/', "."))
    }

    pub fn local_timeout(&self) -> Duration {
        Duration::from_millis(self.local_tier.timeout_ms)
    }

    pub fn cloud_timeout(&self) -> Duration {
        Duration::from_millis(self.cloud_tier.timeout_ms)
    }

    /// The cloud providers whose API key is set, by priority, and the names of those not
    /// configured with what is missing. `env` reads one variable (the process environment in use).
    pub fn cloud_providers(&self, env: &dyn Fn(&str) -> Option<String>) -> (Vec<ConfiguredProvider>, Vec<String>) {
        let mut configured = Vec::new();
        let mut missing = Vec::new();
        let mut providers = self.cloud_tier.providers.clone();
        providers.sort_by_key(|p| p.priority);
        for p in providers {
            let prefix =
                format!("RIPPLE_CLOUD_{}", p.name.to_uppercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
            let key_var = p.api_key_env.clone().unwrap_or_else(|| format!("{prefix}_API_KEY"));
            let base = env(&format!("{prefix}_BASE_URL")).or(p.base_url.clone());
            let model = env(&format!("{prefix}_MODEL")).or(p.model.clone());
            let key = env(&key_var).filter(|k| !k.is_empty());
            match (key, base.as_deref().map(url::Url::parse), model) {
                (Some(api_key), Some(Ok(base_url)), Some(model)) => configured.push(ConfiguredProvider {
                    name: p.name,
                    weight: p.weight,
                    priority: p.priority,
                    base_url,
                    model,
                    api_key,
                }),
                (None, ..) => missing.push(format!("{}: no API key in ${key_var}", p.name)),
                (_, None, _) => missing.push(format!("{}: no base_url (set {prefix}_BASE_URL)", p.name)),
                (_, Some(Err(e)), _) => missing.push(format!("{}: base_url is not a URL: {e}", p.name)),
                (_, _, None) => missing.push(format!("{}: no model (set {prefix}_MODEL)", p.name)),
            }
        }
        (configured, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/distributed/inference_policy.yaml"))
            .unwrap()
    }

    #[test]
    fn the_committed_policy_loads_with_the_spec_tiers() {
        let policies = InferencePolicies::parse(&committed()).unwrap();
        let p = policies.get(None).unwrap();
        assert_eq!(p.name, "ripple-moe");
        assert_eq!((p.local_tier.min_parallel, p.local_tier.max_parallel), (5, 8));
        assert_eq!(p.local_tier.models.len(), 5);
        assert_eq!(p.reducer.min_agreement, 0.6);
        assert_eq!(p.gate_package().unwrap(), "inference.merge");
        assert!(policies.get(Some("nope")).unwrap_err().contains("ripple-moe"));
    }

    #[test]
    fn typos_and_bad_values_are_refused_by_name() {
        let text = committed();
        for (from, to, expect) in [
            ("timeout_ms: 30000", "timeout_msec: 30000", "timeout_msec"),
            ("min_parallel: 5", "min_parallel: 9", "min_parallel 9 is above max_parallel 8"),
            ("weight: 1.2", "weight: -1", "weight of `Phi-4-mini-reasoning`"),
            ("strategy: weighted_consensus", "strategy: majority", "majority"),
            ("min_agreement: 0.6", "min_agreement: 1.5", "min_agreement must be 0-1"),
            ("policy_gate: opa://inference/merge", "policy_gate: inference/merge", "policy_gate"),
        ] {
            let err = InferencePolicies::parse(&text.replacen(from, to, 1)).unwrap_err();
            assert!(err.contains(expect), "{from} -> {to}: {err}");
        }
    }

    #[test]
    fn cloud_providers_need_a_key_in_the_environment() {
        let policies = InferencePolicies::parse(&committed()).unwrap();
        let p = policies.get(None).unwrap();
        let (configured, missing) = p.cloud_providers(&|_| None);
        assert!(configured.is_empty());
        assert_eq!(missing.len(), 3);
        assert!(missing[0].contains("claude-code: no API key in $RIPPLE_CLOUD_CLAUDE_CODE_API_KEY"), "{missing:?}");

        let env = |var: &str| match var {
            "RIPPLE_CLOUD_CODEX_API_KEY" => Some("sk-test".to_string()),
            "RIPPLE_CLOUD_CODEX_BASE_URL" => Some("http://127.0.0.1:9/v1".to_string()),
            _ => None,
        };
        let (configured, missing) = p.cloud_providers(&env);
        assert_eq!(configured.len(), 1);
        assert_eq!(configured[0].name, "codex");
        assert_eq!(configured[0].base_url.as_str(), "http://127.0.0.1:9/v1");
        assert_eq!(configured[0].model, "gpt-5-codex");
        assert_eq!(missing.len(), 2);
    }
}
