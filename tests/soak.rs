//! The soak (`cargo xtask soak`, not part of `cargo xtask test`): six `ripple up` nodes on this
//! machine for an hour with what runs all day running faster than in production. Heartbeats: the
//! soak network's 60 s buckets make a node beat every 30 s, 60 times the production cadence (the
//! e2e network's 3 s beats, 600 times, kept this machine's two cores saturated and its
//! conductors' databases locked: a load test, not a soak). Liveness runs at the production
//! settings. Adverts: one node renames itself every minute. Allocations: one every 10 s, from
//! each node in turn. Shard maps: a new collection every 5 minutes, which the nodes place and claim.
//!
//! Every 30 s it samples each node's resident memory and CPU time (sidecar and embedded conductor
//! are one process) and its error counters. Goals (issue 26): memory growth ≤ 10 % over the last
//! three quarters of the run (the last 45 minutes of an hour), and no error counter growing then.
//! The CPU the nodes used is reported beside them: a saturated machine delays every message, so
//! its liveness verdicts say more about the machine than about the mesh. The results are written
//! before the goals are checked, so a miss is recorded too.
use std::time::{Duration, Instant};

use ripple::runtime::services::StatusReport;

use crate::sidecar::harness::*;

const NODES: usize = 6;
const BUCKET_SECS: u32 = 60;
const SAMPLE_EVERY: Duration = Duration::from_secs(30);
const ALLOCATE_EVERY: Duration = Duration::from_secs(10);
const RENAME_EVERY: Duration = Duration::from_secs(60);
const NEW_MAP_EVERY: Duration = Duration::from_secs(300);
/// The goal's ceiling on memory growth over the measured window.
const MAX_GROWTH: f64 = 0.10;

/// Counters that only grow when something went wrong, summed over a node's status.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Errors {
    heartbeat_failures: u64,
    /// Members this node's liveness protocol declared dead: no node dies in a soak.
    deaths: u64,
    send_failures: u64,
    unreadable_messages: u64,
    /// Messages kitsune2 dropped for an unknown peer address.
    blocked_messages: u64,
}

