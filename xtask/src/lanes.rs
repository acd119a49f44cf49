//! Runs the sidecar's unit tests and the conductor/end-to-end tests in lanes: each lane runs its
//! tests one at a time, and the lanes run side by side. The suite spends most of its time waiting
//! on the mesh's own loops (heartbeat windows, leases, settle windows): measured on 2 cores, a
//! sidecar test keeps the machine about 30 % busy, so two lanes roughly halve the wall time.
//! Tests are dealt to lanes by their last recorded wall time, longest first, so the lanes end
//! close together.
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::timing::{self, LibtestTimer, TestTime};
use crate::workspace::{cargo_command, Workspace};

/// The packages and targets the sidecar build step compiles: listing them the same way lets cargo
/// reuse that build (`-p ripple` alone would unify other Holochain features and compile it again).
const TEST_TARGETS: [&str; 7] = ["--release", "-p", "ripple", "-p", "ripple_tests", "--bins", "--tests"];

/// A test not yet in the history counts as this long when dealing lanes.
const UNKNOWN_TEST_SECS: f64 = 60.0;

/// `.cargo/config.toml`'s `[env]`, which cargo applies when it runs tests itself: Holochain's
/// call paths can outgrow Rust's 2 MiB default test-thread stack.
const TEST_ENV: [(&str, &str); 1] = [("RUST_MIN_STACK", "8388608")];

/// One libtest binary cargo built, and the package directory cargo would run it in.
#[derive(Debug, Clone)]
struct TestBinary {
    path: PathBuf,
    package_dir: PathBuf,
}

/// Which tests a run takes and how: libtest filters and flags as after `cargo test --`.
pub struct Selection<'a> {
    pub libtest_args: &'a [String],
    pub lanes: usize,
}

/// Runs the selected tests of every test binary in `selection.lanes` lanes, echoing each lane's
/// output with its number. Returns every test's time and whether all of them passed.
pub fn run(ws: &Workspace, selection: &Selection) -> anyhow::Result<(Vec<TestTime>, bool)> {
    let binaries = test_binaries(ws)?;
    let (filters, flags): (Vec<&String>, Vec<&String>) =
        selection.libtest_args.iter().partition(|a| !a.starts_with('-'));
    let mut tests = vec![];
    for (index, binary) in binaries.iter().enumerate() {
        for name in list(binary, &filters, &flags)? {
            tests.push((index, name));
        }
    }
    if tests.is_empty() {
        bail!("no test matches {:?}", selection.libtest_args);
    }
    let lanes = deal(tests, &last_times(ws), selection.lanes.max(1));
    let retry_log = timing::retry_log(ws);
    let _ = std::fs::remove_file(&retry_log);
    let prefix = |lane: usize| if lanes.len() > 1 { format!("[lane {}] ", lane + 1) } else { String::new() };
    for (lane, tests) in lanes.iter().enumerate() {
        let secs: f64 = tests.iter().map(|t| t.weight).sum();
        eprintln!("{}{} tests, about {} by the last run", prefix(lane), tests.len(), timing::duration(secs));
    }
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .iter()
            .enumerate()
            .map(|(lane, tests)| {
                let (binaries, flags, retry_log, prefix) = (&binaries, &flags, &retry_log, prefix(lane));
                scope.spawn(move || run_lane(binaries, tests, flags, retry_log, &prefix))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("lane thread panicked")).collect::<Vec<_>>()
    });
    let (mut times, mut passed) = (vec![], true);
    for result in results {
        let (lane_times, lane_passed) = result?;
        times.extend(lane_times);
        passed &= lane_passed;
    }
    Ok((times, passed))
}

/// Runs one lane: each binary's tests of the lane in one libtest process, one test at a time.
fn run_lane(
    binaries: &[TestBinary],
    tests: &[Planned],
    flags: &[&String],
    retry_log: &Path,
    prefix: &str,
) -> anyhow::Result<(Vec<TestTime>, bool)> {
    let (mut times, mut passed) = (vec![], true);
    for (index, binary) in binaries.iter().enumerate() {
        let names: Vec<&str> = tests.iter().filter(|t| t.binary == index).map(|t| t.name.as_str()).collect();
        if names.is_empty() {
            continue;
        }
        let mut cmd = Command::new(&binary.path);
        cmd.args(["--exact", "--test-threads=1"])
            .args(flags.iter().map(|f| f.as_str()))
            .args(&names)
            .current_dir(&binary.package_dir)
            .env("CARGO_MANIFEST_DIR", &binary.package_dir)
            .env(timing::RETRY_LOG_ENV, retry_log)
            .envs(TEST_ENV);
        let (binary_times, ok) = run_timed(cmd, prefix)?;
        times.extend(binary_times);
        passed &= ok;
    }
    Ok((times, passed))
}

/// The libtest binaries of the sidecar and the conductor tests, as cargo reports them (building
/// nothing the build step did not).
fn test_binaries(ws: &Workspace) -> anyhow::Result<Vec<TestBinary>> {
    let output = cargo_command(&ws.root, &ws.target_dir)
        .args(["test", "--no-run", "--message-format=json-render-diagnostics"])
        .args(TEST_TARGETS)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("cargo test --no-run failed");
    }
    let mut binaries = vec![];
    for line in output.stdout.lines() {
        let message: serde_json::Value = serde_json::from_str(&line?).context("cargo's JSON message")?;
        let is_test = message["reason"] == "compiler-artifact" && message["profile"]["test"] == true;
        let (Some(path), Some(manifest)) = (message["executable"].as_str(), message["manifest_path"].as_str()) else {
            continue;
        };
        if is_test {
            let package_dir = Path::new(manifest).parent().context("manifest path has no parent")?.to_path_buf();
            binaries.push(TestBinary { path: path.into(), package_dir });
        }
    }
    if binaries.is_empty() {
        bail!("cargo built no test binaries for {}", TEST_TARGETS.join(" "));
    }
    Ok(binaries)
}

