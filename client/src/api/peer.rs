//! The routes other nodes' sidecars call (`/peer/v1/…`): artifact bytes, this node's inference
//! server (so a LocalAI bound to loopback serves the mesh), and allocation requests and releases
//! handed to this node as provider. Served on the peer listener
//! (`--peer-listen`) and, for nodes on one machine, on the loopback API too. Each request is
//! authenticated (`crate::peer`: signature, freshness, replay, membership) and then decided by this
//! node's `peer.request` policy before the route runs.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use holochain_types::prelude::{ActionHash, AgentPubKey};
use resource_mesh_types::{Answer, SignedRequest};
use serde_json::Value;

use super::{gate_error, ApiError};
use crate::bridges::localai::TRACE_HEADER;
use crate::peer::PeerAuthError;
use crate::resources::{ReleaseBody, PEER_RELEASES_PATH, PEER_REQUESTS_PATH};
use crate::runtime::services::Services;

/// The bytes of an artifact this node holds (its own IPFS only: a peer asks the holders).
pub const ARTIFACT_ROUTE: &str = "artifacts.content";

/// The OpenAI API paths a peer may ask this node's inference server for, with their policy route
/// names. Model management is not among them: that is this node's operator's.
const INFERENCE_ROUTES: [(&str, &str); 3] = [
    ("chat/completions", "inference.chat"),
    ("completions", "inference.completions"),
    ("embeddings", "inference.embeddings"),
];

/// A requester hands this node, as provider, a request it made (the resource: its type).
pub const RESOURCE_REQUEST_ROUTE: &str = "resources.request";
/// A requester tells this node, as provider, that it releases an allocation (the resource: its id).
pub const RESOURCE_RELEASE_ROUTE: &str = "resources.release";

pub fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/peer/v1/artifacts/{cid}", get(artifact))
        .route("/peer/v1/inference/{*path}", post(inference))
        .route(PEER_REQUESTS_PATH, post(resource_request))
        .route(PEER_RELEASES_PATH, post(resource_release))
}

/// A request its requester signed, handed to this node as its provider: answered (granted or
/// rejected, written on this node's chain) in this call.
async fn resource_request(
    State(s): State<Arc<Services>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Answer>, ApiError> {
    let kind = |r: &SignedRequest| format!("{:?}", r.request.resource_type).to_lowercase();
    let request = (&method, &uri, &headers, &body[..]);
    let (caller, signed) =
        admit_json(&s, request, RESOURCE_REQUEST_ROUTE, kind, "be a signed allocation request").await?;
    Ok(Json(s.resources.answer_direct(&caller, signed).await?))
}

/// The requester of an allocation this node granted ends it: released on this node's chain now.
async fn resource_release(
    State(s): State<Arc<Services>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ActionHash>, ApiError> {
    let id = |r: &ReleaseBody| r.allocation_id.to_string();
    let request = (&method, &uri, &headers, &body[..]);
    let (caller, release) = admit_json(&s, request, RESOURCE_RELEASE_ROUTE, id, "name an `allocation_id`").await?;
    Ok(Json(s.resources.release_for(&caller, release.allocation_id).await?))
}

/// A peer request whose body is JSON of type `T`, admitted (`admit`) before the body is checked, so
/// a stranger learns nothing about what this node accepts; the policy sees `resource` of the body
/// (empty when it does not parse). The caller's key and the body when all passes.
async fn admit_json<T: serde::de::DeserializeOwned>(
    s: &Services,
    (method, uri, headers, body): (&Method, &Uri, &HeaderMap, &[u8]),
    route: &str,
    resource: impl Fn(&T) -> String,
    what: &str,
) -> Result<(AgentPubKey, T), ApiError> {
    let parsed: Result<T, _> = serde_json::from_slice(body);
    let label = parsed.as_ref().map(&resource).unwrap_or_default();
    let caller = admit(s, method, uri, headers, body, route, &label).await?;
    let parsed = parsed.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("the body must {what}: {e}")))?;
    let key = AgentPubKey::try_from(caller.as_str())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("caller {caller}: {e}")))?;
    Ok((key, parsed))
}

async fn artifact(
    State(s): State<Arc<Services>>,
    Path(cid): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = admit(&s, &method, &uri, &headers, b"", ARTIFACT_ROUTE, &cid).await?;
    let (stream, _) = s.artifacts.open(&cid, true).await?;
    tracing::debug!("serving {cid} to peer {caller}");
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// A peer's OpenAI API request (`chat/completions`, `completions`, `embeddings`) for this node's
/// own inference server; the answer, streamed or not, goes back as the server gives it. The
/// policy sees the route and the model.
async fn inference(
    State(s): State<Arc<Services>>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((path, route)) = INFERENCE_ROUTES.iter().find(|(p, _)| *p == path) else {
        let served: Vec<&str> = INFERENCE_ROUTES.iter().map(|(p, _)| *p).collect();
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no peer inference route `{path}`: peers may ask for {}", served.join(", ")),
        ));
    };
    // Authenticated before parsing: a stranger learns nothing about what this node accepts.
    let request: Result<Value, _> = serde_json::from_slice(&body);
    let model = request.as_ref().ok().and_then(|v| v["model"].as_str()).unwrap_or_default().to_string();
    let caller = admit(&s, &method, &uri, &headers, &body, route, &model).await?;
    let request = request
        .ok()
        .filter(|v| v.is_object() && !model.is_empty())
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "the body must be a JSON object naming a `model`".into()))?;
    let trace_id = headers.get(TRACE_HEADER).and_then(|v| v.to_str().ok());
    tracing::debug!("answering {path} for {model} to peer {caller}");
    let upstream = s.inference.serve_peer(path, &request, trace_id).await?;
    Ok(super::openai::relay(upstream))
}

/// Authenticates a peer request (its signature covers `body`) and asks the policy; the caller's
/// key when both pass.
async fn admit(
    s: &Services,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    route: &str,
    resource: &str,
) -> Result<String, ApiError> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let started = std::time::Instant::now();
    let checked = s.peer.check(headers, method.as_str(), path, body, crate::peer::now_ms());
    s.metrics.observe_peer_auth(started.elapsed(), checked.is_ok());
    let caller = checked.map_err(|e| ApiError(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if !s.view.is_member(&caller).await? {
        return Err(ApiError(StatusCode::FORBIDDEN, PeerAuthError::NotMember(caller.to_string()).to_string()));
    }
    let caller = caller.to_string();
    s.policy.decide_peer_request(&caller, route, resource).await.map_err(|e| gate_error(&e))?;
    Ok(caller)
}
