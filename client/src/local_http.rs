//! What every loopback HTTP surface (the operator API with its dashboard, MCP over HTTP) checks
//! before a route runs. Listening on loopback keeps other machines out, but not a web page open in
//! this machine's browser: a DNS-rebinding page reaches 127.0.0.1 under its own host name, and any
//! page can send a cross-site POST. So every request must name a loopback host, and a write that a
//! browser sends must come from the surface's own origin. Clients that are not browsers (the CLI,
//! MCP SDKs, curl) send no `Origin` and are not affected.
use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Axum middleware: refuses, with 403 and the reason as `{"error": …}`, what [`check`] refuses.
pub async fn only_this_machine(request: Request, next: Next) -> Response {
    match check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => (StatusCode::FORBIDDEN, Json(serde_json::json!({ "error": reason }))).into_response(),
    }
}

/// Why a request with this method and these headers is refused, if it is.
pub fn check(method: &Method, headers: &HeaderMap) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("the request names no Host; this API serves only this machine, as localhost or a loopback address")?;
    if !is_loopback_host(host) {
        return Err(format!(
            "Host `{host}` is not a loopback name: this API serves only this machine, as localhost or a \
             loopback address (a web page that reaches it under another name is refused)"
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let own = format!("http://{host}");
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !origin.eq_ignore_ascii_case(&own) {
            return Err(format!(
                "a write from the web page at `{origin}` is refused: only this API's own pages ({own}) and \
                 clients that are not browsers may write"
            ));
        }
    }
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(
            "a cross-site write is refused: only this API's own pages and clients that are not browsers may write"
                .into(),
        );
    }
    Ok(())
}

/// `localhost` or a loopback IP, with or without a port (`[::1]:8080`).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, rest)) if rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port) => v6,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A port number's text: 1–5 digits.
fn is_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_loopback_host_names_are_served() {
        for host in ["127.0.0.1:7878", "localhost:7878", "LOCALHOST", "[::1]:7878", "127.9.9.9", "[::1]"] {
            assert_eq!(check(&Method::GET, &headers(&[("host", host)])), Ok(()), "{host}");
        }
        for host in ["evil.example:7878", "10.0.0.5:7878", "localhost.evil.example", "[::1]x", "127.0.0.1:port", ""] {
            let refused = check(&Method::GET, &headers(&[("host", host)])).unwrap_err();
            assert!(refused.contains("not a loopback name"), "{host}: {refused}");
        }
        assert!(check(&Method::GET, &HeaderMap::new()).unwrap_err().contains("names no Host"));
    }

    #[test]
    fn browsers_write_only_from_the_apis_own_pages() {
        let own = headers(&[("host", "127.0.0.1:7878"), ("origin", "http://127.0.0.1:7878")]);
        assert_eq!(check(&Method::POST, &own), Ok(()));
        assert_eq!(check(&Method::POST, &headers(&[("host", "127.0.0.1:7878")])), Ok(()), "curl, the CLI, SDKs");
        let foreign = headers(&[("host", "127.0.0.1:7878"), ("origin", "http://localhost:3000")]);
        assert!(check(&Method::POST, &foreign).unwrap_err().contains("`http://localhost:3000` is refused"));
        assert_eq!(check(&Method::GET, &foreign), Ok(()), "reads are for the browser's CORS rules to guard");
        let null = headers(&[("host", "127.0.0.1:7878"), ("origin", "null")]);
        assert!(check(&Method::DELETE, &null).is_err());
        let cross = headers(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "cross-site")]);
        assert!(check(&Method::POST, &cross).unwrap_err().contains("cross-site"));
    }
}
