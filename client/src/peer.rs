//! Requests between nodes' sidecars (the peer data plane): artifact bytes go from the node that
//! holds them to the node that asks, sidecar to sidecar, never through a peer's raw IPFS port.
//!
//! Every request carries the caller's agent key, the time, a fresh nonce and the caller's
//! signature (the agent key's, made through the conductor's keystore) over those, the network
//! seed, the method, the path and the body's hash. The receiver checks the signature, that the
//! time is within [`MAX_SKEW`] of its own clock, that the nonce was not seen before, and that the
//! caller is a member of the network: it has an advert on the DHT, which only admitted agents can
//! write. Only then does the receiver's policy (`peer.request`) see the request.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use holochain_client::AgentPubKey;
use sha2::Digest;

use crate::mesh::{Mesh, MeshError, PRIMARY_ROLE};

pub const HEADER_AGENT: &str = "ripple-agent";
pub const HEADER_TIME: &str = "ripple-time";
pub const HEADER_NONCE: &str = "ripple-nonce";
pub const HEADER_SIGNATURE: &str = "ripple-signature";
/// How far a request's time may be from the receiver's clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PeerAuthError {
    #[error("peer request without the `{0}` header: requests between nodes must be signed by the caller's agent key")]
    Missing(&'static str),
    #[error("peer request header `{header}` is malformed: {reason}")]
    Malformed { header: &'static str, reason: String },
    #[error("the peer request's signature does not verify for agent {0}")]
    BadSignature(String),
    #[error("the peer request is stale: its time is {skew_ms} ms from this node's clock (at most {} s)", MAX_SKEW.as_secs())]
    Stale { skew_ms: i64 },
    #[error("the peer request's nonce was already used: a replay is refused")]
    Replayed,
    #[error("agent {0} is not a member of this network (no advert on the DHT)")]
    NotMember(String),
}

/// The bytes a caller signs: the peer-request context, then one field per line.
pub fn message(
    network_seed: &str,
    method: &str,
    path_and_query: &str,
    time_ms: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let body_sha256: String = sha2::Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    let mut out = agent_registry_types::PEER_REQUEST_CONTEXT.to_vec();
    out.extend_from_slice(
        format!("{network_seed}\n{method}\n{path_and_query}\n{time_ms}\n{nonce}\n{body_sha256}").as_bytes(),
    );
    out
}

/// Unix time in milliseconds, as requests carry it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Sends signed requests to other nodes' sidecars.
#[derive(Clone)]
pub struct PeerClient {
    mesh: Arc<Mesh>,
    network_seed: String,
    http: reqwest::Client,
}

/// How long a peer has to accept a connection, and to send the next bytes of an answer.
const PEER_CONNECT: Duration = Duration::from_secs(5);
const PEER_READ: Duration = Duration::from_secs(60);

impl PeerClient {
    pub fn new(mesh: Arc<Mesh>, network_seed: String) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(PEER_CONNECT)
            .read_timeout(PEER_READ)
            .build()
            .unwrap_or_default();
        Self { mesh, network_seed, http }
    }

    /// The headers that sign a `method` request to `url` with `body`, made with this node's agent
    /// key through the conductor's keystore. Each call draws a new nonce: sign every send.
    pub async fn sign(
        &self,
        method: &str,
        url: &url::Url,
        body: &[u8],
    ) -> Result<reqwest::header::HeaderMap, PeerClientError> {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| PeerClientError::Url(format!("no randomness for a nonce: {e}")))?;
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let time_ms = now_ms();
        let message = message(&self.network_seed, method, &path_and_query, time_ms, &nonce, body);
        let signature: holochain_types::prelude::Signature =
            self.mesh.call(PRIMARY_ROLE, "capabilities", "sign_peer_request", &message).await?;
        let mut headers = reqwest::header::HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            // Base64, hex, digits and an agent key: always valid header values.
            if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        put(HEADER_AGENT, self.mesh.agent.to_string());
        put(HEADER_TIME, time_ms.to_string());
        put(HEADER_NONCE, nonce);
        put(HEADER_SIGNATURE, base64::engine::general_purpose::STANDARD.encode(signature.0));
        Ok(headers)
    }

    /// A signed GET of `url` (a peer route of another node's sidecar).
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, PeerClientError> {
        let parsed = url::Url::parse(url).map_err(|e| PeerClientError::Url(format!("{url}: {e}")))?;
        let headers = self.sign("GET", &parsed, b"").await?;
        self.http.get(parsed).headers(headers).send().await.map_err(|e| PeerClientError::sending(url, e))
    }

    /// A signed POST of a JSON `body` to `url` (a peer route of another node's sidecar).
    pub async fn post(&self, url: &str, body: Vec<u8>) -> Result<reqwest::Response, PeerClientError> {
        let parsed = url::Url::parse(url).map_err(|e| PeerClientError::Url(format!("{url}: {e}")))?;
        let headers = self.sign("POST", &parsed, &body).await?;
        self.http
            .post(parsed)
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| PeerClientError::sending(url, e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerClientError {
    #[error("{0}")]
    Url(String),
    /// No connection to the peer: the request did not leave this node.
    #[error("{0}")]
    Unreachable(String),
    /// The request may have reached the peer, but no response came back.
    #[error("{0}")]
    Http(String),
    #[error("cannot sign the peer request: {0}")]
    Sign(#[from] MeshError),
}

impl PeerClientError {
    fn sending(url: &str, e: reqwest::Error) -> Self {
        if e.is_connect() {
            Self::Unreachable(format!("{url}: {e}"))
        } else {
            Self::Http(format!("{url}: {e}"))
        }
    }
}

/// Checks incoming peer requests. Nonces are remembered for twice the allowed skew, after which a
/// replay is refused as stale instead.
pub struct Verifier {
    network_seed: String,
    /// Nonces seen (caller/nonce → request time), and when they were last pruned.
    seen: Mutex<(HashMap<String, i64>, i64)>,
}

impl Verifier {
    pub fn new(network_seed: String) -> Self {
        Self { network_seed, seen: Default::default() }
    }

    /// Signature, freshness and replay (no I/O): the caller's key when all hold.
    pub fn check(
        &self,
        headers: &HeaderMap,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<AgentPubKey, PeerAuthError> {
        let header = |name: &'static str| -> Result<&str, PeerAuthError> {
            let value = headers.get(name).ok_or(PeerAuthError::Missing(name))?;
            value.to_str().map_err(|e| PeerAuthError::Malformed { header: name, reason: e.to_string() })
        };
        let agent_text = header(HEADER_AGENT)?;
        let agent = AgentPubKey::try_from(agent_text)
            .map_err(|e| PeerAuthError::Malformed { header: HEADER_AGENT, reason: e.to_string() })?;
        let time_ms: i64 = header(HEADER_TIME)?.parse().map_err(|e: std::num::ParseIntError| {
            PeerAuthError::Malformed { header: HEADER_TIME, reason: e.to_string() }
        })?;
        let nonce = header(HEADER_NONCE)?;
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            let reason = "must be 32 hex digits".to_string();
            return Err(PeerAuthError::Malformed { header: HEADER_NONCE, reason });
        }
        let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(header(HEADER_SIGNATURE)?)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| PeerAuthError::Malformed {
                header: HEADER_SIGNATURE,
                reason: "must be 64 bytes in base64".into(),
            })?;
        let key: [u8; 32] = agent
            .get_raw_32()
            .try_into()
            .map_err(|_| PeerAuthError::Malformed { header: HEADER_AGENT, reason: "not a 32-byte key".into() })?;
        let signed = message(&self.network_seed, method, path_and_query, time_ms, nonce, body);
        if !sodoken::sign::verify_detached(&signature, &signed, &key) {
            return Err(PeerAuthError::BadSignature(agent_text.into()));
        }
        let skew_ms = time_ms - now_ms;
        if skew_ms.unsigned_abs() > MAX_SKEW.as_millis() as u64 {
            return Err(PeerAuthError::Stale { skew_ms });
        }
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, pruned_at) = &mut *guard;
        // Pruned once per skew window, not per request: a nonce past twice the skew is stale anyway.
        let window = MAX_SKEW.as_millis() as i64;
        if now_ms - *pruned_at > window {
            seen.retain(|_, at| *at >= now_ms - 2 * window);
            *pruned_at = now_ms;
        }
        if seen.insert(format!("{agent_text}/{nonce}"), time_ms).is_some() {
            return Err(PeerAuthError::Replayed);
        }
        Ok(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Caller {
        agent: AgentPubKey,
        secret: [u8; 64],
    }

    impl Caller {
        fn new() -> Self {
            let (mut public, mut secret) = ([0u8; 32], [0u8; 64]);
            sodoken::sign::keypair(&mut public, &mut secret).unwrap();
            Self { agent: AgentPubKey::from_raw_32(public.to_vec()), secret }
        }

        fn headers(&self, seed: &str, path: &str, time_ms: i64, nonce: &str) -> HeaderMap {
            let mut signature = [0u8; 64];
            sodoken::sign::sign_detached(
                &mut signature,
                &message(seed, "GET", path, time_ms, nonce, b""),
                &self.secret,
            )
            .unwrap();
            let mut headers = HeaderMap::new();
            headers.insert(HEADER_AGENT, self.agent.to_string().parse().unwrap());
            headers.insert(HEADER_TIME, time_ms.to_string().parse().unwrap());
            headers.insert(HEADER_NONCE, nonce.parse().unwrap());
            headers
                .insert(HEADER_SIGNATURE, base64::engine::general_purpose::STANDARD.encode(signature).parse().unwrap());
            headers
        }
    }

    const NOW: i64 = 1_800_000_000_000;
    const NONCE: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_fresh_request_passes_once() {
        let (caller, verifier) = (Caller::new(), Verifier::new("seed".into()));
        let headers = caller.headers("seed", "/peer/v1/artifacts/Qm1", NOW, NONCE);
        assert_eq!(verifier.check(&headers, "GET", "/peer/v1/artifacts/Qm1", b"", NOW + 500), Ok(caller.agent.clone()));
        assert_eq!(
            verifier.check(&headers, "GET", "/peer/v1/artifacts/Qm1", b"", NOW + 900),
            Err(PeerAuthError::Replayed)
        );
        let other = caller.headers("seed", "/peer/v1/artifacts/Qm1", NOW, &NONCE.replace('0', "f"));
        assert!(verifier.check(&other, "GET", "/peer/v1/artifacts/Qm1", b"", NOW).is_ok(), "a new nonce passes");
    }

    #[test]
    fn anything_changed_after_signing_is_refused() {
        let (caller, verifier) = (Caller::new(), Verifier::new("seed".into()));
        let headers = caller.headers("seed", "/peer/v1/artifacts/Qm1", NOW, NONCE);
        let bad = |r: Result<AgentPubKey, PeerAuthError>| matches!(r, Err(PeerAuthError::BadSignature(_)));
        assert!(bad(verifier.check(&headers, "GET", "/peer/v1/artifacts/Qm2", b"", NOW)), "another path");
        assert!(bad(verifier.check(&headers, "POST", "/peer/v1/artifacts/Qm1", b"", NOW)), "another method");
        assert!(bad(verifier.check(&headers, "GET", "/peer/v1/artifacts/Qm1", b"x", NOW)), "another body");
        let elsewhere = Verifier::new("another-network".into());
        assert!(bad(elsewhere.check(&headers, "GET", "/peer/v1/artifacts/Qm1", b"", NOW)), "another network");
        let mut forged = headers.clone();
        forged.insert(HEADER_AGENT, Caller::new().agent.to_string().parse().unwrap());
        assert!(bad(verifier.check(&forged, "GET", "/peer/v1/artifacts/Qm1", b"", NOW)), "another agent's name");
    }

    #[test]
    fn stale_unsigned_and_malformed_requests_are_refused() {
        let (caller, verifier) = (Caller::new(), Verifier::new("seed".into()));
        let old = caller.headers("seed", "/p", NOW - 31_000, NONCE);
        assert_eq!(verifier.check(&old, "GET", "/p", b"", NOW), Err(PeerAuthError::Stale { skew_ms: -31_000 }));
        let early = caller.headers("seed", "/p", NOW + 31_000, NONCE);
        assert_eq!(verifier.check(&early, "GET", "/p", b"", NOW), Err(PeerAuthError::Stale { skew_ms: 31_000 }));
        assert_eq!(verifier.check(&HeaderMap::new(), "GET", "/p", b"", NOW), Err(PeerAuthError::Missing(HEADER_AGENT)));
        let mut short = caller.headers("seed", "/p", NOW, NONCE);
        short.insert(HEADER_NONCE, "abc".parse().unwrap());
        assert!(matches!(
            verifier.check(&short, "GET", "/p", b"", NOW),
            Err(PeerAuthError::Malformed { header: HEADER_NONCE, .. })
        ));
    }
}
