//! The `validate` dispatcher: one validator per (operation × type), each citing the rule IDs of
//! `docs/integrity/policy_store.md`.
//!
//! Every rule needs only the action, its entry, the DNA properties and the records it names, so each
//! runs on every op the action produces. `Ok(Err(violation))` is the author's fault (Invalid);
//! `Err(_)` means "cannot decide yet" (a `must_get_*` dependency is missing and the op is retried).
use hdi::prelude::*;

use crate::anchors;
use crate::entries::*;
use crate::properties::PolicyProperties;
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
        | FlatOp::CreateEntry(OpEntry::CreateEntry { app_entry, action }) => validate_create(&action, app_entry),
        FlatOp::CreateRecord(OpRecord::UpdateEntry { app_entry, action })
        | FlatOp::CreateEntry(OpEntry::UpdateEntry { app_entry, action })
        | FlatOp::Update(OpUpdate::Entry { app_entry, action }) => validate_update(&action, app_entry),
        FlatOp::CreateRecord(OpRecord::DeleteEntry { .. }) | FlatOp::Delete(_) => {
            Ok(Err(RuleViolation::new(Rule::DL1, "policy_store entries are never deleted")))
        }
        FlatOp::CreateRecord(OpRecord::CreateLink { link_type, action })
        | FlatOp::Link(OpLink::CreateLink { link_type, action }) => validate_create_link(link_type, &action),
        FlatOp::CreateRecord(OpRecord::DeleteLink { action }) => {
            let original = must_get_action(action.data.link_add_address.clone())?;
            let original = TypedAction::<CreateLinkData>::try_from_action(original.action().clone())?;
            match LinkTypes::from_type(original.data.zome_index, original.data.link_type)? {
                Some(_) => Ok(Err(RuleViolation::new(Rule::DL1, "policy_store links are never deleted"))),
                None => Ok(Ok(())), // a link of another zome: not ours to judge
            }
        }
        FlatOp::Link(OpLink::DeleteLink { .. }) => {
            Ok(Err(RuleViolation::new(Rule::DL1, "policy_store links are never deleted")))
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
        EntryTypes::PolicyBundle(bundle) => {
            if let Err(violation) = admin_only(action.author()).and_then(|()| bundle.check()) {
                return Ok(Err(violation));
            }
            Ok(ensure(bundle.version == 1, Rule::PB3, || {
                format!("a package starts at version 1; version {} must update the version before it", bundle.version)
            }))
        }
        EntryTypes::Decision(decision) => validate_create_decision(action.author(), &decision),
        EntryTypes::AuditEvent(event) => Ok(event.check()),
    }
}

/// Rule PB1: the author is one of the admins in the DNA properties.
fn admin_only(author: &AgentPubKey) -> Result<(), RuleViolation> {
    let properties = PolicyProperties::current().map_err(|e| RuleViolation::new(Rule::PB1, format!("{e:?}")))?;
    ensure(properties.is_admin(author), Rule::PB1, || {
        format!("{author} is not a policy admin of this network (DNA properties `admins`)")
    })
}

/// Rules: DC1 (decided by its author), DC2 (fields), DC3 (the bundle it names, at the version and
/// digest it quotes).
fn validate_create_decision(author: &AgentPubKey, decision: &Decision) -> Verdict {
    if let Err(violation) = decision.check() {
        return Ok(Err(violation));
    }
    if &decision.decider != author {
        return Ok(Err(RuleViolation::new(
            Rule::DC1,
            "a decision is written by the node that decided, not on its behalf",
        )));
    }
    let Some(bundle_hash) = &decision.bundle else {
        return Ok(ensure(decision.version == 0, Rule::DC3, || {
            "a decision without a bundle is by the built-in default, version 0".into()
        }));
    };
    let Some((_, bundle)) = get_entry::<PolicyBundle>(bundle_hash, UnitEntryTypes::PolicyBundle)? else {
        return Ok(Err(RuleViolation::new(Rule::DC3, "the decision's bundle is not a policy bundle")));
    };
    Ok(ensure(bundle.package == decision.package && bundle.version == decision.version, Rule::DC3, || {
        format!(
            "the bundle is {} version {}, the decision says {} version {}",
            bundle.package, bundle.version, decision.package, decision.version
        )
    })
    .and_then(|()| {
        ensure(bundle.digest() == decision.policy_sha256, Rule::DC3, || {
            "policy_sha256 is not the bundle's digest".into()
        })
    }))
}

/// Rules: PB1–PB3 for new versions of a bundle; DL1 for decisions and audit events.
fn validate_update(action: &TypedAction<UpdateData>, entry: EntryTypes) -> Verdict {
    let EntryTypes::PolicyBundle(bundle) = entry else {
        return Ok(Err(RuleViolation::new(Rule::DL1, "decisions and audit events are immutable")));
    };
    if let Err(violation) = admin_only(action.author()).and_then(|()| bundle.check()) {
        return Ok(Err(violation));
    }
    let Some((_, previous)) =
        get_entry::<PolicyBundle>(&action.data.original_action_address, UnitEntryTypes::PolicyBundle)?
    else {
        return Ok(Err(RuleViolation::new(Rule::PB3, "a new version must update a policy bundle")));
    };
    Ok(ensure(previous.package == bundle.package, Rule::PB3, || {
        format!("a new version keeps the package `{}`", previous.package)
    })
    .and_then(|()| {
        ensure(bundle.version > previous.version, Rule::PB3, || {
            format!("version {} does not go up from version {}", bundle.version, previous.version)
        })
    }))
}

/// Rules: LK1 (each link is filed under the anchor its target belongs to, by the target's author).
fn validate_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Verdict {
    let base = &action.data.base_address;
    let Some(target) = action.data.target_address.clone().into_action_hash() else {
        return Ok(Err(RuleViolation::new(Rule::LK1, "policy_store links point at actions")));
    };
    let under = |path: Path| -> ExternResult<bool> { Ok(base == &AnyLinkableHash::from(path.path_entry_hash()?)) };
    let filed = match link_type {
        LinkTypes::PackageToBundles => match get_entry::<PolicyBundle>(&target, UnitEntryTypes::PolicyBundle)? {
            Some((a, bundle)) => Some((a, under(anchors::package(&bundle.package))?)),
            None => None,
        },
        LinkTypes::AllBundles => match get_entry::<PolicyBundle>(&target, UnitEntryTypes::PolicyBundle)? {
            Some((a, _)) => Some((a, under(anchors::all_bundles())?)),
            None => None,
        },
        LinkTypes::DecisionsByHour => match get_entry::<Decision>(&target, UnitEntryTypes::Decision)? {
            Some((a, _)) => {
                let bucket = anchors::bucket_of(a.timestamp());
                Some((a, under(anchors::decisions(bucket))?))
            }
            None => None,
        },
        LinkTypes::AuditByHour => match get_entry::<AuditEvent>(&target, UnitEntryTypes::AuditEvent)? {
            Some((a, _)) => {
                let bucket = anchors::bucket_of(a.timestamp());
                Some((a, under(anchors::audit_bucket(bucket))?))
            }
            None => None,
        },
        LinkTypes::AuditBySubject => match get_entry::<AuditEvent>(&target, UnitEntryTypes::AuditEvent)? {
            Some((a, event)) => Some((a, under(anchors::audit_subject(&event.subject))?)),
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
