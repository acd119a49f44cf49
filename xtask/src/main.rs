//! `cargo xtask`: the project's build pipeline. Builds the zomes to wasm reproducibly, packs the
//! DNAs and the hApp without the `hc` binary, pins DNA hashes per network, and runs the tests and
//! benchmarks. It is a developer tool, not part of the product.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod build;
mod clients;
mod pin;
mod stamp;
mod timing;
mod ui;
mod workspace;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, pin, test and benchmark Ripple mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build every zome to wasm (adding the wasm32 target if missing) and pack
    /// workdir/<dna>.dna, workdir/test/<dna>.dna, workdir/ripple.happ and workdir/ripple.webhapp.
    Build,
    /// Rebuild the web dashboard (client/ui/dist, embedded in `ripple`) from client/ui/src with
    /// its pinned npm packages; commit the result with the sources.
    Ui,
    /// Compute each role's DNA hash for every network in manifests/holochain/networks.json and
    /// write manifests/holochain/dnas/index.json (run `build` first).
    Pin {
        /// Fail, naming what differs, if the committed pins do not match the built bundles.
        #[arg(long)]
        check: bool,
    },
    /// Build the integrity zomes a second time from a copy of the source at another path, into
    /// another target dir, and fail unless the wasm is byte-identical (so pinned hashes hold on
    /// every machine).
    Repro,
    /// Build what is missing and start a node on ripple-local with the embedded conductor
    /// (`ripple up --network local`); arguments after `--` go to `ripple up`.
    Up {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Install the pinned MCP clients the end-to-end tests drive (tests/clients/).
    Clients,
    /// Everything CI checks: build, pin --check, repro, unit tests, test clients, conductor and
    /// sidecar tests. Ends with each conductor/sidecar test's wall time, slowest first, also
    /// written to <target dir>/ripple-test-times.md.
    Test {
        /// Extra arguments for the conductor test binary (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a benchmark suite on conductors and record it in docs/benchmarks.md.
    Bench {
        #[arg(value_enum)]
        suite: bench::Suite,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let ws = workspace::Workspace::locate()?;
    let rt = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Build => rt.block_on(build::build(&ws)),
        Command::Pin { check } => rt.block_on(pin::pin(&ws, check)),
        Command::Repro => build::check_reproducible(&ws),
        Command::Ui => ui::build(&ws),
        Command::Up { args } => {
            rt.block_on(build::build(&ws))?;
            let ripple = ws.build_sidecar()?;
            workspace::step("ripple up --network local");
            let mut cmd = std::process::Command::new(ripple);
            cmd.args(["up", "--network", "local"]).args(&args).current_dir(&ws.root);
            workspace::exec(cmd)
        }
        Command::Clients => clients::install(&ws),
        Command::Test { args } => test(&ws, &rt, &args),
        Command::Bench { suite } => rt.block_on(bench::run(&ws, suite)),
    }
}

/// `cargo xtask test`: every step timed, the conductor and end-to-end tests one at a time.
fn test(ws: &workspace::Workspace, rt: &tokio::runtime::Runtime, args: &[String]) -> anyhow::Result<()> {
    let mut clock = timing::Clock::start(ws);
    clock.step("build: wasm, bundles", || rt.block_on(build::build(ws)))?;
    clock.step("pin --check", || rt.block_on(pin::pin(ws, true)))?;
    clock.step("repro", || build::check_reproducible(ws))?;
    clock.step("dashboard check", || ui::check(ws))?;
    clock.step("unit tests: zomes, types, xtask", || {
        workspace::step(
            "unit tests (zome rules, types, resource_mesh capacity ledger, provenance statements, policy bundles, shard maps, xtask)",
        );
        ws.cargo(&[
            "test",
            "-p",
            "agent_registry_integrity",
            "-p",
            "agent_registry_types",
            "-p",
            "resource_mesh_integrity",
            "-p",
            "artifact_index_integrity",
            "-p",
            "policy_store_integrity",
            "-p",
            "memory_shards_integrity",
            "-p",
            "xtask",
        ])
    })?;
    clock.step("test clients", || clients::install(ws))?;
    clock.step("build: ripple and the test binary (release)", || ws.build_sidecar())?;
    let filter: Vec<&str> = args.iter().map(String::as_str).collect();
    // One test at a time: each multi-conductor test saturates both cores of a CI machine, and run
    // side by side the adversary test's gossip starves ("Consistency not reached"). The same
    // packages and targets as the build, so cargo can reuse it: `-p ripple` alone compiled
    // Holochain a second time with other features, and a plain `cargo test` after the build was
    // seen rebuilding the zome types crates and `ripple`. `ripple` has no doc tests.
    let (tests, passed) = clock.step("sidecar unit tests, conductor and end-to-end tests", || {
        workspace::step("sidecar unit tests, conductor and end-to-end tests (one test at a time)");
        let mut cmd = vec![
            "test",
            "--release",
            "-p",
            "ripple",
            "-p",
            "ripple_tests",
            "--bins",
            "--tests",
            "--",
            "--test-threads=1",
        ];
        cmd.extend(&filter);
        timing::run_tests(ws, &cmd)
    })?;
    let record = clock.finish(ws, tests, passed, !args.is_empty());
    timing::report(ws, &record)?;
    if !passed {
        anyhow::bail!("conductor or end-to-end tests failed: see the failures above");
    }
    Ok(())
}
