//! The `validate` dispatcher: one validator per (operation × type), each citing the rule IDs of
//! `docs/integrity/agent_registry.md`.
//!
//! Rules that need only the action and its own data run on every op the action produces (record,
//! entry/link and agent-activity authorities alike), so no authority stores what another rejects.
//! Rules about the author's chain (AR2, HB4) run at the agent-activity authority, which holds it.
//! `Ok(Err(violation))` is the author's fault (Invalid); `Err(_)` means "cannot decide yet"
//! (a `must_get_*` dependency is missing and the op is retried).
use hdi::prelude::*;

use crate::heartbeat::{accepted_anchor_hashes, HeartbeatSample};
use crate::index::{AdvertIndexTag, IndexKey};
use crate::node_advert::NodeAdvert;
use crate::properties::RegistryProperties;
use crate::rules::{ensure, Rule, RuleViolation};
use crate::{EntryTypes, LinkTypes, UnitEntryTypes};

/// AR2: an advert must be created within this many actions of genesis, which bounds the chain a
/// validator reads to prove it is the only one.
pub const ADVERT_CREATE_MAX_SEQ: u32 = 1024;

type Verdict = ExternResult<Result<(), RuleViolation>>;

pub fn validate(op: Op) -> ExternResult<ValidateCallbackResult> {
    // The agent's admission (MP1–MP3) is the same rule in every DNA.
    if let Some(verdict) = membrane::validate_admission(&op)? {
        return Ok(verdict);
    }
    let verdict = match op.flattened::<EntryTypes, LinkTypes>()? {
        FlatOp::CreateRecord(record) => match record {
            OpRecord::CreateEntry { app_entry: EntryTypes::NodeAdvert(advert), action: _ } => {
                validate_create_node_advert(&advert)
            }
            OpRecord::UpdateEntry { app_entry: EntryTypes::NodeAdvert(advert), action } => {
                validate_update_node_advert(&action, &advert)
            }
            OpRecord::DeleteEntry { action } => validate_delete_entry(&action),
            OpRecord::CreateLink { link_type, action } => validate_create_link(link_type, &action),
            OpRecord::DeleteLink { action } => {
                let original = must_get_action(action.data.link_add_address.clone())?;
                let original = TypedAction::<CreateLinkData>::try_from_action(original.action().clone())?;
                match LinkTypes::from_type(original.data.zome_index, original.data.link_type)? {
                    Some(link_type) => validate_delete_link(link_type, &original, &action),
                    None => Ok(Ok(())), // a link of another zome: not ours to judge
                }
            }
            // Genesis, cap grants/claims, agent keys and private entries: nothing app-specific (the
            // AgentValidationPkg was judged above, by the membrane rules).
            OpRecord::CreatePrivateEntry { .. }
            | OpRecord::CreateAgent { .. }
            | OpRecord::CreateCapClaim { .. }
            | OpRecord::CreateCapGrant { .. }
            | OpRecord::UpdatePrivateEntry { .. }
            | OpRecord::UpdateAgent { .. }
            | OpRecord::UpdateCapClaim { .. }
            | OpRecord::UpdateCapGrant { .. }
            | OpRecord::Dna { .. }
            | OpRecord::OpenChain { .. }
            | OpRecord::CloseChain { .. }
            | OpRecord::AgentValidationPkg { .. }
            | OpRecord::InitZomesComplete { .. } => Ok(Ok(())),
        },
        FlatOp::CreateEntry(entry) => match entry {
            OpEntry::CreateEntry { app_entry: EntryTypes::NodeAdvert(advert), action: _ } => {
                validate_create_node_advert(&advert)
            }
            OpEntry::UpdateEntry { app_entry: EntryTypes::NodeAdvert(advert), action } => {
                validate_update_node_advert(&action, &advert)
            }
            OpEntry::CreateAgent { .. }
            | OpEntry::UpdateAgent { .. }
            | OpEntry::CreateCapGrant { .. }
            | OpEntry::CreateCapClaim { .. }
            | OpEntry::UpdateCapGrant { .. }
            | OpEntry::UpdateCapClaim { .. } => Ok(Ok(())),
        },
        FlatOp::Update(update) => match update {
            OpUpdate::Entry { app_entry: EntryTypes::NodeAdvert(advert), action } => {
                validate_update_node_advert(&action, &advert)
            }
            OpUpdate::PrivateEntry { .. }
            | OpUpdate::Agent { .. }
            | OpUpdate::CapClaim { .. }
            | OpUpdate::CapGrant { .. } => Ok(Ok(())),
        },
        FlatOp::Delete(OpDelete { action }) => validate_delete_entry(&action),
        FlatOp::Link(OpLink::CreateLink { link_type, action }) => validate_create_link(link_type, &action),
        FlatOp::Link(OpLink::DeleteLink { original_action, link_type, action }) => {
            validate_delete_link(link_type, &original_action, &action)
        }
        FlatOp::AgentActivity(activity) => match activity {
            OpActivity::CreateEntry { app_entry_type: Some(UnitEntryTypes::NodeAdvert), action } => {
                validate_node_advert_chain_position(&action)
            }
            OpActivity::CreateLink { link_type: Some(LinkTypes::BucketToHeartbeats), action } => {
                validate_heartbeat_interval(&action)
            }
            // Everything else on the chain is judged by the record/entry/link authorities above.
            _ => Ok(Ok(())),
        },
    };
    Ok(match verdict? {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(violation) => ValidateCallbackResult::Invalid(violation.to_string()),
    })
}

