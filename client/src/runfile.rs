//! `<data>/ripple.run.json`: written by a running `ripple up`, read by `ripple status`, `peers`
//! and `advert` to find its HTTP API. One node per data dir: a live run file refuses a second.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const RUN_FILE: &str = "ripple.run.json";

#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("a node is already running on data dir {data_dir} (pid {pid}, API {api_url})")]
    AlreadyRunning { data_dir: PathBuf, pid: u32, api_url: String },
    #[error("no node is running on data dir {0}: start one with `ripple up`")]
    NotRunning(PathBuf),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub pid: u32,
    pub api_url: String,
    pub network: String,
}

/// The run file of this process; `remove` on a clean shutdown.
pub struct RunFile {
    path: PathBuf,
}

impl RunFile {
    pub fn write(data_dir: &Path, api_url: &str, network: &str) -> Result<Self, RunFileError> {
        let path = data_dir.join(RUN_FILE);
        let info = RunInfo { pid: std::process::id(), api_url: api_url.into(), network: network.into() };
        let tmp = path.with_extension("json.tmp");
        let io = |e: std::io::Error| RunFileError::Io { path: path.clone(), reason: e.to_string() };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        std::fs::write(&tmp, serde_json::to_vec_pretty(&info).unwrap_or_default()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(Self { path })
    }

    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// The node running on `data_dir`; a run file left by a process that died is ignored.
    pub fn read(data_dir: &Path) -> Result<RunInfo, RunFileError> {
        let path = data_dir.join(RUN_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RunFileError::NotRunning(data_dir.into()))
            }
            Err(e) => return Err(RunFileError::Io { path, reason: e.to_string() }),
        };
        let info: RunInfo =
            serde_json::from_str(&text).map_err(|e| RunFileError::Io { path: path.clone(), reason: e.to_string() })?;
        if !process_alive(info.pid) {
            return Err(RunFileError::NotRunning(data_dir.into()));
        }
        Ok(info)
    }

    pub fn ensure_not_running(data_dir: &Path) -> Result<(), RunFileError> {
        match Self::read(data_dir) {
            Ok(info) => {
                Err(RunFileError::AlreadyRunning { data_dir: data_dir.into(), pid: info.pid, api_url: info.api_url })
            }
            Err(RunFileError::NotRunning(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    pid != std::process::id() as libc::pid_t && unsafe { libc::kill(pid, 0) } == 0
}
