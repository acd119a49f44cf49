//! The `validate` dispatcher: one validator per (operation × type), each citing the rule IDs of
//! `docs/integrity/resource_mesh.md`.
//!
//! Rules that need only the action, its entry and the records it names run on every op the action
//! produces, so no authority stores what another rejects. The ledger rule (GR3, GR4), which reads
//! the provider's chain, runs at the agent-activity authority, which holds it. `Ok(Err(violation))`
//! is the author's fault (Invalid); `Err(_)` means "cannot decide yet" (a `must_get_*` dependency is
//! missing and the op is retried).
use hdi::prelude::*;

use crate::capacity::{check_grant, LedgerError};
use crate::entries::*;
use crate::rules::{ensure, Rule, RuleViolation};
use crate::{is_entry_type, EntryTypes, LinkTypes, UnitEntryTypes};

type Verdict = ExternResult<Result<(), RuleViolation>>;

const MICROS: i64 = 1_000_000;

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
        FlatOp::AgentActivity(OpActivity::CreateEntry {
            app_entry_type: Some(UnitEntryTypes::AllocationGrant),
            action,
        }) => validate_grant_ledger(&action),
        // Genesis, cap grants/claims, agent keys, private entries, and every other action on the
        // chain: nothing app-specific, or judged by the record/entry/link authorities above.
        _ => Ok(Ok(())),
    };
    Ok(match verdict? {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(violation) => ValidateCallbackResult::Invalid(violation.to_string()),
    })
}

fn validate_create(action: &TypedAction<CreateData>, entry: EntryTypes) -> Verdict {
    let author = action.author();
    match entry {
        EntryTypes::ResourceOffer(offer) => Ok(offer.check()),
        EntryTypes::AllocationRequest(request) => Ok(request.check()),
        EntryTypes::AllocationGrant(grant) => validate_grant(author, action.timestamp(), &grant),
        EntryTypes::AllocationRejection(rejection) => validate_rejection(author, &rejection),
        EntryTypes::AllocationRelease(release) => validate_release(author, &release),
        EntryTypes::UsageReceipt(receipt) => validate_receipt(author, action.timestamp(), &receipt),
        EntryTypes::UsageAck(ack) => validate_ack(author, &ack),
    }
}

/// Rules: OF1 and OF2 for offers; DL1 for everything else (only offers change).
fn validate_update(action: &TypedAction<UpdateData>, entry: EntryTypes) -> Verdict {
    let EntryTypes::ResourceOffer(offer) = entry else {
        return Ok(Err(RuleViolation::new(Rule::DL1, "only offers are updated; allocations are append-only")));
    };
    if let Err(violation) = offer.check() {
        return Ok(Err(violation));
    }
    let original = must_get_action(action.data.original_action_address.clone())?;
    Ok(ensure(original.action().author() == action.author(), Rule::OF2, || {
        "only the provider that created an offer may update it".into()
    })
    .and_then(|()| {
        ensure(matches!(original.action().data, ActionData::Create(_)), Rule::OF2, || {
            "an offer update must reference the original create, not another update".into()
        })
    }))
}

/// Rules: DL1 (nothing is deleted: allocations are history, offers are updated).
fn validate_delete_entry(_action: &TypedAction<DeleteData>) -> Verdict {
    Ok(Err(RuleViolation::new(Rule::DL1, "resource_mesh entries are never deleted")))
}

/// Rules: AN1 (the grant carries the request it names, as signed), GR1 (only the named provider
/// grants), GR2 (the grant's own holding is the request's, within its answer window, against the
/// provider's own offer, which serves the requested model).
fn validate_grant(author: &AgentPubKey, at: Timestamp, grant: &AllocationGrant) -> Verdict {
    if let Err(violation) = grant.check() {
        return Ok(Err(violation));
    }
    if let Err(violation) = proven_request(&grant.request, &grant.signed_request)? {
        return Ok(Err(violation));
    }
    let request = &grant.signed_request.request;
    if &request.provider != author {
        return Ok(Err(RuleViolation::new(Rule::GR1, "only the provider named in a request may grant it")));
    }
    let fail = |detail: String| Ok(Err(RuleViolation::new(Rule::GR2, detail)));
    let Some(own) = grant.holding() else {
        return fail("a grant carries its own holding".into());
    };
    let answer_by = grant.signed_request.answer_by_micros();
    let latest_expiry = at.as_micros() + i64::from(request.duration_secs) * MICROS;
    if own.amounts != request.requirements {
        return fail("a grant holds exactly what its request requires".into());
    }
    if own.answer_by_micros != answer_by || at.as_micros() > answer_by {
        return fail("a grant is written within its request's answer window and records that window".into());
    }
    if own.expires_at_micros <= at.as_micros() || own.expires_at_micros > latest_expiry {
        return fail("a grant expires after it is written and no later than the requested duration".into());
    }
    let lag = at.as_micros() - grant.ledger_at_micros;
    if !(0..=LEDGER_CLOCK_SLACK_SECS * MICROS).contains(&lag) {
        return fail(format!("ledger_at_micros is at most {LEDGER_CLOCK_SLACK_SECS} s before the grant's timestamp"));
    }
    let (offer_action, offer) = match get_entry::<ResourceOffer>(&grant.offer, UnitEntryTypes::ResourceOffer)? {
        Some(found) => found,
        None => return fail("a grant names the offer it is checked against".into()),
    };
    if offer_action.author() != author {
        return fail("a grant is checked against its provider's own offer".into());
    }
    if let Some(model) = &request.model_name {
        if !offer.models.iter().any(|m| m.eq_ignore_ascii_case(model)) {
            return fail(format!("the provider's offer does not serve model {model:?}"));
        }
    }
    Ok(Ok(()))
}