/// Rules: AR1 (fields in bounds). The author is the advertised node by construction: the advert
/// has no subject field of its own.
fn validate_create_node_advert(advert: &NodeAdvert) -> Verdict {
    Ok(advert.check())
}

/// Rules: AR1 (fields in bounds), AR3 (only the author updates, always against the original create).
fn validate_update_node_advert(action: &TypedAction<UpdateData>, advert: &NodeAdvert) -> Verdict {
    if let Err(violation) = advert.check() {
        return Ok(Err(violation));
    }
    let original = must_get_action(action.data.original_action_address.clone())?;
    Ok(ensure(original.action().author() == action.author(), Rule::AR3, || {
        "only the node that created an advert may update it".into()
    })
    .and_then(|()| {
        ensure(matches!(original.action().data, ActionData::Create(_)), Rule::AR3, || {
            "an advert update must reference the original create, not another update".into()
        })
    }))
}

/// Rules: AR4 (adverts are never deleted; a node leaves by going offline).
fn validate_delete_entry(action: &TypedAction<DeleteData>) -> Verdict {
    let deleted = must_get_action(action.data.deletes_address.clone())?;
    Ok(ensure(!is_node_advert(deleted.action())?, Rule::AR4, || {
        "adverts are never deleted: publish availability `offline` or stop heartbeating".into()
    }))
}

/// Rules: AR2 (one advert per agent, created within the first `ADVERT_CREATE_MAX_SEQ` actions).
fn validate_node_advert_chain_position(action: &TypedAction<CreateData>) -> Verdict {
    let seq = action.action_seq();
    if seq > ADVERT_CREATE_MAX_SEQ {
        return Ok(Err(RuleViolation::new(
            Rule::AR2,
            format!("an advert must be created within the first {ADVERT_CREATE_MAX_SEQ} actions, this is action {seq}"),
        )));
    }
    let Some(prev) = action.prev_action() else {
        return Ok(Err(RuleViolation::new(Rule::AR2, "an advert cannot be a genesis action")));
    };
    for earlier in must_get_agent_activity(action.author().clone(), ChainFilter::new(prev.clone()))? {
        let earlier = earlier.action.action();
        if matches!(earlier.data, ActionData::Create(_)) && is_node_advert(earlier)? {
            return Ok(Err(RuleViolation::new(
                Rule::AR2,
                format!("this node already created its advert at action {}; update it instead", earlier.action_seq()),
            )));
        }
    }
    Ok(Ok(()))
}

fn validate_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Verdict {
    match link_type {
        LinkTypes::CapabilityToNodes => validate_create_link_capability_to_nodes(action),
        LinkTypes::BucketToHeartbeats => validate_create_link_heartbeat(action),
    }
}

fn validate_delete_link(
    link_type: LinkTypes,
    original: &TypedAction<CreateLinkData>,
    action: &TypedAction<DeleteLinkData>,
) -> Verdict {
    match link_type {
        LinkTypes::CapabilityToNodes => validate_delete_link_capability_to_nodes(original, action),
        LinkTypes::BucketToHeartbeats => validate_delete_link_heartbeat(),
    }
}

