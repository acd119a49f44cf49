//! The `ripple` sidecar end to end: the real binary, each node with its own embedded conductor
//! and data dir, or attached to a conductor the test started.
mod artifacts;
mod attach;
mod bad_input;
mod cli;
mod compiled_zomes;
mod dashboard;
mod faults;
pub mod harness;
mod inference;
mod interrupt;
pub(crate) mod mcp;
pub(crate) mod mesh;
mod networks;
mod resources;
