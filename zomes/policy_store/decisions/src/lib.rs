//! Coordinator `decisions`: the verdicts of this node's policy gates, committed before the actions
//! they allow (write-ahead), and read back per node or per hour.
use hdk::prelude::*;
use peer_reads::{link_targets, links_from_peers_each, records_from_peers};
use policy_store_integrity::{EntryTypes, LinkTypes};
use policy_store_types::*;

/// This node: commits a verdict as a Decision by this agent and files it under its hour. The
/// sidecar runs the gated action only after this call has returned.
#[hdk_extern]
pub fn record_decision(input: DecisionInput) -> ExternResult<DecisionRecord> {
    let decision = input.decided_by(agent_info()?.agent_initial_pubkey);
    let id = create_entry(EntryTypes::Decision(decision))?;
    let record = get(id.clone(), GetOptions::local())?
        .and_then(|r| DecisionRecord::from_record(&r))
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the decision just written is missing".into())))?;
    let hour = anchors::decisions(anchors::bucket_of(record.decided_at));
    create_link(hour.path_entry_hash()?, id, LinkTypes::DecisionsByHour, ())?;
    Ok(record)
}

/// This node: its own decisions, newest first, at most `limit`.
#[hdk_extern]
pub fn get_my_decisions(limit: u32) -> ExternResult<Vec<DecisionRecord>> {
    let filter = ChainQueryFilter::new().entry_type(UnitEntryTypes::Decision.try_into()?).include_entries(true);
    let mut mine: Vec<DecisionRecord> = query(filter)?.iter().filter_map(DecisionRecord::from_record).collect();
    mine.reverse();
    mine.truncate(limit as usize);
    Ok(mine)
}

/// Anyone: every node's decisions in the hour buckets `from..=to`, oldest first.
#[hdk_extern]
pub fn get_decisions_in_hours(hours: HoursInput) -> ExternResult<Vec<DecisionRecord>> {
    let queries = hours
        .buckets()
        .map_err(|e| wasm_error!(WasmErrorInner::Guest(e)))?
        .map(|bucket| LinkQuery::try_new(anchors::decisions(bucket).path_entry_hash()?, LinkTypes::DecisionsByHour))
        .collect::<ExternResult<Vec<_>>>()?;
    let targets: Vec<ActionHash> = links_from_peers_each(queries)?.into_iter().flat_map(link_targets).collect();
    let mut found: Vec<DecisionRecord> =
        records_from_peers(targets)?.iter().flatten().filter_map(DecisionRecord::from_record).collect();
    found.sort_by(|a, b| (a.decided_at, &a.decision_id).cmp(&(b.decided_at, &b.decision_id)));
    Ok(found)
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
