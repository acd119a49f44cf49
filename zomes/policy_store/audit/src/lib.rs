//! Coordinator `audit`: audit events, filed by hour and by subject so that a query reads one hour or
//! one subject and never scans everything.
use hdk::prelude::*;
use peer_reads::{link_targets, links_from_peers, records_from_peers};
use policy_store_integrity::LinkTypes;
use policy_store_types::*;

/// Anyone: records `event` by this agent.
#[hdk_extern]
pub fn record_event(event: AuditEvent) -> ExternResult<AuditRecord> {
    policy_store_writes::audit_event(event)
}

/// Anyone: records `events` by this agent in one commit, in order (1 to `AUDIT_BATCH_MAX`), for
/// callers on a latency-critical path, where each commit costs a round of signing and validation.
#[hdk_extern]
pub fn record_events(events: Vec<AuditEvent>) -> ExternResult<Vec<AuditRecord>> {
    policy_store_writes::audit_events(events)
}

/// Anyone: the events about `subject`, oldest first.
#[hdk_extern]
pub fn get_audit_for_subject(subject: String) -> ExternResult<Vec<AuditRecord>> {
    let base = anchors::audit_subject(&subject).path_entry_hash()?;
    let events = events_at(link_targets(links_from_peers(LinkQuery::try_new(base, LinkTypes::AuditBySubject)?)?))?;
    Ok(events.into_iter().filter(|e| e.event.subject == subject).collect())
}

/// Anyone: the events in the hour buckets `from..=to`, oldest first.
#[hdk_extern]
pub fn get_audit_in_hours(hours: HoursInput) -> ExternResult<Vec<AuditRecord>> {
    let mut targets = Vec::new();
    for bucket in hours.buckets().map_err(|e| wasm_error!(WasmErrorInner::Guest(e)))? {
        let base = anchors::audit_bucket(bucket).path_entry_hash()?;
        targets.extend(link_targets(links_from_peers(LinkQuery::try_new(base, LinkTypes::AuditByHour)?)?));
    }
    events_at(targets)
}

fn events_at(hashes: Vec<ActionHash>) -> ExternResult<Vec<AuditRecord>> {
    let mut events: Vec<AuditRecord> =
        records_from_peers(hashes)?.iter().flatten().filter_map(AuditRecord::from_record).collect();
    events.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
    Ok(events)
}
