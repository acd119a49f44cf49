//! One inference plane over the mesh (spec rule 2, §1.12, §10.4, §11.5). Nodes advertise the models
//! their LocalAI (or other OpenAI-compatible) server lists and its endpoint; this service asks the
//! mesh, not a fixed endpoint:
//! - `single_query`: the best node serving the model (`routing.rs`), the next one on failure;
//! - `moe_query`: every model of the inference policy's local tier that the mesh serves, and the
//!   configured cloud providers, in parallel; their answers merged by `weighted_consensus`
//!   (`consensus.rs`), audited, and passed through the `inference.merge` policy gate;
//! - `load_model` / `unload_model`: LocalAI model management on this node, gated, then the advert
//!   is republished so the mesh routes to (or away from) the model.
//!
//! The HTTP API also serves the OpenAI API itself (`/v1/…`, in the API's `openai` routes), routed the
//! same way, so that any OpenAI client pointed at a node reaches the whole mesh.
pub mod consensus;
pub mod policy;
pub mod routing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use policy_store_types::AuditEvent;

use crate::bridges::localai::{Backend, BackendError, ChatOptions, Completion};
use crate::mesh::MeshError;
use crate::node::view::{MeshNode, MeshView};
use crate::node::NodeAgent;
use crate::policy::{Commit, GateError, PolicyService};
use consensus::{response_hash, weighted_consensus, Answer};
use policy::{InferencePolicies, InferencePolicy};
use routing::{models_on_mesh, servers_for, Server};

/// Longest prompt accepted (bytes).
pub const PROMPT_MAX: usize = 256 * 1024;
/// Largest `max_tokens` accepted.
pub const MAX_TOKENS_MAX: u32 = 32_768;
/// Default deadline of a single query, all failovers included.
pub const SINGLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Answer text kept in an audit event; the full answer's sha256 is always there.
const AUDIT_TEXT_MAX: usize = 1536;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotServed(String),
    #[error("{0}")]
    NotSupported(String),
    /// Every server that could answer failed; each attempt says why.
    #[error("{model}: every node serving it failed: {}", describe_attempts(.attempts))]
    AllFailed { model: String, attempts: Vec<Attempt> },
    /// The deadline passed before a node answered; the attempts made meanwhile say where.
    #[error("{model}: timed out after {after_ms} ms ({})", describe_attempts(.attempts))]
    TimedOut { model: String, after_ms: u64, attempts: Vec<Attempt> },
    /// A multi-model query none of whose models answered; each one's reason.
    #[error("no model of policy {policy} answered: {}", .reasons.join("; "))]
    NothingAnswered { policy: String, reasons: Vec<String> },
    #[error("{0}")]
    Backend(BackendError),
    #[error(
        "no consensus: {:.0}% of the weighted votes agree, {:.0}% required (policy {policy}, trace {trace_id}; every answer is in the audit log under the trace id)",
        .score * 100.0, .min_agreement * 100.0
    )]
    NoConsensus { score: f64, min_agreement: f64, policy: String, trace_id: String, answer: Box<MoeAnswer> },
    #[error("{0}")]
    Cloud(String),
    /// Boxed: a denial carries its whole verdict.
    #[error(transparent)]
    Gate(#[from] Box<GateError>),
}

/// One server asked and what went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub node: String,
    pub agent: String,
    pub endpoint: String,
    pub error: String,
    pub latency_ms: u64,
}

impl Attempt {
    fn of(server: &Server, error: &BackendError, latency_ms: u64) -> Self {
        Self {
            node: server.name.clone(),
            agent: server.agent.clone(),
            endpoint: server.endpoint.clone(),
            error: error.to_string(),
            latency_ms,
        }
    }
}

fn describe_attempts(attempts: &[Attempt]) -> String {
    attempts.iter().map(|a| format!("{} ({}): {}", a.node, a.endpoint, a.error)).collect::<Vec<_>>().join("; ")
}

/// `inference.single_query`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleQuery {
    pub model: String,
    pub prompt: String,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Deadline for the whole query, failovers included [default 120000].
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_max_tokens() -> u32 {
    4096
}

fn default_true() -> bool {
    true
}

/// The node that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answerer {
    pub node: String,
    pub agent: String,
    pub endpoint: String,
    pub is_self: bool,
}

