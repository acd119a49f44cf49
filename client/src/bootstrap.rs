//! ripple-local's bootstrap and relay: a kitsune2 bootstrap server (which also serves the iroh
//! relay) inside the sidecar, so a local mesh needs no internet. Other nodes join with
//! `--bootstrap <url>`. Also the reachability check used for any bootstrap URL.
use std::net::SocketAddr;
use std::time::Duration;

use kitsune2_bootstrap_srv::{BootstrapSrv, Config};

/// The running server; dropping it stops it.
pub struct LocalBootstrap {
    server: Option<BootstrapSrv>,
    pub url: url::Url,
}

impl LocalBootstrap {
    /// Binds `listen` (port 0 picks a free port) and serves bootstrap and relay there.
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        // The tree links both ring and aws-lc; rustls needs one chosen explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = Config::testing();
        config.listen_address_list = vec![listen];
        config.quic_bind_addr = Some(SocketAddr::new(listen.ip(), 0));
        // BootstrapSrv::new blocks while it binds and spawns its own runtime.
        let server =
            tokio::task::spawn_blocking(move || BootstrapSrv::new(config)).await.map_err(std::io::Error::other)??;
        let addr =
            *server.listen_addrs().first().ok_or_else(|| std::io::Error::other("bootstrap server bound nothing"))?;
        let url = url::Url::parse(&format!("http://{addr}")).map_err(std::io::Error::other)?;
        Ok(Self { server: Some(server), url })
    }
}

impl Drop for LocalBootstrap {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Shutting down joins threads; keep that off the async workers.
            std::thread::spawn(move || {
                let mut server = server;
                let _ = server.shutdown();
            });
        }
    }
}

/// Whether a kitsune2 bootstrap server answers at `url` (its `/health` endpoint).
pub async fn probe(url: &url::Url, timeout: Duration) -> Result<(), String> {
    let health = url.join("health").map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| e.to_string())?;
    match client.get(health.clone()).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{health} answered {}", r.status())),
        Err(e) => Err(format!("{health}: {}", error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
