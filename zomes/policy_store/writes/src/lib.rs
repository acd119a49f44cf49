//! Writes on this agent's policy_store chain shared by the `audit` and `decisions` coordinators.
//! Each adds to the calling zome call's commit; nothing is committed until that call returns.
use hdk::prelude::*;
use policy_store_integrity::{EntryTypes, LinkTypes};
use policy_store_types::*;

/// An audit event by this agent, filed under its hour and its subject.
pub fn audit_event(event: AuditEvent) -> ExternResult<AuditRecord> {
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

/// Audit events in order: 1 to `AUDIT_BATCH_MAX` of them (a batch is one commit, which should stay
/// small enough to validate and publish promptly).
pub fn audit_events(events: Vec<AuditEvent>) -> ExternResult<Vec<AuditRecord>> {
    if events.is_empty() || events.len() > AUDIT_BATCH_MAX {
        return Err(wasm_error!(WasmErrorInner::Guest(format!(
            "a batch holds 1 to {AUDIT_BATCH_MAX} audit events, not {}",
            events.len()
        ))));
    }
    events.into_iter().map(audit_event).collect()
}

/// A verdict as a Decision by this agent, filed under its hour.
pub fn decision(input: DecisionInput) -> ExternResult<DecisionRecord> {
    let decision = input.decided_by(agent_info()?.agent_initial_pubkey);
    let id = create_entry(EntryTypes::Decision(decision))?;
    let record = get(id.clone(), GetOptions::local())?
        .and_then(|r| DecisionRecord::from_record(&r))
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the decision just written is missing".into())))?;
    let hour = anchors::decisions(anchors::bucket_of(record.decided_at));
    create_link(hour.path_entry_hash()?, id, LinkTypes::DecisionsByHour, ())?;
    Ok(record)
}
