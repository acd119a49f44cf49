//! Coordinator `capabilities`: a node publishes its own advert and keeps its capability-index
//! listings in step with it. Reads of other nodes' adverts live in `discovery`.
use agent_registry_integrity::{AdvertIndexTag, EntryTypes, IndexKey, LinkTypes, NodeAdvert, UnitEntryTypes};
use agent_registry_types::{AdvertRecord, LivenessMessage, PublishProgress, RegistrySignal};
use hdk::prelude::*;
use news::{open_remote_signals, relay, send_liveness_to, tell_mesh};

mod news;

#[hdk_extern]
pub fn init(_: ()) -> ExternResult<InitCallbackResult> {
    open_remote_signals()?;
    Ok(InitCallbackResult::Pass)
}

/// Peers: a node's own advert news and its liveness messages, re-emitted to this node's app
/// clients (the sidecar among them).
#[hdk_extern]
pub fn recv_remote_signal(signal: RegistrySignal) -> ExternResult<()> {
    relay(signal)
}

/// The node itself (its sidecar's liveness protocol): each message by remote signal to the one
/// node it is for. Send-and-forget, like the datagrams the protocol was designed for.
#[hdk_extern]
pub fn send_liveness(messages: Vec<LivenessMessage>) -> ExternResult<()> {
    send_liveness_to(messages)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CapabilitiesError {
    #[error("advert rejected before publishing: {0}")]
    InvalidAdvert(agent_registry_integrity::RuleViolation),
    #[error("own chain holds an advert action without its entry: {0}")]
    MissingEntry(ActionHash),
    #[error("this node ({0}) is not a network admin: only the keys in the DNA properties' network_admins invite")]
    NotNetworkAdmin(AgentPubKey),
    #[error("not a peer request: only messages that start with the peer-request context are signed")]
    NotPeerRequest,
    #[error("liveness message of {0} bytes is over the {max} byte limit", max = agent_registry_types::LIVENESS_PAYLOAD_MAX)]
    LivenessTooLong(usize),
}

impl From<CapabilitiesError> for WasmError {
    fn from(e: CapabilitiesError) -> Self {
        wasm_error!(WasmErrorInner::Guest(e.to_string()))
    }
}

/// The node itself (its sidecar): creates the advert on first call and updates it afterwards,
/// re-listing the node under the capability paths of the new version, and signals the change (to
/// this node's app clients and the nodes it saw beating). Publishing an unchanged advert writes
/// nothing.
#[hdk_extern]
pub fn publish_node_advert(advert: NodeAdvert) -> ExternResult<AdvertRecord> {
    advert.check().map_err(CapabilitiesError::InvalidAdvert)?;
    let me = agent_info()?.agent_initial_pubkey;
    let current = get_my_node_advert(())?;
    if let Some(current) = &current {
        if current.advert == advert {
            return Ok(current.clone());
        }
        unlist(&me, &current.advert)?;
    }
    let (version, original) = match current {
        None => {
            let hash = create_entry(EntryTypes::NodeAdvert(advert.clone()))?;
            (hash.clone(), hash)
        }
        Some(current) => (update_entry(current.original.clone(), &advert)?, current.original),
    };
    list(&me, &advert, &version)?;
    tell_mesh(&RegistrySignal::Advert { agent: me, at: sys_time()?, advert: advert.clone() })?;
    Ok(AdvertRecord { version, original, advert })
}

/// The node itself: its current advert, read from its own source chain (no network).
#[hdk_extern]
pub fn get_my_node_advert(_: ()) -> ExternResult<Option<AdvertRecord>> {
    let filter = ChainQueryFilter::new().entry_type(UnitEntryTypes::NodeAdvert.try_into()?).include_entries(true);
    let records = query(filter)?;
    let (Some(first), Some(latest)) = (records.first(), records.last()) else {
        return Ok(None);
    };
    let advert = latest
        .entry()
        .to_app_option::<NodeAdvert>()
        .map_err(|e| wasm_error!(e))?
        .ok_or_else(|| CapabilitiesError::MissingEntry(latest.action_address().clone()))?;
    Ok(Some(AdvertRecord {
        version: latest.action_address().clone(),
        original: first.action_address().clone(),
        advert,
    }))
}

/// The node itself (its sidecar, before it stops): how many of its actions from `since` to its
/// chain head a validator has acknowledged, so a last advert update is out before shutdown.
#[hdk_extern]
pub fn get_publish_progress(since: ActionHash) -> ExternResult<PublishProgress> {
    let head = agent_info()?.chain_head.1;
    let from = query(ChainQueryFilter::new().sequence_range(ChainQueryFilterRange::ActionHashTerminated(since, 0)))?
        .first()
        .map_or(head, |r| r.action().action_seq());
    let actions = query(ChainQueryFilter::new().sequence_range(ChainQueryFilterRange::ActionSeqRange(from, head)))?;
    let mut progress = PublishProgress::default();
    for record in &actions {
        progress.actions += 1;
        let receipts = get_validation_receipts(GetValidationReceiptsInput::new(record.action_address().clone()))?;
        if receipts.iter().any(|set| !set.receipts.is_empty()) {
            progress.acknowledged += 1;
        }
    }
    Ok(progress)
}

fn list(me: &AgentPubKey, advert: &NodeAdvert, version: &ActionHash) -> ExternResult<()> {
    let tag = AdvertIndexTag { advert: version.clone() }.to_tag()?;
    for key in IndexKey::for_advert(me, advert) {
        create_link(key.path_hash()?, me.clone(), LinkTypes::CapabilityToNodes, tag.clone())?;
    }
    Ok(())
}

/// Removes this node's listings under every path of its previous advert version.
fn unlist(me: &AgentPubKey, previous: &NodeAdvert) -> ExternResult<()> {
    for key in IndexKey::for_advert(me, previous) {
        let query = LinkQuery::try_new(key.path_hash()?, LinkTypes::CapabilityToNodes)?.author(me.clone());
        for link in get_links(query, GetStrategy::Local)? {
            delete_link(link.create_link_hash, GetOptions::local())?;
        }
    }
    Ok(())
}

/// A network admin's node signs an invitation for `invitee` to the DNAs it names (this network's
/// cells, which the sidecar lists): the membrane proof the invitee installs with (MP1–MP3).
#[hdk_extern]
pub fn sign_invitation(invitation: membrane::Invitation) -> ExternResult<membrane::SignedInvitation> {
    let me = agent_info()?.agent_initial_pubkey;
    if !membrane::network_admins()?.contains(&me) {
        return Err(CapabilitiesError::NotNetworkAdmin(me).into());
    }
    let signature = sign(me.clone(), &invitation)?;
    Ok(membrane::SignedInvitation { invitation, admin: me, signature })
}

/// The sidecar signs its requests to other nodes' sidecars with this node's agent key (raw
/// Ed25519 over `message`), which the receiver checks against the caller's key. Only messages in
/// the peer-request context are signed, so this cannot sign anything else in the agent's name.
#[hdk_extern]
pub fn sign_peer_request(message: Vec<u8>) -> ExternResult<Signature> {
    if !message.starts_with(agent_registry_types::PEER_REQUEST_CONTEXT) {
        return Err(CapabilitiesError::NotPeerRequest.into());
    }
    sign_raw(agent_info()?.agent_initial_pubkey, message)
}
