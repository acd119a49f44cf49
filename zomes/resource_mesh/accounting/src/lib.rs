//! Coordinator `accounting`: once an allocation has ended the provider writes a usage receipt
//! (resource-seconds, checked by every validator against the grant and its release), and the
//! requester acknowledges it. `settle` does both sides' pending work in one pass.
use hdk::prelude::*;
use peer_reads::{from_peers, links_from_peers};
use resource_mesh_integrity::{EntryTypes, LinkTypes};
use resource_mesh_types::*;

const MICROS: i64 = 1_000_000;

/// This node's sidecar, periodically: writes a receipt for every grant of its that has ended
/// without one, and acknowledges every receipt for its own allocations not yet acknowledged.
#[hdk_extern]
pub fn settle(_: ()) -> ExternResult<SettleReport> {
    settle_from(0)
}

/// `settle`, acknowledging only for this agent's requests at or after chain position
/// `requests_from` (the sidecar passes the previous pass's `pending_from`): a pass then reads the
/// requests whose receipts may still be due, not every request the agent ever made.
#[hdk_extern]
pub fn settle_from(requests_from: u32) -> ExternResult<SettleReport> {
    let now = sys_time()?.as_micros();
    let mut report = SettleReport::default();
    let receipted: Vec<ActionHash> = own(UnitEntryTypes::UsageReceipt)?
        .iter()
        .filter_map(|r| entry_of::<UsageReceipt>(r, UnitEntryTypes::UsageReceipt))
        .map(|r| r.grant)
        .collect();
    for record in own(UnitEntryTypes::AllocationGrant)? {
        let Some(grant) = GrantRecord::from_record(&record) else { continue };
        if receipted.contains(&grant.allocation_id) || grant.granted_at.as_micros() > now {
            continue;
        }
        let release = followups::<AllocationRelease>(&grant.allocation_id, UnitEntryTypes::AllocationRelease)?
            .into_iter()
            .map(|(hash, record, _)| (record.action().timestamp(), hash))
            .min();
        let start = grant.granted_at.as_micros();
        let mut end = grant.expires_at.as_micros();
        let mut named_release = None;
        if let Some((at, hash)) = release {
            if at.as_micros() < end {
                end = at.as_micros();
                named_release = Some(hash);
            }
        }
        let end = end.max(start);
        // Written strictly after the end: validators compare with this action's timestamp.
        if now <= end {
            continue;
        }
        let held_secs = u64::try_from((end - start + MICROS - 1) / MICROS).unwrap_or(0);
        let Some(resource_seconds) = ResourceSeconds::of(&grant.amounts, held_secs) else { continue };
        let receipt =
            UsageReceipt { grant: grant.allocation_id.clone(), release: named_release, held_secs, resource_seconds };
        let hash = create_entry(EntryTypes::UsageReceipt(receipt))?;
        create_link(grant.allocation_id, hash, LinkTypes::Followups, ())?;
        report.receipts_written += 1;
    }
    let acked: Vec<ActionHash> = own(UnitEntryTypes::UsageAck)?
        .iter()
        .filter_map(|r| entry_of::<UsageAck>(r, UnitEntryTypes::UsageAck))
        .map(|a| a.receipt)
        .collect();
    let requests = query(
        ChainQueryFilter::new()
            .entry_type(UnitEntryTypes::AllocationRequest.try_into()?)
            .include_entries(true)
            .sequence_range(ChainQueryFilterRange::ActionSeqRange(requests_from, u32::MAX)),
    )?;
    report.pending_from = requests.last().map_or(requests_from, |r| r.action().action_seq() + 1);
    let mut first_pending = None;
    for record in requests {
        let done = match answer_to(record.action_address())? {
            Some(Answered::Rejected) => true,
            // Never answered: done once no answer can come any more.
            None => {
                let window = entry_of::<AllocationRequest>(&record, UnitEntryTypes::AllocationRequest)
                    .map_or(ANSWER_WINDOW_MAX_SECS, |r| r.answer_within_secs);
                now > record.action().timestamp().as_micros() + (i64::from(window) + 60) * MICROS
            }
            Some(Answered::Granted(grant)) => {
                let receipts = followups::<UsageReceipt>(&grant, UnitEntryTypes::UsageReceipt)?;
                for (receipt, _, _) in &receipts {
                    if acked.contains(receipt) {
                        continue;
                    }
                    let hash = create_entry(EntryTypes::UsageAck(UsageAck { receipt: receipt.clone() }))?;
                    create_link(receipt.clone(), hash, LinkTypes::Followups, ())?;
                    report.receipts_acknowledged += 1;
                }
                !receipts.is_empty()
            }
        };
        if !done {
            first_pending.get_or_insert(record.action().action_seq());
        }
    }
    if let Some(first) = first_pending {
        report.pending_from = first;
    }
    Ok(report)
}

