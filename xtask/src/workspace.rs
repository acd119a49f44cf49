//! Where things are: the workspace root, the target dir, the DNA manifests and the zomes in them.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::Deserialize;

pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
}

/// A DNA manifest and the zome crates it names (crate name = zome name = wasm file name).
pub struct DnaSource {
    pub manifest: PathBuf,
    pub name: String,
    pub integrity: Vec<String>,
    pub coordinators: Vec<String>,
    /// Test-only DNAs (adversary zomes) are packed into workdir/test/.
    pub test_only: bool,
}

#[derive(Deserialize)]
struct ManifestZomes {
    name: String,
    integrity: Section,
    coordinator: Section,
}

#[derive(Deserialize)]
struct Section {
    zomes: Vec<ZomeRef>,
}

#[derive(Deserialize)]
struct ZomeRef {
    name: String,
}

pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

impl Workspace {
    pub fn locate() -> anyhow::Result<Self> {
        // `cargo run` sets CARGO_MANIFEST_DIR at run time. The compile-time value can name another
        // checkout that shared the target dir (cargo does not rebuild for a new path).
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let root = manifest_dir.parent().context("xtask has no parent dir")?.to_path_buf();
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => root.join("target"),
        };
        Ok(Self { root, target_dir })
    }

    /// Builds the `ripple` binary together with the test binary, so both share one feature set
    /// and Holochain is compiled once per profile. Returns the binary's path.
    pub fn build_sidecar(&self, release: bool) -> anyhow::Result<PathBuf> {
        step(&format!("building the ripple sidecar ({})", if release { "release" } else { "debug" }));
        let mut args = vec!["build", "-p", "ripple", "-p", "ripple_tests", "--bins", "--tests"];
        if release {
            args.push("--release");
        }
        self.cargo(&args)?;
        Ok(self.target_dir.join(if release { "release" } else { "debug" }).join("ripple"))
    }

    pub fn workdir(&self) -> PathBuf {
        self.root.join("workdir")
    }

    pub fn happ_manifest(&self) -> PathBuf {
        self.root.join("happ/happ.yaml")
    }

    pub fn pins(&self) -> PathBuf {
        self.root.join("manifests/holochain/dnas/index.json")
    }

    pub fn networks(&self) -> PathBuf {
        self.root.join("manifests/holochain/networks.json")
    }

    /// `dnas/*/dna.yaml`, then the test-only `tests/dnas/*/dna.yaml`, in name order.
    pub fn dna_sources(&self) -> anyhow::Result<Vec<DnaSource>> {
        let mut sources = vec![];
        for (dir, test_only) in [("dnas", false), ("tests/dnas", true)] {
            let Ok(entries) = std::fs::read_dir(self.root.join(dir)) else { continue };
            let mut manifests: Vec<PathBuf> =
                entries.filter_map(|e| Some(e.ok()?.path().join("dna.yaml"))).filter(|p| p.is_file()).collect();
            manifests.sort();
            for manifest in manifests {
                let text =
                    std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
                let parsed: ManifestZomes = yaml_serde::from_str(&text)
                    .with_context(|| format!("{} is not a DNA manifest", self.rel(&manifest)))?;
                sources.push(DnaSource {
                    name: parsed.name,
                    integrity: parsed.integrity.zomes.into_iter().map(|z| z.name).collect(),
                    coordinators: parsed.coordinator.zomes.into_iter().map(|z| z.name).collect(),
                    manifest,
                    test_only,
                });
            }
        }
        if sources.is_empty() {
            bail!("no DNA manifests found under {}/dnas", self.root.display());
        }
        Ok(sources)
    }

    /// Path relative to the workspace root, for messages.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// Runs cargo in the workspace, failing with the command line if it fails.
    pub fn cargo(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = cargo_command(&self.root).args(args).status().context("running cargo")?;
        if !status.success() {
            bail!("`cargo {}` failed ({status})", args.join(" "));
        }
        Ok(())
    }
}

/// A cargo command in `dir` without the variables `cargo run` set for xtask itself. Left in, they
/// reach build scripts' `rerun-if-env-changed` checks (ring watches `CARGO_MANIFEST_DIR`), so a
/// build started by xtask and one started from a shell would keep invalidating each other.
/// Replaces this process with `cmd`, so Ctrl-C and exit codes reach it directly.
pub fn exec(mut cmd: Command) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let error = cmd.exec();
    Err(error).with_context(|| format!("starting {:?}", cmd.get_program()))
}

pub fn cargo_command(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_by_cargo_run {
            cmd.env_remove(&*key);
        }
    }
    cmd
}