impl From<&Server> for Answerer {
    fn from(s: &Server) -> Self {
        Self { node: s.name.clone(), agent: s.agent.clone(), endpoint: s.endpoint.clone(), is_self: s.is_self }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleAnswer {
    pub model: String,
    pub response: String,
    pub response_hash: String,
    pub answered_by: Answerer,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    /// Servers asked before the one that answered, and why they did not.
    pub failed_attempts: Vec<Attempt>,
    pub trace_id: String,
}

/// The spec's four task types; the models specialised for the task are asked first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    CodeGeneration,
    Reasoning,
    General,
    Review,
}

impl TaskType {
    fn specialization(self) -> &'static str {
        match self {
            TaskType::CodeGeneration | TaskType::Review => "code",
            TaskType::Reasoning => "reasoning",
            TaskType::General => "general",
        }
    }
}

/// `inference.moe_query`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeQuery {
    pub prompt: String,
    pub task_type: TaskType,
    #[serde(default)]
    pub policy_override: Option<String>,
    #[serde(default = "default_true")]
    pub require_consensus: bool,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub temperature: Option<f64>,
}

/// One answer's vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub model: String,
    /// `local` (a mesh node) or `cloud` (a provider).
    pub tier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub response_hash: String,
    pub weight: f64,
    pub latency_ms: u64,
    /// In the winning group.
    pub agrees: bool,
}

/// A model or provider that was asked (or would have been) and did not answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unanswered {
    pub model: String,
    pub tier: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeAnswer {
    pub response: String,
    pub consensus_score: f64,
    /// `consensus_score` reached the policy's `min_agreement`.
    pub consensus_reached: bool,
    pub model_votes: Vec<Vote>,
    pub trace_id: String,
    pub policy: String,
    /// Distinct answers (groups of equivalent ones).
    pub answer_groups: usize,
    /// Asked but no answer: timed out, failed, or not served on the mesh.
    pub unanswered: Vec<Unanswered>,
    /// Cloud providers asked; those not configured and why.
    pub cloud_configured: Vec<String>,
    pub cloud_not_configured: Vec<String>,
    pub warnings: Vec<String>,
    /// The `inference.merge` decision that let this answer out (empty when no consensus).
    pub decision_id: String,
    pub wall_ms: u64,
}

/// `inference.load_model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadModel {
    /// A LocalAI gallery id (`localai@phi-2`) or a model config URL.
    pub model: String,
    /// The name to serve it under [default: the gallery's].
    #[serde(default)]
    pub name: Option<String>,
}

/// `inference.unload_model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnloadModel {
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelChange {
    pub model: String,
    pub action: String,
    pub decision_id: String,
    /// What this node serves now, as the republished advert says.
    pub models_loaded: Vec<String>,
    pub advert_version: String,
}

/// `ripple models`: a model on the mesh and the nodes serving it, in routing order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshModel {
    pub model: String,
    pub servers: Vec<Server>,
}

pub struct InferenceService {
    node: Arc<NodeAgent>,
    policy: Arc<PolicyService>,
    policies: InferencePolicies,
    http: reqwest::Client,
    /// Signs the requests that go to other nodes' sidecars.
    peers: crate::peer::PeerClient,
    /// Who serves what: the online nodes and their adverts. A node that left since the view's
    /// last word is skipped by failover.
    view: Arc<MeshView>,
}

impl InferenceService {
    pub fn new(
        node: Arc<NodeAgent>,
        policies: InferencePolicies,
        policy: Arc<PolicyService>,
        peers: crate::peer::PeerClient,
        view: Arc<MeshView>,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Arc::new(Self { node, policy, policies, http, peers, view })
    }

    /// How to reach `server`: this node's own inference server directly, another node's through
    /// that node's sidecar (its advertised endpoint), never its raw LocalAI port.
    fn backend(&self, server: &Server) -> Result<Backend, BackendError> {
        let unreachable = |reason| BackendError::Unreachable { url: server.endpoint.clone(), reason };
        if server.is_self {
            let url = self.node.settings().sources.localai_url.ok_or_else(|| {
                unreachable("this node advertises a model but has no localai_url any more".to_string())
            })?;
            Backend::local(self.http.clone(), url.as_str()).map_err(unreachable)
        } else {
            Backend::peer(self.http.clone(), &server.endpoint, self.peers.clone()).map_err(unreachable)
        }
    }

    pub fn policies(&self) -> &InferencePolicies {
        &self.policies
    }

    /// The online nodes, from the mesh view.
    fn peers(&self) -> Vec<MeshNode> {
        self.view.online()
    }

    fn region(&self) -> String {
        self.node.settings().region
    }

