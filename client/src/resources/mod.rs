//! Resources over the mesh (resource_mesh DNA; spec §10.2, §10.5, §11.4): this node as provider
//! (its offer, derived from its advert, and the loop that answers the requests addressed to it)
//! and as requester (scheduling with `locality_aware_binpack`, allocating, releasing, accounting).
//! The CLI, the HTTP API and the MCP `resources.*` tools all go through the functions here.
pub mod group_commit;
pub mod policy;
pub mod scheduler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use agent_registry_types::NodeAdvert;
use holochain_types::prelude::{ActionHash, AgentPubKey};
use resource_mesh_types::*;

use crate::mesh::{Mesh, MeshError};
use crate::node::view::{MeshNode, MeshView};
use crate::node::NodeAgent;
use crate::peer::{PeerClient, PeerClientError};
use crate::policy::PolicyService;
use group_commit::GroupCommit;
use policy::ComputePolicy;
use scheduler::{locality_aware_binpack, subtract, Candidate, Plan, Task};

/// What the requester side reads and writes: this node's conductor and agent, the mesh view, the
/// policy gate and the resource service. The surfaces build it from the services they hold.
pub struct Requester<'a> {
    pub mesh: &'a Mesh,
    pub node: &'a NodeAgent,
    pub view: &'a MeshView,
    pub policy: &'a PolicyService,
    pub resources: &'a ResourceService,
}

/// The hApp role of the resource_mesh DNA.
pub const ROLE: &str = crate::mesh::RESOURCES_ROLE;
/// How often the provider loop reads its inbox (it is also woken when this node asks itself). The
/// inbox is the fallback path: requesters hand their requests over directly, so the loop reads it
/// seldom, and the node's reads of its inbox on peers stay a small load.
const PROVIDER_TICK: Duration = Duration::from_secs(5);
/// How often ended allocations are billed and receipts acknowledged.
const SETTLE_EVERY: Duration = Duration::from_secs(30);
/// The answer window of a request handed to its provider directly, and of one left in its inbox
/// (read each `PROVIDER_TICK`, after the DHT delivered it). The provider's ledger remembers each
/// request for its window, so the direct path's short one keeps every grant small.
const DIRECT_WINDOW_SECS: u32 = 10;
const INBOX_WINDOW_SECS: u32 = 30;
/// How long a requester waits for the provider's response to a request handed over directly.
const DIRECT_DEADLINE: Duration = Duration::from_secs(5);
/// How long after a request's answer window a requester still looks for the answer on the DHT
/// (one written just in time may take this long to reach it).
const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// The provider's peer routes for requests and releases handed to it directly.
pub const PEER_REQUESTS_PATH: &str = "/peer/v1/resources/requests";
pub const PEER_RELEASES_PATH: &str = "/peer/v1/resources/releases";
/// How many candidates one allocation tries, best first.
const MAX_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("{0}")]
    BadInput(String),
    #[error("no node can take this allocation: {}", describe_filtered(.0))]
    NoCandidates(Vec<scheduler::Filtered>),
    #[error("no candidate granted the allocation: {}", .0.iter().map(|a| format!("{} ({}): {}", a.node_name, a.node_id, a.outcome)).collect::<Vec<_>>().join("; "))]
    AllRefused(Vec<Attempt>),
    /// Boxed: a denial carries its whole verdict.
    #[error(transparent)]
    Gate(#[from] Box<crate::policy::GateError>),
    /// A request or release handed to this node that it cannot take as a provider.
    #[error("{0}")]
    NotProviding(String),
    /// This node's conductor did not say how it answered: read the answer back from the DHT.
    #[error("the answer to request {0} was not returned; it may still have been written")]
    Unanswered(String),
}

fn describe_filtered(filtered: &[scheduler::Filtered]) -> String {
    if filtered.is_empty() {
        return "no nodes are known on the mesh yet".into();
    }
    filtered.iter().map(|f| format!("{} ({}): {}", f.name, f.agent, f.reason)).collect::<Vec<_>>().join("; ")
}

/// What an allocation asks for (the spec's `resources.allocate` inputs, in whole units).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocateRequest {
    pub resource_type: ResourceType,
    /// `None`: the workload class's `resource_request` from compute_policy.yaml.
    pub requirements: Option<Capacity>,
    pub model_name: Option<String>,
    pub locality_preference: LocalityPreference,
    /// `None`: the workload class's timeout, else one hour.
    pub duration_secs: Option<u32>,
    /// `None`: the class for the resource type (compute → agent_task, inference → inference, …).
    pub workload_class: Option<String>,
}

