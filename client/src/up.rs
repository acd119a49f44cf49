//! `ripple up`: check everything, start or attach to the conductor, join the network, run the
//! node agent and the HTTP API until SIGINT/SIGTERM, then say `offline` and stop cleanly.
//! Every check that can fail on bad input runs before anything is written to the data dir.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::api::{self, ApiState, NodeInfo, StatusReport};
use crate::bootstrap::{self, LocalBootstrap};
use crate::conductor::{self, EmbeddedConductor, NetworkUrls, PassphraseSource};
use crate::manifests::{Manifests, Network};
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::node::{NodeAgent, NodeSettings};
use crate::runfile::RunFile;

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Manifest(#[from] crate::manifests::ManifestError),
    #[error(transparent)]
    Conductor(#[from] crate::conductor::ConductorError),
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    RunFile(#[from] crate::runfile::RunFileError),
    #[error("bootstrap server {url} is unreachable ({reason}). {hint}")]
    BootstrapUnreachable { url: String, reason: String, hint: String },
    #[error("{0}")]
    Setting(String),
    #[error("interrupted while starting; the conductor was stopped cleanly and the next start carries on")]
    Interrupted,
    #[error("cannot serve the HTTP API on {addr}: {source}")]
    ApiBind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start ripple-local's bootstrap server on {addr}: {source}")]
    BootstrapBind { addr: SocketAddr, source: std::io::Error },
}

/// How to get a conductor.
#[derive(Debug, Clone)]
pub enum ConductorChoice {
    Embedded { passphrase_file: Option<PathBuf>, passphrase_env: Option<String> },
    Attach { admin_url: url::Url },
}

/// Everything `ripple up` needs, resolved from flags, environment and `ripple.toml`.
#[derive(Debug, Clone)]
pub struct UpSettings {
    pub data_dir: PathBuf,
    pub manifests: Manifests,
    pub network: Network,
    pub conductor: ConductorChoice,
    /// Join this bootstrap+relay (ripple-local) instead of serving one.
    pub bootstrap: Option<url::Url>,
    pub bootstrap_listen: SocketAddr,
    pub happ: PathBuf,
    pub api_listen: SocketAddr,
    pub node: NodeSettings,
}

/// The line `ripple up --json` prints when the node is ready (and the human summary's source).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub event: String,
    pub api_url: String,
    pub data_dir: PathBuf,
    /// Where the keystore passphrase came from (never the passphrase itself).
    pub passphrase_note: Option<String>,
    pub installed_now: bool,
    pub status: StatusReport,
}

const BOOTSTRAP_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const OFFLINE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the node until a signal arrives. `progress` gets one line per slow step; `ready` is
/// called once when the node is up.
pub async fn run(settings: UpSettings, progress: &dyn Fn(&str), ready: &dyn Fn(&Ready)) -> Result<(), UpError> {
    let started = Instant::now();
    let network = &settings.network;
    let mut signals = Signals::register()?;

    // Checks that need no writes.
    RunFile::ensure_not_running(&settings.data_dir)?;
    progress(&format!("checking {} against the pins of network `{}`", settings.happ.display(), network.name));
    let bundle = settings.manifests.check_bundle(&settings.happ, network).await?;
    let api_listener = tokio::net::TcpListener::bind(settings.api_listen)
        .await
        .map_err(|source| UpError::ApiBind { addr: settings.api_listen, source })?;
    let urls = network_urls(&settings).await?;
    if let ConductorChoice::Attach { admin_url } = &settings.conductor {
        if settings.bootstrap.is_some() {
            return Err(UpError::Setting(format!(
                "--bootstrap sets the embedded conductor's network; the conductor at {admin_url} uses its own config"
            )));
        }
    }

    // Bootstrap (ripple-local's first node), then the conductor.
    let local_bootstrap = match (&settings.conductor, &urls) {
        (ConductorChoice::Embedded { .. }, None) => {
            let server = LocalBootstrap::start(settings.bootstrap_listen)
                .await
                .map_err(|source| UpError::BootstrapBind { addr: settings.bootstrap_listen, source })?;
            progress(&format!(
                "serving ripple-local bootstrap+relay at {} (other nodes: --bootstrap {})",
                server.url, server.url
            ));
            Some(server)
        }
        _ => None,
    };
    let urls = urls
        .or_else(|| local_bootstrap.as_ref().map(|b| NetworkUrls { bootstrap: b.url.clone(), relay: b.url.clone() }));

    let (embedded, admin_port, admin_url, passphrase_note) = match &settings.conductor {
        ConductorChoice::Embedded { passphrase_file, passphrase_env } => {
            let (passphrase, source) =
                conductor::load_passphrase(passphrase_file.as_deref(), passphrase_env.clone(), &settings.data_dir)?;
            let urls =
                urls.clone().ok_or_else(|| UpError::Setting("no bootstrap URL for the embedded conductor".into()))?;
            progress("starting the embedded conductor");
            let embedded = EmbeddedConductor::start(
                &settings.data_dir,
                &settings.manifests.conductor_template_path(),
                &urls,
                passphrase,
            )
            .await?;
            let port = embedded.admin_port;
            (Some(embedded), port, format!("ws://127.0.0.1:{port}"), passphrase_note(&source))
        }
        ConductorChoice::Attach { admin_url } => {
            let port =
                admin_url.port().ok_or_else(|| UpError::Setting(format!("--admin-url {admin_url} has no port")))?;
            (None, port, admin_url.to_string(), None)
        }
    };

    let info = NodeInfo {
        network: settings.network.name.clone(),
        network_seed: settings.network.spec.network_seed.clone(),
        embedded: embedded.is_some(),
        admin_url,
        bootstrap_url: urls.as_ref().map(|u| u.bootstrap.clone()),
        relay_url: urls.as_ref().map(|u| u.relay.clone()),
        serving_bootstrap: local_bootstrap.is_some(),
        started,
    };
    let startup = Startup { bundle, info, admin_port, api_listener, passphrase_note };
    let result = serve(&settings, startup, &mut signals, progress, ready).await;
    if let Some(conductor) = embedded {
        progress("stopping the conductor");
        if tokio::time::timeout(OFFLINE_TIMEOUT, conductor.shutdown()).await.is_err() {
            tracing::warn!("the conductor did not stop within {OFFLINE_TIMEOUT:?}");
        }
    }
    drop(local_bootstrap);
    result
}

/// What `run` prepared for `serve`.
struct Startup {
    bundle: crate::manifests::CheckedBundle,
    info: NodeInfo,
    admin_port: u16,
    api_listener: tokio::net::TcpListener,
    passphrase_note: Option<String>,
}

async fn serve(
    settings: &UpSettings,
    startup: Startup,
    signals: &mut Signals,
    progress: &dyn Fn(&str),
    ready: &dyn Fn(&Ready),
) -> Result<(), UpError> {
    let Startup { bundle, info, admin_port, api_listener, passphrase_note } = startup;
    let metrics = Arc::new(Metrics::default());
    let mesh = tokio::select! {
        mesh = Mesh::join(admin_port, &bundle, &settings.network, metrics.clone(), progress) => Arc::new(mesh?),
        _ = signals.recv() => return Err(UpError::Interrupted),
    };
    progress("publishing this node's advert and first heartbeat");
    let node = tokio::select! {
        node = NodeAgent::start(mesh.clone(), settings.node.clone()) => node?,
        _ = signals.recv() => return Err(UpError::Interrupted),
    };

    let state = Arc::new(ApiState { mesh: mesh.clone(), node: node.clone(), metrics, info });
    let api_addr =
        api_listener.local_addr().map_err(|source| UpError::ApiBind { addr: settings.api_listen, source })?;
    let api_url = format!("http://{api_addr}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut api_stop = stop_rx.clone();
    let state_for_api = state.clone();
    let api = tokio::spawn(async move {
        axum::serve(api_listener, api::router(state_for_api))
            .with_graceful_shutdown(async move {
                let _ = api_stop.changed().await;
            })
            .await
    });
    let agent = tokio::spawn(node.clone().run(stop_rx));

    let run_file = RunFile::write(&settings.data_dir, &api_url, &settings.network.name)?;
    let status = api::status_report(&state).await.map_err(|e| UpError::Setting(format!("status: {}", e.message())))?;
    ready(&Ready {
        event: "ready".into(),
        api_url: api_url.clone(),
        data_dir: settings.data_dir.clone(),
        passphrase_note,
        installed_now: mesh.installed_now,
        status,
    });

    signals.recv().await;
    progress("shutting down: marking this node offline");
    let _ = stop_tx.send(true);
    let _ = agent.await;
    match tokio::time::timeout(OFFLINE_TIMEOUT, node.go_offline()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("could not publish availability offline: {e}"),
        Err(_) => tracing::warn!("publishing availability offline timed out"),
    }
    let _ = api.await;
    run_file.remove();
    Ok(())
}

/// Bootstrap and relay for the embedded conductor: `None` means "serve ripple-local's ourselves".
async fn network_urls(settings: &UpSettings) -> Result<Option<NetworkUrls>, UpError> {
    if matches!(settings.conductor, ConductorChoice::Attach { .. }) {
        return Ok(None);
    }
    let spec = &settings.network.spec;
    let bootstrap = match (&settings.bootstrap, &spec.bootstrap_url) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => crate::config::parse_url("networks.json bootstrap_url", url, &["http", "https"])
            .map_err(|e| UpError::Setting(e.to_string()))?,
        (None, None) => return Ok(None),
    };
    let relay = match (&settings.bootstrap, &spec.relay_url) {
        (None, Some(url)) => crate::config::parse_url("networks.json relay_url", url, &["http", "https"])
            .map_err(|e| UpError::Setting(e.to_string()))?,
        _ => bootstrap.clone(),
    };
    if let Err(reason) = bootstrap::probe(&bootstrap, BOOTSTRAP_PROBE_TIMEOUT).await {
        let hint = if spec.bootstrap_url.is_none() {
            "Start the first ripple-local node without --bootstrap; it prints the URL the others use.".to_string()
        } else {
            format!(
                "Network `{}` needs its bootstrap server; check the connection or pass --bootstrap URL.",
                settings.network.name
            )
        };
        return Err(UpError::BootstrapUnreachable { url: bootstrap.to_string(), reason, hint });
    }
    Ok(Some(NetworkUrls { bootstrap, relay }))
}

fn passphrase_note(source: &PassphraseSource) -> Option<String> {
    match source {
        PassphraseSource::Generated(path) => Some(format!(
            "created a random keystore passphrase in {} (mode 0600); back it up: the agent key cannot be unlocked without it",
            path.display()
        )),
        PassphraseSource::DataDir(path) => Some(format!("keystore passphrase from {}", path.display())),
        PassphraseSource::File(path) => Some(format!("keystore passphrase from {}", path.display())),
        PassphraseSource::Environment => Some(format!("keystore passphrase from ${}", conductor::PASSPHRASE_ENV)),
    }
}

/// SIGINT and SIGTERM, registered when `ripple up` starts so that a signal during a slow start
/// (the first install compiles wasm) also stops the node cleanly.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Self, UpError> {
        use tokio::signal::unix::{signal, SignalKind};
        let fail = |e: std::io::Error| UpError::Setting(format!("cannot listen for signals: {e}"));
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(fail)?,
            terminate: signal(SignalKind::terminate()).map_err(fail)?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
