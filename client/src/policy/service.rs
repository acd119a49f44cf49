//! The node's policy service: the packages in force (refreshed from the policy_store DHT), the
//! write-ahead gate every mutating tool and command passes, publishing, and the decision and audit
//! queries behind `ripple policy …` and the `policy.*` tools.
use std::sync::Arc;
use std::time::Duration;

use holochain_types::prelude::AgentPubKey;
use policy_store_types::{
    declared_package, AuditEvent, AuditRecord, BundleRecord, DecisionInput, DecisionRecord, HoursInput, PublishInput,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{CompiledPolicy, PolicyError, PolicySource, Verdict};
use super::gates::Gates;
use super::journal::{AuditJournal, AuditSink, Commit, JournalError};
use super::write_ahead::{DecisionLog, GateError, Permit, WriteAheadGate};
use super::{defaults, Installed};
use crate::manifests::POLICY_ROLE;
use crate::mesh::{Mesh, MeshError};

/// Test hook: `RIPPLE_CRASH_AFTER_DECISION=ACTION` aborts the process right after a Decision
/// allowing ACTION is committed and before the action runs, the crash the write-ahead order is for.
pub const CRASH_AFTER_DECISION_ENV: &str = "RIPPLE_CRASH_AFTER_DECISION";
/// The package that decides other nodes' requests to this one.
pub const PEER_REQUEST: &str = "peer.request";

/// How often a node looks for newly published versions.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// The most decisions or audit events one query returns.
pub const QUERY_LIMIT: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum PolicyServiceError {
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("only this network's policy admins publish policy ({admins}); this node is {node}")]
    NotAdmin { admins: String, node: String },
    #[error(transparent)]
    Mesh(#[from] MeshError),
}

/// How long an audit query waits for this node's journaled events to reach its chain, so that a
/// node reads what it has just audited.
pub const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// This node's policy_store chain: where its decisions (`decisions.record_decision`) and its
/// journaled audit events (`audit.record_events`) are committed.
pub struct ChainLog {
    mesh: Arc<Mesh>,
    /// One writer at a time on the policy_store chain (decisions, audit events, publishes), so
    /// concurrent tool calls never race for the chain head.
    chain: Arc<tokio::sync::Mutex<()>>,
}

impl DecisionLog for ChainLog {
    async fn record(&self, decision: DecisionInput) -> anyhow::Result<DecisionRecord> {
        let _chain = self.chain.lock().await;
        Ok(self.mesh.call(POLICY_ROLE, "decisions", "record_decision", &decision).await?)
    }
}

impl AuditSink for ChainLog {
    async fn commit(&self, events: &[AuditEvent]) -> anyhow::Result<()> {
        let _chain = self.chain.lock().await;
        let _: Vec<AuditRecord> = self.mesh.call(POLICY_ROLE, "audit", "record_events", &events).await?;
        Ok(())
    }

    async fn recorded(&self, subject: &str) -> anyhow::Result<Vec<AuditEvent>> {
        let events: Vec<AuditRecord> = self.mesh.call(POLICY_ROLE, "audit", "get_audit_for_subject", &subject).await?;
        Ok(events.into_iter().filter(|r| r.author == self.mesh.agent).map(|r| r.event).collect())
    }
}

pub struct PolicyService {
    mesh: Arc<Mesh>,
    network: String,
    gates: Arc<Gates>,
    gate: WriteAheadGate<ChainLog>,
    chain: Arc<tokio::sync::Mutex<()>>,
    journal: AuditJournal,
    crash_after_decision: Option<String>,
}

/// A package in force on this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InForce {
    pub package: String,
    /// 0: the built-in default (nothing published on this network yet).
    pub version: u64,
    pub bundle: Option<String>,
}

/// `ripple policy publish`: a Rego file, optional JSON data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub rego: String,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    pub package: String,
    pub version: u64,
    pub bundle_id: String,
    pub policy_sha256: String,
    /// False when that exact Rego and data already were the current version.
    pub new_version: bool,
}

/// A Decision as the CLI, the HTTP API and the `policy.decisions` tool show it: the verdict that
/// was recorded, with who decided what and when (hashes as strings, the time in RFC 3339).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecisionView {
    pub decision_id: String,
    pub decided_at: String,
    /// The node that decided (and then acted, when allowed).
    pub decider: String,
    pub action: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl From<DecisionRecord> for DecisionView {
    fn from(r: DecisionRecord) -> Self {
        let d = r.decision;
        Self {
            decision_id: r.decision_id.to_string(),
            decided_at: r.decided_at.to_string(),
            decider: d.decider.to_string(),
            action: d.action,
            verdict: Verdict {
                package: d.package,
                version: d.version,
                bundle: d.bundle.map(|b| b.to_string()),
                policy_sha256: d.policy_sha256,
                input_sha256: d.input_sha256,
                allowed: d.allowed,
                reasons: d.reasons,
            },
        }
    }
}

