//! Coordinator `heartbeat`: a node records that it is alive, with a small load sample, under the
//! anchor of the current time bucket. Reading who is online lives in `discovery`.
use agent_registry_integrity::heartbeat::anchor_hash_for;
use agent_registry_integrity::{HeartbeatSample, LinkTypes, RegistryProperties};
use hdk::prelude::*;

#[derive(Debug, thiserror::Error)]
enum HeartbeatError {
    #[error("heartbeat rejected before publishing: {0}")]
    InvalidSample(agent_registry_integrity::RuleViolation),
}

impl From<HeartbeatError> for WasmError {
    fn from(e: HeartbeatError) -> Self {
        wasm_error!(WasmErrorInner::Guest(e.to_string()))
    }
}

/// The node itself (its sidecar's heartbeat loop): one heartbeat link in the current bucket.
/// Beats closer together than `heartbeat_min_interval_secs` are rejected (HB4).
#[hdk_extern]
pub fn heartbeat(sample: HeartbeatSample) -> ExternResult<ActionHash> {
    sample.check().map_err(HeartbeatError::InvalidSample)?;
    let me = agent_info()?.agent_initial_pubkey;
    let props = RegistryProperties::current()?;
    let base = anchor_hash_for(&props, &me, sys_time()?)?;
    create_link(base, me, LinkTypes::BucketToHeartbeats, sample.to_tag()?)
}

/// Anyone: the network's liveness timing, so a sidecar can pace its heartbeat loop.
#[hdk_extern]
pub fn get_heartbeat_settings(_: ()) -> ExternResult<RegistryProperties> {
    RegistryProperties::current()
}
