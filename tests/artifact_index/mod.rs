//! artifact_index: every rule broken on purpose, and the honest lookups.
pub mod validation;
