//! Zomes → wasm → `.dna` → `.happ`, reproducibly.
//!
//! The wasm embeds source paths (Cargo's registry, the toolchain's std sources, this checkout),
//! and DNA hashes are pinned, so every absolute path is remapped to a machine-neutral one. The
//! flags go in `CARGO_ENCODED_RUSTFLAGS`, which replaces `.cargo/config.toml`'s target rustflags,
//! so the getrandom cfg from there is repeated here.
//!
//! Each integrity zome is also built in a cargo invocation of its own: built beside coordinators,
//! cargo's feature unification would give `hdi` the features `hdk` turns on (e.g. `trace`), and
//! the integrity wasm, hence the DNA hash, would depend on what else happened to be built.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use holochain_types::prelude::{AppManifest, ValidatedDnaManifest};
use mr_bundle::FileSystemBundler;

use crate::stamp::{Inputs, Stamp};
use crate::workspace::{cargo_command, step, DnaSource, Workspace};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WASM_PROFILE: &str = "wasm";

pub async fn build(ws: &Workspace) -> anyhow::Result<()> {
    let sources = ws.dna_sources()?;
    step("wasm32 target");
    ensure_wasm_target()?;

    check_zome_crates_exist(ws, &sources)?;
    let integrity: BTreeSet<&str> = sources.iter().flat_map(|s| &s.integrity).map(String::as_str).collect();
    let coordinators: BTreeSet<&str> = sources.iter().flat_map(|s| &s.coordinators).map(String::as_str).collect();
    let wasm_dir = ws.workdir().join("wasm");
    std::fs::create_dir_all(&wasm_dir)?;
    let copy_out = |zome: &str| -> anyhow::Result<()> {
        let built = wasm_path(&ws.target_dir, zome);
        std::fs::copy(&built, wasm_dir.join(format!("{zome}.wasm")))
            .with_context(|| format!("zome `{zome}` built but {} is missing", built.display()))?;
        Ok(())
    };
    step(&format!("building integrity zomes to wasm, each on its own: {}", list(&integrity)));
    for zome in &integrity {
        build_wasm(&ws.root, &ws.target_dir, &BTreeSet::from([*zome]))?;
        copy_out(zome)?; // now, before a coordinator build can rebuild it as a dependency
    }
    step(&format!("building coordinator zomes to wasm: {}", list(&coordinators)));
    build_wasm(&ws.root, &ws.target_dir, &coordinators)?;
    for zome in &coordinators {
        copy_out(zome)?;
    }

    step("packing DNA bundles");
    for source in &sources {
        let out = dna_bundle_path(ws, source);
        FileSystemBundler::bundle_to::<ValidatedDnaManifest>(&source.manifest, &out)
            .await
            .with_context(|| format!("packing {} failed", ws.rel(&source.manifest)))?;
        eprintln!("    {} -> {}", ws.rel(&source.manifest), ws.rel(&out));
    }
    step("packing the hApp");
    let happ = ws.workdir().join("ripple.happ");
    FileSystemBundler::bundle_to::<AppManifest>(ws.happ_manifest(), &happ)
        .await
        .with_context(|| format!("packing {} failed", ws.rel(&ws.happ_manifest())))?;
    eprintln!("    {} -> {}", ws.rel(&ws.happ_manifest()), ws.rel(&happ));
    step("packing the web hApp (the hApp with client/ui/dist)");
    crate::ui::pack_webhapp(ws).await
}

fn list(zomes: &BTreeSet<&str>) -> String {
    zomes.iter().copied().collect::<Vec<_>>().join(", ")
}

pub fn dna_bundle_path(ws: &Workspace, source: &DnaSource) -> PathBuf {
    let dir = if source.test_only { ws.workdir().join("test") } else { ws.workdir() };
    dir.join(format!("{}.dna", source.name))
}

fn wasm_path(target_dir: &Path, zome: &str) -> PathBuf {
    target_dir.join(WASM_TARGET).join(WASM_PROFILE).join(format!("{zome}.wasm"))
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) => {
            eprintln!("    {WASM_TARGET} is installed");
            Ok(())
        }
        Ok(_) => {
            eprintln!("    adding {WASM_TARGET} with rustup");
            let status = Command::new("rustup").args(["target", "add", WASM_TARGET]).status()?;
            if !status.success() {
                bail!("`rustup target add {WASM_TARGET}` failed; install the target and retry");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("    rustup not found ({e}); assuming the toolchain already has {WASM_TARGET}");
            Ok(())
        }
    }
}