/// The names of `binary`'s tests that `filters` select (every test when there are none).
fn list(binary: &TestBinary, filters: &[&String], flags: &[&String]) -> anyhow::Result<Vec<String>> {
    let output = Command::new(&binary.path)
        .args(["--list", "--format", "terse"])
        .args(flags.iter().map(|f| f.as_str()))
        .args(filters.iter().map(|f| f.as_str()))
        .current_dir(&binary.package_dir)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("listing the tests of {}", binary.path.display()))?;
    if !output.status.success() {
        bail!("{} --list failed", binary.path.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect())
}

/// Each test's wall time in the newest run recorded on this machine that has it, else in the
/// committed `tests/test-times.json`, so a fresh machine deals its lanes as well as this one.
fn last_times(ws: &Workspace) -> HashMap<String, f64> {
    let mut last: HashMap<String, f64> = std::fs::read_to_string(committed_times(ws))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    for record in timing::read_history().unwrap_or_default() {
        for t in record.tests {
            last.insert(t.name, t.secs);
        }
    }
    last
}

fn committed_times(ws: &Workspace) -> PathBuf {
    ws.root.join("tests/test-times.json")
}

/// Writes `tests/test-times.json` (test name → seconds, whole seconds, name order) from a run, for
/// `cargo xtask bench ci`.
pub fn write_committed_times(ws: &Workspace, tests: &[TestTime]) -> anyhow::Result<()> {
    let times: std::collections::BTreeMap<&str, f64> = tests.iter().map(|t| (t.name.as_str(), t.secs.ceil())).collect();
    let path = committed_times(ws);
    std::fs::write(&path, serde_json::to_string_pretty(&times)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Clone, PartialEq)]
struct Planned {
    binary: usize,
    name: String,
    weight: f64,
}

/// Deals `tests` to `lanes` lanes, longest first, each to the lane with the least time so far
/// (libtest then runs a lane's tests in name order).
fn deal(tests: Vec<(usize, String)>, last: &HashMap<String, f64>, lanes: usize) -> Vec<Vec<Planned>> {
    let mut planned: Vec<Planned> = tests
        .into_iter()
        .map(|(binary, name)| {
            let weight = last.get(&name).copied().unwrap_or(UNKNOWN_TEST_SECS);
            Planned { binary, name, weight }
        })
        .collect();
    planned.sort_by(|a, b| b.weight.total_cmp(&a.weight).then_with(|| a.name.cmp(&b.name)));
    let mut dealt: Vec<Vec<Planned>> = vec![vec![]; lanes];
    let mut loads = vec![0.0f64; lanes];
    for test in planned {
        let lane = (0..lanes).min_by(|&a, &b| loads[a].total_cmp(&loads[b])).expect("at least one lane");
        loads[lane] += test.weight;
        dealt[lane].push(test);
    }
    dealt.retain(|lane| !lane.is_empty());
    dealt
}

/// Runs one libtest process, echoing its output line by line behind `prefix` and saying when each
/// test starts; returns its tests' times and whether it passed.
fn run_timed(mut cmd: Command, prefix: &str) -> anyhow::Result<(Vec<TestTime>, bool)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("running {cmd:?}"))?;
    let mut stdout = child.stdout.take().context("the test binary's stdout")?;
    let mut timer = LibtestTimer::default();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let before = timer.running().map(String::from);
        timer.feed(&buf[..n], Instant::now());
        let mut out = std::io::stdout().lock();
        if let Some(name) = timer.running().filter(|now| before.as_deref() != Some(*now)) {
            writeln!(out, "{prefix}test {name} ... started")?;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            out.write_all(prefix.as_bytes())?;
            out.write_all(&line)?;
        }
        out.flush()?;
    }
    if !pending.is_empty() {
        writeln!(std::io::stdout(), "{prefix}{}", String::from_utf8_lossy(&pending))?;
    }
    let status = child.wait()?;
    if !status.success() {
        // A test process killed by a signal prints nothing of its own: say how it ended, and in
        // which test.
        use std::os::unix::process::ExitStatusExt;
        let how = match status.signal() {
            Some(signal) => format!("was killed by signal {signal}"),
            None => format!("exited with {status}"),
        };
        let during = timer.running().map(|t| format!(" during {t}")).unwrap_or_default();
        writeln!(std::io::stdout(), "{prefix}the test process {how}{during}")?;
    }
    Ok((timer.into_times(), status.success()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_get_the_longest_tests_first_and_end_close_together() {
        let last: HashMap<String, f64> =
            [("slow", 300.0), ("mid", 200.0), ("mid2", 150.0), ("small", 50.0), ("unit", 0.1)]
                .map(|(n, s)| (n.to_string(), s))
                .into();
        let tests = ["unit", "small", "mid2", "slow", "new", "mid"].map(|n| (0, n.to_string())).to_vec();
        let lanes = deal(tests, &last, 2);
        let names = |l: &[Planned]| l.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        // slow(300) | mid(200), mid2(150) -> 350 | slow, new(60) -> 360 | small(50) -> 400, unit.
        assert_eq!(names(&lanes[0]), ["slow", "new", "unit"]);
        assert_eq!(names(&lanes[1]), ["mid", "mid2", "small"]);
        assert_eq!(deal(vec![(0, "only".into())], &last, 3).len(), 1, "no empty lanes");
    }
}
