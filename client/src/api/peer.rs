//! The routes other nodes' sidecars call (`/peer/v1/…`), served on the peer listener
//! (`--peer-listen`) and, for nodes on one machine, on the loopback API too. Each request is
//! authenticated (`crate::peer`: signature, freshness, replay, membership) and then decided by this
//! node's `peer.request` policy before the route runs.
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{artifact_error, gate_error, ApiError, ApiState};
use crate::peer::{PeerAuthError, PeerCheckError};

/// The bytes of an artifact this node holds (its own IPFS only: a peer asks the holders).
pub const ARTIFACT_ROUTE: &str = "artifacts.content";

pub fn router() -> Router<Arc<ApiState>> {
    Router::new().route("/peer/v1/artifacts/{cid}", get(artifact))
}

async fn artifact(
    State(s): State<Arc<ApiState>>,
    Path(cid): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = admit(&s, &method, &uri, &headers, ARTIFACT_ROUTE, &cid).await?;
    let (stream, _) = s.artifacts.open(&cid, true).await.map_err(artifact_error)?;
    tracing::debug!("serving {cid} to peer {caller}");
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Authenticates a bodiless peer request and asks the policy; the caller's key when both pass.
async fn admit(
    s: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    route: &str,
    resource: &str,
) -> Result<String, ApiError> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let started = std::time::Instant::now();
    let checked = s.peer.check(headers, method.as_str(), path, b"", crate::peer::now_ms());
    s.metrics.observe_peer_auth(started.elapsed(), checked.is_ok());
    let caller = checked.map_err(|e| ApiError(StatusCode::UNAUTHORIZED, e.to_string()))?;
    s.peer.check_member(&s.mesh, &caller).await.map_err(|e| match e {
        PeerCheckError::Auth(e @ PeerAuthError::NotMember(_)) => ApiError(StatusCode::FORBIDDEN, e.to_string()),
        e => ApiError(StatusCode::BAD_GATEWAY, e.to_string()),
    })?;
    let caller = caller.to_string();
    s.policy.decide_peer_request(&caller, route, resource).await.map_err(|e| gate_error(&e))?;
    Ok(caller)
}