    /// `model`'s servers in the order to ask them: the online nodes' first, then those of nodes
    /// whose beats are up to two buckets late (`MeshView::all_with_grace`). A busy node's beats can
    /// reach this one late; asking it last costs only a refused connection when it has really
    /// gone, and keeps a failover from running out of servers while it is alive.
    fn servers(&self, model: &str) -> Vec<Server> {
        let region = self.region();
        let mut servers = servers_for(model, &self.peers(), &region);
        let late: Vec<Server> = servers_for(model, &self.view.all_with_grace(), &region)
            .into_iter()
            .filter(|late| !servers.iter().any(|s| s.agent == late.agent))
            .collect();
        servers.extend(late);
        servers
    }

    /// Every model served on the mesh with its servers in routing order.
    pub async fn models(&self) -> Result<Vec<MeshModel>, InferenceError> {
        let peers = self.peers();
        let region = self.region();
        Ok(models_on_mesh(&peers, &region).into_iter().map(|(model, servers)| MeshModel { model, servers }).collect())
    }

    /// The servers for `model` in the order to ask them, or why there are none.
    pub async fn route(&self, model: &str) -> Result<Vec<Server>, InferenceError> {
        check_model_name(model)?;
        let servers = self.servers(model);
        if servers.is_empty() {
            let served: Vec<String> =
                models_on_mesh(&self.peers(), &self.region()).into_iter().map(|(m, _)| m).collect();
            return Err(InferenceError::NotServed(format!(
                "no online node serves model `{model}`; the mesh serves {}",
                if served.is_empty() { "no models".to_string() } else { served.join(", ") }
            )));
        }
        Ok(servers)
    }

