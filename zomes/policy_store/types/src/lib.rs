//! Inputs and outputs of the policy_store coordinator zomes (`policies`, `decisions`, `audit`),
//! shared by the zomes, the sidecar and the tests. Not a zome: it exports no externs and is not part
//! of the DNA hash.
use hdi::prelude::*;

pub use policy_store_integrity::{
    anchors, declared_package, is_dotted_name, is_entry_type, policy_digest, AuditEvent, Decision, PolicyBundle,
    PolicyProperties, UnitEntryTypes, PACKAGE_MAX,
};

/// `policies.publish_bundle`: the next version of a package (the zome numbers it).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PublishInput {
    pub package: String,
    pub rego: String,
    pub data: Option<String>,
    pub description: String,
}

/// One version of a package as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BundleRecord {
    pub bundle_id: ActionHash,
    pub author: AgentPubKey,
    pub published_at: Timestamp,
    pub bundle: PolicyBundle,
}

impl BundleRecord {
    pub fn from_record(record: &Record) -> Option<Self> {
        if !is_entry_type(record.action(), UnitEntryTypes::PolicyBundle).ok()? {
            return None;
        }
        Some(Self {
            bundle_id: record.action_address().clone(),
            author: record.action().author().clone(),
            published_at: record.action().timestamp(),
            bundle: record.entry().to_app_option::<PolicyBundle>().ok()??,
        })
    }

    /// Orders versions of one package so that every node picks the same current one: highest
    /// version, then the later action, then the greater action hash.
    pub fn precedence(&self) -> (u64, Timestamp, &ActionHash) {
        (self.bundle.version, self.published_at, &self.bundle_id)
    }
}

/// The current version of each package among `bundles`, by `precedence`, sorted by package.
pub fn current_versions(bundles: Vec<BundleRecord>) -> Vec<BundleRecord> {
    let mut current: std::collections::BTreeMap<String, BundleRecord> = Default::default();
    for bundle in bundles {
        let newer = current.get(&bundle.bundle.package).is_none_or(|have| bundle.precedence() > have.precedence());
        if newer {
            current.insert(bundle.bundle.package.clone(), bundle);
        }
    }
    current.into_values().collect()
}

/// `decisions.record_decision`: a verdict to commit before the action runs (the zome sets the
/// decider to this agent).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DecisionInput {
    pub action: String,
    pub package: String,
    pub version: u64,
    pub bundle: Option<ActionHash>,
    pub policy_sha256: String,
    pub input_sha256: String,
    pub allowed: bool,
    pub reasons: Vec<String>,
}

impl DecisionInput {
    /// The Decision this input records when `decider` commits it.
    pub fn decided_by(self, decider: AgentPubKey) -> Decision {
        Decision {
            decider,
            action: self.action,
            package: self.package,
            version: self.version,
            bundle: self.bundle,
            policy_sha256: self.policy_sha256,
            input_sha256: self.input_sha256,
            allowed: self.allowed,
            reasons: self.reasons,
        }
    }
}

/// Most audit events one commit takes (`audit.record_events`).
pub const AUDIT_BATCH_MAX: usize = 32;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub decision_id: ActionHash,
    pub decided_at: Timestamp,
    pub decision: Decision,
}

impl DecisionRecord {
    pub fn from_record(record: &Record) -> Option<Self> {
        if !is_entry_type(record.action(), UnitEntryTypes::Decision).ok()? {
            return None;
        }
        Some(Self {
            decision_id: record.action_address().clone(),
            decided_at: record.action().timestamp(),
            decision: record.entry().to_app_option::<Decision>().ok()??,
        })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub event_id: ActionHash,
    pub author: AgentPubKey,
    pub at: Timestamp,
    pub event: AuditEvent,
}

impl AuditRecord {
    pub fn from_record(record: &Record) -> Option<Self> {
        if !is_entry_type(record.action(), UnitEntryTypes::AuditEvent).ok()? {
            return None;
        }
        Some(Self {
            event_id: record.action_address().clone(),
            author: record.action().author().clone(),
            at: record.action().timestamp(),
            event: record.entry().to_app_option::<AuditEvent>().ok()??,
        })
    }
}

/// `…_in_hours`: the hour buckets (`anchors::bucket_of`) from `from` to `to`, both included, at
/// most `MAX_HOURS` of them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HoursInput {
    pub from: i64,
    pub to: i64,
}

pub const MAX_HOURS: i64 = 168;

impl HoursInput {
    /// The buckets asked for, or why the range is refused.
    pub fn buckets(&self) -> Result<std::ops::RangeInclusive<i64>, String> {
        if self.to < self.from || self.to - self.from >= MAX_HOURS {
            return Err(format!("hours {}..={} must be in order and span at most {MAX_HOURS}", self.from, self.to));
        }
        Ok(self.from..=self.to)
    }
}