/// One cargo invocation for all zomes; on failure, names the zome crates that did not compile.
fn build_wasm(src_root: &Path, target_dir: &Path, zomes: &BTreeSet<&str>) -> anyhow::Result<()> {
    let mut args = vec![
        "build".to_string(),
        "--locked".into(),
        "--profile".into(),
        WASM_PROFILE.into(),
        "--target".into(),
        WASM_TARGET.into(),
    ];
    for zome in zomes {
        args.extend(["-p".into(), zome.to_string()]);
    }
    let mut child = cargo_command(src_root, target_dir)
        .args(&args)
        .env("CARGO_ENCODED_RUSTFLAGS", reproducible_rustflags(src_root, target_dir)?.join("\u{1f}"))
        .env_remove("RUSTFLAGS")
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo")?;
    // Echo cargo's output as it comes, keeping it to name the failed crates afterwards.
    let mut captured = String::new();
    if let Some(stderr) = child.stderr.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line?;
            eprintln!("{line}");
            captured.push_str(&line);
            captured.push('\n');
        }
    }
    if child.wait()?.success() {
        return Ok(());
    }
    let failed = failed_crates(&captured);
    if failed.is_empty() {
        bail!("building the zomes failed; see cargo's output above");
    }
    bail!("zome crate(s) failed to compile for {WASM_TARGET}: {}", failed.join(", "))
}

/// The crates cargo reports as failed, from its `error: could not compile `NAME` …` lines.
fn failed_crates(cargo_stderr: &str) -> Vec<&str> {
    cargo_stderr.lines().filter_map(|l| l.strip_prefix("error: could not compile `")?.split('`').next()).collect()
}

