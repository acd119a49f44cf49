//! Inputs and outputs of the resource_mesh coordinator zomes (`resources`, `scheduling`,
//! `accounting`), shared by the zomes, the sidecar and the tests. Not a zome: it exports no externs
//! and is not part of the DNA hash.
use hdi::prelude::*;

pub use resource_mesh_integrity::{
    is_entry_type, AllocationGrant, AllocationRejection, AllocationRelease, AllocationRequest, Capacity, Holding,
    LocalityPreference, ResourceOffer, ResourceSeconds, ResourceType, SignedRequest, UnitEntryTypes, UsageAck,
    UsageReceipt, ANSWER_WINDOW_MAX_SECS, ANSWER_WINDOW_MIN_SECS, MAX_DURATION_SECS, MODEL_NAME_MAX,
};

/// A provider's offer as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OfferRecord {
    pub provider: AgentPubKey,
    /// The action that wrote this version (create or update).
    pub version: ActionHash,
    pub offer: ResourceOffer,
}

/// What a provider has free, as its latest grant left it (releases not yet accounted for by a
/// later grant still count: a scheduler's view is conservative; the provider decides).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProviderStatus {
    pub provider: AgentPubKey,
    pub offer: Option<OfferRecord>,
    pub in_use: Capacity,
    /// Allocations holding capacity now.
    pub active: u32,
    pub latest_grant: Option<ActionHash>,
}

/// A request as written.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub request_id: ActionHash,
    pub requester: AgentPubKey,
    pub made_at: Timestamp,
    pub request: AllocationRequest,
    /// The request as signed, which its requester hands to the provider on the direct path and
    /// every answer carries (rule AN1).
    pub signed: SignedRequest,
}

/// A granted allocation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GrantRecord {
    /// The grant's action hash.
    pub allocation_id: ActionHash,
    pub request_id: ActionHash,
    pub provider: AgentPubKey,
    pub amounts: Capacity,
    pub granted_at: Timestamp,
    pub expires_at: Timestamp,
    pub endpoint: String,
}

/// The provider's answer to a request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Answer {
    Granted(GrantRecord),
    Rejected { rejection_id: ActionHash, provider: AgentPubKey, reason: String },
}

/// `scheduling.answer_request`: the provider answers one request in its inbox.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AnswerInput {
    pub request_id: ActionHash,
    /// Where requesters reach this node's resources (its advertised endpoint; may be empty).
    pub endpoint: String,
}

/// `scheduling.answer_signed`: the provider answers requests handed to it directly, in order, in
/// one chain write.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SignedAnswerInput {
    pub requests: Vec<SignedRequest>,
    /// As in [`AnswerInput`].
    pub endpoint: String,
}

/// `scheduling.release_for`: the provider releases its grant because the allocation's requester
/// asked it to, directly.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReleaseFor {
    pub allocation_id: ActionHash,
    /// Who asked (checked against the grant's request).
    pub requester: AgentPubKey,
}

/// `scheduling.get_inbox`: what awaits the provider.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Inbox {
    /// Requests not yet answered, oldest first.
    pub requests: Vec<ActionHash>,
    /// Releases of this provider's grants not yet accounted for by a grant.
    pub releases: Vec<ActionHash>,
    /// Inbox links of requests already answered (handed over directly as well): for
    /// `scheduling.clear_answered`.
    #[serde(default)]
    pub answered: Vec<ActionHash>,
}

/// One allocation as either party sees it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AllocationView {
    pub request: RequestRecord,
    pub answer: Option<Answer>,
    /// The first release, by either party.
    pub released_at: Option<Timestamp>,
    pub receipt: Option<ReceiptRecord>,
}

/// `scheduling.list_allocations`: this agent's allocations as requester and as provider, newest
/// first, at most `limit` of each.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct AllocationList {
    pub as_requester: Vec<AllocationView>,
    pub as_provider: Vec<AllocationView>,
}

/// A usage receipt and whether the requester acknowledged it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReceiptRecord {
    pub receipt_id: ActionHash,
    pub written_at: Timestamp,
    pub receipt: UsageReceipt,
    pub acknowledged: bool,
}

/// `accounting.get_usage`: totals over this agent's receipts.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct UsageSummary {
    /// Resource-seconds this node provided (receipts it wrote).
    pub provided: ResourceSeconds,
    pub provided_receipts: u32,
    pub provided_acknowledged: u32,
    /// Resource-seconds this node used (receipts it acknowledged).
    pub used: ResourceSeconds,
    pub used_receipts: u32,
}

/// `accounting.settle`: what one pass wrote.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettleReport {
    pub receipts_written: u32,
    pub receipts_acknowledged: u32,
    /// The chain position of this agent's earliest request whose receipt may still be due (past
    /// its last request when none is): where the next pass starts (`accounting.settle_from`).
    #[serde(default)]
    pub pending_from: u32,
}

/// The app entry of `record`, if it is of type `unit` (several entry types share field names, so the
/// type is checked, not guessed from the bytes).
pub fn entry_of<T: TryFrom<SerializedBytes, Error = SerializedBytesError>>(
    record: &Record,
    unit: UnitEntryTypes,
) -> Option<T> {
    match is_entry_type(record.action(), unit) {
        Ok(true) => record.entry().to_app_option::<T>().ok().flatten(),
        _ => None,
    }
}

impl RequestRecord {
    pub fn from_record(record: &Record) -> Option<Self> {
        let request: AllocationRequest = entry_of(record, UnitEntryTypes::AllocationRequest)?;
        Some(RequestRecord {
            request_id: record.action_address().clone(),
            requester: record.action().author().clone(),
            made_at: record.action().timestamp(),
            request: request.clone(),
            signed: SignedRequest { action: record.action().clone(), signature: record.signature().clone(), request },
        })
    }
}

impl GrantRecord {
    pub fn from_record(record: &Record) -> Option<Self> {
        let grant: AllocationGrant = entry_of(record, UnitEntryTypes::AllocationGrant)?;
        let own = grant.holding()?;
        Some(GrantRecord {
            allocation_id: record.action_address().clone(),
            request_id: grant.request.clone(),
            provider: record.action().author().clone(),
            amounts: own.amounts,
            granted_at: record.action().timestamp(),
            expires_at: Timestamp::from_micros(own.expires_at_micros),
            endpoint: grant.endpoint,
        })
    }
}

impl Answer {
    /// A grant or rejection record as an answer; `None` for anything else.
    pub fn from_record(record: &Record) -> Option<Self> {
        if let Some(grant) = GrantRecord::from_record(record) {
            return Some(Answer::Granted(grant));
        }
        let rejection: AllocationRejection = entry_of(record, UnitEntryTypes::AllocationRejection)?;
        Some(Answer::Rejected {
            rejection_id: record.action_address().clone(),
            provider: record.action().author().clone(),
            reason: rejection.reason,
        })
    }
}

/// Amounts for people: `2 cpu cores, 8 GB memory`, or `nothing`.
pub fn describe_capacity(c: &Capacity) -> String {
    let parts: Vec<String> = [
        (u64::from(c.cpu_cores), "cpu cores"),
        (c.memory_gb.into(), "GB memory"),
        (c.gpu_slots.into(), "GPU slots"),
        (c.vram_gb.into(), "GB VRAM"),
        (c.storage_gb, "GB storage"),
        (c.model_slots.into(), "model slots"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, unit)| format!("{n} {unit}"))
    .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}