/// One candidate tried by an allocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub node_id: String,
    pub node_name: String,
    pub request_id: String,
    /// How the request reached the provider: `direct` (handed to it) or `inbox` (through the DHT).
    #[serde(default)]
    pub path: String,
    /// Why the direct path did not answer, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `granted`, the provider's rejection reason, or that it did not answer in time.
    pub outcome: String,
}

/// The spec's `resources.allocate` outputs, plus what a caller needs to follow up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Allocation {
    pub allocation_id: String,
    pub node_id: String,
    pub node_name: String,
    pub endpoint: String,
    /// RFC 3339.
    pub expires_at: String,
    pub granted_at: String,
    pub amounts: Capacity,
    pub request_id: String,
    pub attempts: Vec<Attempt>,
}

/// One provider as `resources.query_available` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Available {
    pub node_id: String,
    pub node_name: String,
    pub is_self: bool,
    pub state: String,
    pub region: String,
    pub offered: Capacity,
    pub in_use: Capacity,
    pub free: Capacity,
    pub active_allocations: u32,
    pub models: Vec<String>,
}

/// One allocation as `ripple allocations` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocationRow {
    /// `requester` (this node asked) or `provider` (this node granted).
    pub side: String,
    /// `pending`, `granted`, `rejected`, `released` or `expired`.
    pub status: String,
    pub request_id: String,
    pub requester: String,
    pub provider: String,
    pub resource_type: ResourceType,
    pub requirements: Capacity,
    pub requested_at: String,
    pub allocation_id: Option<String>,
    pub endpoint: Option<String>,
    pub expires_at: Option<String>,
    pub released_at: Option<String>,
    pub reason: Option<String>,
    pub receipt: Option<ReceiptRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceiptRow {
    pub receipt_id: String,
    pub held_secs: u64,
    pub resource_seconds: ResourceSeconds,
    pub acknowledged: bool,
}

/// The provider loop's state, for `/status` and the tests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProviderState {
    pub providing: bool,
    pub offer: Option<ResourceOffer>,
    pub offer_version: Option<String>,
    pub granted: u64,
    pub rejected: u64,
    pub receipts_written: u64,
    pub receipts_acknowledged: u64,
    /// This node restarted and has not heard its peers yet (`MeshView::has_heard_the_mesh`): its
    /// inbox lives on peers that cannot reach it yet, and a read of it would wait on them.
    #[serde(default)]
    pub waiting_for_mesh: bool,
    pub last_error: Option<String>,
}

/// This node's side of the resource mesh: the provider loop and its state.
pub struct ResourceService {
    mesh: Arc<Mesh>,
    node: Arc<NodeAgent>,
    view: Arc<MeshView>,
    pub policy: ComputePolicy,
    peers: PeerClient,
    /// Held by every write to this node's resource_mesh chain: answers, offers and receipts would
    /// otherwise race for the chain head.
    chain: tokio::sync::Mutex<()>,
    /// Requests handed to this node directly, queued for the next write of the chain.
    direct: GroupCommit<SignedRequest, Result<Answer, String>>,
    /// Allocations granted to this node in this run and not yet expired, with their provider and
    /// its peer endpoint: released through the provider.
    held: Mutex<HashMap<ActionHash, Held>>,
    /// Where the next settle pass starts among this node's requests (`SettleReport::pending_from`;
    /// 0 after a start: one pass over them all).
    settle_from: std::sync::atomic::AtomicU32,
    wake: tokio::sync::Notify,
    state: Mutex<ProviderState>,
}

