//! Benchmarks run as ignored tests inside the conductor test binary, built with the release profile
//! (a debug conductor would measure the debug build), and are written into their section of
//! docs/benchmarks.md.
use anyhow::{bail, Context};

use crate::timing::{self, RunRecord};
use crate::workspace::{step, Workspace};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Suite {
    /// Advert/heartbeat writes, discovery over 1,000 adverts, heartbeat propagation.
    Registry,
    /// What a heartbeat costs on disk: SQLite bytes per beat in the writer's and a holder's stores.
    Footprint,
    /// The real `ripple` binary: start (warm data dir) to advert visible on a second node, idle RSS.
    Node,
    /// `holochain.query_peers` over streamable HTTP: latency and calls/s with 50 concurrent sessions.
    Mcp,
    /// Allocation grants per second with 4 providers and 8 requesters, and over-allocations (must be 0).
    Mesh,
    /// `ripple artifact add` of a 64 MB file vs a direct Kubo-RPC add of the same size (goal ≤ 1.2×).
    Artifacts,
    /// Policy gate overhead with cached bundles (goal p50 ≤ 1 ms before the write) and decisions/s.
    Policy,
    /// Shard route lookup p50/p95 and the mesh's re-convergence after a node loss (4 real nodes).
    Shards,
    /// moe_query wall time vs the slowest single model in the same run (goal ≤ 1.2×), reducer overhead.
    Inference,
    /// The peer data plane between two test hosts (root: network namespaces): a 64 MB artifact get
    /// vs the holder's IPFS directly (goal ≤ 1.3×), inference overhead over the remote server
    /// (goal ≤ 15 ms), a peer request's check (goal ≤ 0.5 ms).
    Net,
    /// The liveness protocol (SWIM + Lifeguard) in simulation, 5 to 50 members: messages and bytes
    /// per node per second (goal: constant), and crash detection by every survivor (goal at 5 to 8
    /// members: p50 ≤ 10 s, p95 ≤ 20 s).
    Liveness,
    /// Six `ripple up` nodes for an hour (`cargo xtask soak --minutes N` for another length) with
    /// heartbeats, advert changes, allocations and shard maps running: resident memory growth
    /// (goal ≤ 10 % over the last three quarters) and error counters (goal: none growing).
    Soak,
    /// The test suite itself, from the runs `cargo xtask test` recorded: the newest full cold and
    /// warm runs' minutes by step, and the ten slowest tests. Runs nothing.
    Ci,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Registry => "registry",
            Suite::Footprint => "footprint",
            Suite::Node => "node",
            Suite::Mcp => "mcp",
            Suite::Mesh => "mesh",
            Suite::Artifacts => "artifacts",
            Suite::Policy => "policy",
            Suite::Shards => "shards",
            Suite::Inference => "inference",
            Suite::Net => "net",
            Suite::Liveness => "liveness",
            Suite::Soak => "soak",
            Suite::Ci => "ci",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Suite::Registry | Suite::Footprint | Suite::Mesh => {
                "Holochain 0.7.1 sweettest conductors built with the release profile"
            }
            Suite::Policy => {
                "regorus 0.14.1 in the test process and a Holochain 0.7.1 sweettest conductor, both built with the release profile"
            }
            Suite::Artifacts => {
                "the `ripple` binary (release) with its embedded Holochain 0.7.1 conductor and a js-ipfs 0.66.1 daemon (Kubo RPC API) on loopback"
            }
            Suite::Node | Suite::Mcp | Suite::Shards | Suite::Soak => {
                "the `ripple` binary and its embedded Holochain 0.7.1 conductor built with the release profile"
            }
            Suite::Inference => {
                "the `ripple` binary (release) with its embedded Holochain 0.7.1 conductor and llama.cpp servers (xllamacpp) on loopback"
            }
            Suite::Net => {
                "two `ripple` nodes (release, embedded Holochain 0.7.1) on two test hosts, with js-ipfs 0.66.1 daemons and a llama.cpp server (xllamacpp)"
            }
            Suite::Liveness => {
                "the sidecar's liveness protocol (`client/src/node/swim.rs`, release build) over a simulated network: 2–21 ms latency, 10 ms steps, the production settings of networks.json"
            }
            Suite::Ci => "`cargo xtask test` as `.ci/run` runs it (tests on the release build)",
        }
    }
}

