//! Coordinator `audit`: audit events, filed by hour and by subject so that a query reads one hour or
//! one subject and never scans everything.
use hdk::prelude::*;
use peer_reads::{link_targets, links_from_peers, links_from_peers_each, records_from_peers};
use policy_store_integrity::{EntryTypes, LinkTypes};
use policy_store_types::*;

/// Anyone: records `event` by this agent.
#[hdk_extern]
pub fn record_event(event: AuditEvent) -> ExternResult<AuditRecord> {
    audit_event(event)
}

/// Anyone: records `events` by this agent in one commit, in order (1 to `AUDIT_BATCH_MAX`; a batch
/// should stay small enough to validate and publish promptly), for callers that commit several at
/// once (the sidecar's audit journal), where each commit costs a round of signing and validation.
#[hdk_extern]
pub fn record_events(events: Vec<AuditEvent>) -> ExternResult<Vec<AuditRecord>> {
    if events.is_empty() || events.len() > AUDIT_BATCH_MAX {
        return Err(wasm_error!(WasmErrorInner::Guest(format!(
            "a batch holds 1 to {AUDIT_BATCH_MAX} audit events, not {}",
            events.len()
        ))));
    }
    events.into_iter().map(audit_event).collect()
}

/// An audit event by this agent, filed under its hour and its subject.
fn audit_event(event: AuditEvent) -> ExternResult<AuditRecord> {
    let subject = anchors::audit_subject(&event.subject);
    let id = create_entry(EntryTypes::AuditEvent(event))?;
    let record = get(id.clone(), GetOptions::local())?
        .and_then(|r| AuditRecord::from_record(&r))
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the audit event just written is missing".into())))?;
    let hour = anchors::audit_bucket(anchors::bucket_of(record.at));
    create_link(hour.path_entry_hash()?, id.clone(), LinkTypes::AuditByHour, ())?;
    create_link(subject.path_entry_hash()?, id, LinkTypes::AuditBySubject, ())?;
    Ok(record)
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
    let queries = hours
        .buckets()
        .map_err(|e| wasm_error!(WasmErrorInner::Guest(e)))?
        .map(|bucket| LinkQuery::try_new(anchors::audit_bucket(bucket).path_entry_hash()?, LinkTypes::AuditByHour))
        .collect::<ExternResult<Vec<_>>>()?;
    let targets: Vec<ActionHash> = links_from_peers_each(queries)?.into_iter().flat_map(link_targets).collect();
    events_at(targets)
}

fn events_at(hashes: Vec<ActionHash>) -> ExternResult<Vec<AuditRecord>> {
    let mut events: Vec<AuditRecord> =
        records_from_peers(hashes)?.iter().flatten().filter_map(AuditRecord::from_record).collect();
    events.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
    Ok(events)
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
