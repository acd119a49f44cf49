//! The node's HTTP API on loopback: `/health`, `/status`, `/peers`, `/advert`, `/metrics`.
//! The CLI's `status`, `peers` and `advert` commands are clients of it.
// The OpenAI API (`/v1/…`) is a surface of its own, beside the node's API, over the same state.
mod openai;
mod peer;
mod ui;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use agent_registry_types::DiscoveryQuery;

use crate::metrics::{process_rss_bytes, Gauges};
pub use crate::node::view::PeerRow;
use crate::node::{AdvertRefresh, NodeState};
use crate::runtime::services::{Services, StatusReport};
use crate::runtime::Routers;

/// A failure as the API shows it: a status and a message, never a backtrace.
pub struct ApiError(StatusCode, String);

impl ApiError {
    pub fn message(&self) -> &str {
        &self.1
    }

    pub fn status(&self) -> StatusCode {
        self.0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

// Each error keeps its kind up to here: the functions below give every kind its status, and `?`
// on a service call picks the right one. There is no catch-all: an error without a mapping does
// not compile.
impl From<crate::mesh::MeshError> for ApiError {
    /// The conductor failed or refused: the message names the conductor call.
    fn from(e: crate::mesh::MeshError) -> Self {
        ApiError(StatusCode::BAD_GATEWAY, e.to_string())
    }
}

impl From<crate::node::NodeError> for ApiError {
    /// A conductor failure is the conductor's; anything else is this node's own configuration.
    fn from(e: crate::node::NodeError) -> Self {
        match e {
            crate::node::NodeError::Mesh(e) => e.into(),
            e => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<crate::policy::service::PolicyServiceError> for ApiError {
    fn from(e: crate::policy::service::PolicyServiceError) -> Self {
        policy_error(e)
    }
}

impl From<crate::policy::GateError> for ApiError {
    fn from(e: crate::policy::GateError) -> Self {
        gate_error(&e)
    }
}

impl From<crate::resources::ResourceError> for ApiError {
    fn from(e: crate::resources::ResourceError) -> Self {
        resource_error(e)
    }
}

impl From<crate::artifacts::ArtifactError> for ApiError {
    fn from(e: crate::artifacts::ArtifactError) -> Self {
        artifact_error(e)
    }
}

impl From<crate::shards::ShardError> for ApiError {
    fn from(e: crate::shards::ShardError) -> Self {
        shard_error(e)
    }
}

impl From<crate::inference::InferenceError> for ApiError {
    fn from(e: crate::inference::InferenceError) -> Self {
        inference_error(e)
    }
}

/// What `ripple up` hands the runtime to serve once the node has joined.
pub const ROUTERS: Routers = Routers { api: router, peer: peer_router };

pub fn router(state: Arc<Services>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/advert", get(advert))
        .route("/advert/refresh", post(refresh))
        .route("/metrics", get(metrics))
        .route("/resources/available", get(resources_available))
        .route("/resources/plan", post(resources_plan))
        .route("/resources/allocate", post(resources_allocate))
        .route("/resources/release", post(resources_release))
        .route("/resources/allocations", get(resources_allocations))
        .route("/resources/usage", get(resources_usage))
        .route("/resources/provider", get(|State(s): State<Arc<Services>>| async move { Json(s.resources.state()) }))
        .route("/artifacts", post(artifacts_publish).get(artifacts_find))
        .route("/artifacts/check", post(artifacts_check))
        .route("/artifacts/replication", get(|State(s): State<Arc<Services>>| async move { Json(s.artifacts.state()) }))
        .route("/artifacts/{cid}", get(artifacts_info))
        .route("/artifacts/{cid}/content", get(artifacts_content))
        .route("/artifacts/{cid}/verify", get(artifacts_verify).post(artifacts_verify_file))
        .route("/artifacts/{cid}/replicas", get(artifacts_replicas))
        .route("/network/invitations", post(network_invite))
        .route("/policy", get(policy_in_force))
        .route("/policy/publish", post(policy_publish))
        .route("/policy/eval", post(policy_eval))
        .route("/policy/decisions", get(policy_decisions))
        .route("/policy/audit", get(policy_audit))
        .route("/shards", get(shards_list).post(shards_create))
        .route("/shards/loop", get(|State(s): State<Arc<Services>>| async move { Json(s.shards.state()) }))
        .route("/shards/route", get(shards_route))
        .route("/shards/map", get(shards_map))
        .route("/shards/claims", get(shards_claims))
        .route("/shards/checkpoints", post(shards_checkpoint))
        .route("/shards/checkpoints/snapshot", post(shards_checkpoint_snapshot))
        .route("/shards/snapshot", get(shards_snapshot))
        .route("/inference/models", get(inference_models))
        .route(
            "/inference/policy",
            get(|State(s): State<Arc<Services>>| async move { Json(s.inference.policies().clone()) }),
        )
        .route("/inference/query", post(inference_query))
        .route("/inference/moe", post(inference_moe))
        .route("/inference/load", post(inference_load))
        .route("/inference/unload", post(inference_unload))
        .merge(openai::router())
        .merge(ui::router())
        // Nodes on this machine reach each other's peer routes here, signed like any peer.
        .merge(peer::router())
        .layer(axum::middleware::from_fn(crate::local_http::only_this_machine))
        .with_state(state)
}

/// What the peer listener (`--peer-listen`) serves: the peer routes and nothing else. Other
/// machines reach it, so it has no operator route; every request is signed by a member.
pub fn peer_router(state: Arc<Services>) -> Router {
    peer::router().with_state(state)
}

async fn status(State(s): State<Arc<Services>>) -> Result<Json<StatusReport>, ApiError> {
    Ok(Json(s.status().await?))
}

/// The header that says how old the mesh view behind an answer is (milliseconds since its newest
/// read; absent before the first).
pub const VIEW_AGE_HEADER: &str = "x-ripple-view-age-ms";

/// `/peers`: answered from the mesh view, with its age in a header.
async fn peers(
    State(s): State<Arc<Services>>,
    query: Result<Query<DiscoveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let rows = s.view.rows(&query);
    let mut response = Json(rows).into_response();
    if let Some(age) = s.view.age() {
        response.headers_mut().insert(VIEW_AGE_HEADER, header::HeaderValue::from(age.as_millis() as u64));
    }
    Ok(response)
}

async fn advert(State(s): State<Arc<Services>>) -> Json<NodeState> {
    Json(s.node.state())
}

async fn refresh(State(s): State<Arc<Services>>) -> Result<Json<AdvertRefresh>, ApiError> {
    Ok(Json(s.node.refresh_advert().await?))
}

async fn metrics(State(s): State<Arc<Services>>) -> Response {
    let network = s.mesh.network_view().await.ok();
    let node = s.node.state();
    let gauges = Gauges {
        peers: network.map_or(0, |v| v.peer_count),
        online_peers: s.view.age().map(|_| s.view.online().iter().filter(|n| !n.is_self).count()),
        heartbeat_age_secs: s.node.heartbeat_age().map(|d| d.as_secs_f64()),
        heartbeats_sent: node.heartbeats_sent,
        heartbeat_failures: node.heartbeat_failures,
        process_rss_bytes: process_rss_bytes(),
        embedded_conductor: s.info.embedded,
        uptime_secs: s.info.started.elapsed().as_secs_f64(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render(&gauges)).into_response()
}

/// A denial is 403; a policy that cannot be evaluated 500; a decision that cannot be recorded 502.
fn gate_error(e: &crate::policy::GateError) -> ApiError {
    use crate::policy::GateError;
    let status = match e {
        GateError::Denied { .. } => StatusCode::FORBIDDEN,
        GateError::Policy { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        GateError::NotRecorded { .. } => StatusCode::BAD_GATEWAY,
    };
    ApiError(status, e.to_string())
}

fn policy_error(e: crate::policy::service::PolicyServiceError) -> ApiError {
    use crate::policy::service::PolicyServiceError;
    let status = match &e {
        PolicyServiceError::BadInput(_) | PolicyServiceError::Policy(_) => StatusCode::BAD_REQUEST,
        PolicyServiceError::NotAdmin { .. } => StatusCode::FORBIDDEN,
        PolicyServiceError::Mesh(_) => StatusCode::BAD_GATEWAY,
    };
    ApiError(status, e.to_string())
}

/// `GET /policy`: the network's admins and the packages in force on this node.
async fn policy_in_force(State(s): State<Arc<Services>>) -> Result<Json<serde_json::Value>, ApiError> {
    let admins = s.policy.admins().await?;
    Ok(Json(serde_json::json!({
        "admins": admins.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "in_force": s.policy.in_force(),
    })))
}

async fn policy_publish(
    State(s): State<Arc<Services>>,
    request: JsonBody<crate::policy::service::PublishRequest>,
) -> Result<Json<crate::policy::service::Published>, ApiError> {
    Ok(Json(s.policy.publish(body(request)?).await?))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalBody {
    pub package: String,
    pub input: serde_json::Value,
}

async fn policy_eval(
    State(s): State<Arc<Services>>,
    request: JsonBody<EvalBody>,
) -> Result<Json<crate::policy::Verdict>, ApiError> {
    let request = body(request)?;
    let verdict = s.policy.evaluate(&request.package, &request.input).map_err(|e| policy_error(e.into()))?;
    Ok(Json(verdict))
}

async fn policy_decisions(
    State(s): State<Arc<Services>>,
    Query(q): Query<crate::policy::service::HistoryQuery>,
) -> Result<Json<Vec<crate::policy::service::DecisionView>>, ApiError> {
    Ok(Json(s.policy.decisions(&q).await?))
}

async fn policy_audit(
    State(s): State<Arc<Services>>,
    Query(q): Query<crate::policy::service::HistoryQuery>,
) -> Result<Json<Vec<crate::policy::service::AuditView>>, ApiError> {
    Ok(Json(s.policy.audit_events(&q).await?))
}

/// Bad input is 400, nobody to allocate from (or, on a peer route, not providing) is 409, a
/// conductor failure 502.
fn resource_error(e: crate::resources::ResourceError) -> ApiError {
    use crate::resources::ResourceError;
    let status = match &e {
        ResourceError::BadInput(_) => StatusCode::BAD_REQUEST,
        ResourceError::NoCandidates(_) | ResourceError::AllRefused(_) => StatusCode::CONFLICT,
        ResourceError::NotProviding(_) => StatusCode::CONFLICT,
        ResourceError::Mesh(_) | ResourceError::Unanswered(_) => StatusCode::BAD_GATEWAY,
        ResourceError::Gate(e) => return gate_error(e),
    };
    ApiError(status, e.to_string())
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(body: JsonBody<T>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn resources_available(
    State(s): State<Arc<Services>>,
) -> Result<Json<Vec<crate::resources::Available>>, ApiError> {
    Ok(Json(crate::resources::available(&s.requester()).await?))
}

async fn resources_plan(
    State(s): State<Arc<Services>>,
    request: JsonBody<crate::resources::AllocateRequest>,
) -> Result<Json<crate::resources::scheduler::Plan>, ApiError> {
    Ok(Json(crate::resources::plan(&s.requester(), &body(request)?).await?))
}

async fn resources_allocate(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<crate::resources::AllocateRequest>,
) -> Result<Json<crate::resources::Allocation>, ApiError> {
    Ok(Json(crate::resources::allocate(&s.requester(), &body(request)?, via(&headers)).await?))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// The agent key to admit (`uhCAk…`).
    pub invitee: String,
}

/// `POST /network/invitations`: a network admin signs an invitation for one agent.
async fn network_invite(
    State(s): State<Arc<Services>>,
    request: JsonBody<InviteBody>,
) -> Result<Json<crate::networks::InvitationFile>, ApiError> {
    use crate::networks::InviteError;
    let invitee = crate::config::parse_agent_key("invitee", &body(request)?.invitee)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let info = &s.info;
    let invitation = crate::networks::invite(&s.mesh, &info.network, &info.network_seed, &info.admins, invitee)
        .await
        .map_err(|e| {
        let status = match e {
            InviteError::OpenNetwork(_) => StatusCode::BAD_REQUEST,
            InviteError::NotAdmin { .. } => StatusCode::FORBIDDEN,
            InviteError::Mesh(_) => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, e.to_string())
    })?;
    Ok(Json(invitation))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReleaseBody {
    pub allocation_id: String,
}

async fn resources_release(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<ReleaseBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = body(request)?;
    let release_id = crate::resources::release(&s.requester(), &request.allocation_id, via(&headers)).await?;
    Ok(Json(serde_json::json!({ "allocation_id": request.allocation_id, "release_id": release_id })))
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<u32>,
}

async fn resources_allocations(
    State(s): State<Arc<Services>>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Vec<crate::resources::AllocationRow>>, ApiError> {
    Ok(Json(crate::resources::allocations(&s.requester(), q.limit.unwrap_or(50)).await?))
}

async fn resources_usage(State(s): State<Arc<Services>>) -> Result<Json<resource_mesh_types::UsageSummary>, ApiError> {
    Ok(Json(crate::resources::usage(&s.requester()).await?))
}

/// Bad input is 400, an unknown or unobtainable CID 404, no IPFS here 409, IPFS or the conductor
/// failing 502.
fn artifact_error(e: crate::artifacts::ArtifactError) -> ApiError {
    artifact_failure(&e)
}

fn artifact_failure(e: &crate::artifacts::ArtifactError) -> ApiError {
    use crate::artifacts::ArtifactError;
    let status = match e {
        ArtifactError::BadInput(_) | ArtifactError::Io { .. } => StatusCode::BAD_REQUEST,
        ArtifactError::NotRegistered(_) | ArtifactError::Unavailable { .. } => StatusCode::NOT_FOUND,
        ArtifactError::NoIpfs => StatusCode::CONFLICT,
        ArtifactError::Mesh(_) | ArtifactError::Kubo(_) => StatusCode::BAD_GATEWAY,
        ArtifactError::Gate(e) => return gate_error(e),
    };
    ApiError(status, e.to_string())
}

/// `cli` when the `ripple` CLI sends the request: policy decisions record how an action came in.
pub const VIA_HEADER: &str = "x-ripple-via";

fn via(headers: &axum::http::HeaderMap) -> &'static str {
    match headers.get(VIA_HEADER).map(|v| v.as_bytes()) {
        Some(b"cli") => "cli",
        _ => "api",
    }
}

/// The header carrying `PublishMeta` as base64url JSON beside the streamed bytes.
pub const PUBLISH_META_HEADER: &str = "x-ripple-artifact";

/// `POST /artifacts`: the body is the bytes, streamed into IPFS while they are hashed.
async fn artifacts_publish(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<crate::artifacts::Published>, ApiError> {
    use base64::Engine;
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let encoded = headers.get(PUBLISH_META_HEADER).ok_or_else(|| {
        bad(format!("the {PUBLISH_META_HEADER} header (base64url JSON: name, labels, …) is required"))
    })?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.as_bytes())
        .map_err(|e| bad(format!("{PUBLISH_META_HEADER} is not base64url: {e}")))?;
    let meta: crate::artifacts::PublishMeta =
        serde_json::from_slice(&json).map_err(|e| bad(format!("{PUBLISH_META_HEADER}: {e}")))?;
    let stream = futures::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
    Ok(Json(s.artifacts.publish(stream, meta, via(&headers), |_| {}).await?))
}

async fn artifacts_info(
    State(s): State<Arc<Services>>,
    axum::extract::Path(cid): axum::extract::Path<String>,
) -> Result<Json<crate::artifacts::ArtifactInfo>, ApiError> {
    Ok(Json(s.artifacts.info(&cid).await?))
}

#[derive(Debug, Deserialize)]
struct ContentQuery {
    #[serde(default)]
    local: bool,
}

/// `GET /artifacts/{cid}/content`: the bytes; `?local=true` only from this node's IPFS (what
/// peers ask a replica for), otherwise fetched from a replica first if needed.
async fn artifacts_content(
    State(s): State<Arc<Services>>,
    axum::extract::Path(cid): axum::extract::Path<String>,
    Query(q): Query<ContentQuery>,
) -> Result<Response, ApiError> {
    let (stream, source) = s.artifacts.open(&cid, q.local).await?;
    let source = axum::http::HeaderValue::from_str(&source).unwrap_or(axum::http::HeaderValue::from_static("ipfs"));
    Ok((
        [
            (header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(SOURCE_HEADER), source),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

async fn artifacts_verify(
    State(s): State<Arc<Services>>,
    axum::extract::Path(cid): axum::extract::Path<String>,
) -> Result<Json<crate::artifacts::VerifyReport>, ApiError> {
    Ok(Json(s.artifacts.verify(&cid, None).await?))
}

/// `POST /artifacts/{cid}/verify`: checks the bytes in the body (a copy the caller holds).
async fn artifacts_verify_file(
    State(s): State<Arc<Services>>,
    axum::extract::Path(cid): axum::extract::Path<String>,
    body: axum::body::Body,
) -> Result<Json<crate::artifacts::VerifyReport>, ApiError> {
    let stream = futures::TryStreamExt::map_err(body.into_data_stream(), |e| crate::artifacts::ArtifactError::Io {
        what: "the request body".into(),
        reason: e.to_string(),
    });
    Ok(Json(s.artifacts.verify(&cid, Some(Box::pin(stream))).await?))
}

async fn artifacts_replicas(
    State(s): State<Arc<Services>>,
    axum::extract::Path(cid): axum::extract::Path<String>,
) -> Result<Json<crate::artifacts::ReplicaReport>, ApiError> {
    Ok(Json(s.artifacts.replicas(&cid).await?))
}

/// `GET /artifacts?name=|label=|sha256=`: registrations found through the DHT's indexes.
async fn artifacts_find(
    State(s): State<Arc<Services>>,
    query: Result<Query<crate::artifacts::FindQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::artifacts::Registration>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(s.artifacts.find(&query).await?))
}

/// `POST /artifacts/check`: would `POST /artifacts` with this metadata be accepted (before any byte)?
async fn artifacts_check(
    State(s): State<Arc<Services>>,
    meta: JsonBody<crate::artifacts::PublishMeta>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.artifacts.check_meta(&body(meta)?)?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

fn shard_error(e: crate::shards::ShardError) -> ApiError {
    use crate::shards::ShardError;
    let status = match &e {
        ShardError::BadInput(_) => StatusCode::BAD_REQUEST,
        ShardError::NotFound(_) => StatusCode::NOT_FOUND,
        ShardError::Conflict(_) => StatusCode::CONFLICT,
        ShardError::Mesh(_) => StatusCode::BAD_GATEWAY,
        ShardError::Gate(e) => return gate_error(e),
        ShardError::Snapshot(e) => return artifact_failure(e),
    };
    ApiError(status, e.to_string())
}

/// `POST /shards` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShardsBody {
    pub collection: String,
    #[serde(default)]
    pub shard_count: Option<u32>,
    #[serde(default)]
    pub replication_factor: Option<u32>,
}

/// `?collection=` (optional: the mesh's only collection) and, for routing, `&key=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardsQuery {
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

fn shards_query(query: Result<Query<ShardsQuery>, QueryRejection>) -> Result<ShardsQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn shards_list(State(s): State<Arc<Services>>) -> Result<Json<Vec<crate::shards::MapView>>, ApiError> {
    Ok(Json(s.shards.maps().await?))
}

async fn shards_create(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<CreateShardsBody>,
) -> Result<Json<crate::shards::MapView>, ApiError> {
    let b = body(request)?;
    let created = s.shards.create(&b.collection, b.shard_count, b.replication_factor, via(&headers)).await;
    Ok(Json(created?))
}

async fn shards_map(
    State(s): State<Arc<Services>>,
    query: Result<Query<ShardsQuery>, QueryRejection>,
) -> Result<Json<crate::shards::MapReport>, ApiError> {
    let q = shards_query(query)?;
    Ok(Json(s.shards.report(q.collection.as_deref()).await?))
}

async fn shards_route(
    State(s): State<Arc<Services>>,
    query: Result<Query<ShardsQuery>, QueryRejection>,
) -> Result<Json<crate::shards::RouteView>, ApiError> {
    let q = shards_query(query)?;
    let key = q.key.ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "give the key to route: ?key=".into()))?;
    Ok(Json(s.shards.route(q.collection.as_deref(), &key).await?))
}

async fn shards_claims(
    State(s): State<Arc<Services>>,
    query: Result<Query<ShardsQuery>, QueryRejection>,
) -> Result<Json<Vec<crate::shards::ClaimView>>, ApiError> {
    let q = shards_query(query)?;
    Ok(Json(s.shards.claims(q.collection.as_deref()).await?))
}

async fn shards_checkpoint(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<crate::shards::CheckpointRequest>,
) -> Result<Json<crate::shards::CheckpointView>, ApiError> {
    let request = body(request)?;
    Ok(Json(s.shards.checkpoint(&request, via(&headers)).await?))
}

/// `POST /shards/checkpoints/snapshot?shard=…&vector_count=…[&sequence=…][&collection=…]`: a
/// checkpoint whose snapshot is the body's bytes, stored and offered to peers by this node.
async fn shards_checkpoint_snapshot(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: Result<Query<crate::shards::CheckpointRequest>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Body,
) -> Result<Json<crate::shards::CheckpointView>, ApiError> {
    let Query(request) = request.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let stream = futures::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
    Ok(Json(s.shards.checkpoint_with_snapshot(request, stream, via(&headers)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotQuery {
    shard: u32,
    collection: Option<String>,
}

/// The checkpoint a `GET /shards/snapshot` answer's bytes belong to (JSON).
pub const CHECKPOINT_HEADER: &str = "x-ripple-checkpoint";
/// Where the bytes of `GET /artifacts/{cid}/content` and `GET /shards/snapshot` came from.
pub const SOURCE_HEADER: &str = "x-ripple-source";

/// `GET /shards/snapshot?shard=…[&collection=…]`: the bytes of the shard's winning snapshot.
async fn shards_snapshot(
    State(s): State<Arc<Services>>,
    q: Result<Query<SnapshotQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (checkpoint, stream, source) = s.shards.snapshot(q.collection.as_deref(), q.shard).await?;
    let header_value =
        |v: String| axum::http::HeaderValue::from_str(&v).unwrap_or(axum::http::HeaderValue::from_static("?"));
    Ok((
        [
            (header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(SOURCE_HEADER), header_value(source)),
            (
                header::HeaderName::from_static(CHECKPOINT_HEADER),
                header_value(serde_json::to_string(&checkpoint).unwrap_or_default()),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Statuses of inference failures: bad input 400, nothing serves the model 404, no consensus 409,
/// the backend lacks the feature 501, every server failed 502, a deadline passed 504.
pub fn inference_error(e: crate::inference::InferenceError) -> ApiError {
    use crate::bridges::localai::BackendError;
    use crate::inference::InferenceError;
    let status = match &e {
        InferenceError::BadInput(_) => StatusCode::BAD_REQUEST,
        InferenceError::NotServed(_) => StatusCode::NOT_FOUND,
        InferenceError::NoConsensus { .. } => StatusCode::CONFLICT,
        InferenceError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
        InferenceError::Backend(BackendError::Status { status, .. }) if (400..500).contains(status) => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
        }
        InferenceError::Cloud(_) | InferenceError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
        InferenceError::Mesh(_)
        | InferenceError::AllFailed { .. }
        | InferenceError::NothingAnswered { .. }
        | InferenceError::Backend(_) => StatusCode::BAD_GATEWAY,
        InferenceError::Gate(e) => return gate_error(e),
    };
    ApiError(status, e.to_string())
}

async fn inference_models(State(s): State<Arc<Services>>) -> Result<Json<Vec<crate::inference::MeshModel>>, ApiError> {
    Ok(Json(s.inference.models().await?))
}

async fn inference_query(
    State(s): State<Arc<Services>>,
    request: JsonBody<crate::inference::SingleQuery>,
) -> Result<Json<crate::inference::SingleAnswer>, ApiError> {
    Ok(Json(s.inference.single_query(&body(request)?).await?))
}

/// No consensus is a 409 whose body also carries the votes (`answer`), so the caller sees who
/// said what.
async fn inference_moe(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<crate::inference::MoeQuery>,
) -> Response {
    let query = match body(request) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match s.inference.moe_query(&query, via(&headers)).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => {
            let message = e.to_string();
            match e {
                crate::inference::InferenceError::NoConsensus { answer, .. } => {
                    (StatusCode::CONFLICT, Json(serde_json::json!({ "error": message, "answer": answer })))
                        .into_response()
                }
                other => inference_error(other).into_response(),
            }
        }
    }
}

async fn inference_load(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<crate::inference::LoadModel>,
) -> Result<Json<crate::inference::ModelChange>, ApiError> {
    let request = body(request)?;
    let progress = |line: &str| tracing::info!("{line}");
    Ok(Json(s.inference.load_model(&request, via(&headers), &progress).await?))
}

async fn inference_unload(
    State(s): State<Arc<Services>>,
    headers: axum::http::HeaderMap,
    request: JsonBody<crate::inference::UnloadModel>,
) -> Result<Json<crate::inference::ModelChange>, ApiError> {
    Ok(Json(s.inference.unload_model(&body(request)?, via(&headers)).await?))
}
