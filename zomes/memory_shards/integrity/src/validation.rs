//! The `validate` dispatcher: one validator per (operation × type), each citing the rule IDs of
//! `docs/integrity/memory_shards.md`.
//!
//! Every rule needs only the action, its entry and the records it names, so each runs on every op
//! the action produces and no authority stores what another rejects. `Ok(Err(violation))` is the
//! author's fault (Invalid); `Err(_)` means "cannot decide yet" (a `must_get_*` dependency is
//! missing and the op is retried).
use hdi::prelude::*;

use crate::anchors;
use crate::entries::*;
use crate::rules::{ensure, Rule, RuleViolation};
use crate::{is_entry_type, EntryTypes, LinkTypes, UnitEntryTypes};

type Verdict = ExternResult<Result<(), RuleViolation>>;

pub fn validate(op: Op) -> ExternResult<ValidateCallbackResult> {
    // The agent's admission (MP1–MP3) is the same rule in every DNA.
    if let Some(verdict) = membrane::validate_admission(&op)? {
        return Ok(verdict);
    }
    let verdict = match op.flattened::<EntryTypes, LinkTypes>()? {
        FlatOp::CreateRecord(OpRecord::CreateEntry { app_entry, action })
        | FlatOp::CreateEntry(OpEntry::CreateEntry { app_entry, action }) => {
            validate_create(action.author(), app_entry)
        }
        FlatOp::CreateRecord(OpRecord::UpdateEntry { app_entry, action })
        | FlatOp::CreateEntry(OpEntry::UpdateEntry { app_entry, action })
        | FlatOp::Update(OpUpdate::Entry { app_entry, action }) => validate_update(&action, app_entry),
        FlatOp::CreateRecord(OpRecord::DeleteEntry { action }) | FlatOp::Delete(OpDelete { action }) => {
            validate_delete_entry(&action)
        }
        FlatOp::CreateRecord(OpRecord::CreateLink { link_type, action })
        | FlatOp::Link(OpLink::CreateLink { link_type, action }) => validate_create_link(link_type, &action),
        FlatOp::CreateRecord(OpRecord::DeleteLink { action }) => {
            let original = must_get_action(action.data.link_add_address.clone())?;
            let original = TypedAction::<CreateLinkData>::try_from_action(original.action().clone())?;
            match LinkTypes::from_type(original.data.zome_index, original.data.link_type)? {
                Some(link_type) => validate_delete_link(link_type, &original, &action),
                None => Ok(Ok(())), // a link of another zome: not ours to judge
            }
        }
        FlatOp::Link(OpLink::DeleteLink { original_action, link_type, action }) => {
            validate_delete_link(link_type, &original_action, &action)
        }
        // Genesis, cap grants/claims, agent keys, private entries and agent activity: nothing
        // app-specific, or judged by the record/entry/link authorities above.
        _ => Ok(Ok(())),
    };
    Ok(match verdict? {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(violation) => ValidateCallbackResult::Invalid(violation.to_string()),
    })
}

fn validate_create(author: &AgentPubKey, entry: EntryTypes) -> Verdict {
    match entry {
        EntryTypes::ShardMap(map) => Ok(map.check()),
        EntryTypes::ShardClaim(claim) => validate_create_claim(author, &claim),
        EntryTypes::SyncCheckpoint(checkpoint) => validate_checkpoint(author, &checkpoint),
    }
}

/// Rules: SC1, SC3 (the claim's own fields), SC2 (within its map).
fn validate_create_claim(author: &AgentPubKey, claim: &ShardClaim) -> Verdict {
    if let Err(violation) = claim.check(author) {
        return Ok(Err(violation));
    }
    let Some((_, map)) = get_entry::<ShardMap>(&claim.map, UnitEntryTypes::ShardMap)? else {
        return Ok(Err(RuleViolation::new(Rule::SC2, "a claim must name a shard map")));
    };
    Ok(ensure(claim.shard < map.shard_count, Rule::SC2, || {
        format!("shard {} is beyond the map's {} shards (0-{})", claim.shard, map.shard_count, map.shard_count - 1)
    })
    .and_then(|()| {
        ensure(claim.replica < map.replication_factor, Rule::SC2, || {
            format!("replica {} is beyond the map's replication factor {}", claim.replica, map.replication_factor)
        })
    })
    .and_then(|()| {
        ensure(claim.epoch == map.epoch, Rule::SC2, || {
            format!("the claim's epoch {} is not the map's epoch {}", claim.epoch, map.epoch)
        })
    }))
}

/// Rules: CP2 (fields), CP1 (a claim of the author, for the same shard and replica).
fn validate_checkpoint(author: &AgentPubKey, checkpoint: &SyncCheckpoint) -> Verdict {
    if let Err(violation) = checkpoint.check() {
        return Ok(Err(violation));
    }
    let Some((claim_action, claim)) = get_entry::<ShardClaim>(&checkpoint.claim, UnitEntryTypes::ShardClaim)? else {
        return Ok(Err(RuleViolation::new(Rule::CP1, "a checkpoint must name a shard claim")));
    };
    Ok(ensure(claim_action.author() == author, Rule::CP1, || {
        "a checkpoint is written by the replica's holder, for a shard it claimed".into()
    })
    .and_then(|()| {
        ensure(claim.shard == checkpoint.shard && claim.replica == checkpoint.replica, Rule::CP1, || {
            format!(
                "the checkpoint names shard {} replica {} but its claim is for shard {} replica {}",
                checkpoint.shard, checkpoint.replica, claim.shard, claim.replica
            )
        })
    }))
}

