//! Advert news for dashboards: a node signals its advert changes to its app clients and, by
//! remote signal, to the nodes it has seen beating recently; a receiving node re-emits what a
//! node says about itself. The recipients come from the heartbeat links this node already holds
//! (a local read, no network). Adverts change rarely (joining, draining, a model loaded), so the
//! fan-out to every live node is cheap; heartbeats are not sent this way (see the heartbeat zome).
//! The sidecars' liveness protocol rides the same channel, one message to one node at a time.
use std::collections::{BTreeSet, HashSet};

use agent_registry_integrity::heartbeat::{anchor, HEARTBEAT_SHARDS};
use agent_registry_integrity::{LinkTypes, RegistryProperties};
use agent_registry_types::{LivenessMessage, RegistrySignal, LIVENESS_PAYLOAD_MAX};
use hdk::prelude::*;

/// For `init`: let any node call `recv_remote_signal` (the only function it opens).
pub fn open_remote_signals() -> ExternResult<()> {
    let mut functions = HashSet::new();
    functions.insert((zome_info()?.name, "recv_remote_signal".into()));
    create_cap_grant(CapGrant::new_zome_call_grant(
        "registry news".into(),
        GrantConstraint::Unrestricted,
        GrantedFunctions::Listed(functions),
    ))?;
    Ok(())
}

/// To this node's app clients, and to every other node seen in the current or previous bucket.
pub fn tell_mesh(signal: &RegistrySignal) -> ExternResult<()> {
    emit_signal(signal)?;
    let me = agent_info()?.agent_initial_pubkey;
    let peers: Vec<AgentPubKey> = recently_beating()?.into_iter().filter(|agent| agent != &me).collect();
    if !peers.is_empty() {
        send_remote_signal(signal, peers)?;
    }
    Ok(())
}

/// For `send_liveness`: one remote signal per message, each signed as this node's.
pub fn send_liveness_to(messages: Vec<LivenessMessage>) -> ExternResult<()> {
    let me = agent_info()?.agent_initial_pubkey;
    if let Some(long) = messages.iter().find(|m| m.payload.len() > LIVENESS_PAYLOAD_MAX) {
        return Err(crate::CapabilitiesError::LivenessTooLong(long.payload.len()).into());
    }
    for LivenessMessage { to, payload } in messages {
        send_remote_signal(RegistrySignal::Liveness { agent: me.clone(), payload }, vec![to])?;
    }
    Ok(())
}

/// For `recv_remote_signal`: a node's news about itself is passed on to this node's
/// app clients; news a node sends about another is dropped (remote signals are not validated).
pub fn relay(signal: RegistrySignal) -> ExternResult<()> {
    if &call_info()?.provenance == signal.agent() {
        emit_signal(signal)?;
    }
    Ok(())
}

fn recently_beating() -> ExternResult<BTreeSet<AgentPubKey>> {
    let props = RegistryProperties::current()?;
    let now = props.bucket_of(sys_time()?);
    let inputs = [now, now - 1]
        .into_iter()
        .flat_map(|bucket| (0..HEARTBEAT_SHARDS).map(move |shard| anchor(bucket, shard).path_entry_hash()))
        .map(|base| {
            Ok(GetLinksInput::from_query(
                LinkQuery::try_new(base?, LinkTypes::BucketToHeartbeats)?,
                GetOptions::local(),
            ))
        })
        .collect::<ExternResult<Vec<_>>>()?;
    let links = HDK.with(|h| h.borrow().get_links(inputs))?;
    Ok(links.into_iter().flatten().filter_map(|link| link.target.into_agent_pub_key()).collect())
}
