//! `ripple up`: check everything, start or attach to the conductor, join the network, run the
//! node agent, the HTTP API and (with `--mcp-http`) the MCP tools until SIGINT/SIGTERM, then say
//! `offline` and stop cleanly. The steps themselves live in `runtime`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::{self, StatusReport};
use crate::manifests::{Manifests, Network};
use crate::node::NodeSettings;
use crate::runtime::{NetworkChoice, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Manifest(#[from] crate::manifests::ManifestError),
    #[error(transparent)]
    Conductor(#[from] crate::conductor::ConductorError),
    #[error(transparent)]
    CompiledZomes(#[from] crate::compiled_zomes::CompiledZomesError),
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    RunFile(#[from] crate::runfile::RunFileError),
    #[error(transparent)]
    Network(#[from] crate::networks::NetworkError),
    #[error("bootstrap server {url} is unreachable ({reason}). {hint}")]
    BootstrapUnreachable { url: String, reason: String, hint: String },
    #[error("{0}")]
    Setting(String),
    #[error("interrupted while starting; the conductor was stopped cleanly and the next start carries on")]
    Interrupted,
    #[error("cannot serve the HTTP API on {addr}: {source}")]
    ApiBind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot serve the peer routes on {addr}: {source}")]
    PeerBind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot serve MCP over HTTP on {addr}: {source}")]
    McpBind { addr: SocketAddr, source: std::io::Error },
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
    /// The policy admin of the ripple-local network this node joins (the node that created it).
    pub policy_admin: Option<holochain_client::AgentPubKey>,
    pub bootstrap_listen: SocketAddr,
    pub happ: PathBuf,
    /// This machine's compiled zomes, shared by its nodes.
    pub zome_cache: crate::compiled_zomes::ZomeCache,
    pub api_listen: SocketAddr,
    pub node: NodeSettings,
    /// Answer allocation requests addressed to this node (the provider loop).
    pub provide: bool,
    /// The created network this data dir belongs to, or the network file it is joining.
    pub record: Option<crate::networks::NetworkRecord>,
    /// `--invite FILE`: the invitation that admits this node to `record`'s network.
    pub invite: Option<PathBuf>,
    /// `--peer-listen`: where other machines' nodes reach this one's peer routes.
    pub peer: Option<PeerListen>,
}

/// The peer listener: the address it binds and the URL other nodes use for it.
#[derive(Debug, Clone)]
pub struct PeerListen {
    pub listen: SocketAddr,
    pub url: url::Url,
}

/// The line `ripple up --json` prints when the node is ready (and the human summary's source).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub event: String,
    pub api_url: String,
    /// Streamable HTTP MCP endpoint, with `--mcp-http`.
    pub mcp_url: Option<String>,
    pub data_dir: PathBuf,
    /// Where the keystore passphrase came from (never the passphrase itself).
    pub passphrase_note: Option<String>,
    pub installed_now: bool,
    pub status: StatusReport,
}

/// Runs the node until a signal arrives. `progress` gets one line per slow step; `ready` is
/// called once when the node is up. With `mcp_http`, the MCP tools are served there too.
pub async fn run(
    settings: UpSettings,
    mcp: Option<McpHttp>,
    progress: &(dyn Fn(&str) + Sync),
    ready: &dyn Fn(&Ready),
) -> Result<(), UpError> {
    let mut signals = Signals::register()?;
    let runtime = Runtime::new(settings);
    // Bound before anything starts, so a busy address is bad input, not a half-started node.
    let mcp_listener = match &mcp {
        Some(http) => Some(
            tokio::net::TcpListener::bind(http.listen)
                .await
                .map_err(|source| UpError::McpBind { addr: http.listen, source })?,
        ),
        None => None,
    };
    let result = serve(&runtime, mcp.zip(mcp_listener), &mut signals, progress, ready).await;
    runtime.shutdown(progress).await;
    result
}

/// Where `ripple up --mcp-http` serves the MCP tools, and under which names.
#[derive(Debug, Clone)]
pub struct McpHttp {
    pub listen: SocketAddr,
    pub names: crate::mcp::ToolNames,
}

async fn serve(
    runtime: &Arc<Runtime>,
    mcp: Option<(McpHttp, tokio::net::TcpListener)>,
    signals: &mut Signals,
    progress: &(dyn Fn(&str) + Sync),
    ready: &dyn Fn(&Ready),
) -> Result<(), UpError> {
    let choice = NetworkChoice::default();
    // Not interruptible: a conductor dropped half-started would not shut down cleanly. A signal
    // that arrives meanwhile is queued and stops the node at the next step.
    runtime.start_conductor(&choice, progress).await?;
    let joined = tokio::select! {
        joined = runtime.join(&choice, &|_| {}, progress) => joined?,
        _ = signals.recv() => return Err(UpError::Interrupted),
    };
    let (stop_mcp, mcp_url) = match mcp {
        Some((http, listener)) => {
            let (url, stop) = crate::mcp::serve_http(runtime.clone(), http.names, listener)
                .map_err(|source| UpError::McpBind { addr: http.listen, source })?;
            (Some(stop), Some(url))
        }
        None => (None, None),
    };
    let status =
        api::status_report(&joined.state).await.map_err(|e| UpError::Setting(format!("status: {}", e.message())))?;
    ready(&Ready {
        event: "ready".into(),
        api_url: joined.api_url.clone(),
        mcp_url,
        data_dir: runtime.base().data_dir.clone(),
        passphrase_note: runtime.passphrase_note().await,
        installed_now: joined.state.mesh.installed_now,
        status,
    });
    signals.recv().await;
    if let Some(stop) = stop_mcp {
        stop.cancel();
    }
    Ok(())
}

/// SIGINT and SIGTERM, registered when `ripple up` starts so that a signal during a slow start
/// (the first install compiles wasm) also stops the node cleanly.
pub(crate) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn register() -> Result<Self, UpError> {
        use tokio::signal::unix::{signal, SignalKind};
        let fail = |e: std::io::Error| UpError::Setting(format!("cannot listen for signals: {e}"));
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(fail)?,
            terminate: signal(SignalKind::terminate()).map_err(fail)?,
        })
    }

    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
