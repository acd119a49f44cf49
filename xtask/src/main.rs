//! `cargo xtask`: the project's build pipeline. Builds the zomes to wasm reproducibly, packs the
//! DNAs and the hApp without the `hc` binary, pins DNA hashes per network, and runs the tests and
//! benchmarks. It is a developer tool, not part of the product.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod build;
mod clients;
mod lanes;
mod layers;
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
        /// Run the conductor and sidecar tests in this many lanes side by side (each lane one test
        /// at a time; tests are dealt by their last recorded time). 1 runs them all in turn.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
        lanes: u8,
        /// libtest arguments for the sidecar and conductor tests: name filters (substrings, as
        /// `cargo test` takes them) and flags such as `--nocapture`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a benchmark suite on conductors and record it in docs/benchmarks.md.
    Bench {
        #[arg(value_enum)]
        suite: bench::Suite,
    },
    /// Six `ripple up` nodes on this machine with heartbeats, advert changes, allocations and shard
    /// maps running; records resident memory growth and error counters in docs/benchmarks.md
    /// (`soak`) and fails if a goal is missed. Not part of `test`: it takes an hour by default.
    Soak {
        /// How long to run, after the six nodes are up (at least 4; the goals are judged over the
        /// last three quarters).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(4..))]
        minutes: u64,
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
        Command::Test { lanes, args } => test(&ws, &rt, lanes.into(), &args),
        Command::Bench { suite } => rt.block_on(bench::run(&ws, suite)),
        Command::Soak { minutes } => {
            std::env::set_var("RIPPLE_SOAK_MINUTES", minutes.to_string());
            rt.block_on(bench::run(&ws, bench::Suite::Soak))
        }
    }
}

/// `cargo xtask test`: every step timed, the conductor and end-to-end tests in lanes.
fn test(ws: &workspace::Workspace, rt: &tokio::runtime::Runtime, lanes: usize, args: &[String]) -> anyhow::Result<()> {
    let mut clock = timing::Clock::start(ws);
    clock.step("build: wasm, bundles", || rt.block_on(build::build(ws)))?;
    clock.step("pin --check", || rt.block_on(pin::pin(ws, true)))?;
    clock.step("repro", || build::check_reproducible(ws))?;
    clock.step("dashboard check", || ui::check(ws))?;
    clock.step("layers", || layers::check(&ws.root))?;
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
    let (tests, passed) = clock.step("sidecar unit tests, conductor and end-to-end tests", || {
        workspace::step(&format!(
            "sidecar unit tests, conductor and end-to-end tests ({lanes} lane(s), one test at a time in each)"
        ));
        lanes::run(ws, &lanes::Selection { libtest_args: args, lanes })
    })?;
    let record = clock.finish(ws, tests, passed, !args.is_empty());
    timing::report(ws, &record)?;
    if !passed {
        anyhow::bail!("conductor or end-to-end tests failed: see the failures above");
    }
    Ok(())
}
