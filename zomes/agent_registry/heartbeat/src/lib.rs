//! Coordinator `heartbeat`: a node records that it is alive, with a small load sample, under the
//! anchor of the current time bucket, and signals it to the node's dashboards. Reading who is
//! online lives in `discovery`.
use agent_registry_integrity::heartbeat::anchor_hash_for;
use agent_registry_integrity::{HeartbeatSample, LinkTypes, RegistryProperties};
use agent_registry_types::RegistrySignal;
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

/// The node itself (its sidecar's heartbeat loop): one heartbeat link in the current bucket, then
/// a signal to this node's app clients only. Peers' beats are not pushed: one remote signal per
/// beat to every live node would cost N² per interval; a dashboard reads them by discovery when
/// its own node beats. Beats closer together than `heartbeat_min_interval_secs` are rejected (HB4).
#[hdk_extern]
pub fn heartbeat(sample: HeartbeatSample) -> ExternResult<ActionHash> {
    sample.check().map_err(HeartbeatError::InvalidSample)?;
    let me = agent_info()?.agent_initial_pubkey;
    let props = RegistryProperties::current()?;
    let at = sys_time()?;
    let base = anchor_hash_for(&props, &me, at)?;
    let beat = create_link(base, me.clone(), LinkTypes::BucketToHeartbeats, sample.to_tag()?)?;
    emit_signal(RegistrySignal::Heartbeat { agent: me, at, sample })?;
    Ok(beat)
}

/// Anyone: the network's liveness timing, so a sidecar can pace its heartbeat loop.
#[hdk_extern]
pub fn get_heartbeat_settings(_: ()) -> ExternResult<RegistryProperties> {
    RegistryProperties::current()
}