/// Rules: GR3 (the grant follows the provider's previous grant and latest offer, and the holdings
/// it carries are exactly the previous holdings, less what expired or was released, plus itself,
/// within the offer), GR4 (a request is granted at most once). Reads the provider's chain from this
/// grant back to the previous grant only.
fn validate_grant_ledger(action: &TypedAction<CreateData>) -> Verdict {
    let author = action.author();
    let fail = |rule, detail: String| Ok(Err(RuleViolation::new(rule, detail)));
    let grant = match must_get_entry(action.data.entry_hash.clone())?.content {
        Entry::App(bytes) => AllocationGrant::try_from(bytes.into_sb()).ok(),
        _ => None,
    };
    let Some(grant) = grant else {
        return fail(Rule::GR3, "the grant's entry does not decode".into());
    };
    let Some(prev_action) = action.prev_action() else {
        return fail(Rule::GR3, "a grant cannot be a genesis action".into());
    };
    let filter = match &grant.prev_grant {
        Some(prev_grant) => ChainFilter::until_hash(prev_action.clone(), prev_grant.clone()),
        None => ChainFilter::new(prev_action.clone()),
    };
    // Newest first: the actions after the previous grant (or the whole chain before a first grant).
    let mut latest_offer = None;
    let mut reached_prev_grant = false;
    for earlier in must_get_agent_activity(author.clone(), filter)? {
        let hash = earlier.action.as_hash();
        if Some(hash) == grant.prev_grant.as_ref() {
            reached_prev_grant = true;
            break;
        }
        let earlier = earlier.action.action();
        if is_entry_type(earlier, UnitEntryTypes::AllocationGrant)? {
            return fail(
                Rule::GR3,
                format!("prev_grant must name the provider's latest grant (action {})", earlier.action_seq()),
            );
        }
        if latest_offer.is_none() && is_entry_type(earlier, UnitEntryTypes::ResourceOffer)? {
            latest_offer = Some(hash.clone());
        }
    }
    let previous = match &grant.prev_grant {
        Some(_) if !reached_prev_grant => return fail(Rule::GR3, "prev_grant is not on the provider's chain".into()),
        Some(prev_grant) => match get_entry::<AllocationGrant>(prev_grant, UnitEntryTypes::AllocationGrant)? {
            Some((_, previous)) => Some(previous),
            None => return fail(Rule::GR3, "prev_grant does not name a grant".into()),
        },
        None => None,
    };
    let Some(expected_offer) = latest_offer.or_else(|| previous.as_ref().map(|p| p.offer.clone())) else {
        return fail(Rule::GR3, "a provider offers before it grants".into());
    };
    if grant.offer != expected_offer {
        return fail(Rule::GR3, "a grant is checked against the provider's latest offer".into());
    }
    let Some((_, offer)) = get_entry::<ResourceOffer>(&grant.offer, UnitEntryTypes::ResourceOffer)? else {
        return fail(Rule::GR3, "the grant's offer is not an offer".into());
    };
    let mut released = Vec::with_capacity(grant.releases.len());
    for release in &grant.releases {
        let Some((_, release)) = get_entry::<AllocationRelease>(release, UnitEntryTypes::AllocationRelease)? else {
            return fail(Rule::GR3, "a grant accounts only for allocation releases".into());
        };
        let Some((_, released_grant)) = get_entry::<AllocationGrant>(&release.grant, UnitEntryTypes::AllocationGrant)?
        else {
            return fail(Rule::GR3, "a release names no grant".into());
        };
        released.push(released_grant.request);
    }
    let previous_holdings = previous.map(|p| p.holdings).unwrap_or_default();
    // GR2 bounds ledger_at_micros to the action's timestamp; an earlier time only counts more.
    let now = grant.ledger_at_micros.min(action.timestamp().as_micros());
    Ok(match check_grant(&previous_holdings, &released, now, &grant.holdings, &offer.capacity) {
        Ok(_) => Ok(()),
        Err(e @ LedgerError::DuplicateRequest) => Err(RuleViolation::new(Rule::GR4, e.to_string())),
        Err(e @ (LedgerError::AnswerWindowPassed | LedgerError::EmptyOrExpired)) => {
            Err(RuleViolation::new(Rule::GR2, e.to_string()))
        }
        Err(e) => Err(RuleViolation::new(Rule::GR3, e.to_string())),
    })
}

