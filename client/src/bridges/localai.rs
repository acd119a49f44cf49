//! The bridge to an inference server: the OpenAI-compatible API LocalAI serves (`/v1/models`,
//! `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`), LocalAI's model management where
//! the server has it (`/models/apply`, `/models/jobs/{id}`, `/models/delete/{name}`,
//! `/backend/shutdown`), and cloud providers speaking the same API with a bearer key.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Header carrying a query's trace id to every server it reaches (`trace_id_propagation`).
pub const TRACE_HEADER: &str = "x-ripple-trace-id";

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} did not answer within {} ms", after.as_millis())]
    Timeout { url: String, after: Duration },
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{what} is not supported by this backend ({url} answered {status}; LocalAI has it, llama.cpp's server does not)")]
    NotSupported { url: String, what: String, status: u16 },
    #[error("{url} could not load {model}: {reason}")]
    LoadFailed { url: String, model: String, reason: String },
    #[error("{url} answered something that is not an OpenAI-compatible response: {reason}")]
    BadResponse { url: String, reason: String },
    /// Another node's sidecar turned this node away (401/403): its policy or its membership check.
    #[error("{url} refused this node ({status}): {body}")]
    Refused { url: String, status: u16, body: String },
    /// This node could not sign a request to a peer (its own conductor): no other peer would do better.
    #[error("cannot sign the request to {url}: {reason}")]
    Unsigned { url: String, reason: String },
}

impl BackendError {
    /// Worth asking the next server: it failed, not the request. A 4xx other than 404 (model
    /// gone from that server), 408 and 429 would fail the same way elsewhere.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Status { status, .. } => *status >= 500 || matches!(status, 404 | 408 | 429),
            BackendError::NotSupported { .. } | BackendError::LoadFailed { .. } | BackendError::Unsigned { .. } => {
                false
            }
            _ => true,
        }
    }
}

/// One OpenAI-compatible server.
#[derive(Clone)]
pub struct Backend {
    /// Where `chat/completions` etc. hang: `<endpoint>/v1/` for LocalAI, the provider's base URL,
    /// `<sidecar>/peer/v1/inference/` for another node.
    api: url::Url,
    /// LocalAI's root, for model management; none for cloud providers and other nodes.
    root: Option<url::Url>,
    auth: Auth,
    http: reqwest::Client,
}

/// How requests to a server prove who sends them.
#[derive(Clone)]
enum Auth {
    /// This node's own LocalAI.
    None,
    /// A cloud provider's API key.
    Bearer(String),
    /// Another node's sidecar: every request signed with this node's agent key.
    Peer(crate::peer::PeerClient),
}

/// The route prefix on a node's sidecar under which other nodes reach its inference server.
pub const PEER_INFERENCE_PATH: &str = "/peer/v1/inference/";

/// A LocalAI model-management job (`/models/jobs/{id}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Job {
    #[serde(default)]
    pub processed: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub error: Option<Value>,
}

impl Job {
    /// Why the job failed, if it did (LocalAI reports an error string, or null/"" when none).
    pub fn failure(&self) -> Option<String> {
        match &self.error {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) if e.is_empty() => None,
            Some(Value::String(e)) => Some(e.clone()),
            Some(other) => Some(other.to_string()),
        }
    }
}

