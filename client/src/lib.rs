//! The Ripple sidecar: a thin client of a Holochain conductor (embedded in this process by
//! default, or an existing one on loopback) that joins a Ripple network, publishes this node's
//! capability advert and heartbeats, and answers discovery over a loopback HTTP API.
//!
//! It is not a database or a coordinator: all shared state lives in the hApp's DHTs, and the
//! sidecar reaches it only through the conductor's admin and app websockets.
pub mod allocator;
pub mod api;
pub mod artifacts;
pub mod bootstrap;
pub mod bridges;
pub mod cli;
pub mod compiled_zomes;
pub mod conductor;
pub mod config;
pub mod inference;
pub mod local_http;
pub mod manifests;
pub mod mcp;
pub mod mesh;
pub mod metrics;
pub mod networks;
pub mod node;
pub mod peer;
pub mod periodic;
pub mod policy;
pub mod resources;
pub mod runfile;
pub mod runtime;
pub mod shards;
pub mod up;
