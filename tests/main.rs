//! Ripple's integration tests, in one binary (`cargo xtask test` builds the bundles they load).
//!
//! - `agent_registry::validation`: every rule refuses a commit that breaks it; peers warrant one
//!   break of each kind over the network.
//! - `agent_registry::mesh`: several conductors register, heartbeat and discover each other.
//! - `resource_mesh::validation`: every resource_mesh rule refuses a commit that breaks it; peers
//!   warrant the grant and release rules' breakers over the network.
//! - `resource_mesh::allocation`: eight requesters race for four slots across conductors.
//! - `artifact_index::validation`: every artifact_index rule refuses a commit that breaks it; peers
//!   warrant a claim renewed on another node's behalf and a statement about another artifact.
//! - `policy_store::validation`: every policy_store rule refuses a commit that breaks it, after the
//!   honest publish/decide/audit path; peers warrant a non-admin publish and a decision for another.
//! - `memory_shards::validation`: every memory_shards rule refuses a commit that breaks it, after the
//!   honest create/claim/checkpoint/release path; peers warrant a claim made on behalf of another node.
//! - `policy_store::gate`: a version published on one node gates another; decisions written ahead.
//! - `manifests`: the committed manifests are valid for Holochain 0.7 and match the pins.
//! - `sidecar`: the real `ripple` binary: three nodes on a local network, attach mode, bad input.
//! - `bench`: `#[ignore]`d benchmarks run by `cargo xtask bench …`.
mod agent_registry;
mod artifact_index;
mod bench;
mod manifests;
mod memory_shards;
mod policy_store;
mod resource_mesh;
mod sidecar;
mod support;