/// A chat answer as the reducer and the caller see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// Where a node's inference routes hang on its sidecar at `endpoint`.
fn peer_api(endpoint: &str) -> Result<url::Url, String> {
    let sidecar = url::Url::parse(endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
    sidecar.join(PEER_INFERENCE_PATH).map_err(|e| e.to_string())
}

fn with_slash(mut url: url::Url) -> url::Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

impl Backend {
    /// A node's LocalAI (or other OpenAI-compatible server) at its advertised endpoint.
    pub fn local(http: reqwest::Client, endpoint: &str) -> Result<Self, String> {
        let root = with_slash(url::Url::parse(endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?);
        let api = root.join("v1/").map_err(|e| e.to_string())?;
        Ok(Self { api, root: Some(root), auth: Auth::None, http })
    }

    /// Another node's inference server, through that node's sidecar at `endpoint` (its advertised
    /// peer URL): signed requests, and no model management (that is its operator's).
    pub fn peer(http: reqwest::Client, endpoint: &str, peers: crate::peer::PeerClient) -> Result<Self, String> {
        Ok(Self { api: peer_api(endpoint)?, root: None, auth: Auth::Peer(peers), http })
    }

    /// A cloud provider at its OpenAI-compatible base URL (`…/v1`).
    pub fn cloud(http: reqwest::Client, base_url: &url::Url, api_key: &str) -> Self {
        Self { api: with_slash(base_url.clone()), root: None, auth: Auth::Bearer(api_key.into()), http }
    }

    /// The server's root (LocalAI) or API base URL (cloud providers), for messages.
    pub fn endpoint(&self) -> &str {
        self.root.as_ref().unwrap_or(&self.api).as_str()
    }

    pub fn api_url(&self, path: &str) -> String {
        self.api.join(path).map_or_else(|_| format!("{}{path}", self.api), |u| u.to_string())
    }

    /// Sends and checks the status; the response is left unread (for streaming).
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
        trace_id: Option<&str>,
    ) -> Result<reqwest::Response, BackendError> {
        let body = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| BackendError::BadResponse { url: url.into(), reason: format!("request body: {e}") })?,
            None => Vec::new(),
        };
        let mut request = self.http.request(method.clone(), url);
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(key) => request = request.bearer_auth(key),
            Auth::Peer(peers) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| BackendError::Unreachable { url: url.into(), reason: e.to_string() })?;
                let headers = peers
                    .sign(method.as_str(), &parsed, &body)
                    .await
                    .map_err(|e| BackendError::Unsigned { url: url.into(), reason: e.to_string() })?;
                request = request.headers(headers);
            }
        }
        if let Some(trace) = trace_id {
            request = request.header(TRACE_HEADER, trace);
        }
        if !body.is_empty() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(|e| transport(url, timeout, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let (url, status, body) =
            (url.to_string(), status.as_u16(), error_text(&response.text().await.unwrap_or_default()));
        match (&self.auth, status) {
            (Auth::Peer(_), 401 | 403) => Err(BackendError::Refused { url, status, body }),
            _ => Err(BackendError::Status { url, status, body }),
        }
    }

    async fn json(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
        trace_id: Option<&str>,
    ) -> Result<Value, BackendError> {
        let response = self.send(method, url, body, timeout, trace_id).await?;
        let read = response.json::<Value>();
        let value = match timeout {
            Some(t) => {
                tokio::time::timeout(t, read).await.map_err(|_| BackendError::Timeout { url: url.into(), after: t })?
            }
            None => read.await,
        };
        value.map_err(|e| BackendError::BadResponse { url: url.into(), reason: e.to_string() })
    }

    /// `/v1/models`: the model ids (and the aliases llama.cpp's server lists beside them, names it
    /// answers to as well), sorted, without duplicates.
    pub async fn models(&self, timeout: Duration) -> Result<Vec<String>, BackendError> {
        let url = self.api_url("models");
        let value = self.json(reqwest::Method::GET, &url, None, Some(timeout), None).await?;
        let mut ids: Vec<String> = value["data"]
            .as_array()
            .ok_or_else(|| BackendError::BadResponse { url: url.clone(), reason: "no `data` list".into() })?
            .iter()
            .flat_map(|m| {
                let aliases = m["aliases"].as_array().into_iter().flatten();
                std::iter::once(&m["id"]).chain(aliases).filter_map(Value::as_str).map(String::from)
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// A `/v1/chat/completions` (or another API path) request passed through as JSON.
    pub async fn call(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
        trace_id: Option<&str>,
    ) -> Result<Value, BackendError> {
        self.json(reqwest::Method::POST, &self.api_url(path), Some(body), Some(timeout), trace_id).await
    }

    /// One chat turn: `prompt` as the user's message, the answer's text.
    pub async fn chat(
        &self,
        model: &str,
        prompt: &str,
        options: &ChatOptions,
        timeout: Duration,
        trace_id: Option<&str>,
    ) -> Result<Completion, BackendError> {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": options.max_tokens,
        });
        if let Some(t) = options.temperature {
            body["temperature"] = json!(t);
        }
        let value = self.call("chat/completions", &body, timeout, trace_id).await?;
        let choice = &value["choices"][0];
        let text = choice["message"]["content"].as_str().ok_or_else(|| BackendError::BadResponse {
            url: self.api_url("chat/completions"),
            reason: "no choices[0].message.content".into(),
        })?;
        Ok(Completion {
            text: text.to_string(),
            finish_reason: choice["finish_reason"].as_str().map(String::from),
            usage: value.get("usage").cloned(),
        })
    }

    /// `/v1/embeddings` for several inputs, in input order.
    pub async fn embeddings(
        &self,
        model: &str,
        inputs: &[&str],
        timeout: Duration,
    ) -> Result<Vec<Vec<f32>>, BackendError> {
        let url = self.api_url("embeddings");
        let value = self.call("embeddings", &json!({"model": model, "input": inputs}), timeout, None).await?;
        let bad = |reason: &str| BackendError::BadResponse { url: url.clone(), reason: reason.into() };
        let mut rows: Vec<(usize, Vec<f32>)> = value["data"]
            .as_array()
            .ok_or_else(|| bad("no `data` list"))?
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let index = row["index"].as_u64().map_or(i, |x| x as usize);
                let vector = row["embedding"].as_array().ok_or_else(|| bad("a row without `embedding`"))?;
                Ok((index, vector.iter().filter_map(Value::as_f64).map(|x| x as f32).collect()))
            })
            .collect::<Result<_, BackendError>>()?;
        rows.sort_by_key(|(i, _)| *i);
        if rows.len() != inputs.len() {
            return Err(bad(&format!("{} embeddings for {} inputs", rows.len(), inputs.len())));
        }
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    fn management(&self, path: &str, what: &str) -> Result<String, BackendError> {
        let root = self.root.as_ref().ok_or_else(|| BackendError::NotSupported {
            url: self.api.to_string(),
            what: what.into(),
            status: 0,
        })?;
        Ok(root.join(path).map_or_else(|_| format!("{root}{path}"), |u| u.to_string()))
    }

    /// 404 or 405 on a management endpoint: the server does not have it.
    async fn manage(&self, path: &str, what: &str, body: &Value) -> Result<Value, BackendError> {
        let url = self.management(path, what)?;
        match self.json(reqwest::Method::POST, &url, Some(body), Some(Duration::from_secs(60)), None).await {
            Err(BackendError::Status { status: status @ (404 | 405 | 501), url, .. }) => {
                Err(BackendError::NotSupported { url, what: what.into(), status })
            }
            other => other,
        }
    }

    /// LocalAI `/models/apply`: installs a model from its gallery id (`localai@phi-2`) or a model
    /// config URL, optionally under `name`. Returns the job id to follow with `job`.
    pub async fn apply_model(&self, source: &str, name: Option<&str>) -> Result<String, BackendError> {
        let mut body = if source.contains("://") { json!({"url": source}) } else { json!({"id": source}) };
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        let value = self.manage("models/apply", "loading a model (/models/apply)", &body).await?;
        value["uuid"].as_str().map(String::from).ok_or_else(|| BackendError::BadResponse {
            url: self.management("models/apply", "").unwrap_or_default(),
            reason: format!("no job `uuid` in {value}"),
        })
    }

    pub async fn job(&self, id: &str) -> Result<Job, BackendError> {
        let url = self.management(&format!("models/jobs/{id}"), "model jobs (/models/jobs)")?;
        let value = self.json(reqwest::Method::GET, &url, None, Some(Duration::from_secs(30)), None).await?;
        serde_json::from_value(value).map_err(|e| BackendError::BadResponse { url, reason: e.to_string() })
    }

    /// LocalAI `/backend/shutdown`: frees the memory a model's backend holds.
    pub async fn shutdown_backend(&self, model: &str) -> Result<(), BackendError> {
        self.manage("backend/shutdown", "stopping a model's backend (/backend/shutdown)", &json!({"model": model}))
            .await
            .map(|_| ())
    }

    /// LocalAI `/models/delete/{name}`: removes the model from the server.
    pub async fn delete_model(&self, model: &str) -> Result<(), BackendError> {
        let path = format!("models/delete/{}", urlencoding(model));
        self.manage(&path, "removing a model (/models/delete)", &json!({})).await.map(|_| ())
    }
}