impl Errors {
    const NAMES: [&'static str; 5] =
        ["heartbeat failures", "liveness deaths", "liveness send failures", "unreadable messages", "blocked messages"];

    fn of(status: &StatusReport) -> Errors {
        let blocked = status.diagnostics.blocked_messages.as_ref().map_or(0, |b| b.incoming + b.outgoing);
        Errors {
            heartbeat_failures: status.node.heartbeat_failures,
            deaths: status.liveness.counters.deaths,
            send_failures: status.liveness.send_failures,
            unreadable_messages: status.liveness.unreadable_messages,
            blocked_messages: blocked,
        }
    }

    fn values(&self) -> [u64; 5] {
        [self.heartbeat_failures, self.deaths, self.send_failures, self.unreadable_messages, self.blocked_messages]
    }
}

/// One look at every node: resident memory (KiB) and error counters; `None` where `/status` did
/// not answer.
struct Sample {
    at: Duration,
    rss_kib: Vec<u64>,
    cpu_secs: Vec<f64>,
    errors: Vec<Option<Errors>>,
}

#[derive(Default)]
struct Workload {
    allocations: u64,
    allocations_failed: u64,
    renames: u64,
    renames_failed: u64,
    maps: u64,
    maps_failed: u64,
    last_failure: Option<String>,
}

/// A `ripple allocate` run: the requesting node and the CLI's exit code, stdout and stderr.
type Allocation = (usize, (i32, String, String));

impl Workload {
    /// Records how `ripple allocate` on node `requester` ended.
    fn allocated(&mut self, (requester, (code, _, err)): Allocation) {
        if code != 0 {
            self.allocations_failed += 1;
            self.last_failure = Some(format!("allocate on soak-{requester}: {err}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "soak: cargo xtask soak"]
async fn soak() {
    let minutes: u64 = std::env::var("RIPPLE_SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(60);
    let run_for = Duration::from_secs(minutes * 60);
    let tmp = TempDir::new("soak");
    let manifests = test_manifests_with_buckets(&tmp.path().join("manifests"), "e2e", BUCKET_SECS).await;
    let shards = ["--vector-shards", "8"];
    let first = Sidecar::start(Launch::node(
        tmp.path(),
        &manifests,
        "e2e",
        "soak-0",
        &[&shards[..], &["--mcp-http", "127.0.0.1:0"]].concat(),
    ));
    let join = first.join_args();
    let mut nodes = vec![first];
    for i in 1..NODES {
        let mut extra: Vec<&str> = shards.to_vec();
        extra.extend(join.iter().map(String::as_str));
        nodes.push(Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", &format!("soak-{i}"), &extra)));
    }
    eventually("all six nodes online on every node", Duration::from_secs(300), || async {
        for node in &nodes {
            let online = node.try_peers("online_only=true").await?.len();
            if online != NODES {
                return Err(format!("{} sees {online} online", node.name));
            }
        }
        Ok(())
    })
    .await;
    eprintln!("soak: six nodes online; running for {minutes} min");

    let data = |i: usize| tmp.path().join(format!("soak-{i}"));
    let mcp_url = nodes[0].ready.mcp_url.clone().expect("soak-0 serves MCP over HTTP");
    let mcp = McpSession::open(&reqwest::Client::new(), &mcp_url).await;
    let mut work = Workload::default();
    let mut samples: Vec<Sample> = vec![];
    let mut allocating: Option<tokio::task::JoinHandle<Allocation>> = None;
    let started = Instant::now();
    let (mut next_sample, mut next_allocation, mut next_rename, mut next_map) =
        (Duration::ZERO, Duration::ZERO, RENAME_EVERY, Duration::ZERO);
    while started.elapsed() < run_for {
        let now = started.elapsed();
        if now >= next_sample {
            samples.push(sample(&nodes, now).await);
            next_sample += SAMPLE_EVERY;
            if samples.len().is_multiple_of(10) {
                let last = samples.last().unwrap();
                let rss: Vec<u64> = last.rss_kib.iter().map(|k| k / 1024).collect();
                let errors: Vec<u64> = (0..Errors::NAMES.len())
                    .map(|k| last.errors.iter().flatten().map(|e| e.values()[k]).sum())
                    .collect();
                eprintln!(
                    "soak: {:.0} min, resident MiB {rss:?}, {} {errors:?}",
                    now.as_secs_f64() / 60.0,
                    Errors::NAMES.join(" / ")
                );
            }
        }
        if allocating.as_ref().is_some_and(|a| a.is_finished()) {
            work.allocated(allocating.take().unwrap().await.expect("an allocation thread"));
        }
        // One allocation at a time, off this loop, so the samples keep their period.
        if now >= next_allocation && allocating.is_none() {
            let requester = work.allocations as usize % NODES;
            let data = data(requester);
            work.allocations += 1;
            allocating = Some(tokio::task::spawn_blocking(move || {
                let data = data.to_str().unwrap();
                (requester, ripple(&["--data", data, "allocate", "compute", "--cpu", "1", "--duration", "20"]))
            }));
            next_allocation = now + ALLOCATE_EVERY;
        }
        if now >= next_rename {
            let name = format!("soak-0-{}", work.renames + 1);
            work.renames += 1;
            if let Err(e) = mcp.register_node(&name).await {
                work.renames_failed += 1;
                work.last_failure = Some(format!("renaming soak-0: {e}"));
            }
            next_rename += RENAME_EVERY;
        }
        if now >= next_map {
            let collection = format!("soak-{}", work.maps);
            let creator = work.maps as usize % NODES;
            work.maps += 1;
            if let Err(e) = ripple_json::<serde_json::Value>(&data(creator), &["shards", "create", &collection]) {
                work.maps_failed += 1;
                work.last_failure = Some(format!("creating {collection} on soak-{creator}: {e}"));
            }
            next_map += NEW_MAP_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(last) = allocating {
        work.allocated(last.await.expect("an allocation thread"));
    }
    samples.push(sample(&nodes, started.elapsed()).await);
    let statuses: Vec<Option<StatusReport>> =
        futures::future::join_all(nodes.iter().map(|n| async { try_get_json(&n.api("status")).await.ok() })).await;

    let window_start = run_for / 4;
    let report = write_report(&samples, &work, &statuses, window_start, minutes);
    // All at once: each node's clean stop (offline advert, conductor shutdown) takes seconds.
    let stopped: Vec<_> = nodes.into_iter().map(|node| std::thread::spawn(move || node.terminate())).collect();
    for stop in stopped {
        assert!(stop.join().expect("a stopping thread").success());
    }
    assert!(report.misses.is_empty(), "the soak missed its goals:\n{}", report.misses.join("\n"));
}

async fn sample(nodes: &[Sidecar], at: Duration) -> Sample {
    let errors = futures::future::join_all(
        nodes
            .iter()
            .map(|n| async { try_get_json::<StatusReport>(&n.api("status")).await.ok().map(|s| Errors::of(&s)) }),
    )
    .await;
    Sample {
        at,
        rss_kib: nodes.iter().map(Sidecar::rss_kib).collect(),
        cpu_secs: nodes.iter().map(Sidecar::cpu_secs).collect(),
        errors,
    }
}

/// The cores `node` kept busy on average over the window's samples.
fn cores_used(window: &[&Sample], node: usize) -> f64 {
    let (first, last) = (window[0], window[window.len() - 1]);
    (last.cpu_secs[node] - first.cpu_secs[node]) / (last.at - first.at).as_secs_f64().max(1.0)
}

struct Report {
    misses: Vec<String>,
}

/// The median of a few samples (three at either end of the window): one slow look does not decide.
fn median3(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn write_report(
    samples: &[Sample],
    work: &Workload,
    statuses: &[Option<StatusReport>],
    window_start: Duration,
    minutes: u64,
) -> Report {
    let mut misses = vec![];
    let window: Vec<&Sample> = samples.iter().filter(|s| s.at >= window_start).collect();
    assert!(window.len() >= 6, "too few samples in the measured window: run at least 4 minutes");
    let (head, tail) = (&window[..3], &window[window.len() - 3..]);
    let mut out = format!(
        "Six nodes for {minutes} min, beating every {} s; resident memory, CPU time and error counters sampled \
         every {} s; the measured window \
         is from minute {} to the end (goal: memory growth ≤ {:.0} % and no error counter growing in it). Memory \
         at either end of the window is the median of its three samples there.\n\n\
         | node | resident MiB at minute {} | at the end | growth | peak MiB | CPU in the window, cores |\n\
         |---|---:|---:|---:|---:|---:|\n",
        BUCKET_SECS / 2,
        SAMPLE_EVERY.as_secs(),
        window_start.as_secs() / 60,
        MAX_GROWTH * 100.0,
        window_start.as_secs() / 60,
    );
    for node in 0..NODES {
        let before = median3(&head.iter().map(|s| s.rss_kib[node]).collect::<Vec<_>>());
        let after = median3(&tail.iter().map(|s| s.rss_kib[node]).collect::<Vec<_>>());
        let peak = samples.iter().map(|s| s.rss_kib[node]).max().unwrap_or(0);
        let growth = after as f64 / before.max(1) as f64 - 1.0;
        let cores = cores_used(&window, node);
        out += &format!(
            "| soak-{node} | {:.0} | {:.0} | {:+.1} % | {:.0} | {cores:.2} |\n",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            growth * 100.0,
            peak as f64 / 1024.0
        );
        if growth > MAX_GROWTH {
            misses.push(format!("soak-{node}'s resident memory grew {:.1} % in the window", growth * 100.0));
        }
    }
    let all: f64 = (0..NODES).map(|node| cores_used(&window, node)).sum();
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    out += &format!("| all six | | | | | {all:.2} of {machine} |\n");
    // Error counters: each node's first and last answered sample in the window, summed.
    let ends = |node: usize| {
        let answered: Vec<Errors> = window.iter().filter_map(|s| s.errors[node]).collect();
        (answered.first().copied(), answered.last().copied())
    };
    let unanswered: usize = window.iter().map(|s| s.errors.iter().filter(|e| e.is_none()).count()).sum();
    out += "\n| error counter (all six nodes) | at the window's start | at the end |\n|---|---:|---:|\n";
    for (k, name) in Errors::NAMES.iter().enumerate() {
        let (mut first, mut last) = (0, 0);
        for node in 0..NODES {
            let (a, b) = ends(node);
            first += a.map_or(0, |e| e.values()[k]);
            last += b.map_or(0, |e| e.values()[k]);
        }
        out += &format!("| {name} | {first} | {last} |\n");
        if last > first {
            misses.push(format!("{name} grew from {first} to {last} in the window"));
        }
    }
    out += &format!("| `/status` not answered (samples) | | {unanswered} |\n");
    if unanswered > 0 {
        misses.push(format!("{unanswered} status samples went unanswered in the window"));
    }
    let beats: u64 = statuses.iter().flatten().map(|s| s.node.heartbeats_sent).sum();
    let messages: u64 = statuses.iter().flatten().map(|s| s.liveness.counters.messages_sent).sum();
    out += &format!(
        "\nWorkload over the whole run: {} allocations ({} failed), {} advert renames ({} failed), {} shard maps \
         ({} failed); {beats} heartbeats and {messages} liveness messages sent by the six nodes.{}\n",
        work.allocations,
        work.allocations_failed,
        work.renames,
        work.renames_failed,
        work.maps,
        work.maps_failed,
        work.last_failure.as_ref().map(|f| format!(" Last failure: {f}")).unwrap_or_default()
    );
    let failed = work.allocations_failed + work.renames_failed + work.maps_failed;
    if failed > 0 {
        misses.push(format!("{failed} workload operations failed; the last: {:?}", work.last_failure));
    }
    out += &if misses.is_empty() {
        "\nResult: both goals met.\n".to_string()
    } else {
        format!("\nResult: goals missed: {}.\n", misses.join("; "))
    };
    eprintln!("{out}");
    if let Ok(path) = std::env::var("RIPPLE_BENCH_OUT") {
        std::fs::write(&path, &out).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    Report { misses }
}