/// Rules: CP1-CP3 for checkpoints; SC4 for claims; DL1 for maps.
fn validate_update(action: &TypedAction<UpdateData>, entry: EntryTypes) -> Verdict {
    let checkpoint = match entry {
        EntryTypes::ShardMap(_) => return Ok(Err(RuleViolation::new(Rule::DL1, "shard maps are immutable"))),
        EntryTypes::ShardClaim(_) => {
            return Ok(Err(RuleViolation::new(Rule::SC4, "claims are never updated: release one and claim again")))
        }
        EntryTypes::SyncCheckpoint(checkpoint) => checkpoint,
    };
    if let Err(violation) = validate_checkpoint(action.author(), &checkpoint)? {
        return Ok(Err(violation));
    }
    let Some((previous_action, previous)) =
        get_entry::<SyncCheckpoint>(&action.data.original_action_address, UnitEntryTypes::SyncCheckpoint)?
    else {
        return Ok(Err(RuleViolation::new(Rule::CP3, "a checkpoint advances by updating a checkpoint")));
    };
    Ok(ensure(previous_action.author() == action.author(), Rule::CP3, || {
        "only the replica's holder advances its checkpoint".into()
    })
    .and_then(|()| ensure(previous.claim == checkpoint.claim, Rule::CP3, || "an update keeps the claim".into()))
    .and_then(|()| {
        ensure(checkpoint.sequence > previous.sequence, Rule::CP3, || {
            format!("the sequence must rise: {} after {}", checkpoint.sequence, previous.sequence)
        })
    }))
}

/// Rules: SC4 (a holder releases its own claim), DL1 (maps and checkpoints stay).
fn validate_delete_entry(action: &TypedAction<DeleteData>) -> Verdict {
    let original = must_get_action(action.data.deletes_address.clone())?;
    if !is_entry_type(original.action(), UnitEntryTypes::ShardClaim)? {
        return Ok(Err(RuleViolation::new(Rule::DL1, "shard maps and checkpoints are never deleted")));
    }
    Ok(ensure(original.action().author() == action.author(), Rule::SC4, || "only the holder releases its claim".into()))
}

/// Rules: LK1 (each link is filed under the base its target belongs to, by the target's author).
fn validate_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Verdict {
    let base = &action.data.base_address;
    let Some(target) = action.data.target_address.clone().into_action_hash() else {
        return Ok(Err(RuleViolation::new(Rule::LK1, "memory_shards links point at actions")));
    };
    let under = |path: Path| -> ExternResult<bool> { Ok(base == &AnyLinkableHash::from(path.path_entry_hash()?)) };
    let from = |hash: &ActionHash| base == &AnyLinkableHash::from(hash.clone());
    let filed = match link_type {
        LinkTypes::CollectionToMaps => match get_entry::<ShardMap>(&target, UnitEntryTypes::ShardMap)? {
            Some((a, map)) => Some((a, under(anchors::collection(&map.collection))?)),
            None => None,
        },
        LinkTypes::AllMaps => match get_entry::<ShardMap>(&target, UnitEntryTypes::ShardMap)? {
            Some((a, map)) => Some((a, under(anchors::all_maps(&map.collection))?)),
            None => None,
        },
        LinkTypes::MapToClaims => {
            get_entry::<ShardClaim>(&target, UnitEntryTypes::ShardClaim)?.map(|(a, c)| (a, from(&c.map)))
        }
        LinkTypes::ClaimToCheckpoints => {
            get_entry::<SyncCheckpoint>(&target, UnitEntryTypes::SyncCheckpoint)?.map(|(a, c)| (a, from(&c.claim)))
        }
    };
    let Some((target_action, right_base)) = filed else {
        return Ok(Err(RuleViolation::new(
            Rule::LK1,
            format!("a {link_type:?} link points at the wrong kind of record"),
        )));
    };
    Ok(ensure(target_action.author() == action.author(), Rule::LK1, || {
        format!("a {link_type:?} link is written by the author of its target, not on its behalf")
    })
    .and_then(|()| ensure(right_base, Rule::LK1, || format!("a {link_type:?} link is filed under its target's base"))))
}

/// Rules: LK2 (a writer removes its own claim and checkpoint links; map links stay).
fn validate_delete_link(
    link_type: LinkTypes,
    original: &TypedAction<CreateLinkData>,
    action: &TypedAction<DeleteLinkData>,
) -> Verdict {
    let removable = matches!(link_type, LinkTypes::MapToClaims | LinkTypes::ClaimToCheckpoints);
    Ok(ensure(removable && original.author() == action.author(), Rule::LK2, || {
        format!("this {link_type:?} link may not be deleted by this agent")
    }))
}

/// The valid record at `hash` and its entry, if it is of type `unit`; `None` for any other record.
fn get_entry<T: TryFrom<SerializedBytes, Error = SerializedBytesError>>(
    hash: &ActionHash,
    unit: UnitEntryTypes,
) -> ExternResult<Option<(Action, T)>> {
    let record = must_get_valid_record(hash.clone())?;
    if !is_entry_type(record.action(), unit)? {
        return Ok(None);
    }
    Ok(record.entry().to_app_option::<T>().ok().flatten().map(|entry| (record.action().clone(), entry)))
}
