//! The resource_mesh entries (spec §10.2, §10.5, §11.4) and their field rules, as pure checks
//! unit-tested natively. Who may author each, and the chain rules, are `validation.rs`'s.
use hdi::prelude::*;

use crate::capacity::{Capacity, Holding};
use crate::rules::{ensure, Rule, RuleViolation};

/// The spec's `resource_type` (§11.4 `resources.allocate`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Compute,
    Inference,
    Storage,
    Memory,
}

/// The spec's `locality_preference`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LocalityPreference {
    #[default]
    Nearest,
    Cheapest,
    Fastest,
    Any,
}

/// Longest allocation a request may ask for: one week.
pub const MAX_DURATION_SECS: u32 = 7 * 24 * 3600;
/// Longest model name, as in agent_registry's adverts.
pub const MODEL_NAME_MAX: usize = 128;
/// Longest answer window a request may give its provider (`answer_within_secs`).
pub const ANSWER_WINDOW_MAX_SECS: u32 = 600;
/// Shortest answer window: time for one hand-over and one commit.
pub const ANSWER_WINDOW_MIN_SECS: u32 = 2;
/// How far a grant's `ledger_at_micros` may lag its action timestamp.
pub const LEDGER_CLOCK_SLACK_SECS: i64 = 60;
/// Longest grant endpoint (as agent_registry's advert endpoint).
pub const ENDPOINT_MAX: usize = 256;
/// Longest rejection reason, in bytes.
pub const REASON_MAX: usize = 512;
/// Most holdings one grant may carry (live grants plus those remembered for their answer window).
pub const HOLDINGS_MAX: usize = 1024;
/// Most releases one grant may account for.
pub const RELEASES_MAX: usize = 256;

/// What a provider offers, derived from its advert; authored only by the provider.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct ResourceOffer {
    pub capacity: Capacity,
    /// Models it serves (inference allocations name one).
    pub models: Vec<String>,
    /// Where its sidecar takes requests handed to it directly (`/peer/v1/resources/…`); none when
    /// it answers only from its DHT inbox.
    #[serde(default)]
    pub peer_endpoint: Option<String>,
}

/// A requester asks one provider (chosen by its scheduler) for resources.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub provider: AgentPubKey,
    pub resource_type: ResourceType,
    pub requirements: Capacity,
    pub model_name: Option<String>,
    pub locality_preference: LocalityPreference,
    pub duration_secs: u32,
    /// How long after the request (its action timestamp) the provider may still answer it. The
    /// provider's ledger remembers a granted request for as long, so it is never granted twice;
    /// a short window (a request handed over directly) keeps that memory small.
    pub answer_within_secs: u32,
}

/// A request as its requester wrote it: the action that created it, the requester's signature over
/// that action, and its entry. An answer carries it (rule AN1), so a provider can answer a request
/// handed to it directly, before the request reaches the DHT, and every validator still knows who
/// asked, for what, and when.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub action: Action,
    pub signature: Signature,
    pub request: AllocationRequest,
}

impl SignedRequest {
    /// Who made the request: the author of its action.
    pub fn requester(&self) -> &AgentPubKey {
        self.action.author()
    }

    /// When the request was made: its action's timestamp, which its answer window counts from.
    pub fn made_at(&self) -> Timestamp {
        self.action.timestamp()
    }

    /// The end of the request's answer window (µs since the epoch).
    pub fn answer_by_micros(&self) -> i64 {
        self.made_at().as_micros() + i64::from(self.request.answer_within_secs) * 1_000_000
    }
}

/// The named provider's answer to a request: capacity held until `expires_at`. Its action hash is
/// the allocation id.
///
/// The ledger (see `capacity.rs`): `prev_grant` is the provider's previous grant, `offer` the
/// offer version it is checked against, `releases` the releases (by either party) of the previous
/// grant's holdings it accounts for, and `holdings` every remembered holding, this grant's last.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct AllocationGrant {
    pub request: ActionHash,
    /// The request `request` names, as its requester signed it (rule AN1).
    pub signed_request: SignedRequest,
    /// The time the ledger is computed at (µs): at most `LEDGER_CLOCK_SLACK_SECS` before the
    /// action's own timestamp, which the provider's conductor sets only when it commits.
    pub ledger_at_micros: i64,
    pub offer: ActionHash,
    pub prev_grant: Option<ActionHash>,
    pub releases: Vec<ActionHash>,
    pub holdings: Vec<Holding<ActionHash>>,
    /// Where the requester reaches the allocation (the provider's advertised endpoint; may be empty).
    pub endpoint: String,
}

/// The named provider's refusal of a request.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct AllocationRejection {
    pub request: ActionHash,
    /// The request `request` names, as its requester signed it (rule AN1).
    pub signed_request: SignedRequest,
    pub reason: String,
}

/// Either party ends an allocation before it expires.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct AllocationRelease {
    pub grant: ActionHash,
}