/// Every zome a manifest names must be a crate of this workspace (crate name = zome name).
fn check_zome_crates_exist(ws: &Workspace, sources: &[DnaSource]) -> anyhow::Result<()> {
    let out = cargo_command(&ws.root, &ws.target_dir)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("`cargo metadata` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let crates: BTreeSet<&str> =
        meta["packages"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    for source in sources {
        for zome in source.integrity.iter().chain(&source.coordinators) {
            if !crates.contains(zome.as_str()) {
                bail!(
                    "{} names zome `{zome}`, but no workspace crate is called `{zome}` (crate name = zome name = wasm name)",
                    ws.rel(&source.manifest)
                );
            }
        }
    }
    Ok(())
}

/// The rustflags for a wasm build whose bytes do not depend on where things live on this machine.
fn reproducible_rustflags(src_root: &Path, target_dir: &Path) -> anyhow::Result<Vec<String>> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let sysroot =
        Command::new("rustc").args(["--print", "sysroot"]).output().context("running rustc --print sysroot")?;
    let sysroot = String::from_utf8(sysroot.stdout)?.trim().to_string();
    let mut flags = vec!["--cfg".to_string(), "getrandom_backend=\"custom\"".to_string()];
    // Longest prefixes first: rustc applies the last matching remap, so list the general ones first.
    for (from, to) in [
        (cargo_home.display().to_string(), "/cargo"),
        (sysroot, "/rustc-sysroot"),
        (src_root.display().to_string(), "/ripple"),
        (target_dir.display().to_string(), "/target"),
    ] {
        flags.push(format!("--remap-path-prefix={from}={to}"));
    }
    Ok(flags)
}

/// Builds the integrity zomes from a copy of the tracked source at another path, into another
/// target dir, and compares the wasm with `workdir/wasm/` byte for byte.
/// Skipped when nothing it reads changed since it last passed (see `repro_inputs`).
pub fn check_reproducible(ws: &Workspace) -> anyhow::Result<()> {
    step("reproducible wasm: rebuilding integrity zomes from a copy of the source elsewhere");
    let integrity: BTreeSet<String> = ws.dna_sources()?.into_iter().flat_map(|s| s.integrity).collect();
    let inputs = repro_inputs(ws, &integrity)?;
    let stamp = Stamp::at(ws.target_dir.join("ripple-stamps/repro"));
    if stamp.matches(&inputs) {
        eprintln!("    skipped: the integrity zomes' sources, wasm, manifests and toolchain are what passed last time");
        return Ok(());
    }
    let scratch = std::env::temp_dir().join(format!("ripple-repro-{}", std::process::id()));
    let copy = scratch.join("elsewhere/ripple");
    copy_tracked_files(&ws.root, &copy)?;
    let target = scratch.join("other-target");
    let result = integrity.iter().try_for_each(|zome| build_wasm(&copy, &target, &BTreeSet::from([zome.as_str()]))).and_then(|()| {
        for zome in &integrity {
            let ours = std::fs::read(ws.workdir().join("wasm").join(format!("{zome}.wasm")))
                .with_context(|| format!("workdir/wasm/{zome}.wasm missing: run `cargo xtask build` first"))?;
            let theirs = std::fs::read(wasm_path(&target, zome))?;
            if ours != theirs {
                bail!(
                    "integrity zome `{zome}` is not reproducible: the build at {} differs from workdir/wasm/{zome}.wasm \
                     ({} vs {} bytes); some absolute path or environment value leaks into the wasm",
                    copy.display(),
                    theirs.len(),
                    ours.len()
                );
            }
            eprintln!("    {zome}: {} bytes, identical", ours.len());
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    stamp.record(&inputs)
}

/// What the reproducibility check depends on: the toolchain, the workspace's manifests and lock,
/// xtask's build flags, the zome crates' manifests, every source file the integrity zomes' wasm builds read (from cargo's
/// dep-info: this checkout's files by content, the registry's and toolchain's by path, which names
/// their version) and the wasm in `workdir/wasm/` it compares against.
fn repro_inputs(ws: &Workspace, integrity: &BTreeSet<String>) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    inputs.command_output("rustc", &["-vV"]);
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml", "xtask/src/build.rs"] {
        inputs.file(file, &ws.root.join(file));
    }
    for zome in integrity {
        let dep_info = wasm_path(&ws.target_dir, zome).with_extension("d");
        for source in crate::stamp::dep_info_sources(&dep_info)? {
            match source.strip_prefix(&ws.root) {
                Ok(rel) => inputs.file(&rel.display().to_string(), &source),
                Err(_) => inputs.part("outside the checkout", source.display().to_string().as_bytes()),
            };
        }
        inputs.file(zome, &ws.workdir().join("wasm").join(format!("{zome}.wasm")));
    }
    // The zome crates' manifests (features, dependencies), which dep-info does not list.
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(ws.root.join("zomes"))?
        .filter_map(Result::ok)
        .flat_map(|dna| std::fs::read_dir(dna.path()).into_iter().flatten().filter_map(Result::ok))
        .map(|krate| krate.path().join("Cargo.toml"))
        .filter(|m| m.is_file())
        .collect();
    manifests.sort();
    for manifest in manifests {
        inputs.file(&ws.rel(&manifest), &manifest);
    }
    Ok(inputs)
}

fn copy_tracked_files(from: &Path, to: &Path) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(from)
        .output();
    let files: Vec<String> = match out {
        Ok(out) if out.status.success() => {
            String::from_utf8(out.stdout)?.split('\0').filter(|f| !f.is_empty()).map(String::from).collect()
        }
        _ => bail!("`git ls-files` failed in {}; the reproducibility check needs a git checkout", from.display()),
    };
    for file in files {
        let src = from.join(&file);
        if !src.is_file() {
            continue; // deleted in the work tree
        }
        let dst = to.join(&file);
        std::fs::create_dir_all(dst.parent().context("file without parent")?)?;
        std::fs::copy(&src, &dst).with_context(|| format!("copying {file}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_crates_that_failed() {
        let stderr =
            "error[E0425]: cannot find value `x`\nerror: could not compile `discovery` (lib) due to 1 previous error\n\
                      error: could not compile `heartbeat` (lib) due to 2 previous errors\n";
        assert_eq!(failed_crates(stderr), ["discovery", "heartbeat"]);
        assert!(failed_crates("warning: unused\n").is_empty());
    }
}
