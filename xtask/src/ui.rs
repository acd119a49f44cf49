//! The web dashboard (`client/ui`): built with its pinned npm packages (`package-lock.json`) into
//! `client/ui/dist`, which the `ripple` binary embeds. The build is committed so that building the
//! sidecar needs no Node; `check` rebuilds it elsewhere and fails if the committed copy differs.
//! The same files, zipped, are the UI of `workdir/ripple.webhapp`.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use holochain_types::web_app::WebAppManifest;
use mr_bundle::FileSystemBundler;

use crate::clients::{run, stale, stamp};
use crate::stamp::{Inputs, Stamp};
use crate::workspace::{step, Workspace};

const NODE_HINT: &str = "install Node.js 20.19+ and npm (Debian: apt-get install nodejs npm)";

fn ui_dir(ws: &Workspace) -> PathBuf {
    ws.root.join("client/ui")
}

fn install(dir: &Path) -> anyhow::Result<()> {
    let modules = dir.join("node_modules");
    if stale(dir, &["package-lock.json"], &modules)? {
        step("dashboard: npm packages (client/ui/package-lock.json)");
        // `install --no-save` rather than `ci`, as for the test clients: an optional dependency npm
        // cannot resolve on this platform is left out of the lock, which `ci` then refuses.
        run(
            Command::new("npm")
                .args(["install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(dir),
            "npm install",
            NODE_HINT,
        )?;
        stamp(dir, &["package-lock.json"], &modules)?;
    }
    Ok(())
}

fn vite_build(dir: &Path, out: &Path) -> anyhow::Result<()> {
    run(
        Command::new("npm")
            .args(["run", "--silent", "build", "--", "--logLevel", "warn", "--outDir"])
            .arg(out)
            .current_dir(dir),
        "the dashboard build (tsc and vite)",
        "see its errors above",
    )
}

/// `cargo xtask ui`: rebuild `client/ui/dist` (commit it with the sources).
pub fn build(ws: &Workspace) -> anyhow::Result<()> {
    let dir = ui_dir(ws);
    install(&dir)?;
    step("dashboard: building client/ui/dist");
    vite_build(&dir, &dir.join("dist"))
}

/// Fails, naming the files, when `client/ui/dist` is not what the sources build to. Skipped when
/// nothing under `client/ui` (but `node_modules`) nor the Node.js version changed since it passed.
pub fn check(ws: &Workspace) -> anyhow::Result<()> {
    let dir = ui_dir(ws);
    step("dashboard: checking that client/ui/dist is the build of client/ui/src");
    let mut inputs = Inputs::default();
    inputs.command_output("node", &["--version"]);
    for file in ui_files(&dir, &dir)? {
        inputs.file(&file.display().to_string(), &dir.join(&file));
    }
    let stamp = Stamp::at(ws.target_dir.join("ripple-stamps/ui-check"));
    if stamp.matches(&inputs) {
        eprintln!("    skipped: client/ui and Node.js are what passed last time");
        return Ok(());
    }
    install(&dir)?;
    let fresh = ws.target_dir.join("ui-check");
    vite_build(&dir, &fresh)?;
    let committed = files(&dir.join("dist"))?;
    let built = files(&fresh)?;
    let differing: Vec<&str> = committed
        .iter()
        .chain(&built)
        .map(|(name, _)| name.as_str())
        .filter(|name| committed.iter().find(|(n, _)| n == name) != built.iter().find(|(n, _)| n == name))
        .collect();
    if !differing.is_empty() {
        bail!("client/ui/dist is stale ({}): run `cargo xtask ui` and commit it", differing.join(", "));
    }
    stamp.record(&inputs)
}

/// Every file under `dir` but `node_modules`, relative to `root`, sorted.
fn ui_files(root: &Path, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "node_modules" {
                out.extend(ui_files(root, &path)?);
            }
        } else {
            out.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

/// `workdir/ui.zip` from `client/ui/dist` (stored, fixed timestamps: the same bytes every time),
/// then `workdir/ripple.webhapp` from `happ/web-happ.yaml`.
pub async fn pack_webhapp(ws: &Workspace) -> anyhow::Result<()> {
    let zip_path = ws.workdir().join("ui.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path)?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for (name, bytes) in files(&ui_dir(ws).join("dist"))? {
        zip.start_file(name, options)?;
        zip.write_all(&bytes)?;
    }
    zip.finish()?;
    let manifest = ws.root.join("happ/web-happ.yaml");
    let out = ws.workdir().join("ripple.webhapp");
    FileSystemBundler::bundle_to::<WebAppManifest>(&manifest, &out)
        .await
        .with_context(|| format!("packing {} failed", ws.rel(&manifest)))?;
    eprintln!("    {} -> {}", ws.rel(&manifest), ws.rel(&out));
    Ok(())
}

/// The files of a flat build directory, by name, sorted.
fn files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            out.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}