/// Amounts times seconds: what an allocation used over its lifetime.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceSeconds {
    pub cpu_core_seconds: u64,
    pub memory_gb_seconds: u64,
    pub gpu_slot_seconds: u64,
    pub vram_gb_seconds: u64,
    pub storage_gb_seconds: u64,
    pub model_slot_seconds: u64,
}

impl ResourceSeconds {
    /// `amounts` held for `secs`; `None` on overflow.
    pub fn of(amounts: &Capacity, secs: u64) -> Option<ResourceSeconds> {
        Some(ResourceSeconds {
            cpu_core_seconds: u64::from(amounts.cpu_cores).checked_mul(secs)?,
            memory_gb_seconds: u64::from(amounts.memory_gb).checked_mul(secs)?,
            gpu_slot_seconds: u64::from(amounts.gpu_slots).checked_mul(secs)?,
            vram_gb_seconds: u64::from(amounts.vram_gb).checked_mul(secs)?,
            storage_gb_seconds: amounts.storage_gb.checked_mul(secs)?,
            model_slot_seconds: u64::from(amounts.model_slots).checked_mul(secs)?,
        })
    }
}

/// The provider's signed account of an allocation that has ended: held from the grant until the
/// release (if `release` is given) or the expiry, rounded up to whole seconds.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct UsageReceipt {
    pub grant: ActionHash,
    pub release: Option<ActionHash>,
    pub held_secs: u64,
    pub resource_seconds: ResourceSeconds,
}

/// The requester's acknowledgement of a usage receipt.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct UsageAck {
    pub receipt: ActionHash,
}

impl ResourceOffer {
    /// Rule OF1.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(!self.capacity.is_zero(), Rule::OF1, || "an offer must offer something".into())?;
        if let Some(endpoint) = &self.peer_endpoint {
            check_endpoint(endpoint).map_err(|e| RuleViolation::new(Rule::OF1, format!("peer_endpoint {e}")))?;
        }
        check_models(&self.models).map_err(|e| RuleViolation::new(Rule::OF1, e))
    }
}

impl AllocationRequest {
    /// Rule RQ1.
    pub fn check(&self) -> Result<(), RuleViolation> {
        let fail = |detail: String| Err(RuleViolation::new(Rule::RQ1, detail));
        if self.requirements.is_zero() {
            return fail("a request must require something".into());
        }
        if self.duration_secs == 0 || self.duration_secs > MAX_DURATION_SECS {
            return fail(format!("duration_secs must be 1..={MAX_DURATION_SECS}, got {}", self.duration_secs));
        }
        if !(ANSWER_WINDOW_MIN_SECS..=ANSWER_WINDOW_MAX_SECS).contains(&self.answer_within_secs) {
            return fail(format!(
                "answer_within_secs must be {ANSWER_WINDOW_MIN_SECS}..={ANSWER_WINDOW_MAX_SECS}, got {}",
                self.answer_within_secs
            ));
        }
        match (&self.resource_type, &self.model_name) {
            (ResourceType::Inference, None) => fail("an inference request names its model".into()),
            (_, Some(model)) => check_models(std::slice::from_ref(model)).or_else(fail),
            _ => Ok(()),
        }
    }
}

impl AllocationGrant {
    /// This grant's own holding (the last one).
    pub fn holding(&self) -> Option<&Holding<ActionHash>> {
        self.holdings.last()
    }

    /// Rule GR2, the part that needs only the grant itself.
    pub fn check(&self) -> Result<(), RuleViolation> {
        let fail = |detail: String| Err(RuleViolation::new(Rule::GR2, detail));
        if let Err(e) = check_endpoint(&self.endpoint) {
            return fail(format!("endpoint {e}"));
        }
        if self.holdings.len() > HOLDINGS_MAX || self.releases.len() > RELEASES_MAX {
            return fail(format!("a grant carries at most {HOLDINGS_MAX} holdings and {RELEASES_MAX} releases"));
        }
        match self.holding() {
            Some(own) if own.request == self.request && !own.released => Ok(()),
            _ => fail("a grant's last holding is its own, unreleased, for its request".into()),
        }
    }
}

impl AllocationRejection {
    /// Rule RJ2.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(!self.reason.trim().is_empty() && self.reason.len() <= REASON_MAX, Rule::RJ2, || {
            format!("a rejection gives a reason of 1-{REASON_MAX} bytes")
        })
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.len() > ENDPOINT_MAX || !endpoint.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("must be at most {ENDPOINT_MAX} printable ASCII characters"));
    }
    Ok(())
}