/// An AuditEvent as the CLI, the HTTP API and the `policy.audit` tool show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditView {
    pub event_id: String,
    pub at: String,
    pub author: String,
    pub category: String,
    pub subject: String,
    pub outcome: String,
    pub detail: String,
    pub references: Vec<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        let e = r.event;
        Self {
            event_id: r.event_id.to_string(),
            at: r.at.to_string(),
            author: r.author.to_string(),
            category: e.category,
            subject: e.subject,
            outcome: e.outcome,
            detail: e.detail,
            references: e.references,
        }
    }
}

/// Which decisions or audit events: the last `hours` hours, optionally one node's decisions or
/// one subject's events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub hours: Option<u32>,
    /// Decisions: only this node's (agent key). Audit: ignored.
    pub node: Option<String>,
    /// Audit: only events about this subject (all time).
    pub subject: Option<String>,
}

impl PolicyService {
    /// `journal`: where audit events that must not wait for a commit go first.
    pub fn new(mesh: Arc<Mesh>, network: String, journal: AuditJournal) -> Result<Arc<Self>, PolicyError> {
        let gates = Arc::new(Gates::with_defaults()?);
        let chain = Arc::new(tokio::sync::Mutex::new(()));
        let gate = WriteAheadGate::new(gates.clone(), ChainLog { mesh: mesh.clone(), chain: chain.clone() });
        let crash_after_decision = std::env::var(CRASH_AFTER_DECISION_ENV).ok().filter(|a| !a.is_empty());
        if let Some(action) = &crash_after_decision {
            tracing::warn!("{CRASH_AFTER_DECISION_ENV}: this node aborts after deciding to allow {action}");
        }
        Ok(Arc::new(Self { mesh, network, gates, gate, chain, journal, crash_after_decision }))
    }

    /// `policy.gate(action, input)`: decides `action` for `args` and commits the Decision; `Ok`
    /// means allowed and recorded, and only then may the caller act. A denial is also audited.
    /// `extra` are fields an action adds beside `args` (`size_bytes` for a publish).
    pub async fn gate(
        &self,
        action: &str,
        via: &str,
        args: &serde_json::Value,
        extra: &[(&str, serde_json::Value)],
    ) -> Result<Permit, GateError> {
        let input = self.gate_input(action, via, args, extra);
        let result = self.gate.pass(action, &input).await;
        if let (Ok(permit), Some(crash)) = (&result, &self.crash_after_decision) {
            if crash == action {
                eprintln!("{CRASH_AFTER_DECISION_ENV}: aborting after decision {}", permit.decision.decision_id);
                std::process::abort();
            }
        }
        if let Err(GateError::Denied { verdict, decision, .. }) = &result {
            let event = AuditEvent {
                category: "policy.decision".into(),
                subject: action.into(),
                outcome: "denied".into(),
                detail: truncate(&format!(
                    "{} version {}: {}",
                    verdict.package,
                    verdict.version,
                    verdict.reasons.join("; ")
                )),
                references: vec![decision.to_string()],
            };
            if let Err(e) = self.audit(event).await {
                tracing::warn!("a denial of {action} is recorded but its audit event is not: {e}");
            }
        }
        result
    }

    /// What a gate's packages see: the action, how it arrived, this node, the network and the
    /// arguments, plus `extra` fields.
    fn gate_input(
        &self,
        action: &str,
        via: &str,
        args: &serde_json::Value,
        extra: &[(&str, serde_json::Value)],
    ) -> serde_json::Value {
        let mut input = json!({
            "action": action,
            "via": via,
            "node": self.mesh.agent.to_string(),
            "network": self.network,
            "args": args,
        });
        for (key, value) in extra {
            input[*key] = value.clone();
        }
        input
    }

    /// Decides another node's request to this one (`peer.request`, after its authentication).
    /// An allowed request is not recorded: it is the data plane's hot path. A denial goes through
    /// [`Self::gate`], so it is committed as a Decision and audited like any other.
    pub async fn decide_peer_request(&self, caller: &str, route: &str, resource: &str) -> Result<(), GateError> {
        let args = json!({ "route": route, "resource": resource });
        let extra = [("caller", json!(caller))];
        let input = self.gate_input(PEER_REQUEST, "peer", &args, &extra);
        let verdict = self
            .gates
            .evaluate(PEER_REQUEST, &input)
            .map_err(|source| GateError::Policy { action: PEER_REQUEST.into(), source })?;
        if verdict.allowed {
            return Ok(());
        }
        self.gate(PEER_REQUEST, "peer", &args, &extra).await.map(|_| ())
    }