/// Rules: RJ2 (a short reason), AN1 (the rejection carries the request it names, as signed), RJ1
/// (only the named provider rejects).
fn validate_rejection(author: &AgentPubKey, rejection: &AllocationRejection) -> Verdict {
    if let Err(violation) = rejection.check() {
        return Ok(Err(violation));
    }
    if let Err(violation) = proven_request(&rejection.request, &rejection.signed_request)? {
        return Ok(Err(violation));
    }
    Ok(ensure(&rejection.signed_request.request.provider == author, Rule::RJ1, || {
        "only the provider named in a request may reject it".into()
    }))
}

/// Rule AN1: `signed` is the request `named` as its requester wrote it. Its action hashes to
/// `named` and creates an allocation request whose entry is `signed.request`, that entry passes
/// RQ1, and the action's author signed the action. Then an answer needs nothing from the DHT to
/// know the request, and a provider can answer one handed to it before it is published.
fn proven_request(named: &ActionHash, signed: &SignedRequest) -> Verdict {
    let fail = |detail: &str| Ok(Err(RuleViolation::new(Rule::AN1, detail)));
    if &hash_action(signed.action.clone())? != named {
        return fail("the signed request is not the request the answer names");
    }
    if !is_entry_type(&signed.action, UnitEntryTypes::AllocationRequest)? {
        return fail("the signed request's action does not create an allocation request");
    }
    if signed.action.entry_hash() != Some(&hash_entry(&signed.request)?) {
        return fail("the signed request's entry is not the one its action created");
    }
    if let Err(violation) = signed.request.check() {
        return Ok(Err(RuleViolation::new(Rule::AN1, format!("the signed request breaks {violation}"))));
    }
    if !verify_signature(signed.requester().clone(), signed.signature.clone(), &signed.action)? {
        return fail("the signature on the request is not its author's");
    }
    Ok(Ok(()))
}

/// Rules: RL1 (the provider or the requester of the allocation releases it).
fn validate_release(author: &AgentPubKey, release: &AllocationRelease) -> Verdict {
    let Some((grant_action, grant)) = get_entry::<AllocationGrant>(&release.grant, UnitEntryTypes::AllocationGrant)?
    else {
        return Ok(Err(RuleViolation::new(Rule::RL1, "a release names an allocation grant")));
    };
    let requester = grant.signed_request.requester();
    Ok(ensure(grant_action.author() == author || requester == author, Rule::RL1, || {
        "only the provider or the requester of an allocation may release it".into()
    }))
}

/// Rules: UR1 (the provider writes the receipt), UR2 (it covers exactly the allocation's lifetime:
/// from the grant to the named release or the expiry, in whole seconds rounded up, written after
/// that end; resource-seconds are the held amounts times those seconds).
fn validate_receipt(author: &AgentPubKey, at: Timestamp, receipt: &UsageReceipt) -> Verdict {
    let Some((grant_action, grant)) = get_entry::<AllocationGrant>(&receipt.grant, UnitEntryTypes::AllocationGrant)?
    else {
        return Ok(Err(RuleViolation::new(Rule::UR1, "a usage receipt names an allocation grant")));
    };
    if grant_action.author() != author {
        return Ok(Err(RuleViolation::new(Rule::UR1, "only the provider of an allocation writes its usage receipt")));
    }
    let fail = |detail: &str| Ok(Err(RuleViolation::new(Rule::UR2, detail)));
    let Some(own) = grant.holding() else {
        return fail("the grant holds nothing");
    };
    let mut end = own.expires_at_micros;
    if let Some(release) = &receipt.release {
        match get_entry::<AllocationRelease>(release, UnitEntryTypes::AllocationRelease)? {
            Some((release_action, r)) if r.grant == receipt.grant => {
                end = end.min(release_action.timestamp().as_micros());
            }
            _ => return fail("the release a receipt names must release its grant"),
        }
    }
    let start = grant_action.timestamp().as_micros();
    let end = end.max(start);
    if at.as_micros() < end {
        return fail("a usage receipt is written after the allocation ended");
    }
    let held_secs = u64::try_from((end - start + MICROS - 1) / MICROS).unwrap_or(0);
    if receipt.held_secs != held_secs || Some(receipt.resource_seconds) != ResourceSeconds::of(&own.amounts, held_secs)
    {
        return fail("a usage receipt bills the held amounts for exactly the seconds they were held");
    }
    Ok(Ok(()))
}