pub async fn run(ws: &Workspace, suite: Suite) -> anyhow::Result<()> {
    if let Suite::Ci = suite {
        let history = timing::read_history()?;
        let body = ci_section(&history)?;
        if let Some(run) = history.iter().rev().find(|r| r.passed && !r.filtered) {
            crate::lanes::write_committed_times(ws, &run.tests)?;
        }
        return record(ws, suite, &body);
    }
    crate::build::build(ws).await?;
    if matches!(
        suite,
        Suite::Node | Suite::Mcp | Suite::Artifacts | Suite::Shards | Suite::Inference | Suite::Net | Suite::Soak
    ) {
        ws.build_sidecar()?;
    }
    if matches!(suite, Suite::Artifacts | Suite::Inference | Suite::Net) {
        crate::clients::install(ws)?;
    }
    let name = suite.name();
    let out = ws.target_dir.join(format!("bench-{name}.md"));
    let _ = std::fs::remove_file(&out);
    step(&format!("benchmark `{name}` (conductors in the test binary)"));
    std::env::set_var("RIPPLE_BENCH_OUT", &out);
    let filter = match suite {
        Suite::Soak => "soak::soak".to_string(),
        _ => format!("bench::{name}"),
    };
    let ran = ws.cargo(&[
        "test",
        "--release",
        "-p",
        "ripple_tests",
        "--test",
        "ripple",
        "--",
        "--ignored",
        "--exact",
        "--nocapture",
        &filter,
    ]);
    // A run that measured and then missed a goal has written its results: record them, then fail.
    let body = match std::fs::read_to_string(&out) {
        Ok(body) => body,
        Err(e) => {
            ran?;
            return Err(e).with_context(|| format!("the benchmark wrote no results to {}", out.display()));
        }
    };
    record(ws, suite, &body)?;
    ran
}

/// Writes `body` as the suite's section of docs/benchmarks.md.
fn record(ws: &Workspace, suite: Suite, body: &str) -> anyhow::Result<()> {
    let name = suite.name();
    let section = format!(
        "{}\n\nCommand: `cargo xtask bench {name}`. Machine: {}; {}.\n\n{}",
        heading(name),
        machine(),
        suite.subject(),
        body.trim()
    );
    let docs = ws.root.join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&docs).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&docs, replace_section(&text, name, &section))?;
    eprintln!("{section}\n\nrecorded in {}", ws.rel(&docs));
    Ok(())
}

/// The newest full, passing cold and warm runs from the history.
fn ci_section(history: &[RunRecord]) -> anyhow::Result<String> {
    let newest = |cold: bool| history.iter().rev().find(|r| r.passed && !r.filtered && r.cold == cold);
    let (cold, warm) = (newest(true), newest(false));
    if cold.is_none() && warm.is_none() {
        bail!("no full passing run of `cargo xtask test` is recorded in {}", timing::history_file().display());
    }
    let mut out = String::new();
    for (label, run) in [("Cold (a fresh `CARGO_TARGET_DIR`)", cold), ("Warm (the target dir of an earlier run)", warm)]
    {
        let Some(run) = run else {
            out.push_str(&format!("{label}: no full passing run recorded yet.\n\n"));
            continue;
        };
        out.push_str(&format!(
            "{label}: **{}** in all, commit {}, finished {} (Unix time).\n\n| step | wall time |\n|---|---:|\n",
            timing::duration(run.total_secs),
            run.commit,
            run.finished_at
        ));
        for (step, secs) in &run.steps {
            out.push_str(&format!("| {step} | {} |\n", timing::duration(*secs)));
        }
        out.push('\n');
    }
    if let Some(run) = warm.or(cold) {
        let mut tests = run.tests.clone();
        tests.sort_by(|a, b| b.secs.total_cmp(&a.secs));
        out.push_str(&format!(
            "The ten slowest tests of the {} run:\n\n| test | wall time |\n|---|---:|\n",
            if run.cold { "cold" } else { "warm" }
        ));
        for t in tests.iter().take(10) {
            out.push_str(&format!("| `{}` | {} |\n", t.name, timing::duration(t.secs)));
        }
    }
    Ok(out)
}

fn heading(name: &str) -> String {
    format!("## {name}")
}

/// Replaces the text between this suite's markers, or appends a new marked section.
fn replace_section(text: &str, name: &str, section: &str) -> String {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let block = format!("{start}\n{section}\n{end}");
    match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &text[..s], block, &text[e + end.len()..]),
        _ => format!("{}\n{block}\n", text.trim_end()),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next()?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb / 1024 / 1024)
        .unwrap_or(0);
    format!("{cpu}, {cores} cores, {mem_gib} GiB RAM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place() {
        let once = replace_section("# Benchmarks\n", "registry", "## registry\nA");
        let twice = replace_section(&format!("{once}\ntail\n"), "registry", "## registry\nB");
        assert!(twice.contains("## registry\nB") && !twice.contains("## registry\nA"));
        assert!(twice.ends_with("tail\n"));
    }
}
