//! `ripple up`: check everything, start or attach to the conductor, join the network, run the
//! node agent, the HTTP API and (with `--mcp-http`) the MCP tools until SIGINT/SIGTERM, then say
//! `offline` and stop cleanly. The steps themselves live in `runtime`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::runtime::services::StatusReport;
use crate::runtime::settings::{UpError, UpSettings};
use crate::runtime::signals::Signals;
use crate::runtime::{NetworkChoice, Runtime};

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
    let runtime = Runtime::new(settings, crate::api::ROUTERS);
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
    let status = joined.services.status().await?;
    ready(&Ready {
        event: "ready".into(),
        api_url: joined.api_url.clone(),
        mcp_url,
        data_dir: runtime.base().data_dir.clone(),
        passphrase_note: runtime.passphrase_note().await,
        installed_now: joined.services.mesh.installed_now,
        status,
    });
    signals.recv().await;
    if let Some(stop) = stop_mcp {
        stop.cancel();
    }
    Ok(())
}
