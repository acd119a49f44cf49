//! Ripple's integration tests, in one binary (`cargo xtask test` builds the bundles they load).
//!
//! - `agent_registry::validation`: every rule refuses a commit that breaks it.
//! - `agent_registry::mesh`: several conductors register, heartbeat and discover each other.
//! - `resource_mesh::validation`: every resource_mesh rule refuses a commit that breaks it.
//! - `resource_mesh::allocation`: eight requesters race for four slots across conductors, through
//!   the inbox and handed to the provider directly.
//! - `artifact_index::validation`: every artifact_index rule refuses a commit that breaks it.
//! - `policy_store::validation`: every policy_store rule refuses a commit that breaks it, after the
//!   honest publish/decide/audit path.
//! - `memory_shards::validation`: every memory_shards rule refuses a commit that breaks it, after the
//!   honest create/claim/checkpoint/release path.
//! - `warrants`: over the network, peers warrant one break of each kind in every DNA (13 rules, four
//!   adversary conductors: kitsune2 blocks a peer per DNA space).
//! - `membrane`: admission by invitation (MP1–MP3) at genesis, and a warrant for an agent that
//!   skipped it.
//! - `policy_store::gate`: a version published on one node gates another; decisions written ahead.
//! - `manifests`: the committed manifests are valid for Holochain 0.7 and match the pins.
//! - `sidecar`: the real `ripple` binary: three nodes on a local network, attach mode, bad input,
//!   and a created network whose nodes join by invitation, each on its own test host (a network
//!   namespace) when run as root.
//! - `bench`: `#[ignore]`d benchmarks run by `cargo xtask bench …`.
//! - `soak`: the `#[ignore]`d hour of six nodes run by `cargo xtask soak`.
mod agent_registry;
mod artifact_index;
mod bench;
mod manifests;
mod membrane;
mod memory_shards;
mod policy_store;
mod redis_baseline;
mod resource_mesh;
mod sidecar;
mod soak;
mod support;
mod warrants;
