//! The Kubo RPC bridge (`/api/v0/…`): add, cat, pin/add, pin/rm, pin/ls, id, repo/stat over
//! `reqwest`. It speaks to Kubo and to js-ipfs, which encode some numbers as strings where Kubo
//! uses numbers (and the other way round), and bounds every call with a timeout: `cat` of a CID
//! nobody has hangs rather than fails.
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// Calls that answer from the local repo.
const QUICK: Duration = Duration::from_secs(30);
/// A stalled transfer (no bytes for this long) is abandoned.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KuboError {
    #[error("IPFS API at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("IPFS API {call} failed: {reason}")]
    Call { call: &'static str, reason: String },
    #[error("IPFS API {call} did not answer within {} ms", .after.as_millis())]
    Timeout { call: &'static str, after: Duration },
    #[error("reading the content to add failed: {0}")]
    Source(String),
}

/// One Kubo-compatible IPFS daemon.
#[derive(Clone)]
pub struct Kubo {
    base: url::Url,
    http: reqwest::Client,
}

/// What `add` stored: the CID, and the size and sha256 of the bytes sent (hashed on the way).
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub cid: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeId {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "AgentVersion", default)]
    pub agent_version: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RepoStat {
    #[serde(rename = "RepoSize", deserialize_with = "number")]
    pub repo_size: u64,
    #[serde(rename = "NumObjects", deserialize_with = "number")]
    pub num_objects: u64,
    #[serde(rename = "StorageMax", deserialize_with = "number", default)]
    pub storage_max: u64,
}

/// What `add` does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMode {
    /// Store and pin (this node holds a replica).
    Pin,
    /// Store unpinned (a cache the daemon may collect).
    Cache,
    /// Compute the CID only, store nothing.
    OnlyHash,
}

/// How `add` lays out the DAG. Fixed so every node computes the same CID for the same bytes:
/// CIDv0, 256 KiB chunks, dag-pb leaves (Kubo's and js-ipfs's defaults).
const ADD_PARAMS: &[(&str, &str)] = &[("cid-version", "0"), ("chunker", "size-262144"), ("raw-leaves", "false")];