fn check_models(models: &[String]) -> Result<(), String> {
    for (i, m) in models.iter().enumerate() {
        let ok = !m.is_empty()
            && m.len() <= MODEL_NAME_MAX
            && m.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
        if !ok {
            return Err(format!("model {i} must be 1-{MODEL_NAME_MAX} of [A-Za-z0-9._:/-], got {m:?}"));
        }
        if models[..i].iter().any(|other| other.eq_ignore_ascii_case(m)) {
            return Err(format!("model {m:?} is listed twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AllocationRequest {
        AllocationRequest {
            provider: AgentPubKey::from_raw_36(vec![1; 36]),
            resource_type: ResourceType::Compute,
            requirements: Capacity { cpu_cores: 2, ..Capacity::default() },
            model_name: None,
            locality_preference: LocalityPreference::Nearest,
            duration_secs: 3600,
            answer_within_secs: 30,
        }
    }

    #[test]
    fn requests_need_something_for_a_bounded_time() {
        assert!(request().check().is_ok());
        let nothing = AllocationRequest { requirements: Capacity::default(), ..request() };
        assert!(nothing.check().is_err_and(|e| e.to_string().starts_with("RQ1: a request must require something")));
        let forever = AllocationRequest { duration_secs: MAX_DURATION_SECS + 1, ..request() };
        assert!(forever.check().is_err_and(|e| e.detail.contains("duration_secs")));
        for window in [0, 1, ANSWER_WINDOW_MAX_SECS + 1] {
            let unanswerable = AllocationRequest { answer_within_secs: window, ..request() };
            assert!(unanswerable.check().is_err_and(|e| e.detail.contains("answer_within_secs")), "{window}");
        }
        let inference = AllocationRequest { resource_type: ResourceType::Inference, ..request() };
        assert!(inference.check().is_err_and(|e| e.detail.contains("names its model")));
        let named = AllocationRequest { model_name: Some("qwen3:4b".into()), ..inference };
        assert!(named.check().is_ok());
    }

    #[test]
    fn offers_list_each_model_once() {
        let offer = ResourceOffer {
            capacity: Capacity { model_slots: 2, ..Capacity::default() },
            models: vec!["a".into(), "A".into()],
            peer_endpoint: None,
        };
        assert!(offer.check().is_err_and(|e| e.rule == Rule::OF1 && e.detail.contains("twice")));
        let empty = ResourceOffer { capacity: Capacity::default(), models: vec![], peer_endpoint: None };
        assert!(empty.check().is_err());
        let spaced = ResourceOffer {
            capacity: Capacity { cpu_cores: 1, ..Capacity::default() },
            models: vec![],
            peer_endpoint: Some("http://a b".into()),
        };
        assert!(spaced.check().is_err_and(|e| e.rule == Rule::OF1 && e.detail.contains("peer_endpoint")));
    }

    /// A request's copy as answers carry it (the signature is not checked natively).
    fn signed(request: AllocationRequest) -> SignedRequest {
        let action = Action {
            header: ActionHeader {
                author: AgentPubKey::from_raw_36(vec![5; 36]),
                timestamp: Timestamp::from_micros(0),
                action_seq: 4,
                prev_action: Some(ActionHash::from_raw_36(vec![6; 36])),
            },
            data: ActionData::Create(CreateData {
                entry_type: EntryType::App(AppEntryDef::new(1.into(), 0.into(), EntryVisibility::Public)),
                entry_hash: EntryHash::from_raw_36(vec![7; 36]),
            }),
        };
        SignedRequest { action, signature: Signature([0; 64]), request }
    }

    #[test]
    fn a_grant_ends_with_its_own_holding() {
        let request = ActionHash::from_raw_36(vec![2; 36]);
        let own = Holding {
            request: request.clone(),
            amounts: Capacity { gpu_slots: 1, ..Capacity::default() },
            expires_at_micros: 10,
            answer_by_micros: 10,
            released: false,
        };
        let grant = AllocationGrant {
            request,
            signed_request: signed(super::tests::request()),
            ledger_at_micros: 0,
            offer: ActionHash::from_raw_36(vec![3; 36]),
            prev_grant: None,
            releases: vec![],
            holdings: vec![own.clone()],
            endpoint: "http://10.0.0.2:8080".into(),
        };
        assert!(grant.check().is_ok());
        let other = AllocationGrant { request: ActionHash::from_raw_36(vec![4; 36]), ..grant.clone() };
        assert!(other.check().is_err_and(|e| e.rule == Rule::GR2));
        let spaced = AllocationGrant { endpoint: "http://a b".into(), ..grant };
        assert!(spaced.check().is_err_and(|e| e.detail.contains("endpoint")));
        let reject = AllocationRejection {
            request: ActionHash::from_raw_36(vec![2; 36]),
            signed_request: signed(super::tests::request()),
            reason: " ".into(),
        };
        assert!(reject.check().is_err_and(|e| e.rule == Rule::RJ2));
        assert_eq!(ResourceSeconds::of(&own.amounts, 90).map(|s| s.gpu_slot_seconds), Some(90));
    }

    #[test]
    fn the_spec_names_serialise_as_the_spec_writes_them() {
        assert_eq!(serde_json::to_string(&LocalityPreference::Cheapest).ok().as_deref(), Some("\"cheapest\""));
    }
}