/// What a chat request may set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatOptions {
    pub max_tokens: u32,
    /// None: the server's default.
    pub temperature: Option<f64>,
}

fn transport(url: &str, timeout: Option<Duration>, e: &reqwest::Error) -> BackendError {
    match timeout {
        Some(after) if e.is_timeout() => BackendError::Timeout { url: url.into(), after },
        _ => BackendError::Unreachable { url: url.into(), reason: root_cause(e) },
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An OpenAI-style `{"error": {"message": …}}` as its message, other bodies shortened.
fn error_text(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"].as_str().or(v["error"].as_str()).or(v["message"].as_str()).map(String::from)
    });
    let text = message.unwrap_or_else(|| body.trim().to_string());
    text.chars().take(300).collect()
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_under_v1_with_or_without_a_trailing_slash() {
        let http = reqwest::Client::new();
        for endpoint in ["http://127.0.0.1:8080", "http://127.0.0.1:8080/"] {
            let b = Backend::local(http.clone(), endpoint).unwrap();
            assert_eq!(b.api_url("chat/completions"), "http://127.0.0.1:8080/v1/chat/completions");
            assert_eq!(b.management("models/apply", "x").unwrap(), "http://127.0.0.1:8080/models/apply");
        }
        let cloud = Backend::cloud(http, &"https://api.example.com/v1".parse().unwrap(), "k");
        assert_eq!(cloud.api_url("chat/completions"), "https://api.example.com/v1/chat/completions");
        assert!(matches!(cloud.management("models/apply", "loading"), Err(BackendError::NotSupported { .. })));
        assert!(Backend::local(reqwest::Client::new(), "not a url").is_err());
    }

    #[test]
    fn another_node_is_asked_through_its_sidecars_peer_routes() {
        for endpoint in ["http://10.0.0.2:7781", "http://10.0.0.2:7781/", "http://10.0.0.2:7781/v1"] {
            let api = peer_api(endpoint).unwrap().join("chat/completions").unwrap();
            assert_eq!(api.as_str(), "http://10.0.0.2:7781/peer/v1/inference/chat/completions", "{endpoint}");
        }
        assert!(peer_api("10.0.0.2:7781").is_err(), "an advert's endpoint without a scheme");
        let refused = BackendError::Refused { url: "u".into(), status: 403, body: "closed".into() };
        assert!(refused.is_retryable(), "one node's refusal does not end the query");
        assert!(!BackendError::Unsigned { url: "u".into(), reason: "conductor".into() }.is_retryable());
    }

    #[test]
    fn server_errors_fail_over_and_request_errors_do_not() {
        let status = |status| BackendError::Status { url: "u".into(), status, body: String::new() };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(404).is_retryable(), "the model left that server");
        assert!(!status(400).is_retryable());
        assert!(BackendError::Timeout { url: "u".into(), after: Duration::from_secs(1) }.is_retryable());
        assert_eq!(error_text(r#"{"error":{"message":"context too long","code":400}}"#), "context too long");
    }
}