impl Kubo {
    pub fn new(base: url::Url) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(STALL)
            .build()
            .unwrap_or_default();
        Self { base, http }
    }

    pub fn url(&self) -> &url::Url {
        &self.base
    }

    pub async fn id(&self) -> Result<NodeId, KuboError> {
        let response = self.post("id", &[], QUICK).await?;
        json(response, "id").await
    }

    pub async fn repo_stat(&self) -> Result<RepoStat, KuboError> {
        let response = self.post("repo/stat", &[], QUICK).await?;
        json(response, "repo/stat").await
    }

    /// Adds the bytes of `content` as `mode` says, hashing them with sha256 as they stream past;
    /// `progress` hears the running byte count.
    pub async fn add<S>(
        &self,
        content: S,
        mode: AddMode,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Added, KuboError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let boundary = format!("ripple-{:016x}", rand_u64());
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        let hashed = std::sync::Arc::new(std::sync::Mutex::new((Sha256::new(), 0u64)));
        let tap = hashed.clone();
        let body = content.map_ok(move |chunk| {
            if let Ok(mut h) = tap.lock() {
                h.0.update(&chunk);
                h.1 += chunk.len() as u64;
                progress(h.1);
            }
            chunk
        });
        let framed =
            futures::stream::once(async { Ok(head) }).chain(body).chain(futures::stream::once(async { Ok(tail) }));
        let mut query: Vec<(&str, &str)> = ADD_PARAMS.to_vec();
        query.push(("progress", "false"));
        query.extend(match mode {
            AddMode::Pin => [("pin", "true"), ("only-hash", "false")],
            AddMode::Cache => [("pin", "false"), ("only-hash", "false")],
            AddMode::OnlyHash => [("pin", "false"), ("only-hash", "true")],
        });
        let url = self.endpoint("add")?;
        let response = self
            .http
            .post(url)
            .query(&query)
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .body(reqwest::Body::wrap_stream(framed))
            .send()
            .await
            .map_err(|e| self.failed("add", e))?;
        let text = checked(response, "add").await?.text().await.map_err(|e| self.failed("add", e))?;
        // One JSON object per line; the last names the file (the only one here).
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        let entry: AddEntry =
            serde_json::from_str(last).map_err(|e| KuboError::Call { call: "add", reason: format!("{e}: {last}") })?;
        let (hasher, size) =
            hashed.lock().map(|h| h.clone()).map_err(|_| KuboError::Source("hash state lost".into()))?;
        Ok(Added { cid: entry.hash, size, sha256: hex(&hasher.finalize()) })
    }

    /// The bytes of `cid`, streamed. `first_byte` bounds the wait for the daemon to start
    /// answering (an absent CID never does); after that, a stall of `STALL` ends the stream.
    pub async fn cat(
        &self,
        cid: &str,
        first_byte: Duration,
    ) -> Result<impl Stream<Item = Result<Bytes, KuboError>> + Send + 'static, KuboError> {
        // Offline: this node's IPFS answers from its own blocks only (Kubo fails at once on an
        // absent one; js-ipfs ignores the flag and waits, hence `first_byte`). Bytes come from other
        // nodes only through their sidecars' peer routes.
        let request = async {
            let url = self.endpoint("cat")?;
            let sent = self.http.post(url).query(&[("arg", cid), ("offline", "true")]).send().await;
            checked(sent.map_err(|e| self.failed("cat", e))?, "cat").await
        };
        let response = tokio::time::timeout(first_byte, request)
            .await
            .map_err(|_| KuboError::Timeout { call: "cat", after: first_byte })??;
        Ok(response.bytes_stream().map_err(|e| KuboError::Call { call: "cat", reason: e.to_string() }))
    }

    /// Whether `cid` is pinned here (recursively or directly).
    pub async fn is_pinned(&self, cid: &str) -> Result<bool, KuboError> {
        let url = self.endpoint("pin/ls")?;
        let response = self
            .http
            .post(url)
            .query(&[("arg", cid), ("type", "all")])
            .timeout(QUICK)
            .send()
            .await
            .map_err(|e| self.failed("pin/ls", e))?;
        if response.status().is_success() {
            let listed: PinList = json(response, "pin/ls").await?;
            return Ok(listed.keys.contains_key(cid));
        }
        // Both daemons answer "not pinned" as an error with a message.
        let text = response.text().await.unwrap_or_default();
        if text.contains("not pinned") || text.contains("is not pinned") {
            Ok(false)
        } else {
            Err(KuboError::Call { call: "pin/ls", reason: text.trim().to_string() })
        }
    }

    pub async fn pin_add(&self, cid: &str) -> Result<(), KuboError> {
        self.post_arg("pin/add", cid, Some(QUICK * 4)).await.map(drop)
    }

    pub async fn pin_rm(&self, cid: &str) -> Result<(), KuboError> {
        self.post_arg("pin/rm", cid, Some(QUICK)).await.map(drop)
    }

    async fn post(
        &self,
        call: &'static str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<reqwest::Response, KuboError> {
        let url = self.endpoint(call)?;
        let sent = self.http.post(url).query(query).timeout(timeout).send().await.map_err(|e| self.failed(call, e))?;
        checked(sent, call).await
    }

    async fn post_arg(
        &self,
        call: &'static str,
        arg: &str,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, KuboError> {
        let mut request = self.http.post(self.endpoint(call)?).query(&[("arg", arg)]);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let sent = request.send().await.map_err(|e| self.failed(call, e))?;
        checked(sent, call).await
    }

    fn endpoint(&self, call: &'static str) -> Result<url::Url, KuboError> {
        self.base.join(&format!("api/v0/{call}")).map_err(|e| KuboError::Call { call, reason: e.to_string() })
    }

    fn failed(&self, call: &'static str, e: reqwest::Error) -> KuboError {
        if e.is_timeout() {
            KuboError::Timeout { call, after: QUICK }
        } else if e.is_connect() {
            KuboError::Unreachable { url: self.base.to_string(), reason: e.to_string() }
        } else {
            KuboError::Call { call, reason: e.to_string() }
        }
    }
}

#[derive(Deserialize)]
struct AddEntry {
    #[serde(rename = "Hash")]
    hash: String,
}

#[derive(Deserialize)]
struct PinList {
    #[serde(rename = "Keys", default)]
    keys: std::collections::HashMap<String, serde_json::Value>,
}

async fn checked(response: reqwest::Response, call: &'static str) -> Result<reqwest::Response, KuboError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    // Kubo's errors are {"Message": "...", "Code": 0, "Type": "error"}.
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["Message"].as_str().map(String::from))
        .unwrap_or(text);
    Err(KuboError::Call { call, reason: format!("{status}: {}", message.trim()) })
}

async fn json<T: serde::de::DeserializeOwned>(response: reqwest::Response, call: &'static str) -> Result<T, KuboError> {
    response.json().await.map_err(|e| KuboError::Call { call, reason: format!("unexpected answer: {e}") })
}

/// A size as a JSON number (Kubo) or a decimal string (js-ipfs).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => {
            n.as_u64().ok_or_else(|| serde::de::Error::custom(format!("{n} is not a size")))
        }
        serde_json::Value::String(s) => s.parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not a size"))),
        other => Err(serde::de::Error::custom(format!("{other} is not a size"))),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_decode_from_numbers_and_strings() {
        let kubo: RepoStat = serde_json::from_str(r#"{"RepoSize": 2500, "NumObjects": 3, "StorageMax": 10}"#).unwrap();
        let js: RepoStat = serde_json::from_str(r#"{"RepoSize": "2500", "NumObjects": "3"}"#).unwrap();
        assert_eq!((kubo.repo_size, kubo.num_objects), (js.repo_size, js.num_objects));
        assert!(serde_json::from_str::<RepoStat>(r#"{"RepoSize": "lots", "NumObjects": 1}"#).is_err());
    }

    #[test]
    fn sha256_is_lower_case_hex() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
