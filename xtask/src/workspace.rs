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
            None => default_target_dir()?,
        };
        Ok(Self { root, target_dir })
    }

    /// Builds the `ripple` binary together with the test binary, release profile, so both share one
    /// feature set and Holochain is compiled once for the tests, `cargo xtask up` and the
    /// benchmarks (a dev-built conductor spends over a minute compiling the wasm on first start).
    /// Returns the binary's path.
    pub fn build_sidecar(&self) -> anyhow::Result<PathBuf> {
        step("building the ripple sidecar and the test binary (release profile)");
        self.cargo(&["build", "--release", "-p", "ripple", "-p", "ripple_tests", "--bins", "--tests"])?;
        Ok(self.target_dir.join("release").join("ripple"))
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
        let status = cargo_command(&self.root, &self.target_dir).args(args).status().context("running cargo")?;
        if !status.success() {
            bail!("`cargo {}` failed ({status})", args.join(" "));
        }
        Ok(())
    }
}

/// Replaces this process with `cmd`, so Ctrl-C and exit codes reach it directly.
pub fn exec(mut cmd: Command) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let error = cmd.exec();
    Err(error).with_context(|| format!("starting {:?}", cmd.get_program()))
}

/// Where builds go when `CARGO_TARGET_DIR` is unset: one cache per user, outside every checkout,
/// so a second clone (or a CI run on a clean clone) reuses the ~30-minute Holochain build instead
/// of starting one silently in `./target`.
fn default_target_dir() -> anyhow::Result<PathBuf> {
    let cache = match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(dir), _) if !dir.is_empty() => PathBuf::from(dir),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".cache"),
        _ => bail!("neither CARGO_TARGET_DIR nor HOME is set: set CARGO_TARGET_DIR to a build directory"),
    };
    Ok(cache.join("ripple").join("target"))
}

/// A cargo command in `dir` building into `target_dir` (see `default_target_dir`), without the
/// variables `cargo run` set for xtask itself. Left in, they reach build scripts'
/// `rerun-if-env-changed` checks (ring watches `CARGO_MANIFEST_DIR`), so a build started by xtask
/// and one started from a shell would keep invalidating each other.
pub fn cargo_command(dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", target_dir);
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
