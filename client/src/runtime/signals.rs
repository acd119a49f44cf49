//! SIGINT and SIGTERM for a node run in the foreground (`ripple up`, `ripple mcp`).
use super::settings::UpError;

/// SIGINT and SIGTERM, registered when `ripple up` starts so that a signal during a slow start
/// (the first install compiles wasm) also stops the node cleanly.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn register() -> Result<Self, UpError> {
        use tokio::signal::unix::{signal, SignalKind};
        let fail = |e: std::io::Error| UpError::Setting(format!("cannot listen for signals: {e}"));
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(fail)?,
            terminate: signal(SignalKind::terminate()).map_err(fail)?,
        })
    }

    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