/// Anyone: the usage receipt of an allocation, if written, and whether it was acknowledged.
#[hdk_extern]
pub fn get_receipt(allocation_id: ActionHash) -> ExternResult<Option<ReceiptRecord>> {
    let Some((receipt_id, record, receipt)) =
        followups::<UsageReceipt>(&allocation_id, UnitEntryTypes::UsageReceipt)?.into_iter().next()
    else {
        return Ok(None);
    };
    let acknowledged = !followups::<UsageAck>(&receipt_id, UnitEntryTypes::UsageAck)?.is_empty();
    Ok(Some(ReceiptRecord { receipt_id, written_at: record.action().timestamp(), receipt, acknowledged }))
}

/// This node: resource-seconds it provided (its receipts) and used (receipts it acknowledged).
#[hdk_extern]
pub fn get_usage(_: ()) -> ExternResult<UsageSummary> {
    let mut summary = UsageSummary::default();
    for record in own(UnitEntryTypes::UsageReceipt)? {
        let Some(receipt) = entry_of::<UsageReceipt>(&record, UnitEntryTypes::UsageReceipt) else { continue };
        summary.provided = add(&summary.provided, &receipt.resource_seconds);
        summary.provided_receipts += 1;
        if !followups::<UsageAck>(record.action_address(), UnitEntryTypes::UsageAck)?.is_empty() {
            summary.provided_acknowledged += 1;
        }
    }
    for record in own(UnitEntryTypes::UsageAck)? {
        let Some(ack) = entry_of::<UsageAck>(&record, UnitEntryTypes::UsageAck) else { continue };
        let receipt =
            get(ack.receipt, from_peers())?.and_then(|r| entry_of::<UsageReceipt>(&r, UnitEntryTypes::UsageReceipt));
        if let Some(receipt) = receipt {
            summary.used = add(&summary.used, &receipt.resource_seconds);
            summary.used_receipts += 1;
        }
    }
    Ok(summary)
}

fn add(a: &ResourceSeconds, b: &ResourceSeconds) -> ResourceSeconds {
    ResourceSeconds {
        cpu_core_seconds: a.cpu_core_seconds.saturating_add(b.cpu_core_seconds),
        memory_gb_seconds: a.memory_gb_seconds.saturating_add(b.memory_gb_seconds),
        gpu_slot_seconds: a.gpu_slot_seconds.saturating_add(b.gpu_slot_seconds),
        vram_gb_seconds: a.vram_gb_seconds.saturating_add(b.vram_gb_seconds),
        storage_gb_seconds: a.storage_gb_seconds.saturating_add(b.storage_gb_seconds),
        model_slot_seconds: a.model_slot_seconds.saturating_add(b.model_slot_seconds),
    }
}

/// This agent's own records of one entry type, oldest first.
fn own(unit: UnitEntryTypes) -> ExternResult<Vec<Record>> {
    query(ChainQueryFilter::new().entry_type(unit.try_into()?).include_entries(true))
}

/// How one of this agent's requests was answered.
enum Answered {
    Granted(ActionHash),
    Rejected,
}

/// The provider's answer to one of this agent's requests, if visible yet.
fn answer_to(request: &ActionHash) -> ExternResult<Option<Answered>> {
    for link in links_from_peers(LinkQuery::try_new(request.clone(), LinkTypes::RequestToAnswer)?)? {
        let Some(target) = link.target.into_action_hash() else { continue };
        match get(target.clone(), from_peers())?.as_ref().and_then(Answer::from_record) {
            Some(Answer::Granted(_)) => return Ok(Some(Answered::Granted(target))),
            Some(Answer::Rejected { .. }) => return Ok(Some(Answered::Rejected)),
            None => {}
        }
    }
    Ok(None)
}

/// The follow-up records of type `unit` linked from `base` (releases and receipts of a grant, the
/// acknowledgement of a receipt), oldest first.
fn followups<T: TryFrom<SerializedBytes, Error = SerializedBytesError>>(
    base: &ActionHash,
    unit: UnitEntryTypes,
) -> ExternResult<Vec<(ActionHash, Record, T)>> {
    let mut found = vec![];
    for link in links_from_peers(LinkQuery::try_new(base.clone(), LinkTypes::Followups)?)? {
        let Some(target) = link.target.into_action_hash() else { continue };
        if let Some(record) = get(target.clone(), from_peers())? {
            if let Some(entry) = entry_of::<T>(&record, unit) {
                found.push((target, record, entry));
            }
        }
    }
    found.sort_by_key(|(_, r, _)| r.action().timestamp());
    Ok(found)
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
