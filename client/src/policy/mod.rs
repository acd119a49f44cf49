//! Policy gates: Rego packages from the policy_store DNA (or the built-in defaults in
//! `manifests/policies/`), evaluated locally with regorus.
pub mod defaults;
pub mod engine;
pub mod gates;
pub mod journal;
pub mod service;
pub mod write_ahead;

pub use engine::{CompiledPolicy, PolicyError, PolicySource, Verdict};
pub use gates::{Gates, Installed};
pub use journal::{AuditJournal, Commit};
pub use service::PolicyService;
pub use write_ahead::{DecisionLog, GateError, Permit, WriteAheadGate};
