//! The web dashboard (`client/ui`), served by `ripple up` at `/ui/` on loopback. Its built assets
//! are embedded in the binary (`client/ui/dist`, rebuilt by `cargo xtask ui`). The page talks to
//! the conductor's app websocket itself: `POST /ui/session` gives it a single-use app token and a
//! read-only zome-call grant for the signing key it generated, on every cell.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::runtime::services::Services;

/// The built dashboard: path under `/ui/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../ui/dist/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/dist/app.js")),
    ("index.css", "text/css; charset=utf-8", include_bytes!("../../ui/dist/index.css")),
];

/// What the dashboard may call, per role: reads only. Writes stay with the sidecar, its gates and
/// its audit.
pub fn dashboard_functions() -> BTreeMap<&'static str, Vec<(&'static str, &'static str)>> {
    BTreeMap::from([
        (
            "agent_registry",
            vec![
                ("discovery", "query_peers"),
                ("discovery", "get_peer"),
                ("discovery", "get_online_nodes"),
                ("capabilities", "get_my_node_advert"),
                ("heartbeat", "get_heartbeat_settings"),
            ],
        ),
        (
            "resource_mesh",
            vec![
                ("scheduling", "list_allocations"),
                ("accounting", "get_usage"),
                ("resources", "get_provider_statuses"),
            ],
        ),
        (
            "policy_store",
            vec![
                ("policies", "get_current_bundles"),
                ("decisions", "get_decisions_in_hours"),
                ("audit", "get_audit_in_hours"),
            ],
        ),
        (
            "artifact_index",
            vec![
                ("artifacts", "get_artifacts_in_shard"),
                ("provenance", "get_provenance_for_artifact"),
                ("replication", "get_replicas_for_cid"),
            ],
        ),
        ("memory_shards", vec![("shards", "list_maps"), ("routing", "get_claims")]),
    ])
}

pub fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route("/ui/session", post(session))
        .route("/ui/{file}", get(|Path(file): Path<String>| async move { asset(&file) }))
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(path, _, _)| *path == name) {
        Some((_, mime, bytes)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "no-cache")], *bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no dashboard file `{name}`")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The page's signing key, as an AgentPubKey in Holochain's base64 (`uhCAk…`).
    pub signing_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SessionGrant {
    pub app_url: String,
    pub token: Vec<u8>,
    /// Standard base64 of the cap secret.
    pub cap_secret: String,
    pub node_name: String,
}

async fn session(State(s): State<Arc<Services>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let refuse =
        |status: StatusCode, error: String| (status, Json(serde_json::json!({ "error": error }))).into_response();
    // Only the dashboard this node serves may open a session: a page from another site in the
    // same browser must not (its Origin differs; the API is on loopback, which a browser reaches).
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        if origin != format!("http://{host}") {
            return refuse(StatusCode::FORBIDDEN, format!("origin {origin} is not this node's dashboard"));
        }
    }
    let request: SessionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("expected {{\"signing_key\": \"uhCAk…\"}}: {e}")),
    };
    let key = match signing_key(&request.signing_key) {
        Ok(k) => k,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("signing_key is not an agent key: {e}")),
    };
    match s.mesh.open_app_session(key, &dashboard_functions()).await {
        Ok(session) => Json(SessionGrant {
            app_url: format!("ws://127.0.0.1:{}", session.app_port),
            token: session.token,
            cap_secret: base64::engine::general_purpose::STANDARD.encode(&session.cap_secret),
            node_name: s.node.state().advert.map(|a| a.advert.agent_name).unwrap_or_default(),
        })
        .into_response(),
        Err(e) => refuse(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// The page's signing key as `@holochain/client` makes it (`generateSigningKeyPair`): an agent key
/// whose last four bytes are not the location checksum, which the conductor never checks on a
/// provenance. So it is decoded as it is, prefix and length checked, and granted byte for byte.
fn signing_key(text: &str) -> Result<holochain_client::AgentPubKey, String> {
    let encoded = text.strip_prefix('u').ok_or("a base64 agent key starts with `u`")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).map_err(|e| e.to_string())?;
    holochain_client::AgentPubKey::try_from_raw_39(bytes).map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_made_signing_key_is_taken_byte_for_byte() {
        // What generateSigningKeyPair makes: the agent prefix, an ed25519 key, four zero bytes.
        let mut raw = vec![132, 32, 36];
        raw.extend([7u8; 32]);
        raw.extend([0u8; 4]);
        let text = format!("u{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw));
        assert!(holochain_client::AgentPubKey::try_from(text.as_str()).is_err(), "no valid checksum");
        assert_eq!(signing_key(&text).unwrap().get_raw_39(), raw.as_slice());
        assert!(signing_key("nope").unwrap_err().contains("starts with `u`"));
        let mut dna = raw.clone();
        dna[..3].copy_from_slice(&[132, 45, 36]);
        let dna = format!("u{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&dna));
        assert!(signing_key(&dna).is_err(), "a DNA hash is not an agent key");
    }
}
