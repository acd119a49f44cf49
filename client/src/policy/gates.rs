//! The gate packages this node evaluates: the network's current version of each package where one
//! has been published, the built-in default otherwise. Compiled once per version.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use policy_store_types::BundleRecord;

use super::defaults;
use super::engine::{CompiledPolicy, PolicyError, PolicySource, Verdict};

/// The package every gated action passes first.
pub const EVERY_ACTION: &str = "tools.call";

pub struct Gates {
    packages: RwLock<BTreeMap<String, Arc<CompiledPolicy>>>,
}

/// What `Gates::install` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The source is now the package's current version.
    Now,
    /// That version (or a newer one) was already installed.
    Already,
}

impl Gates {
    /// The built-in defaults, compiled.
    pub fn with_defaults() -> Result<Self, PolicyError> {
        let mut packages = BTreeMap::new();
        for source in defaults::builtin() {
            packages.insert(source.package.clone(), Arc::new(CompiledPolicy::compile(source)?));
        }
        Ok(Self { packages: RwLock::new(packages) })
    }

    /// Makes a published version current unless the same or a newer one already is. A version that
    /// does not compile is refused and the previous one stays in force.
    pub fn install(&self, source: PolicySource) -> Result<Installed, PolicyError> {
        if let Some(have) = self.get(&source.package) {
            let same = have.source().bundle == source.bundle && source.bundle.is_some();
            if same || have.source().version > source.version {
                return Ok(Installed::Already);
            }
        }
        let compiled = Arc::new(CompiledPolicy::compile(source)?);
        let package = compiled.source().package.clone();
        self.packages.write().unwrap_or_else(|p| p.into_inner()).insert(package, compiled);
        Ok(Installed::Now)
    }

    /// Installs the network's current versions (`policies.get_current_bundles`). One package that
    /// does not compile here is reported and skipped; the others still take effect.
    pub fn refresh(&self, current: &[BundleRecord]) -> Vec<(String, Result<Installed, PolicyError>)> {
        current.iter().map(|b| (b.bundle.package.clone(), self.install(PolicySource::from(b)))).collect()
    }

    pub fn get(&self, package: &str) -> Option<Arc<CompiledPolicy>> {
        self.packages.read().unwrap_or_else(|p| p.into_inner()).get(package).cloned()
    }

    /// (package, version, bundle) of every package in force.
    pub fn in_force(&self) -> Vec<(String, u64, Option<String>)> {
        let packages = self.packages.read().unwrap_or_else(|p| p.into_inner());
        packages.values().map(|p| (p.source().package.clone(), p.source().version, p.source().bundle.clone())).collect()
    }

    /// Evaluates one package, e.g. `inference.merge` for a consensus.
    pub fn evaluate(&self, package: &str, input: &serde_json::Value) -> Result<Verdict, PolicyError> {
        let policy = self.get(package).ok_or_else(|| PolicyError::Invalid {
            package: package.into(),
            message: "no such policy package on this network".into(),
        })?;
        policy.evaluate(input)
    }

    /// Decides `action`: `tools.call` first, then the package named like the action if there is
    /// one. The decisive verdict is the first denial, else the most specific allowance.
    pub fn decide(&self, action: &str, input: &serde_json::Value) -> Result<Verdict, PolicyError> {
        let mut verdict = self.evaluate(EVERY_ACTION, input)?;
        if verdict.allowed && action != EVERY_ACTION {
            if let Some(own) = self.get(action) {
                verdict = own.evaluate(input)?;
            }
        }
        Ok(verdict)
    }
}

impl From<&BundleRecord> for PolicySource {
    fn from(record: &BundleRecord) -> Self {
        PolicySource {
            package: record.bundle.package.clone(),
            version: record.bundle.version,
            bundle: Some(record.bundle_id.to_string()),
            rego: record.bundle.rego.clone(),
            data: record.bundle.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn published(package: &str, version: u64, rego: &str, data: Option<&str>) -> PolicySource {
        PolicySource {
            package: package.into(),
            version,
            bundle: Some(format!("uhCkk-{package}-{version}")),
            rego: rego.into(),
            data: data.map(str::to_string),
        }
    }

    #[test]
    fn the_defaults_are_in_force_until_a_version_is_published() {
        let gates = Gates::with_defaults().unwrap();
        let in_force = gates.in_force();
        assert!(in_force.iter().all(|(_, version, bundle)| *version == 0 && bundle.is_none()), "{in_force:?}");
        let tools = gates.get("tools.call").unwrap().source().rego.clone();
        let v1 = published("tools.call", 1, &tools, Some(r#"{"disabled_actions": ["artifacts.publish"]}"#));
        assert_eq!(gates.install(v1.clone()), Ok(Installed::Now));
        assert_eq!(gates.install(v1), Ok(Installed::Already));
        let denied = gates.decide("artifacts.publish", &json!({"action": "artifacts.publish"})).unwrap();
        assert_eq!((denied.package.as_str(), denied.version, denied.allowed), ("tools.call", 1, false));
    }

    #[test]
    fn an_older_or_broken_version_leaves_the_current_one_in_force() {
        let gates = Gates::with_defaults().unwrap();
        let v2 = published("tools.extra", 2, "package tools.extra\n\ndefault allow := true\n", None);
        assert_eq!(gates.install(v2), Ok(Installed::Now));
        let v1 = published("tools.extra", 1, "package tools.extra\n\ndefault allow := false\n", None);
        assert_eq!(gates.install(v1), Ok(Installed::Already));
        let broken = published("tools.extra", 3, "package tools.extra\n\nallow := (\n", None);
        assert!(matches!(gates.install(broken), Err(PolicyError::Syntax { .. })));
        assert_eq!(gates.get("tools.extra").unwrap().source().version, 2);
    }

    #[test]
    fn an_action_passes_tools_call_then_its_own_package() {
        let gates = Gates::with_defaults().unwrap();
        let input = |duration: u64| json!({"action": "resources.allocate", "args": {"duration_seconds": duration}});
        let allowed = gates.decide("resources.allocate", &input(60)).unwrap();
        assert_eq!((allowed.package.as_str(), allowed.allowed), ("resources.allocate", true));
        let denied = gates.decide("resources.allocate", &input(10 * 86400)).unwrap();
        assert_eq!((denied.package.as_str(), denied.allowed), ("resources.allocate", false));
        let other = gates.decide("holochain.install_dna", &json!({"action": "holochain.install_dna"})).unwrap();
        assert_eq!((other.package.as_str(), other.allowed), ("tools.call", true));
        assert!(gates.evaluate("no.such", &json!({})).is_err());
    }
}