    /// Asks `servers` in turn until one answers, within `budget` overall.
    async fn ask(
        &self,
        servers: &[Server],
        prompt: &str,
        options: &ChatOptions,
        budget: Duration,
        trace_id: Option<&str>,
    ) -> Result<(Completion, Server, u64, Vec<Attempt>), InferenceError> {
        let deadline = Instant::now() + budget;
        let mut attempts = Vec::new();
        for server in servers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let started = Instant::now();
            let outcome =
                async { self.backend(server)?.chat(&server.model, prompt, options, left, trace_id).await }.await;
            let latency_ms = millis(started.elapsed());
            match outcome {
                Ok(completion) => return Ok((completion, server.clone(), latency_ms, attempts)),
                Err(e) => {
                    tracing::info!("inference: {} on {} failed, trying the next node: {e}", server.model, server.name);
                    attempts.push(Attempt::of(server, &e, latency_ms));
                    if !e.is_retryable() {
                        return Err(InferenceError::Backend(e));
                    }
                }
            }
        }
        let model = servers.first().map(|s| s.model.clone()).unwrap_or_default();
        if Instant::now() >= deadline {
            Err(InferenceError::TimedOut { model, after_ms: millis(budget), attempts })
        } else {
            Err(InferenceError::AllFailed { model, attempts })
        }
    }

    /// `inference.single_query`.
    pub async fn single_query(&self, query: &SingleQuery) -> Result<SingleAnswer, InferenceError> {
        check_prompt(&query.prompt, query.max_tokens, query.temperature)?;
        let timeout = match query.timeout_ms {
            Some(ms) if !(1..=600_000).contains(&ms) => {
                return Err(InferenceError::BadInput(format!("timeout_ms must be 1-600000, got {ms}")))
            }
            Some(ms) => Duration::from_millis(ms),
            None => SINGLE_TIMEOUT,
        };
        let servers = self.route(&query.model).await?;
        let trace_id = new_trace_id();
        let options = ChatOptions { max_tokens: query.max_tokens, temperature: query.temperature };
        let (completion, server, latency_ms, failed_attempts) =
            self.ask(&servers, &query.prompt, &options, timeout, Some(&trace_id)).await?;
        let answer = SingleAnswer {
            model: server.model.clone(),
            response_hash: response_hash(&completion.text),
            response: completion.text,
            answered_by: Answerer::from(&server),
            latency_ms,
            finish_reason: completion.finish_reason,
            usage: completion.usage,
            failed_attempts,
            trace_id: trace_id.clone(),
        };
        let event = answer_event(&trace_id, &answer.model, "local", Some(&server.name), &answer.response, latency_ms);
        self.audit_later(event, Commit::Soon).await;
        Ok(answer)
    }

    /// `inference.moe_query`: fan out, merge, audit, gate. The answers' and the disagreement's audit
    /// events are journaled as they come and committed together once the query is over, so the only
    /// commit its caller waits for is the merge's write-ahead Decision.
    pub async fn moe_query(&self, query: &MoeQuery, via: &str) -> Result<MoeAnswer, InferenceError> {
        let result = self.fan_out_and_merge(query, via).await;
        self.policy.commit_audit_now();
        result
    }

    async fn fan_out_and_merge(&self, query: &MoeQuery, via: &str) -> Result<MoeAnswer, InferenceError> {
        check_prompt(&query.prompt, query.max_tokens, query.temperature)?;
        let started = Instant::now();
        let policy = self.policies.get(query.policy_override.as_deref()).map_err(InferenceError::BadInput)?;
        let trace_id = new_trace_id();
        let options = ChatOptions { max_tokens: query.max_tokens, temperature: query.temperature };

        let mut unanswered = Vec::new();
        let mut warnings = Vec::new();
        // Local tier: the models the mesh serves, those specialised for the task first.
        let mut local: Vec<(&policy::LocalModel, Vec<Server>)> = Vec::new();
        for model in &policy.local_tier.models {
            let servers = self.servers(&model.name);
            if servers.is_empty() {
                unanswered.push(Unanswered {
                    model: model.name.clone(),
                    tier: "local".into(),
                    reason: "not served by any online node".into(),
                });
            } else {
                local.push((model, servers));
            }
        }
        let wanted = query.task_type.specialization();
        local.sort_by(|(a, _), (b, _)| {
            let fits = |m: &policy::LocalModel| m.specialization.as_deref() == Some(wanted);
            fits(b).cmp(&fits(a)).then(b.weight.total_cmp(&a.weight)).then_with(|| a.name.cmp(&b.name))
        });
        for (model, _) in local.iter().skip(policy.local_tier.max_parallel) {
            unanswered.push(Unanswered {
                model: model.name.clone(),
                tier: "local".into(),
                reason: format!("not asked: local_tier.max_parallel is {}", policy.local_tier.max_parallel),
            });
        }
        local.truncate(policy.local_tier.max_parallel);
        if local.len() < policy.local_tier.min_parallel {
            warnings.push(format!(
                "only {} local model(s) are served on the mesh; the policy asks for at least {}",
                local.len(),
                policy.local_tier.min_parallel
            ));
        }
        // Cloud tier: providers with a key in this node's environment, by priority.
        let (mut cloud, cloud_not_configured) = policy.cloud_providers(&|var| std::env::var(var).ok());
        cloud.truncate(policy.cloud_tier.max_parallel);
        if cloud.is_empty() {
            warnings.push(format!(
                "no cloud provider is configured on this node, so the cloud tier was not asked ({})",
                cloud_not_configured.join("; ")
            ));
        } else if cloud.len() < policy.cloud_tier.min_parallel {
            warnings.push(format!(
                "only {} cloud provider(s) are configured; the policy asks for at least {}",
                cloud.len(),
                policy.cloud_tier.min_parallel
            ));
        }
        if local.is_empty() && cloud.is_empty() {
            return Err(InferenceError::NotServed(format!(
                "none of policy {}'s local models is served on the mesh ({}) and no cloud provider is configured",
                policy.name,
                policy.local_tier.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }

        // Everything at once; each model within its tier's deadline.
        let propagated = policy.audit.trace_id_propagation.then_some(trace_id.as_str());
        let audit_all = policy.audit.log_all_responses;
        let local_calls = local.iter().map(|(model, servers)| {
            let (options, trace) = (&options, &trace_id);
            async move {
                let outcome = self.ask(servers, &query.prompt, options, policy.local_timeout(), propagated).await;
                if let (Ok((completion, server, latency_ms, _)), true) = (&outcome, audit_all) {
                    let event =
                        answer_event(trace, &model.name, "local", Some(&server.name), &completion.text, *latency_ms);
                    self.audit_later(event, Commit::WithNext).await;
                }
                (*model, outcome)
            }
        });
        let cloud_calls = cloud.iter().map(|provider| {
            let (options, trace) = (&options, &trace_id);
            async move {
                let backend = Backend::cloud(self.http.clone(), &provider.base_url, &provider.api_key);
                let began = Instant::now();
                let outcome =
                    backend.chat(&provider.model, &query.prompt, options, policy.cloud_timeout(), propagated).await;
                let latency_ms = millis(began.elapsed());
                if let (Ok(completion), true) = (&outcome, audit_all) {
                    let event = answer_event(trace, &provider.name, "cloud", None, &completion.text, latency_ms);
                    self.audit_later(event, Commit::WithNext).await;
                }
                (provider, outcome, latency_ms)
            }
        });
        let (local_results, cloud_results) =
            futures::future::join(futures::future::join_all(local_calls), futures::future::join_all(cloud_calls)).await;

        struct Answered {
            model: String,
            tier: &'static str,
            node: Option<String>,
            latency_ms: u64,
        }
        let mut answers: Vec<Answer> = Vec::new();
        let mut answered: Vec<Answered> = Vec::new();
        for (model, outcome) in local_results {
            match outcome {
                Ok((completion, server, latency_ms, _)) if !completion.text.trim().is_empty() => {
                    answers.push(Answer {
                        source: model.name.clone(),
                        weight: model.weight,
                        text: completion.text,
                        embedding: None,
                    });
                    answered.push(Answered {
                        model: model.name.clone(),
                        tier: "local",
                        node: Some(server.name),
                        latency_ms,
                    });
                }
                Ok(_) => unanswered.push(Unanswered {
                    model: model.name.clone(),
                    tier: "local".into(),
                    reason: "answered with empty text".into(),
                }),
                Err(e) => unanswered.push(Unanswered {
                    model: model.name.clone(),
                    tier: "local".into(),
                    reason: e.to_string(),
                }),
            }
        }
        let mut cloud_timeouts = Vec::new();
        for (provider, outcome, latency_ms) in cloud_results {
            match outcome {
                Ok(completion) if !completion.text.trim().is_empty() => {
                    answers.push(Answer {
                        source: provider.name.clone(),
                        weight: provider.weight,
                        text: completion.text,
                        embedding: None,
                    });
                    answered.push(Answered { model: provider.name.clone(), tier: "cloud", node: None, latency_ms });
                }
                Ok(_) => unanswered.push(Unanswered {
                    model: provider.name.clone(),
                    tier: "cloud".into(),
                    reason: "answered with empty text".into(),
                }),
                Err(e) => {
                    if matches!(e, BackendError::Timeout { .. }) {
                        cloud_timeouts.push(provider.name.clone());
                    }
                    unanswered.push(Unanswered {
                        model: provider.name.clone(),
                        tier: "cloud".into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        if !cloud_timeouts.is_empty() && !policy.cloud_tier.fallback_on_timeout {
            return Err(InferenceError::Cloud(format!(
                "cloud provider(s) {} timed out and policy {} has fallback_on_timeout: false (trace {trace_id})",
                cloud_timeouts.join(", "),
                policy.name
            )));
        }
        if answers.is_empty() {
            return Err(InferenceError::NothingAnswered {
                policy: policy.name.clone(),
                reasons: unanswered.iter().map(|u| format!("{}: {}", u.model, u.reason)).collect(),
            });
        }
        self.embed_answers(policy, &mut answers, &mut warnings).await;

        let merge = weighted_consensus(&answers, policy.reducer.min_agreement, policy.reducer.similarity_threshold)
            .expect("at least one answer");
        let winners = &merge.groups[0].members;
        let model_votes: Vec<Vote> = answers
            .iter()
            .zip(&answered)
            .enumerate()
            .map(|(i, (a, meta))| Vote {
                model: meta.model.clone(),
                tier: meta.tier.into(),
                node: meta.node.clone(),
                response_hash: response_hash(&a.text),
                weight: a.weight,
                latency_ms: meta.latency_ms,
                agrees: winners.contains(&i),
            })
            .collect();
        let mut answer = MoeAnswer {
            response: merge.response.clone(),
            consensus_score: merge.consensus_score,
            consensus_reached: merge.agreed,
            model_votes,
            trace_id: trace_id.clone(),
            policy: policy.name.clone(),
            answer_groups: merge.groups.len(),
            unanswered,
            cloud_configured: cloud.iter().map(|p| p.name.clone()).collect(),
            cloud_not_configured,
            warnings,
            decision_id: String::new(),
            wall_ms: 0,
        };

        if policy.audit.store_disagreements && merge.groups.len() > 1 {
            self.audit_later(disagreement_event(&answer, &answers, &merge), Commit::WithNext).await;
        }
        if !merge.agreed && query.require_consensus {
            answer.wall_ms = millis(started.elapsed());
            return Err(InferenceError::NoConsensus {
                score: merge.consensus_score,
                min_agreement: policy.reducer.min_agreement,
                policy: policy.name.clone(),
                trace_id,
                answer: Box::new(answer),
            });
        }

        let package = policy.gate_package().map_err(InferenceError::BadInput)?;
        let args = json!({
            "task_type": query.task_type,
            "policy": policy.name,
            "require_consensus": query.require_consensus,
            "trace_id": trace_id,
        });
        let extra = [
            ("consensus_score", json!(merge.consensus_score)),
            ("min_agreement", json!(policy.reducer.min_agreement)),
            ("answered", json!(answer.model_votes.len())),
            ("asked", json!(answer.model_votes.len() + answer.unanswered.len())),
            ("groups", json!(answer.answer_groups)),
            ("local_answered", json!(answer.model_votes.iter().filter(|v| v.tier == "local").count())),
            ("local_min_parallel", json!(policy.local_tier.min_parallel)),
            ("cloud_answered", json!(answer.model_votes.iter().filter(|v| v.tier == "cloud").count())),
            ("cloud_min_parallel", json!(policy.cloud_tier.min_parallel)),
        ];
        let permit = self.policy.gate(&package, via, &args, &extra).await.map_err(Box::new)?;
        answer.decision_id = permit.decision.decision_id.to_string();
        answer.wall_ms = millis(started.elapsed());
        Ok(answer)
    }

    /// Embeddings of every answer from the policy's embeddings model, when it names one the mesh
    /// serves; without them answers are compared by their text alone (said in the warnings).
    async fn embed_answers(&self, policy: &InferencePolicy, answers: &mut [Answer], warnings: &mut Vec<String>) {
        let Some(model) = &policy.reducer.embeddings_model else { return };
        let servers = self.servers(model);
        let texts: Vec<&str> = answers.iter().map(|a| a.text.as_str()).collect();
        let mut last_error = format!("no online node serves `{model}`");
        for server in &servers {
            let backend = match self.backend(server) {
                Ok(backend) => backend,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            match backend.embeddings(&server.model, &texts, Duration::from_secs(30)).await {
                Ok(vectors) => {
                    for (a, v) in answers.iter_mut().zip(vectors) {
                        a.embedding = Some(v);
                    }
                    return;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        warnings.push(format!("answers compared by text only: embeddings model {model}: {last_error}"));
    }

    async fn audit(&self, event: AuditEvent) {
        let what = format!("{} {}", event.category, event.subject);
        if let Err(e) = self.policy.audit(event).await {
            tracing::warn!("inference: the audit event {what} could not be recorded: {e}");
        }
    }

    /// Journals `event` (durable before this returns) to be committed `when`.
    async fn audit_later(&self, event: AuditEvent, when: Commit) {
        let what = format!("{} {}", event.category, event.subject);
        if let Err(e) = self.policy.audit_later(vec![event], when).await {
            tracing::warn!("inference: the audit event {what} could not be journaled: {e}");
        }
    }

    /// This node's inference server, for model management.
    fn own_backend(&self) -> Result<Backend, InferenceError> {
        let url = self.node.settings().sources.localai_url.ok_or_else(|| {
            InferenceError::NotSupported(
                "this node has no inference server: set localai_url in ripple.toml (or --localai-url)".into(),
            )
        })?;
        Backend::local(self.http.clone(), url.as_str()).map_err(InferenceError::BadInput)
    }

    /// `inference.load_model`: gated, then LocalAI `/models/apply` followed to the end, then the
    /// advert is republished with the model.
    pub async fn load_model(
        &self,
        request: &LoadModel,
        via: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<ModelChange, InferenceError> {
        check_model_source(&request.model)?;
        if let Some(name) = &request.name {
            check_model_name(name)?;
        }
        let backend = self.own_backend()?;
        let args = serde_json::to_value(request).unwrap_or_default();
        let permit = self.policy.gate("inference.load_model", via, &args, &[]).await.map_err(Box::new)?;
        progress(&format!("loading {} (decision {})", request.model, permit.decision.decision_id));
        let before = backend.models(Duration::from_secs(10)).await.map_err(backend_error)?;
        let job = backend.apply_model(&request.model, request.name.as_deref()).await.map_err(backend_error)?;
        let mut last = String::new();
        loop {
            let status = backend.job(&job).await.map_err(backend_error)?;
            if let Some(reason) = status.failure() {
                let (url, model) = (backend.endpoint().to_string(), request.model.clone());
                return Err(InferenceError::Backend(BackendError::LoadFailed { url, model, reason }));
            }
            if status.processed {
                break;
            }
            let now = match (status.message, status.progress) {
                (Some(m), Some(p)) => format!("{m} ({p:.0}%)"),
                (Some(m), None) => m,
                (None, Some(p)) => format!("{p:.0}%"),
                (None, None) => "waiting".into(),
            };
            if now != last {
                progress(&format!("{}: {now}", request.model));
                last = now;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Without --name the server picks the name: the new entry in its list is what it chose (none
        // is new when it served the model already: then LocalAI's, the gallery id after its `@`).
        let name = match &request.name {
            Some(name) => name.clone(),
            None => {
                let after = backend.models(Duration::from_secs(10)).await.map_err(backend_error)?;
                let mut new = after.into_iter().filter(|m| !before.contains(m));
                match (new.next(), new.next()) {
                    (Some(only), None) => only,
                    _ if request.model.contains("://") => request.model.clone(),
                    _ => request.model.rsplit_once('@').map_or(request.model.as_str(), |(_, m)| m).to_string(),
                }
            }
        };
        self.model_changed(&name, "loaded", permit.decision.decision_id.to_string()).await
    }

    /// `inference.unload_model`: gated, then LocalAI stops the model's backend and removes it, then
    /// the advert is republished without it.
    pub async fn unload_model(&self, request: &UnloadModel, via: &str) -> Result<ModelChange, InferenceError> {
        check_model_name(&request.model)?;
        let backend = self.own_backend()?;
        let served = backend.models(Duration::from_secs(10)).await.map_err(backend_error)?;
        if !served.iter().any(|m| m.eq_ignore_ascii_case(&request.model)) {
            return Err(InferenceError::BadInput(format!(
                "this node does not serve `{}`; it serves {}",
                request.model,
                if served.is_empty() { "nothing".into() } else { served.join(", ") }
            )));
        }
        let args = serde_json::to_value(request).unwrap_or_default();
        let permit = self.policy.gate("inference.unload_model", via, &args, &[]).await.map_err(Box::new)?;
        backend.shutdown_backend(&request.model).await.map_err(backend_error)?;
        backend.delete_model(&request.model).await.map_err(backend_error)?;
        self.model_changed(&request.model, "unloaded", permit.decision.decision_id.to_string()).await
    }

    async fn model_changed(
        &self,
        model: &str,
        action: &str,
        decision_id: String,
    ) -> Result<ModelChange, InferenceError> {
        let refreshed = self.node.refresh_advert().await.map_err(|e| InferenceError::BadInput(e.to_string()))?;
        self.audit(AuditEvent {
            category: "inference.model".into(),
            subject: clip(model, 256).into(),
            outcome: action.into(),
            detail: format!("{action} on this node; advert {}", refreshed.advert.version),
            references: vec![decision_id.clone()],
        })
        .await;
        Ok(ModelChange {
            model: model.into(),
            action: action.into(),
            decision_id,
            models_loaded: refreshed.advert.advert.inference.models_loaded.clone(),
            advert_version: refreshed.advert.version.to_string(),
        })
    }

    /// Another node's request for this node's inference server (`POST /peer/v1/inference/PATH`,
    /// already authenticated and allowed): passed on as it is, the response left unread so a
    /// streamed answer streams back.
    pub async fn serve_peer(
        &self,
        path: &str,
        body: &Value,
        trace_id: Option<&str>,
    ) -> Result<reqwest::Response, InferenceError> {
        let backend = self.own_backend()?;
        let url = backend.api_url(path);
        let send = backend.send(reqwest::Method::POST, &url, Some(body), None, trace_id);
        match tokio::time::timeout(SINGLE_TIMEOUT, send).await {
            Ok(outcome) => outcome.map_err(InferenceError::Backend),
            Err(_) => Err(InferenceError::Backend(BackendError::Timeout { url, after: SINGLE_TIMEOUT })),
        }
    }

    /// The OpenAI API routed over the mesh (`POST /v1/chat/completions`, `/v1/completions`,
    /// `/v1/embeddings`): the request goes as it is to the best node serving `body.model`, the next
    /// one if that fails before answering. Returns the answering server's response unread, so a
    /// streamed answer streams through.
    pub async fn forward(&self, path: &str, body: &Value) -> Result<(reqwest::Response, Server), InferenceError> {
        let model =
            body["model"].as_str().ok_or_else(|| InferenceError::BadInput("the request names no `model`".into()))?;
        let servers = self.route(model).await?;
        let trace_id = new_trace_id();
        let mut attempts = Vec::new();
        for server in &servers {
            let backend = match self.backend(server) {
                Ok(backend) => backend,
                Err(e) => {
                    attempts.push(Attempt::of(server, &e, 0));
                    continue;
                }
            };
            let mut body = body.clone();
            body["model"] = json!(server.model);
            let url = backend.api_url(path);
            let started = Instant::now();
            // Until the answer starts; a streamed answer then takes as long as it takes.
            let send = backend.send(reqwest::Method::POST, &url, Some(&body), None, Some(&trace_id));
            let outcome = match tokio::time::timeout(SINGLE_TIMEOUT, send).await {
                Ok(outcome) => outcome,
                Err(_) => Err(BackendError::Timeout { url: url.clone(), after: SINGLE_TIMEOUT }),
            };
            match outcome {
                Ok(response) => return Ok((response, server.clone())),
                Err(e) if e.is_retryable() => attempts.push(Attempt::of(server, &e, millis(started.elapsed()))),
                Err(e) => return Err(InferenceError::Backend(e)),
            }
        }
        Err(InferenceError::AllFailed { model: model.into(), attempts })
    }
}

/// `inference.response`: one model's answer, under the query's trace id.
fn answer_event(
    trace_id: &str,
    model: &str,
    tier: &str,
    node: Option<&str>,
    text: &str,
    latency_ms: u64,
) -> AuditEvent {
    let hash = response_hash(text);
    let shown = clip(text, AUDIT_TEXT_MAX);
    let more =
        if shown.len() < text.len() { format!(" [{} of {} bytes]", shown.len(), text.len()) } else { String::new() };
    AuditEvent {
        category: "inference.response".into(),
        subject: clip(model, 256).into(),
        outcome: "ok".into(),
        detail: format!(
            "{tier} {} in {latency_ms} ms, sha256 {hash}{more}: {shown}",
            node.map_or(String::new(), |n| format!("on {n}"))
        ),
        references: vec![trace_id.into(), hash],
    }
}

/// `inference.disagreement`: the answer groups of a query whose models did not all agree.
fn disagreement_event(answer: &MoeAnswer, answers: &[Answer], merge: &consensus::Merge) -> AuditEvent {
    let groups: Vec<String> = merge
        .groups
        .iter()
        .map(|g| {
            let who: Vec<&str> = g.members.iter().map(|&i| answers[i].source.as_str()).collect();
            format!("{:.2} [{}] {}", g.weight, who.join(", "), &response_hash(&answers[g.members[0]].text)[..12])
        })
        .collect();
    AuditEvent {
        category: "inference.disagreement".into(),
        subject: answer.trace_id.clone(),
        outcome: if merge.agreed { "resolved" } else { "no_consensus" }.into(),
        detail: clip(
            &format!(
                "policy {}: consensus {:.4}; groups: {}",
                answer.policy,
                merge.consensus_score,
                groups.join(" | ")
            ),
            2048,
        )
        .into(),
        references: vec![answer.trace_id.clone()],
    }
}

fn backend_error(e: BackendError) -> InferenceError {
    match e {
        BackendError::NotSupported { .. } => InferenceError::NotSupported(e.to_string()),
        other => InferenceError::Backend(other),
    }
}

fn check_model_name(model: &str) -> Result<(), InferenceError> {
    let ok = !model.is_empty()
        && model.len() <= agent_registry_types::MODEL_NAME_MAX
        && !model.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(InferenceError::BadInput(format!(
            "model name must be 1-{} characters without control characters",
            agent_registry_types::MODEL_NAME_MAX
        )))
    }
}

fn check_model_source(source: &str) -> Result<(), InferenceError> {
    if source.is_empty() || source.len() > 2048 || source.chars().any(char::is_control) {
        return Err(InferenceError::BadInput(
            "model must be a LocalAI gallery id (e.g. localai@phi-2) or a model config URL".into(),
        ));
    }
    Ok(())
}

fn check_prompt(prompt: &str, max_tokens: u32, temperature: Option<f64>) -> Result<(), InferenceError> {
    if prompt.trim().is_empty() {
        return Err(InferenceError::BadInput("prompt is empty".into()));
    }
    if prompt.len() > PROMPT_MAX {
        return Err(InferenceError::BadInput(format!("prompt is {} bytes; at most {PROMPT_MAX}", prompt.len())));
    }
    if !(1..=MAX_TOKENS_MAX).contains(&max_tokens) {
        return Err(InferenceError::BadInput(format!("max_tokens must be 1-{MAX_TOKENS_MAX}, got {max_tokens}")));
    }
    if let Some(t) = temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(InferenceError::BadInput(format!("temperature must be 0-2, got {t}")));
    }
    Ok(())
}

/// 16 random bytes in hex: the id every answer and audit event of one query carries.
pub fn new_trace_id() -> String {
    let mut raw = [0u8; 16];
    if getrandom::fill(&mut raw).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        raw = nanos.to_le_bytes();
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
