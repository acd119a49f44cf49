//! Bootstrap and relay: a kitsune2 bootstrap server (which also serves the iroh relay), inside the
//! sidecar for ripple-local's first node, so a local mesh needs no internet, or on its own
//! (`ripple bootstrap serve`) for operators who host a network's bootstrap on a public machine.
//! Other nodes join with `--bootstrap <url>`. Also the reachability check used for any bootstrap URL.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kitsune2_bootstrap_srv::{BootstrapSrv, Config};

/// The running server; dropping it stops it.
pub struct LocalBootstrap {
    server: Option<BootstrapSrv>,
    /// The address it listens on (the port chosen when port 0 was asked for).
    pub addr: SocketAddr,
    pub url: url::Url,
}

/// A certificate chain and its key, both PEM, for serving https.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LocalBootstrap {
    /// Binds `listen` (port 0 picks a free port) and serves bootstrap and relay there, tuned for a
    /// local mesh (bootstrap queries answer at once).
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        Self::serve(Config::testing(), listen, None).await
    }

    /// Binds `listen` and serves bootstrap and relay with kitsune2's production settings (a worker
    /// pool per core, queries that wait up to 2 s for new peers), over https with `tls`.
    pub async fn start_public(listen: SocketAddr, tls: Option<Tls>) -> std::io::Result<Self> {
        Self::serve(Config::production(), listen, tls).await
    }

    async fn serve(mut config: Config, listen: SocketAddr, tls: Option<Tls>) -> std::io::Result<Self> {
        // The tree links both ring and aws-lc; rustls needs one chosen explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        config.listen_address_list = vec![listen];
        config.quic_bind_addr = Some(SocketAddr::new(listen.ip(), 0));
        let scheme = if tls.is_some() { "https" } else { "http" };
        if let Some(tls) = tls {
            config.tls_cert = Some(tls.cert);
            config.tls_key = Some(tls.key);
        }
        // BootstrapSrv::new blocks while it binds and spawns its own runtime.
        let server =
            tokio::task::spawn_blocking(move || BootstrapSrv::new(config)).await.map_err(std::io::Error::other)??;
        let addr =
            *server.listen_addrs().first().ok_or_else(|| std::io::Error::other("bootstrap server bound nothing"))?;
        let url = url::Url::parse(&format!("{scheme}://{addr}")).map_err(std::io::Error::other)?;
        Ok(Self { server: Some(server), addr, url })
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
