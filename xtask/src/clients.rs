//! The real clients the end-to-end tests drive, pinned in `tests/clients/`: the Python MCP SDK
//! (`requirements.txt`, into `tests/clients/.venv`) and the MCP Inspector CLI (`package-lock.json`,
//! into `tests/clients/node_modules`). Reinstalled only when a pin file changes.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::workspace::{step, Workspace};

pub fn install(ws: &Workspace) -> anyhow::Result<()> {
    let dir = ws.root.join("tests/clients");
    let venv = dir.join(".venv");
    if stale(&dir, "requirements.txt", &venv)? {
        step("test clients: Python MCP SDK (tests/clients/requirements.txt)");
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv), "python3 -m venv", PYTHON_HINT)?;
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "--no-input", "-r"])
                .arg(dir.join("requirements.txt")),
            "pip install",
            "check that PyPI is reachable",
        )?;
        stamp(&dir, "requirements.txt", &venv)?;
    }
    let modules = dir.join("node_modules");
    if stale(&dir, "package-lock.json", &modules)? {
        step("test clients: MCP Inspector CLI and js-ipfs on Node 22 (tests/clients/package-lock.json)");
        run(
            // `install --no-save` rather than `ci`: js-ipfs has an optional dependency on a GitHub
            // tarball that npm skips when it cannot fetch it, so the lock never lists it and `npm
            // ci` refuses the lock as out of sync. The lock still pins every version installed.
            Command::new("npm")
                .args(["install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir),
            "npm install",
            NODE_HINT,
        )?;
        stamp(&dir, "package-lock.json", &modules)?;
    }
    Ok(())
}

const PYTHON_HINT: &str = "install Python 3 with venv (Debian: apt-get install python3-venv)";
const NODE_HINT: &str = "install Node.js 20+ and npm (Debian: apt-get install nodejs npm)";

/// The stamp in `installed` records the pin file it was installed from.
fn stale(dir: &Path, pins: &str, installed: &Path) -> anyhow::Result<bool> {
    let wanted = std::fs::read(dir.join(pins)).with_context(|| format!("tests/clients/{pins}"))?;
    Ok(std::fs::read(installed.join(".ripple-pins")).ok().as_deref() != Some(wanted.as_slice()))
}

fn stamp(dir: &Path, pins: &str, installed: &Path) -> anyhow::Result<()> {
    std::fs::copy(dir.join(pins), installed.join(".ripple-pins"))?;
    Ok(())
}

fn run(cmd: &mut Command, what: &str, hint: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}: {hint}"))?;
    if !status.success() {
        bail!("{what} failed ({status}): {hint}");
    }
    Ok(())
}
