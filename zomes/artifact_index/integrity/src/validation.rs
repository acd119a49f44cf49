//! The `validate` dispatcher: one validator per (operation × type), each citing the rule IDs of
//! `docs/integrity/artifact_index.md`.
//!
//! Every rule needs only the action, its entry and the records it names, so each runs on every op
//! the action produces and no authority stores what another rejects. `Ok(Err(violation))` is the
//! author's fault (Invalid); `Err(_)` means "cannot decide yet" (a `must_get_*` dependency is
//! missing and the op is retried).
use hdi::prelude::*;

use crate::anchors;
use crate::entries::*;
use crate::rules::{ensure, Rule, RuleViolation};
use crate::statement::Statement;
use crate::{is_entry_type, EntryTypes, LinkTypes, UnitEntryTypes};

type Verdict = ExternResult<Result<(), RuleViolation>>;

pub fn validate(op: Op) -> ExternResult<ValidateCallbackResult> {
    // The agent's admission (MP1–MP3) is the same rule in every DNA.
    if let Some(verdict) = membrane::validate_admission(&op)? {
        return Ok(verdict);
    }
    let verdict = match op.flattened::<EntryTypes, LinkTypes>()? {
        FlatOp::CreateRecord(OpRecord::CreateEntry { app_entry, action })
        | FlatOp::CreateEntry(OpEntry::CreateEntry { app_entry, action }) => validate_create(&action, app_entry),
        FlatOp::CreateRecord(OpRecord::UpdateEntry { app_entry, action })
        | FlatOp::CreateEntry(OpEntry::UpdateEntry { app_entry, action })
        | FlatOp::Update(OpUpdate::Entry { app_entry, action }) => validate_update(&action, app_entry),
        FlatOp::CreateRecord(OpRecord::DeleteEntry { .. }) | FlatOp::Delete(_) => validate_delete_entry(),
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

fn validate_create(action: &TypedAction<CreateData>, entry: EntryTypes) -> Verdict {
    match entry {
        EntryTypes::Artifact(artifact) => Ok(artifact.check()),
        EntryTypes::Provenance(provenance) => validate_create_provenance(action.author(), &provenance),
        EntryTypes::ReplicaClaim(claim) => Ok(claim.check(action.timestamp())),
    }
}

/// Rules: PV1, PV3, PV4 (the statement and its builder), PV2 (a subject is the artifact's digest).
fn validate_create_provenance(author: &AgentPubKey, provenance: &Provenance) -> Verdict {
    let statement = match Statement::parse_and_check(&provenance.statement, author) {
        Ok(statement) => statement,
        Err(violation) => return Ok(Err(violation)),
    };
    let Some((_, artifact)) = get_entry::<Artifact>(&provenance.artifact, UnitEntryTypes::Artifact)? else {
        return Ok(Err(RuleViolation::new(Rule::PV2, "a statement must be attached to an artifact registration")));
    };
    Ok(ensure(statement.names_digest(&artifact.sha256), Rule::PV2, || {
        format!("no subject of the statement has the artifact's sha256 {}", artifact.sha256)
    }))
}

/// Rules: RC1 and RC2 for replica claims (renewals); DL1 for artifacts and statements.
fn validate_update(action: &TypedAction<UpdateData>, entry: EntryTypes) -> Verdict {
    let EntryTypes::ReplicaClaim(claim) = entry else {
        return Ok(Err(RuleViolation::new(Rule::DL1, "artifacts and provenance statements are immutable")));
    };
    if let Err(violation) = claim.check(action.timestamp()) {
        return Ok(Err(violation));
    }
    let Some((previous_action, previous)) =
        get_entry::<ReplicaClaim>(&action.data.original_action_address, UnitEntryTypes::ReplicaClaim)?
    else {
        return Ok(Err(RuleViolation::new(Rule::RC2, "a renewal must update a replica claim")));
    };
    Ok(ensure(previous_action.author() == action.author(), Rule::RC2, || {
        "only the node holding a replica renews its claim".into()
    })
    .and_then(|()| ensure(previous.cid == claim.cid, Rule::RC2, || "a renewal keeps the claim's CID".into()))
    .and_then(|()| ensure(claim.until >= previous.until, Rule::RC2, || "a renewal never shortens the lease".into())))
}

/// Rules: DL1 (nothing is deleted: a dropped replica's lease simply runs out).
fn validate_delete_entry() -> Verdict {
    Ok(Err(RuleViolation::new(Rule::DL1, "artifact_index entries are never deleted")))
}

/// Rules: LK1 (each link is filed under the anchor its target belongs to, by the target's author).
fn validate_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Verdict {
    let base = &action.data.base_address;
    let Some(target) = action.data.target_address.clone().into_action_hash() else {
        return Ok(Err(RuleViolation::new(Rule::LK1, "artifact_index links point at actions")));
    };
    let under = |path: Path| -> ExternResult<bool> { Ok(base == &AnyLinkableHash::from(path.path_entry_hash()?)) };
    let artifact = |unit| get_entry::<Artifact>(&target, unit);
    let filed = match link_type {
        LinkTypes::CidToArtifacts => match artifact(UnitEntryTypes::Artifact)? {
            Some((a, entry)) => Some((a, under(anchors::cid(&entry.cid))?)),
            None => None,
        },
        LinkTypes::DigestToArtifacts => match artifact(UnitEntryTypes::Artifact)? {
            Some((a, entry)) => Some((a, under(anchors::digest(&entry.sha256))?)),
            None => None,
        },
        LinkTypes::NameToArtifacts => match artifact(UnitEntryTypes::Artifact)? {
            Some((a, entry)) => Some((a, under(anchors::name(&entry.name))?)),
            None => None,
        },
        LinkTypes::LabelToArtifacts => match artifact(UnitEntryTypes::Artifact)? {
            Some((a, entry)) => {
                let mut any = false;
                for label in &entry.labels {
                    any |= under(anchors::label(label))?;
                }
                Some((a, any))
            }
            None => None,
        },
        LinkTypes::AllArtifacts => match artifact(UnitEntryTypes::Artifact)? {
            Some((a, entry)) => Some((a, under(anchors::shard(&entry.sha256))?)),
            None => None,
        },
        LinkTypes::ArtifactToProvenance => get_entry::<Provenance>(&target, UnitEntryTypes::Provenance)?
            .map(|(a, entry)| (a, base == &AnyLinkableHash::from(entry.artifact))),
        LinkTypes::CidToReplicaClaims => match get_entry::<ReplicaClaim>(&target, UnitEntryTypes::ReplicaClaim)? {
            Some((a, entry)) => Some((a, under(anchors::cid(&entry.cid))?)),
            None => None,
        },
    };
    let Some((target_action, right_anchor)) = filed else {
        return Ok(Err(RuleViolation::new(
            Rule::LK1,
            format!("a {link_type:?} link points at the wrong kind of record"),
        )));
    };
    Ok(ensure(target_action.author() == action.author(), Rule::LK1, || {
        format!("a {link_type:?} link is written by the author of its target, not on its behalf")
    })
    .and_then(|()| {
        ensure(right_anchor, Rule::LK1, || format!("a {link_type:?} link is filed under its target's anchor"))
    }))
}

/// Rules: LK2 (a holder removes its own replica links; index and provenance links stay).
fn validate_delete_link(
    link_type: LinkTypes,
    original: &TypedAction<CreateLinkData>,
    action: &TypedAction<DeleteLinkData>,
) -> Verdict {
    let ok = matches!(link_type, LinkTypes::CidToReplicaClaims) && original.author() == action.author();
    Ok(ensure(ok, Rule::LK2, || format!("this {link_type:?} link may not be deleted by this agent")))
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