/// Rules: IX1 (the indexed agent is the author), IX2 (the path is implied by the advert version
/// named in the tag, which the author wrote).
fn validate_create_link_capability_to_nodes(action: &TypedAction<CreateLinkData>) -> Verdict {
    let author = action.author();
    if action.data.target_address.clone().into_agent_pub_key().as_ref() != Some(author) {
        return Ok(Err(RuleViolation::new(Rule::IX1, "a node may only list itself in the capability index")));
    }
    let Some(tag) = AdvertIndexTag::from_tag(&action.data.tag) else {
        return Ok(Err(RuleViolation::new(Rule::IX2, "index link tag is not an AdvertIndexTag")));
    };
    let record = must_get_valid_record(tag.advert.clone())?;
    if record.action().author() != author {
        return Ok(Err(RuleViolation::new(Rule::IX2, "index link names an advert written by another node")));
    }
    let advert = match record.entry().to_app_option::<NodeAdvert>() {
        Ok(Some(advert)) if is_node_advert(record.action())? => advert,
        _ => return Ok(Err(RuleViolation::new(Rule::IX2, "index link tag does not name a NodeAdvert"))),
    };
    for key in IndexKey::for_advert(author, &advert) {
        if AnyLinkableHash::from(key.path_hash()?) == action.data.base_address {
            return Ok(Ok(()));
        }
    }
    Ok(Err(RuleViolation::new(Rule::IX2, "the advert named in the tag does not have the capability this path indexes")))
}

/// Rules: IX3 (only the link's author deletes it).
fn validate_delete_link_capability_to_nodes(
    original: &TypedAction<CreateLinkData>,
    action: &TypedAction<DeleteLinkData>,
) -> Verdict {
    Ok(ensure(original.author() == action.author(), Rule::IX3, || {
        "only the node that listed itself may remove the listing".into()
    }))
}

/// Rules: HB1 (about the author), HB2 (small, well-formed sample), HB3 (under the anchor of the
/// action's own time bucket and the author's shard).
fn validate_create_link_heartbeat(action: &TypedAction<CreateLinkData>) -> Verdict {
    let author = action.author();
    if action.data.target_address.clone().into_agent_pub_key().as_ref() != Some(author) {
        return Ok(Err(RuleViolation::new(Rule::HB1, "a node may only heartbeat for itself")));
    }
    if let Err(violation) = HeartbeatSample::from_tag(&action.data.tag) {
        return Ok(Err(violation));
    }
    let props = RegistryProperties::current()?;
    let accepted = accepted_anchor_hashes(&props, author, action.timestamp())?;
    Ok(ensure(accepted.into_iter().any(|h| AnyLinkableHash::from(h) == action.data.base_address), Rule::HB3, || {
        format!(
            "a heartbeat must sit under the anchor of its own {}-second bucket and key shard",
            props.heartbeat_bucket_secs
        )
    }))
}

/// Rules: HB5 (heartbeats are never deleted; they age out of the window).
fn validate_delete_link_heartbeat() -> Verdict {
    Ok(Err(RuleViolation::new(Rule::HB5, "heartbeats are never deleted; they age out of the online window")))
}

/// Rules: HB4 (at least `heartbeat_min_interval_secs` after the author's previous heartbeat).
fn validate_heartbeat_interval(action: &TypedAction<CreateLinkData>) -> Verdict {
    let Some(prev) = action.prev_action() else {
        return Ok(Ok(())); // unreachable for a link; sys validation rejects it anyway
    };
    let props = RegistryProperties::current()?;
    let since = Timestamp::from_micros(
        action.timestamp().as_micros() - i64::from(props.heartbeat_min_interval_secs) * 1_000_000,
    );
    if must_get_action(prev.clone())?.action().timestamp() <= since {
        return Ok(Ok(())); // nothing at all on the chain inside the interval
    }
    for earlier in must_get_agent_activity(action.author().clone(), ChainFilter::until_timestamp(prev.clone(), since))?
    {
        let earlier = earlier.action.action();
        if earlier.timestamp() > since && is_heartbeat(earlier)? {
            return Ok(Err(RuleViolation::new(
                Rule::HB4,
                format!("heartbeats must be at least {} s apart", props.heartbeat_min_interval_secs),
            )));
        }
    }
    Ok(Ok(()))
}

fn is_node_advert(action: &Action) -> ExternResult<bool> {
    let Some(def) = action.app_entry_def() else {
        return Ok(false);
    };
    let scoped = ScopedEntryDefIndex::try_from(UnitEntryTypes::NodeAdvert)?;
    Ok(def.zome_index == scoped.zome_index && def.entry_index == scoped.zome_type)
}

fn is_heartbeat(action: &Action) -> ExternResult<bool> {
    Ok(match &action.data {
        ActionData::CreateLink(link) => {
            matches!(LinkTypes::from_type(link.zome_index, link.link_type)?, Some(LinkTypes::BucketToHeartbeats))
        }
        _ => false,
    })
}
