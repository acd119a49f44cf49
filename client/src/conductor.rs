//! Where the conductor comes from: embedded in this process (the default; lair runs in-process too)
//! or an existing one reached through `--admin-url`. Either way the rest of the sidecar only sees an
//! admin websocket URL on loopback.
use std::io::Write;
use std::path::{Path, PathBuf};

use holochain::conductor::{Conductor, ConductorHandle};
use holochain_conductor_api::config::conductor::ConductorConfig;

use crate::compiled_zomes::{self, ZomeCache, ZomeWasm};

#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error("cannot read the conductor config template {path}: {source}")]
    Template { path: PathBuf, source: std::io::Error },
    #[error("the conductor config made from {path} is not valid: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("passphrase: {0}")]
    Passphrase(String),
    #[error("cannot create the data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("the embedded conductor did not start: {0}")]
    Start(String),
}

/// Where the keystore passphrase came from (told to the operator on start).
#[derive(Debug, Clone, PartialEq)]
pub enum PassphraseSource {
    File(PathBuf),
    Environment,
    /// Created on this start (first start of this data dir).
    Generated(PathBuf),
    /// Created on an earlier start.
    DataDir(PathBuf),
}

pub const PASSPHRASE_ENV: &str = "RIPPLE_PASSPHRASE";

/// The bootstrap and relay a conductor uses (kitsune2_bootstrap_srv serves both on one URL).
#[derive(Debug, Clone)]
pub struct NetworkUrls {
    pub bootstrap: url::Url,
    pub relay: url::Url,
}

/// A conductor running inside this process.
pub struct EmbeddedConductor {
    handle: ConductorHandle,
    pub admin_port: u16,
    /// Compiled zomes put into its wasm database from the machine's cache on this start.
    pub seeded_zomes: usize,
}

impl EmbeddedConductor {
    /// Starts a conductor with data under `data_dir/holochain`, from the `conductor.yaml` template,
    /// and seeds its wasm database with the cached compiled modules of `zomes` it lacks.
    pub async fn start(
        data_dir: &Path,
        template: &Path,
        urls: &NetworkUrls,
        passphrase: Vec<u8>,
        zomes: &[ZomeWasm],
        cache: &ZomeCache,
    ) -> Result<Self, ConductorError> {
        let config = conductor_config(data_dir, template, urls)?;
        let root = data_dir.join("holochain");
        std::fs::create_dir_all(&root).map_err(|source| ConductorError::DataDir { path: root.clone(), source })?;
        let passphrase = std::sync::Arc::new(std::sync::Mutex::new(sodoken::LockedArray::from(passphrase)));
        // Lair prints its banner to stdout, which belongs to our --json output.
        let stdout = StdoutToStderr::begin();
        let built =
            Conductor::builder().config(config).passphrase(Some(passphrase.clone())).no_print_setup().build().await;
        drop(stdout);
        let handle = built.map_err(|e| ConductorError::Start(start_error_hint(&e.to_string())))?;
        let admin_port = handle
            .get_arbitrary_admin_websocket_port()
            .ok_or_else(|| ConductorError::Start("no admin interface was opened".into()))?;
        // Before any zome call: the conductor loads a zome's module from its database on first use.
        // Without the seed it compiles the zome itself, so a failure here costs time, not the start.
        let seeded_zomes = compiled_zomes::seed_wasm_store(&root, passphrase, cache, zomes).await.unwrap_or_else(|e| {
            tracing::warn!("{e}; the conductor compiles the zomes itself");
            0
        });
        Ok(Self { handle, admin_port, seeded_zomes })
    }

    /// Stops the conductor's tasks and waits for them.
    pub async fn shutdown(self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::warn!("conductor shutdown: {e:?}");
        }
    }
}

/// Points fd 1 at stderr until dropped.
struct StdoutToStderr(Option<libc::c_int>);

impl StdoutToStderr {
    fn begin() -> Self {
        let _ = std::io::stdout().flush();
        // SAFETY: dup/dup2 on the process's own standard descriptors; failures leave stdout as it is.
        let saved = unsafe { libc::dup(1) };
        if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
            return Self(None);
        }
        Self(Some(saved))
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            let _ = std::io::stdout().flush();
            // SAFETY: restores the descriptor saved in `begin`.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}

fn start_error_hint(error: &str) -> String {
    if error.contains("passphrase") || error.contains("unlock") || error.contains("Decrypt") {
        format!("{error}\n(is this the passphrase the data dir was created with?)")
    } else {
        error.to_string()
    }
}

/// The conductor config: the template with this node's paths and URLs filled in.
pub fn conductor_config(
    data_dir: &Path,
    template: &Path,
    urls: &NetworkUrls,
) -> Result<ConductorConfig, ConductorError> {
    let text = std::fs::read_to_string(template)
        .map_err(|source| ConductorError::Template { path: template.into(), source })?;
    let filled = text
        .replace("${RIPPLE_DATA}", &data_dir.display().to_string())
        .replace("${RIPPLE_ADMIN_PORT}", "0")
        .replace("${HOLOCHAIN_BOOTSTRAP_URL}", urls.bootstrap.as_str())
        .replace("${HOLOCHAIN_RELAY_URL}", urls.relay.as_str());
    yaml_serde::from_str(&filled)
        .map_err(|e| ConductorError::BadConfig { path: template.into(), reason: e.to_string() })
}

/// The keystore passphrase: `--passphrase-file`, else `$RIPPLE_PASSPHRASE`, else `<data>/passphrase`,
/// which is created (random, mode 0600) on the first start of a data dir.
pub fn load_passphrase(
    file: Option<&Path>,
    env: Option<String>,
    data_dir: &Path,
) -> Result<(Vec<u8>, PassphraseSource), ConductorError> {
    let bad = |m: String| ConductorError::Passphrase(m);
    if let Some(file) = file {
        let text = std::fs::read(file).map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
        let pass = trim_newline(text);
        if pass.is_empty() {
            return Err(bad(format!("{} is empty", file.display())));
        }
        return Ok((pass, PassphraseSource::File(file.into())));
    }
    if let Some(pass) = env {
        if pass.is_empty() {
            return Err(bad(format!("${PASSPHRASE_ENV} is set but empty")));
        }
        return Ok((pass.into_bytes(), PassphraseSource::Environment));
    }
    let stored = data_dir.join("passphrase");
    match std::fs::read(&stored) {
        Ok(text) => return Ok((trim_newline(text), PassphraseSource::DataDir(stored))),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(bad(format!("cannot read {}: {e}", stored.display())))
        }
        Err(_) => {}
    }
    if data_dir.join("holochain/ks").exists() {
        return Err(bad(format!(
            "{} holds a keystore but no passphrase file; pass --passphrase-file or set ${PASSPHRASE_ENV}",
            data_dir.display()
        )));
    }
    Ok((generate_passphrase(&stored)?, PassphraseSource::Generated(stored)))
}

fn generate_passphrase(path: &Path) -> Result<Vec<u8>, ConductorError> {
    use base64::Engine;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ConductorError::Passphrase(format!("no randomness: {e}")))?;
    let pass = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw).into_bytes();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        file.write_all(&pass)?;
        file.sync_all()
    };
    write().map_err(|e| ConductorError::Passphrase(format!("cannot create {}: {e}", path.display())))?;
    Ok(pass)
}

fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}
