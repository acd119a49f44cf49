//! Benchmarks run as ignored tests inside the conductor test binary, built with the release profile
//! (a debug conductor would measure the debug build), and are written into their section of
//! docs/benchmarks.md.
use anyhow::Context;

use crate::workspace::{step, Workspace};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Suite {
    /// Advert/heartbeat writes, discovery over 1,000 adverts, heartbeat propagation.
    Registry,
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
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Registry => "registry",
            Suite::Node => "node",
            Suite::Mcp => "mcp",
            Suite::Mesh => "mesh",
            Suite::Artifacts => "artifacts",
            Suite::Policy => "policy",
            Suite::Shards => "shards",
            Suite::Inference => "inference",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Suite::Registry | Suite::Mesh => "Holochain 0.7.1 sweettest conductors built with the release profile",
            Suite::Policy => {
                "regorus 0.14.1 in the test process and a Holochain 0.7.1 sweettest conductor, both built with the release profile"
            }
            Suite::Artifacts => {
                "the `ripple` binary (release) with its embedded Holochain 0.7.1 conductor and a js-ipfs 0.66.1 daemon (Kubo RPC API) on loopback"
            }
            Suite::Node | Suite::Mcp | Suite::Shards => {
                "the `ripple` binary and its embedded Holochain 0.7.1 conductor built with the release profile"
            }
            Suite::Inference => {
                "the `ripple` binary (release) with its embedded Holochain 0.7.1 conductor and llama.cpp servers (xllamacpp) on loopback"
            }
        }
    }
}

pub async fn run(ws: &Workspace, suite: Suite) -> anyhow::Result<()> {
    crate::build::build(ws).await?;
    if matches!(suite, Suite::Node | Suite::Mcp | Suite::Artifacts | Suite::Shards | Suite::Inference) {
        ws.build_sidecar(true)?;
    }
    if matches!(suite, Suite::Artifacts | Suite::Inference) {
        crate::clients::install(ws)?;
    }
    let name = suite.name();
    let out = ws.target_dir.join(format!("bench-{name}.md"));
    let _ = std::fs::remove_file(&out);
    step(&format!("benchmark `{name}` (conductors in the test binary)"));
    std::env::set_var("RIPPLE_BENCH_OUT", &out);
    let filter = format!("bench::{name}");
    ws.cargo(&[
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
    ])?;
    let body = std::fs::read_to_string(&out)
        .with_context(|| format!("the benchmark wrote no results to {}", out.display()))?;
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