    /// Evaluates `package` for `input` without recording anything (`ripple policy eval`).
    pub fn evaluate(&self, package: &str, input: &serde_json::Value) -> Result<Verdict, PolicyError> {
        self.gates.evaluate(package, input)
    }

    pub fn in_force(&self) -> Vec<InForce> {
        self.gates
            .in_force()
            .into_iter()
            .map(|(package, version, bundle)| InForce { package, version, bundle })
            .collect()
    }

    /// Installs the network's current versions; returns the packages that changed.
    pub async fn refresh(&self) -> Result<Vec<InForce>, MeshError> {
        self.install_from("get_current_bundles").await
    }

    /// `refresh` from this node's own store, without waiting on peers: a restarted node enforces
    /// what it last held at once, and `run` reads the network's current versions shortly after.
    pub async fn refresh_local(&self) -> Result<Vec<InForce>, MeshError> {
        self.install_from("get_current_bundles_local").await
    }

    async fn install_from(&self, read: &str) -> Result<Vec<InForce>, MeshError> {
        let current: Vec<BundleRecord> = self.mesh.call(POLICY_ROLE, "policies", read, &()).await?;
        let mut changed = vec![];
        for (package, outcome) in self.gates.refresh(&current) {
            match outcome {
                Ok(Installed::Now) => {
                    let now = self.in_force().into_iter().find(|p| p.package == package);
                    if let Some(now) = now {
                        tracing::info!("policy {} version {} is now in force", now.package, now.version);
                        changed.push(now);
                    }
                }
                Ok(Installed::Already) => {}
                Err(e) => tracing::warn!("policy {package}: the published version does not compile here: {e}"),
            }
        }
        Ok(changed)
    }

