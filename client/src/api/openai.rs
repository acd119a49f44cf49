//! The OpenAI API on the node's HTTP port, served by the whole mesh: `GET /v1/models` lists every
//! model some online node serves, and `POST /v1/chat/completions`, `/v1/completions` and
//! `/v1/embeddings` go to the best node serving the request's `model` (the next one if it fails
//! before answering). Streamed answers (`"stream": true`) stream through as the server sends them.
//! Errors use the OpenAI shape, `{"error": {"message", "type", "code"}}`, so OpenAI clients show them.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::inference_error;
use crate::runtime::services::Services;

/// Which server answered, on every bridged response.
pub const SERVED_BY_HEADER: &str = "x-ripple-served-by";

pub fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(|s: Shared, b: Body| forward(s, "chat/completions", b)))
        .route("/v1/completions", post(|s: Shared, b: Body| forward(s, "completions", b)))
        .route("/v1/embeddings", post(|s: Shared, b: Body| forward(s, "embeddings", b)))
}

type Shared = State<Arc<Services>>;
type Body = Result<Json<Value>, axum::extract::rejection::JsonRejection>;

fn openai_error(status: StatusCode, message: &str) -> Response {
    let kind = if status.is_client_error() { "invalid_request_error" } else { "server_error" };
    (status, Json(json!({"error": {"message": message, "type": kind, "code": status.as_u16()}}))).into_response()
}

async fn models(State(s): State<Arc<Services>>) -> Response {
    match s.inference.models().await {
        Ok(models) => Json(json!({
            "object": "list",
            "data": models.iter().map(|m| json!({
                "id": m.model,
                "object": "model",
                "owned_by": "ripple-mesh",
                "servers": m.servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => {
            let e = inference_error(e);
            openai_error(e.status(), e.message())
        }
    }
}

async fn forward(State(s): Shared, path: &'static str, body: Body) -> Response {
    let body = match body {
        Ok(Json(body)) if body.is_object() => body,
        Ok(_) => return openai_error(StatusCode::BAD_REQUEST, "the request body must be a JSON object"),
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let (upstream, server) = match s.inference.forward(path, &body).await {
        Ok(answer) => answer,
        Err(e) => {
            let e = inference_error(e);
            return openai_error(e.status(), e.message());
        }
    };
    let mut response = relay(upstream);
    if let Ok(value) = HeaderValue::from_str(&format!("{} {}", server.name, server.agent)) {
        response.headers_mut().insert(SERVED_BY_HEADER, value);
    }
    response
}

/// An upstream response passed on as it arrives: status, content type and body, chunk by chunk (a
/// streamed answer streams through).
pub(super) fn relay(upstream: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::OK);
    let content_type =
        upstream.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
    // Chunks as they arrive (reqwest's `chunk` needs no extra features).
    let chunks = futures::stream::unfold(Some(upstream), |upstream| async move {
        let mut upstream = upstream?;
        match upstream.chunk().await {
            Ok(Some(bytes)) => Some((Ok::<Bytes, std::io::Error>(bytes), Some(upstream))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), None)), // the client sees a cut answer
        }
    });
    let mut response = Response::new(axum::body::Body::from_stream(chunks));
    *response.status_mut() = status;
    if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
