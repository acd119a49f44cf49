//! Policy gates: Rego packages from the policy_store DNA (or the built-in defaults in
//! `manifests/policies/`), evaluated locally with regorus.
pub mod defaults;
pub mod engine;

pub use engine::{CompiledPolicy, PolicyError, PolicySource, Verdict};