    /// Refreshes every `REFRESH_EVERY` until `stop` (the join has just refreshed once).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!("policy refresh failed: {e}");
            }
        }
    }

    pub async fn admins(&self) -> Result<Vec<AgentPubKey>, MeshError> {
        self.mesh.call(POLICY_ROLE, "policies", "get_policy_admins", &()).await
    }

    /// Publishes the next version of the package the Rego declares. The Rego is compiled here
    /// first, so a syntax error comes back with its line and column and nothing is written.
    pub async fn publish(&self, request: PublishRequest) -> Result<Published, PolicyServiceError> {
        let package = declared_package(&request.rego)
            .ok_or_else(|| PolicyServiceError::BadInput("the Rego must begin with `package <name>`".into()))?
            .to_string();
        let data = match request.data {
            None | Some(serde_json::Value::Null) => None,
            Some(object @ serde_json::Value::Object(_)) => Some(object.to_string()),
            Some(_) => return Err(PolicyServiceError::BadInput("policy data must be a JSON object".into())),
        };
        let source =
            PolicySource { package: package.clone(), version: 1, bundle: None, rego: request.rego, data: data.clone() };
        let compiled = CompiledPolicy::compile(source)?;
        let admins = self.admins().await?;
        if !admins.contains(&self.mesh.agent) {
            let admins = if admins.is_empty() {
                "none: the network runs on the built-in defaults".to_string()
            } else {
                admins.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            return Err(PolicyServiceError::NotAdmin { admins, node: self.mesh.agent.to_string() });
        }
        let input = PublishInput {
            package: package.clone(),
            rego: compiled.source().rego.clone(),
            data,
            description: request.description,
        };
        let before: Option<BundleRecord> =
            self.mesh.call(POLICY_ROLE, "policies", "get_current_bundle", &package).await?;
        let record: BundleRecord = {
            let _chain = self.chain.lock().await;
            self.mesh.call(POLICY_ROLE, "policies", "publish_bundle", &input).await?
        };
        let new_version = before.as_ref().is_none_or(|b| b.bundle_id != record.bundle_id);
        if new_version {
            let event = AuditEvent {
                category: "policy.publish".into(),
                subject: package.clone(),
                outcome: "ok".into(),
                detail: format!("version {}", record.bundle.version),
                references: vec![record.bundle_id.to_string()],
            };
            self.audit(event).await?;
        }
        self.refresh().await?;
        Ok(Published {
            package,
            version: record.bundle.version,
            bundle_id: record.bundle_id.to_string(),
            policy_sha256: compiled.digest().to_string(),
            new_version,
        })
    }

    /// Publishes every built-in default as version 1 (a network's creator does this on its first
    /// start); packages that already have a version are left alone.
    pub async fn publish_defaults(
        &self,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<Published>, PolicyServiceError> {
        let mut published = vec![];
        for source in defaults::builtin() {
            let current: Option<BundleRecord> =
                self.mesh.call(POLICY_ROLE, "policies", "get_current_bundle", &source.package).await?;
            if current.is_some() {
                continue;
            }
            progress(&format!("publishing the default policy {} as version 1", source.package));
            let data = source
                .data
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| PolicyServiceError::BadInput(format!("default data of {}: {e}", source.package)))?;
            let request =
                PublishRequest { rego: source.rego, data, description: "ripple default (manifests/policies)".into() };
            published.push(self.publish(request).await?);
        }
        Ok(published)
    }

    /// Commits an audit event on this node's chain.
    pub async fn audit(&self, event: AuditEvent) -> Result<AuditRecord, MeshError> {
        let _chain = self.chain.lock().await;
        self.mesh.call(POLICY_ROLE, "audit", "record_event", &event).await
    }

    /// Makes `events` durable in this node's audit journal and returns without waiting for the
    /// chain; they are committed `when` (see `journal::Commit`), in order, and survive a crash.
    pub async fn audit_later(&self, events: Vec<AuditEvent>, when: Commit) -> Result<(), JournalError> {
        self.journal.write(events, when).await
    }

    /// Starts committing the journal's pending events now.
    pub fn commit_audit_now(&self) {
        self.journal.commit_now();
    }

    /// Commits the journal's events to the chain until `stop` (then what is pending, for a while).
    pub async fn run_journal(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let log = ChainLog { mesh: self.mesh.clone(), chain: self.chain.clone() };
        self.journal.run(&log, stop).await;
    }

    /// Decisions of the last `hours` hours (default 24), any node's or one node's, newest first.
    pub async fn decisions(&self, query: &HistoryQuery) -> Result<Vec<DecisionView>, PolicyServiceError> {
        let node = query
            .node
            .as_deref()
            .map(|k| AgentPubKey::try_from(k).map_err(|e| PolicyServiceError::BadInput(format!("node `{k}`: {e}"))))
            .transpose()?;
        let mut decisions: Vec<DecisionRecord> =
            self.mesh.call(POLICY_ROLE, "decisions", "get_decisions_in_hours", &hours(query.hours)?).await?;
        decisions.retain(|d| node.as_ref().is_none_or(|n| &d.decision.decider == n));
        decisions.sort_by_key(|d| std::cmp::Reverse(d.decided_at));
        decisions.truncate(QUERY_LIMIT as usize);
        Ok(decisions.into_iter().map(DecisionView::from).collect())
    }

    /// Audit events of the last `hours` hours, or every event about `subject`, newest first.
    /// This node's own journaled events are committed first (waiting up to `FLUSH_WAIT`).
    pub async fn audit_events(&self, query: &HistoryQuery) -> Result<Vec<AuditView>, PolicyServiceError> {
        if !self.journal.flush(FLUSH_WAIT).await {
            tracing::warn!(
                "audit: {} event(s) of this node are still in its journal, not yet on its chain",
                self.journal.pending()
            );
        }
        let mut events: Vec<AuditRecord> = match &query.subject {
            Some(subject) => self.mesh.call(POLICY_ROLE, "audit", "get_audit_for_subject", subject).await?,
            None => self.mesh.call(POLICY_ROLE, "audit", "get_audit_in_hours", &hours(query.hours)?).await?,
        };
        events.sort_by_key(|e| std::cmp::Reverse(e.at));
        events.truncate(QUERY_LIMIT as usize);
        Ok(events.into_iter().map(AuditView::from).collect())
    }
}

/// The hour buckets covering the last `hours` hours (default 24, at most a week).
fn hours(hours: Option<u32>) -> Result<HoursInput, PolicyServiceError> {
    let hours = i64::from(hours.unwrap_or(24));
    if !(1..=policy_store_types::MAX_HOURS).contains(&hours) {
        return Err(PolicyServiceError::BadInput(format!(
            "hours must be 1 to {} (one query reads at most a week)",
            policy_store_types::MAX_HOURS
        )));
    }
    let now = policy_store_types::anchors::bucket_of(holochain_types::prelude::Timestamp::now());
    Ok(HoursInput { from: now - hours + 1, to: now })
}

/// Audit details are at most 2 KiB (AU1).
fn truncate(text: &str) -> String {
    let mut end = text.len().min(2048);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