impl ResourceService {
    pub fn new(
        mesh: Arc<Mesh>,
        node: Arc<NodeAgent>,
        view: Arc<MeshView>,
        peers: PeerClient,
        policy: ComputePolicy,
        providing: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            mesh,
            node,
            view,
            peers,
            policy,
            chain: tokio::sync::Mutex::new(()),
            direct: GroupCommit::default(),
            held: Mutex::default(),
            settle_from: Default::default(),
            wake: tokio::sync::Notify::new(),
            state: Mutex::new(ProviderState { providing, ..Default::default() }),
        })
    }

    pub fn state(&self) -> ProviderState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut ProviderState)) {
        if let Ok(mut s) = self.state.lock() {
            change(&mut s);
        }
    }

    /// The provider loop: keeps the offer in step with the advert, answers the inbox, and settles
    /// ended allocations, until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_settle = Instant::now();
        loop {
            if self.state().providing {
                if let Err(e) = self.provide_once().await {
                    tracing::warn!("provider loop: {e}");
                    self.update(|s| s.last_error = Some(e.to_string()));
                }
            }
            if last_settle.elapsed() >= SETTLE_EVERY {
                last_settle = Instant::now();
                if let Err(e) = self.settle().await {
                    tracing::warn!("settling usage: {e}");
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(PROVIDER_TICK) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// One pass: publish the offer if the advert changed it, then answer every request waiting.
    pub async fn provide_once(&self) -> Result<(), ResourceError> {
        let Some(advert) = self.node.state().advert.map(|a| a.advert) else { return Ok(()) };
        let offer = ResourceOffer { peer_endpoint: self.node.settings().peer_endpoint, ..offer_from_advert(&advert) };
        if offer.capacity.is_zero() {
            return Ok(());
        }
        if self.state().offer.as_ref() != Some(&offer) {
            let _chain = self.chain.lock().await;
            let record: OfferRecord = self.mesh.call(ROLE, "resources", "publish_offer", &offer).await?;
            tracing::info!(version = %record.version, "resource offer published");
            self.update(|s| {
                s.offer = Some(record.offer);
                s.offer_version = Some(record.version.to_string());
            });
        }
        let waiting = !self.view.has_heard_the_mesh();
        self.update(|s| s.waiting_for_mesh = waiting);
        if waiting {
            return Ok(());
        }
        let inbox: Inbox = self.mesh.call(ROLE, "scheduling", "get_inbox", &()).await?;
        if !inbox.answered.is_empty() {
            let _chain = self.chain.lock().await;
            self.mesh.call::<_, ()>(ROLE, "scheduling", "clear_answered", &inbox.answered).await?;
        }
        for request_id in inbox.requests {
            let input = AnswerInput { request_id, endpoint: self.grant_endpoint() };
            let answer: Answer = {
                let _chain = self.chain.lock().await;
                self.mesh.call(ROLE, "scheduling", "answer_request", &input).await?
            };
            self.answered(&answer, "inbox");
        }
        self.update(|s| s.last_error = None);
        Ok(())
    }

    /// Where requesters reach what this node grants: its advertised inference endpoint, if any.
    fn grant_endpoint(&self) -> String {
        self.node.state().advert.and_then(|a| a.advert.inference.endpoint).unwrap_or_default()
    }

    fn answered(&self, answer: &Answer, path: &str) {
        match answer {
            Answer::Granted(g) => {
                tracing::info!(allocation = %g.allocation_id, request = %g.request_id, path, "granted");
                self.update(|s| s.granted += 1);
            }
            Answer::Rejected { reason, .. } => {
                tracing::info!(path, "rejected: {reason}");
                self.update(|s| s.rejected += 1);
            }
        }
    }

    /// A request its requester (`caller`, already authenticated) hands this node directly: answered
    /// in this call, on this node's chain, together with any others that arrive meanwhile.
    pub async fn answer_direct(&self, caller: &AgentPubKey, signed: SignedRequest) -> Result<Answer, ResourceError> {
        let state = self.state();
        if !state.providing || state.offer.is_none() {
            return Err(ResourceError::NotProviding("this node offers no resources to allocate".into()));
        }
        if signed.requester() != caller {
            return Err(ResourceError::BadInput("a node may hand over only requests it made itself".into()));
        }
        if signed.request.provider != self.mesh.agent {
            return Err(ResourceError::BadInput("the request is addressed to another provider".into()));
        }
        let endpoint = self.grant_endpoint();
        let answer = self
            .direct
            .submit(&self.chain, signed, |batch| self.answer_batch(batch, endpoint))
            .await
            .ok_or_else(|| ResourceError::Unanswered("handed over directly".into()))?
            .map_err(|e| ResourceError::NotProviding(format!("answering the request failed: {e}")))?;
        self.answered(&answer, "direct");
        Ok(answer)
    }

    /// Answers a batch in one chain write; if the batch fails as a whole, each on its own, so one
    /// bad request does not fail the others.
    async fn answer_batch(&self, batch: Vec<SignedRequest>, endpoint: String) -> Vec<Result<Answer, String>> {
        let input = SignedAnswerInput { requests: batch, endpoint };
        let all: Result<Vec<Answer>, MeshError> = self.mesh.call(ROLE, "scheduling", "answer_signed", &input).await;
        match all {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            Err(e) if input.requests.len() == 1 => vec![Err(e.to_string())],
            Err(e) => {
                tracing::debug!(requests = input.requests.len(), "answering a batch failed, one by one: {e}");
                let mut each = Vec::with_capacity(input.requests.len());
                for signed in input.requests {
                    let one = SignedAnswerInput { requests: vec![signed], endpoint: input.endpoint.clone() };
                    let answer: Result<Vec<Answer>, MeshError> =
                        self.mesh.call(ROLE, "scheduling", "answer_signed", &one).await;
                    each.push(match answer {
                        Ok(mut answers) if answers.len() == 1 => Ok(answers.remove(0)),
                        Ok(_) => Err("the conductor returned no answer".into()),
                        Err(e) => Err(e.to_string()),
                    });
                }
                each
            }
        }
    }

    /// The requester of an allocation this node granted (`caller`, already authenticated) ends it:
    /// released on this node's chain at once, so the next grant counts the capacity free.
    pub async fn release_for(
        &self,
        caller: &AgentPubKey,
        allocation_id: ActionHash,
    ) -> Result<ActionHash, ResourceError> {
        let input = ReleaseFor { allocation_id, requester: caller.clone() };
        let _chain = self.chain.lock().await;
        Ok(self.mesh.call(ROLE, "scheduling", "release_for", &input).await?)
    }

    /// Bills this node's ended allocations and acknowledges receipts for its own.
    pub async fn settle(&self) -> Result<SettleReport, ResourceError> {
        let _chain = self.chain.lock().await;
        let from = self.settle_from.load(std::sync::atomic::Ordering::Relaxed);
        let report: SettleReport = self.mesh.call(ROLE, "accounting", "settle_from", &from).await?;
        self.settle_from.store(report.pending_from, std::sync::atomic::Ordering::Relaxed);
        self.update(|s| {
            s.receipts_written += u64::from(report.receipts_written);
            s.receipts_acknowledged += u64::from(report.receipts_acknowledged);
        });
        Ok(report)
    }

    /// Hands a request this node wrote to its provider and returns the answer the provider wrote:
    /// in-process when this node is the provider, else on the provider's peer route, within
    /// `DIRECT_DEADLINE`.
    async fn hand_over(
        &self,
        provider: &AgentPubKey,
        endpoint: Option<&str>,
        signed: &SignedRequest,
    ) -> Result<Answer, HandOverFailure> {
        if provider == &self.mesh.agent {
            return self.answer_direct(provider, signed.clone()).await.map_err(|e| match e {
                ResourceError::Unanswered(_) | ResourceError::Mesh(_) => HandOverFailure::Unknown(e.to_string()),
                _ => HandOverFailure::NotTaken(e.to_string()),
            });
        }
        let endpoint = endpoint.ok_or_else(|| HandOverFailure::NotTaken("its offer names no peer endpoint".into()))?;
        let body = serde_json::to_vec(signed).map_err(|e| HandOverFailure::NotTaken(e.to_string()))?;
        let answer = self.post_to_provider(endpoint, PEER_REQUESTS_PATH, body).await?;
        serde_json::from_slice(&answer)
            .map_err(|e| HandOverFailure::Unknown(format!("the provider's answer does not decode: {e}")))
    }

    /// A signed POST to a provider's peer route, within `DIRECT_DEADLINE`: the body of a success.
    async fn post_to_provider(&self, endpoint: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, HandOverFailure> {
        use HandOverFailure::{NotTaken, Unknown};
        let url = format!("{}{path}", endpoint.trim_end_matches('/'));
        let exchange = async {
            let response = self.peers.post(&url, body).await.map_err(|e| match e {
                PeerClientError::Http(_) => Unknown(e.to_string()),
                _ => NotTaken(e.to_string()),
            })?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| Unknown(format!("{url}: {e}")))?;
            let refused = || format!("{url}: {status}: {}", String::from_utf8_lossy(&bytes));
            match status {
                s if s.is_success() => Ok(bytes.to_vec()),
                // The provider's conductor did not say whether it wrote the answer.
                reqwest::StatusCode::BAD_GATEWAY => Err(Unknown(refused())),
                _ => Err(NotTaken(refused())),
            }
        };
        tokio::time::timeout(DIRECT_DEADLINE, exchange)
            .await
            .unwrap_or_else(|_| Err(Unknown(format!("{url}: no response within {} s", DIRECT_DEADLINE.as_secs()))))
    }

    /// Remembers an allocation granted to this node, to release it through its provider (and
    /// forgets those that expired).
    fn hold(&self, grant: &GrantRecord, endpoint: Option<String>) {
        if let Ok(mut held) = self.held.lock() {
            let now = holochain_types::prelude::Timestamp::now();
            held.retain(|_, h| h.expires_at > now);
            let entry = Held {
                provider: grant.provider.clone(),
                endpoint,
                amounts: grant.amounts,
                expires_at: grant.expires_at,
            };
            held.insert(grant.allocation_id.clone(), entry);
        }
    }

    /// Releases an allocation granted to this node in this run through its provider; `None` when it
    /// was not, or the provider did not release it.
    async fn release_directly(&self, allocation_id: &ActionHash) -> Option<ActionHash> {
        let Held { provider, endpoint, amounts, .. } = self.held.lock().ok()?.get(allocation_id).cloned()?;
        let released = if provider == self.mesh.agent {
            self.release_for(&provider, allocation_id.clone()).await.map_err(|e| e.to_string())
        } else {
            let body = serde_json::to_vec(&ReleaseBody { allocation_id: allocation_id.clone() }).ok()?;
            match self.post_to_provider(endpoint.as_deref()?, PEER_RELEASES_PATH, body).await {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        match released {
            Ok(release) => {
                if let Ok(mut held) = self.held.lock() {
                    held.remove(allocation_id);
                }
                // The provider freed it on its ledger now; the DHT tells this node's view later
                // (its next read of the provider may even predate the release reaching it), and
                // this node's next plan should not pass the provider over meanwhile.
                self.view.amend_provider(&provider, |status| {
                    status.in_use = subtract(&status.in_use, &amounts);
                    status.active = status.active.saturating_sub(1);
                });
                Some(release)
            }
            Err(e) => {
                tracing::debug!(allocation = %allocation_id, "the provider did not release it directly: {e}");
                None
            }
        }
    }

    async fn request(&self, request: &AllocationRequest) -> Result<RequestRecord, ResourceError> {
        let _chain = self.chain.lock().await;
        Ok(self.mesh.call(ROLE, "scheduling", "request_allocation", request).await?)
    }

    async fn post_to_inbox(&self, request: &ActionHash) -> Result<(), ResourceError> {
        let _chain = self.chain.lock().await;
        Ok(self.mesh.call(ROLE, "scheduling", "post_to_inbox", request).await?)
    }
}

/// Why a request handed over directly came back without an answer.
#[derive(Debug, Clone, thiserror::Error)]
enum HandOverFailure {
    /// The provider did not take it (no peer endpoint, unreachable, or refused): it wrote nothing.
    #[error("{0}")]
    NotTaken(String),
    /// It may have reached the provider, whose response did not come back: the answer may still be
    /// written, within the request's answer window.
    #[error("{0}")]
    Unknown(String),
}

/// An allocation granted to this node, as `ResourceService::release_directly` needs it.
#[derive(Debug, Clone)]
struct Held {
    provider: AgentPubKey,
    endpoint: Option<String>,
    amounts: Capacity,
    expires_at: holochain_types::prelude::Timestamp,
}

/// The body of a release handed to a provider (`PEER_RELEASES_PATH`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReleaseBody {
    pub allocation_id: ActionHash,
}

/// What a node offers: everything its advert says it has (cores, RAM, GPUs and their VRAM, local
/// and S3 storage, one model slot per loaded model).
pub fn offer_from_advert(advert: &NodeAdvert) -> ResourceOffer {
    let gpus = &advert.compute.gpus;
    ResourceOffer {
        capacity: Capacity {
            cpu_cores: advert.compute.cpu_cores,
            memory_gb: advert.compute.ram_gb,
            gpu_slots: u32::try_from(gpus.len()).unwrap_or(u32::MAX),
            vram_gb: gpus.iter().map(|g| g.vram_gb).sum(),
            storage_gb: advert.storage.local_ssd_gb.saturating_add(advert.storage.s3_available_gb),
            model_slots: u32::try_from(advert.inference.models_loaded.len()).unwrap_or(u32::MAX),
        },
        models: advert.inference.models_loaded.clone(),
        peer_endpoint: None,
    }
}

/// The requirements of an allocation given `amounts`: `None` when no amount is given (the workload
/// class's `resource_request` applies), except that an inference request naming a model asks for
/// one model slot; inference always takes a model slot.
pub fn requirements(amounts: Capacity, resource_type: ResourceType, model: Option<&str>) -> Option<Capacity> {
    match (amounts.is_zero(), resource_type, model) {
        (true, ResourceType::Inference, Some(_)) | (false, ResourceType::Inference, _) => {
            Some(Capacity { model_slots: amounts.model_slots.max(1), ..amounts })
        }
        (true, _, _) => None,
        (false, _, _) => Some(amounts),
    }
}

/// The task an allocation request describes, with the workload class's defaults filled in.
pub fn task_for(policy: &ComputePolicy, request: &AllocateRequest) -> Result<(Task, u32), ResourceError> {
    let class_name =
        request.workload_class.clone().unwrap_or_else(|| ComputePolicy::default_class(request.resource_type).into());
    let class = policy.class(&class_name).map_err(ResourceError::BadInput)?;
    let requirements = request.requirements.unwrap_or_else(|| class.resource_request.capacity());
    if requirements.is_zero() {
        return Err(ResourceError::BadInput(format!(
            "requirements ask for nothing, and the {class_name} class has no resource_request to fill in"
        )));
    }
    if request.resource_type == ResourceType::Inference && request.model_name.is_none() {
        return Err(ResourceError::BadInput("an inference allocation needs model_name".into()));
    }
    let duration = request.duration_secs.or(class.resource_request.duration_secs()).unwrap_or(3600);
    if duration == 0 || duration > MAX_DURATION_SECS {
        return Err(ResourceError::BadInput(format!(
            "duration must be 1..={MAX_DURATION_SECS} seconds, got {duration}"
        )));
    }
    let task = Task {
        resource_type: request.resource_type,
        requirements,
        model_name: request.model_name.clone(),
        locality_preference: request.locality_preference,
        workload_class: class_name,
    };
    Ok((task, duration))
}

/// A known node: as the scheduler sees it, as the mesh view knows it, and its active allocations.
struct Known {
    candidate: Candidate,
    peer: MeshNode,
    active: u32,
}

/// Every known node as a scheduling candidate: its advert, liveness, offer and the capacity in
/// use on it, all from the mesh view.
async fn candidates(s: &Requester<'_>) -> Result<Vec<Known>, ResourceError> {
    Ok(s.view
        .providers()
        .await?
        .into_iter()
        .map(|(peer, status)| {
            let candidate = Candidate {
                agent: peer.agent.to_string(),
                name: peer.advert.agent_name.clone(),
                is_self: peer.is_self,
                online: peer.is_online(),
                region: peer.advert.network.region.clone(),
                hardware_class: peer.advert.hardware_class,
                tokens_per_second: peer.advert.inference.tokens_per_second,
                bandwidth_mbps: peer.advert.network.bandwidth_mbps,
                cpu_percent: peer.last_heartbeat.as_ref().map(|h| h.sample.cpu_percent),
                offer: status.offer.as_ref().map(|o| o.offer.clone()),
                in_use: status.in_use,
            };
            Known { candidate, peer, active: status.active }
        })
        .collect())
}

/// The dry run: every candidate with its score, and why the others were filtered out.
pub async fn plan(s: &Requester<'_>, request: &AllocateRequest) -> Result<Plan, ResourceError> {
    let (task, _) = task_for(&s.resources.policy, request)?;
    let nodes: Vec<Candidate> = candidates(s).await?.into_iter().map(|k| k.candidate).collect();
    plan_for(s, &task, &nodes)
}

fn plan_for(s: &Requester<'_>, task: &Task, nodes: &[Candidate]) -> Result<Plan, ResourceError> {
    let class = s.resources.policy.class(&task.workload_class).map_err(ResourceError::BadInput)?;
    Ok(locality_aware_binpack(task, class, nodes))
}

/// Passes the `resources.allocate` gate (`via` mcp, cli or api), schedules, then asks the best
/// candidates in turn until one grants (`MAX_ATTEMPTS` at most).
pub async fn allocate(s: &Requester<'_>, request: &AllocateRequest, via: &str) -> Result<Allocation, ResourceError> {
    let (task, duration_secs) = task_for(&s.resources.policy, request)?;
    // The arguments as the MCP tool names them, with the class defaults applied.
    let args = serde_json::json!({
        "resource_type": task.resource_type,
        "requirements": task.requirements,
        "model_name": task.model_name,
        "locality_preference": task.locality_preference,
        "duration_seconds": duration_secs,
        "workload_class": task.workload_class,
    });
    s.policy.gate("resources.allocate", via, &args, &[]).await.map_err(Box::new)?;
    let nodes: Vec<Candidate> = candidates(s).await?.into_iter().map(|k| k.candidate).collect();
    let plan = plan_for(s, &task, &nodes)?;
    if plan.candidates.is_empty() {
        return Err(ResourceError::NoCandidates(plan.filtered));
    }
    let mut attempts = vec![];
    for candidate in plan.candidates.iter().take(MAX_ATTEMPTS) {
        let provider = AgentPubKey::try_from(candidate.agent.as_str())
            .map_err(|e| ResourceError::BadInput(format!("agent key {}: {e}", candidate.agent)))?;
        let request = AllocationRequest {
            provider: provider.clone(),
            resource_type: plan.task.resource_type,
            requirements: plan.task.requirements,
            model_name: plan.task.model_name.clone(),
            locality_preference: plan.task.locality_preference,
            duration_secs,
            answer_within_secs: INBOX_WINDOW_SECS,
        };
        let offer = nodes.iter().find(|n| n.agent == candidate.agent).and_then(|n| n.offer.as_ref());
        let endpoint = offer.and_then(|o| o.peer_endpoint.clone());
        let asked = ask(s, request, endpoint.as_deref()).await?;
        let mut attempt = Attempt {
            node_id: candidate.agent.clone(),
            node_name: candidate.name.clone(),
            request_id: asked.request.request_id.to_string(),
            path: asked.path.into(),
            note: asked.note,
            outcome: String::new(),
        };
        // The answer changed (or, rejected, showed stale) what the view knows of this provider. On
        // the direct path the reader does not wait for that read (it goes to the DHT).
        let view = s.resources.view.clone();
        let refresh = async move {
            if let Err(e) = view.refresh_provider(&provider).await {
                tracing::debug!("refreshing {provider}'s offer in the mesh view failed: {e}");
            }
        };
        if asked.path == "direct" {
            tokio::spawn(refresh);
        } else {
            refresh.await;
        }
        match asked.answer {
            Some(Answer::Granted(grant)) => {
                attempt.outcome = "granted".into();
                attempts.push(attempt);
                s.resources.hold(&grant, endpoint);
                return Ok(Allocation {
                    allocation_id: grant.allocation_id.to_string(),
                    node_id: candidate.agent.clone(),
                    node_name: candidate.name.clone(),
                    endpoint: grant.endpoint,
                    expires_at: grant.expires_at.to_string(),
                    granted_at: grant.granted_at.to_string(),
                    amounts: grant.amounts,
                    request_id: asked.request.request_id.to_string(),
                    attempts,
                });
            }
            Some(Answer::Rejected { reason, .. }) => attempt.outcome = format!("rejected: {reason}"),
            None => {
                let window = asked.request.request.answer_within_secs;
                attempt.outcome = format!("no answer within the request's {window} s answer window");
            }
        }
        attempts.push(attempt);
    }
    Err(ResourceError::AllRefused(attempts))
}

/// One request to one provider and its answer, if one came.
struct Asked {
    request: RequestRecord,
    answer: Option<Answer>,
    /// `direct` or `inbox`, as `Attempt::path`.
    path: &'static str,
    note: Option<String>,
}

/// Asks `request.provider` for `request`: handed over directly (with the short answer window)
/// when the provider is this node or names a peer endpoint, else, or if the provider did not take
/// it, through its DHT inbox (with `request`'s window). A hand-over whose response was lost waits
/// for the answer on the DHT instead, so no request is ever answered twice.
async fn ask(s: &Requester<'_>, request: AllocationRequest, endpoint: Option<&str>) -> Result<Asked, ResourceError> {
    let provider = request.provider.clone();
    let mut note = None;
    if provider == s.mesh.agent || endpoint.is_some() {
        let direct = AllocationRequest { answer_within_secs: DIRECT_WINDOW_SECS, ..request.clone() };
        let written = s.resources.request(&direct).await?;
        match s.resources.hand_over(&provider, endpoint, &written.signed).await {
            Ok(answer) => return Ok(Asked { request: written, answer: Some(answer), path: "direct", note }),
            Err(HandOverFailure::Unknown(e)) => {
                tracing::debug!(request = %written.request_id, "no direct response, reading the answer: {e}");
                let answer = await_answer(s.mesh, &written).await?;
                let note = Some(format!("{e}; the answer was read from the DHT"));
                return Ok(Asked { request: written, answer, path: "direct", note });
            }
            Err(HandOverFailure::NotTaken(e)) => {
                tracing::debug!(request = %written.request_id, "the provider did not take it directly: {e}");
                note = Some(e);
            }
        }
    }
    let written = s.resources.request(&request).await?;
    s.resources.post_to_inbox(&written.request_id).await?;
    if provider == s.mesh.agent {
        s.resources.wake.notify_one();
    }
    let answer = await_answer(s.mesh, &written).await?;
    Ok(Asked { request: written, answer, path: "inbox", note })
}

/// The provider's answer to `request`, read from the DHT until its answer window has closed (and
/// `ANSWER_GRACE` after, for an answer written just in time to reach this node).
async fn await_answer(mesh: &Mesh, request: &RequestRecord) -> Result<Option<Answer>, ResourceError> {
    let left = request.signed.answer_by_micros() - holochain_types::prelude::Timestamp::now().as_micros();
    let deadline = Instant::now() + Duration::from_micros(u64::try_from(left).unwrap_or(0)) + ANSWER_GRACE;
    let mut pause = Duration::from_millis(50);
    loop {
        let answer: Option<Answer> = mesh.call(ROLE, "scheduling", "get_answer", &request.request_id).await?;
        if answer.is_some() || Instant::now() >= deadline {
            return Ok(answer);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Releases an allocation this node holds or granted, once the `resources.release` gate passed. An
/// allocation this node was granted in this run is released by its provider when told directly
/// (its ledger frees the capacity at once); otherwise, or if the provider does not answer, this
/// node writes the release and the provider's inbox carries it.
pub async fn release(s: &Requester<'_>, allocation_id: &str, via: &str) -> Result<String, ResourceError> {
    let hash = ActionHash::try_from(allocation_id)
        .map_err(|e| ResourceError::BadInput(format!("allocation_id `{allocation_id}` is not an action hash: {e}")))?;
    let args = serde_json::json!({ "allocation_id": allocation_id });
    s.policy.gate("resources.release", via, &args, &[]).await.map_err(Box::new)?;
    if let Some(release) = s.resources.release_directly(&hash).await {
        return Ok(release.to_string());
    }
    let release: ActionHash = {
        let _chain = s.resources.chain.lock().await;
        s.mesh.call(ROLE, "scheduling", "release_allocation", &hash).await?
    };
    Ok(release.to_string())
}

/// Providers with what they offer and have free, online ones first.
pub async fn available(s: &Requester<'_>) -> Result<Vec<Available>, ResourceError> {
    let mut rows: Vec<Available> = candidates(s)
        .await?
        .into_iter()
        .filter_map(|Known { candidate: c, peer, active }| {
            let offer = c.offer?;
            let free = subtract(&offer.capacity, &c.in_use);
            Some(Available {
                node_id: c.agent,
                node_name: c.name,
                is_self: c.is_self,
                state: peer.state.as_str().into(),
                region: c.region,
                offered: offer.capacity,
                in_use: c.in_use,
                free,
                active_allocations: active,
                models: offer.models,
            })
        })
        .collect();
    rows.sort_by(|a, b| (a.state != "online", &a.node_name).cmp(&(b.state != "online", &b.node_name)));
    Ok(rows)
}

/// This node's allocations, newest first (at most `limit` per side).
pub async fn allocations(s: &Requester<'_>, limit: u32) -> Result<Vec<AllocationRow>, ResourceError> {
    let list: AllocationList = s.mesh.call(ROLE, "scheduling", "list_allocations", &limit).await?;
    let now = holochain_types::prelude::Timestamp::now();
    let row = |side: &str, view: AllocationView| {
        let (status, allocation_id, endpoint, expires_at, reason, provider) = match &view.answer {
            None => ("pending", None, None, None, None, view.request.request.provider.to_string()),
            Some(Answer::Rejected { reason, provider, .. }) => {
                ("rejected", None, None, None, Some(reason.clone()), provider.to_string())
            }
            Some(Answer::Granted(g)) => {
                let status = if view.released_at.is_some_and(|r| r < g.expires_at) {
                    "released"
                } else if g.expires_at <= now {
                    "expired"
                } else {
                    "granted"
                };
                (
                    status,
                    Some(g.allocation_id.to_string()),
                    Some(g.endpoint.clone()),
                    Some(g.expires_at.to_string()),
                    None,
                    g.provider.to_string(),
                )
            }
        };
        AllocationRow {
            side: side.into(),
            status: status.into(),
            request_id: view.request.request_id.to_string(),
            requester: view.request.requester.to_string(),
            provider,
            resource_type: view.request.request.resource_type,
            requirements: view.request.request.requirements,
            requested_at: view.request.made_at.to_string(),
            allocation_id,
            endpoint,
            expires_at,
            released_at: view.released_at.map(|t| t.to_string()),
            reason,
            receipt: view.receipt.map(|r| ReceiptRow {
                receipt_id: r.receipt_id.to_string(),
                held_secs: r.receipt.held_secs,
                resource_seconds: r.receipt.resource_seconds,
                acknowledged: r.acknowledged,
            }),
        }
    };
    let mut rows: Vec<AllocationRow> = list.as_requester.into_iter().map(|v| row("requester", v)).collect();
    rows.extend(list.as_provider.into_iter().map(|v| row("provider", v)));
    Ok(rows)
}

/// Resource-seconds this node provided and used, from its receipts.
pub async fn usage(s: &Requester<'_>) -> Result<UsageSummary, ResourceError> {
    Ok(s.mesh.call(ROLE, "accounting", "get_usage", &()).await?)
}