/// Rules: UA1 (the requester acknowledges).
fn validate_ack(author: &AgentPubKey, ack: &UsageAck) -> Verdict {
    let Some((_, receipt)) = get_entry::<UsageReceipt>(&ack.receipt, UnitEntryTypes::UsageReceipt)? else {
        return Ok(Err(RuleViolation::new(Rule::UA1, "an acknowledgement names a usage receipt")));
    };
    let Some((_, grant)) = get_entry::<AllocationGrant>(&receipt.grant, UnitEntryTypes::AllocationGrant)? else {
        return Ok(Err(RuleViolation::new(Rule::UA1, "the receipt names no grant")));
    };
    Ok(ensure(grant.signed_request.requester() == author, Rule::UA1, || {
        "only the requester of an allocation acknowledges its receipt".into()
    }))
}

/// Rules: LK1 (each link connects what it claims to and is written by the party that owns it).
fn validate_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Verdict {
    let author = action.author();
    let base = &action.data.base_address;
    let Some(target) = action.data.target_address.clone().into_action_hash() else {
        return Ok(Err(RuleViolation::new(Rule::LK1, "resource_mesh links point at actions")));
    };
    let base_is_author = base == &AnyLinkableHash::from(author.clone());
    let ok = match link_type {
        LinkTypes::ProviderInbox => {
            let record = must_get_valid_record(target.clone())?;
            let provider = if let Some((_, r)) =
                get_entry::<AllocationRequest>(&target, UnitEntryTypes::AllocationRequest)?
            {
                Some(r.provider)
            } else if let Some((_, r)) = get_entry::<AllocationRelease>(&target, UnitEntryTypes::AllocationRelease)? {
                Some(must_get_action(r.grant)?.action().author().clone())
            } else {
                None
            };
            record.action().author() == author && provider.is_some_and(|p| base == &AnyLinkableHash::from(p))
        }
        LinkTypes::RequestToAnswer => {
            let target_author = must_get_valid_record(target.clone())?.action().author().clone();
            let answers = match get_entry::<AllocationGrant>(&target, UnitEntryTypes::AllocationGrant)? {
                Some((_, grant)) => Some(grant.request),
                None => get_entry::<AllocationRejection>(&target, UnitEntryTypes::AllocationRejection)?
                    .map(|(_, rejection)| rejection.request),
            };
            &target_author == author && answers.is_some_and(|request| base == &AnyLinkableHash::from(request))
        }
        LinkTypes::Followups => {
            let record = must_get_valid_record(target.clone())?;
            let follows =
                if let Some((_, r)) = get_entry::<AllocationRelease>(&target, UnitEntryTypes::AllocationRelease)? {
                    Some(r.grant)
                } else if let Some((_, r)) = get_entry::<UsageReceipt>(&target, UnitEntryTypes::UsageReceipt)? {
                    Some(r.grant)
                } else {
                    get_entry::<UsageAck>(&target, UnitEntryTypes::UsageAck)?.map(|(_, a)| a.receipt)
                };
            record.action().author() == author && follows.is_some_and(|of| base == &AnyLinkableHash::from(of))
        }
        LinkTypes::ProviderToOffer => {
            base_is_author
                && get_entry::<ResourceOffer>(&target, UnitEntryTypes::ResourceOffer)?
                    .is_some_and(|(a, _)| a.author() == author)
        }
        LinkTypes::ProviderToLedger => {
            base_is_author
                && get_entry::<AllocationGrant>(&target, UnitEntryTypes::AllocationGrant)?
                    .is_some_and(|(a, _)| a.author() == author)
        }
    };
    Ok(ensure(ok, Rule::LK1, || format!("a {link_type:?} link must connect its own records as documented")))
}

/// Rules: LK2 (a provider clears its own inbox, offer and ledger links; a requester or releaser may
/// withdraw what it put in an inbox; answers and follow-ups stay).
fn validate_delete_link(
    link_type: LinkTypes,
    original: &TypedAction<CreateLinkData>,
    action: &TypedAction<DeleteLinkData>,
) -> Verdict {
    let deleter = action.author();
    let ok = match link_type {
        LinkTypes::ProviderInbox => {
            original.author() == deleter || original.data.base_address == AnyLinkableHash::from(deleter.clone())
        }
        LinkTypes::ProviderToOffer | LinkTypes::ProviderToLedger => original.author() == deleter,
        LinkTypes::RequestToAnswer | LinkTypes::Followups => false,
    };
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
