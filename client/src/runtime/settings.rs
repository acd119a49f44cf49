//! What starting a node needs, resolved by the CLI from flags, environment and `ripple.toml`,
//! and how starting one fails.
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::manifests::{Manifests, Network};
use crate::node::NodeSettings;

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
    #[error("cannot start ripple-local's bootstrap server on {addr}: {source}{note}")]
    BootstrapBind { addr: SocketAddr, source: std::io::Error, note: String },
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
    /// Where ripple-local's first node serves bootstrap+relay [default: what this data dir served
    /// before (`JoinedRecord`), else `DEFAULT_BOOTSTRAP_LISTEN`].
    pub bootstrap_listen: Option<SocketAddr>,
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
