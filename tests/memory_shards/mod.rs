//! memory_shards: every rule broken on purpose, and the honest map, claim and checkpoint path.
pub mod validation;
