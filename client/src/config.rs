//! The node's settings: `ripple.toml` in the data dir (written by `ripple init`), overridden by
//! environment variables and flags. Everything is resolved and checked here, before anything is
//! written, so bad input fails early with the name of the offending setting.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use agent_registry_types::HardwareClass;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{0}")]
    Setting(String),
    #[error("{path} already exists (use --force to overwrite it)")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// `ripple.toml`. Every key is optional; absent keys take the defaults `ripple init` writes out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub network: Option<String>,
    pub admin_url: Option<String>,
    pub bootstrap: Option<String>,
    pub bootstrap_listen: Option<SocketAddr>,
    pub policy_admin: Option<String>,
    pub passphrase_file: Option<PathBuf>,
    pub happ: Option<PathBuf>,
    pub api_listen: Option<SocketAddr>,
    pub peer_listen: Option<SocketAddr>,
    pub peer_url: Option<String>,
    pub node: NodeConfig,
}

/// What this node tells the mesh about itself beyond what the hardware probe finds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub agent_name: Option<String>,
    pub hardware_class: Option<HardwareClass>,
    pub region: Option<String>,
    pub bandwidth_mbps: Option<u32>,
    pub heartbeat_secs: Option<u32>,
    pub advert_refresh_secs: Option<u32>,
    pub view_catch_up_secs: Option<u32>,
    pub view_signals: Option<bool>,
    pub localai_url: Option<String>,
    pub ipfs_api_url: Option<String>,
    pub max_batch_size: Option<u32>,
    pub tokens_per_second: Option<u32>,
    pub vector_shards: Option<u32>,
    pub redis_memory_gb: Option<u32>,
    pub s3_available_gb: Option<u64>,
    /// Lend this node's resources to the mesh (answer allocation requests).
    pub provide: Option<bool>,
}

pub const CONFIG_FILE: &str = "ripple.toml";
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7780";
pub const DEFAULT_BOOTSTRAP_LISTEN: &str = "127.0.0.1:0";

/// The data dir when neither `--data` nor `$RIPPLE_DATA` is given.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("ripple")
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty config unless it was named explicitly.
    pub fn load(path: &Path, must_exist: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.into(), source }),
        };
        toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: path.into(), reason: e.to_string() })
    }
}

/// The commented config `ripple init` writes: every key, with its default, commented out.
pub fn init_template(network: &str, agent_name: &str) -> String {
    format!(
        r#"# Ripple node configuration. Flags and RIPPLE_* environment variables override these keys.
# Uncomment a key to change it; the values shown are the defaults.

# Which network to join: local (offline, this machine serves bootstrap), testnet or mainnet
# (names from manifests/holochain/networks.json), or a network file from `ripple network create`
# (a path). A data dir that created or joined such a network remembers it in network.json.
network = "{network}"

# Attach to a conductor that is already running (e.g. `hc sandbox`) instead of embedding one.
# admin_url = "ws://127.0.0.1:4444"

# ripple-local: join another node's bootstrap+relay server instead of serving one.
# bootstrap = "http://127.0.0.1:30000"
# ...and the agent key of the node that created that network, its policy admin (printed with the URL).
# policy_admin = "uhCAk..."
# Where this node serves ripple-local's bootstrap+relay when it is the first node. Port 0 picks one.
# bootstrap_listen = "{DEFAULT_BOOTSTRAP_LISTEN}"

# File holding the keystore passphrase. Default: RIPPLE_PASSPHRASE, else <data>/passphrase,
# created with mode 0600 on first start.
# passphrase_file = "/path/to/passphrase"

# The hApp bundle to install (built by `cargo xtask build`).
# happ = "workdir/ripple.happ"

# Loopback HTTP API: /health /status /peers /metrics.
# api_listen = "{DEFAULT_API_LISTEN}"

# The peer routes other machines' nodes call (artifact bytes), signed by members of the network.
# Off by default: then only nodes on this machine fetch from this one.
# peer_listen = "10.0.0.2:7781"
# The URL other nodes use for it, when peer_listen is 0.0.0.0 (default: http://<peer_listen>).
# peer_url = "http://gpu-box-01.lan:7781"

[node]
agent_name = "{agent_name}"
# cloud_vm, edge_server, desktop, iot_arm or mobile. Default: guessed from the hardware.
# hardware_class = "desktop"
# Latency region, e.g. "us-west". Empty means unknown.
# region = ""
# bandwidth_mbps = 1000
# Seconds between heartbeats. Default: the network's heartbeat bucket less 10 minutes (at least
# half of it), so a live node stays in the online window and each beat kept forever is rare.
# heartbeat_secs = 3000
# Seconds between hardware probes; the advert is republished only when something changed.
# advert_refresh_secs = 60
# Seconds between the mesh view's reads of what changed on the mesh (other nodes' heartbeats
# arrive this way; their advert changes also by signal, at once).
# view_catch_up_secs = 5
# OpenAI-compatible inference server (LocalAI); its /v1/models go into the advert.
# localai_url = "http://127.0.0.1:8080"
# Kubo RPC API; the repo size goes into the advert.
# ipfs_api_url = "http://127.0.0.1:5001"
# max_batch_size = 1
# tokens_per_second = 0
# Vector-memory shard replicas this node can hold (memory_shards); 0 holds none.
# vector_shards = 0
# redis_memory_gb = 0
# s3_available_gb = 0
# Lend this node's advertised resources to the mesh: publish a resource offer and grant or reject
# the allocation requests addressed to it. false: request only.
# provide = true
"#
    )
}

/// Writes the template to `path` (refusing to overwrite unless `force`), creating its directory.
pub fn write_init(path: &Path, text: &str, force: bool) -> Result<(), ConfigError> {
    if path.exists() && !force {
        return Err(ConfigError::Exists { path: path.into() });
    }
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| ConfigError::Write { path: path.into(), source })
}

/// Checks a URL setting and names it when it is wrong.
pub fn parse_url(setting: &str, value: &str, schemes: &[&str]) -> Result<url::Url, ConfigError> {
    let url =
        url::Url::parse(value).map_err(|e| ConfigError::Setting(format!("{setting}: `{value}` is not a URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::Setting(format!("{setting}: `{value}` must be a {} URL", schemes.join(" or "))));
    }
    if url.host_str().is_none() {
        return Err(ConfigError::Setting(format!("{setting}: `{value}` has no host")));
    }
    Ok(url)
}

/// An agent key as Holochain prints it (`uhCAk…`, 53 characters).
pub fn parse_agent_key(setting: &str, value: &str) -> Result<holochain_client::AgentPubKey, ConfigError> {
    holochain_client::AgentPubKey::try_from(value.trim())
        .map_err(|e| ConfigError::Setting(format!("{setting}: `{value}` is not an agent key (uhCAk…): {e}")))
}

/// A node name as the advert accepts it (AR1): 1-64 characters of [A-Za-z0-9._-].
pub fn check_agent_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= agent_registry_types::AGENT_NAME_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Setting(format!("agent_name `{name}` must be 1-64 characters of [A-Za-z0-9._-]")))
    }
}

/// The host name, made into a valid node name.
pub fn default_agent_name() -> String {
    let host = sysinfo::System::host_name().unwrap_or_default();
    let name: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .take(agent_registry_types::AGENT_NAME_MAX)
        .collect();
    if name.is_empty() {
        "ripple-node".into()
    } else {
        name
    }
}
