//! How long `cargo xtask test` takes, and where the time goes: each step, and each conductor or
//! sidecar test with its wall time. The table is printed at the end of every run (passed or not),
//! written to `<target dir>/ripple-test-times.md` for CI to print, and each run is appended to a
//! history that `cargo xtask bench ci` turns into the ci section of docs/benchmarks.md.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::workspace::Workspace;

/// A test slower than this must say why in its doc comment.
pub const SLOW_TEST_SECS: f64 = 300.0;

/// Tests that pass faster than this are counted but not listed in the table.
const LISTED_FROM_SECS: f64 = 1.0;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TestTime {
    pub name: String,
    pub secs: f64,
    /// libtest's word for it: `ok` or `FAILED`.
    pub outcome: String,
}

/// One `cargo xtask test` run, as recorded in the history.
#[derive(Serialize, Deserialize)]
pub struct RunRecord {
    /// Seconds since the Unix epoch when the run ended.
    pub finished_at: u64,
    pub commit: String,
    /// No Holochain build in the target dir when the run started.
    pub cold: bool,
    /// From `.ci/run`'s start (`RIPPLE_CI_STARTED`) when set, so it includes building xtask and
    /// installing packages; otherwise from xtask's own start.
    pub total_secs: f64,
    pub steps: Vec<(String, f64)>,
    pub tests: Vec<TestTime>,
    /// Test setup the tests retried (`support::log_retry`), one line each.
    #[serde(default)]
    pub retries: Vec<String>,
    pub passed: bool,
    /// Any filter passed after `--`: such a run is not the whole suite.
    pub filtered: bool,
}

/// Times the steps of one run.
pub struct Clock {
    started: Instant,
    ci_started: Option<u64>,
    cold: bool,
    steps: Vec<(String, f64)>,
}

impl Clock {
    pub fn start(ws: &Workspace) -> Self {
        let ci_started = std::env::var("RIPPLE_CI_STARTED").ok().and_then(|s| s.parse().ok());
        Self { started: Instant::now(), ci_started, cold: !holochain_built(&ws.target_dir), steps: vec![] }
    }

    /// Runs `f` as the step `name`, recording its wall time whether or not it succeeds.
    pub fn step<T>(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let start = Instant::now();
        let result = f();
        self.steps.push((name.to_string(), start.elapsed().as_secs_f64()));
        result
    }

    pub fn finish(self, ws: &Workspace, tests: Vec<TestTime>, passed: bool, filtered: bool) -> RunRecord {
        let retries = std::fs::read_to_string(retry_log(ws))
            .map(|log| log.lines().map(String::from).collect())
            .unwrap_or_default();
        let total_secs = match self.ci_started {
            Some(t) => now_secs().saturating_sub(t) as f64,
            None => self.started.elapsed().as_secs_f64(),
        };
        RunRecord {
            finished_at: now_secs(),
            commit: git_head(&ws.root),
            cold: self.cold,
            total_secs,
            steps: self.steps,
            tests,
            retries,
            passed,
            filtered,
        }
    }
}

/// Whether the release profile's Holochain is already compiled in `target_dir` (a warm run).
fn holochain_built(target_dir: &Path) -> bool {
    std::fs::read_dir(target_dir.join("release/deps")).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libholochain-") && name.ends_with(".rlib")
        })
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn git_head(root: &Path) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Reads libtest's plain output. With one test thread libtest prints `test NAME ... ` when a test
/// starts and `ok` or `FAILED` when it ends; a test's child process writing to the inherited stdout
/// may put whole lines in between, so the start is taken from the partial line and the test ends
/// at the first line whose last word is an outcome.
#[derive(Default)]
pub struct LibtestTimer {
    line: Vec<u8>,
    started: Option<(String, Instant)>,
    times: Vec<TestTime>,
}

impl LibtestTimer {
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line(now);
            } else {
                self.line.push(b);
                if self.started.is_none() && b == b' ' {
                    self.started = test_name(&self.line).map(|name| (name, now));
                }
            }
        }
    }

    /// The test that has started and not yet ended.
    pub fn running(&self) -> Option<&str> {
        self.started.as_ref().map(|(name, _)| name.as_str())
    }

    pub fn into_times(self) -> Vec<TestTime> {
        self.times
    }

    fn end_line(&mut self, now: Instant) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let outcome = line.split_whitespace().last().unwrap_or_default();
        if line.contains(" ... ignored") {
            self.started = None;
        } else if matches!(outcome, "ok" | "FAILED") {
            if let Some((name, start)) = self.started.take() {
                let secs = now.duration_since(start).as_secs_f64();
                self.times.push(TestTime { name, secs, outcome: outcome.to_string() });
            }
        }
        // Any other line is a child process's output in the middle of the running test.
    }
}

/// `NAME` from a line that begins `test NAME ... `.
fn test_name(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix("test ")?;
    let (name, _) = rest.split_once(" ... ")?;
    (!name.is_empty() && !name.contains(' ')).then(|| name.to_string())
}

/// The table, slowest first, with a total line and the steps.
pub fn table(record: &RunRecord) -> String {
    let mut tests = record.tests.clone();
    tests.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    let mut out = String::from("| test | wall time | result |\n|---|---:|---|\n");
    // The sidecar's unit tests run in the same invocation and take milliseconds each.
    let listed: Vec<&TestTime> = tests.iter().filter(|t| t.secs >= LISTED_FROM_SECS || t.outcome != "ok").collect();
    for t in &listed {
        out.push_str(&format!("| `{}` | {} | {} |\n", t.name, duration(t.secs), t.outcome));
    }
    let sum: f64 = tests.iter().map(|t| t.secs).sum();
    out.push_str(&format!(
        "\n{} tests, {} in all; {} that passed in under {LISTED_FROM_SECS} s are not listed.\n\n| step | wall time |\n|---|---:|\n",
        tests.len(),
        duration(sum),
        tests.len() - listed.len()
    ));
    for (name, secs) in &record.steps {
        out.push_str(&format!("| {name} | {} |\n", duration(*secs)));
    }
    out.push_str(&format!(
        "| **total** ({}, {}) | **{}** |\n",
        if record.cold { "cold: Holochain not yet built" } else { "warm" },
        record.commit,
        duration(record.total_secs)
    ));
    out.push_str(&format!("\nTest setup retried: {} time(s).\n", record.retries.len()));
    for retry in &record.retries {
        out.push_str(&format!("- {retry}\n"));
    }
    out
}

pub fn duration(secs: f64) -> String {
    if secs >= 90.0 {
        format!("{:.0} min {:02.0} s", (secs / 60.0).floor(), secs % 60.0)
    } else {
        format!("{secs:.1} s")
    }
}

/// The variable that tells the tests where to append the setup they retried.
pub const RETRY_LOG_ENV: &str = "RIPPLE_TEST_RETRY_LOG";

/// Where the tests append the setup they retried.
pub fn retry_log(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("ripple-test-retries.log")
}

pub fn times_file(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("ripple-test-times.md")
}

/// Every run's record, one JSON object a line, beside the target dir's other caches.
pub fn history_file() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("ripple/test-runs.jsonl")
}

/// Prints the table, writes it for CI, appends the run to the history, and warns about slow tests
/// whose doc comment does not say why they are slow.
pub fn report(ws: &Workspace, record: &RunRecord) -> anyhow::Result<()> {
    let text = table(record);
    eprintln!("\n==> test wall times, slowest first\n{text}");
    std::fs::write(times_file(ws), &text)?;
    eprintln!("    (written to {})", times_file(ws).display());
    for t in record.tests.iter().filter(|t| t.secs > SLOW_TEST_SECS) {
        if !slow_test_documented(&ws.root, &t.name) {
            eprintln!(
                "warning: `{}` took {} (over {}) and its doc comment does not say why",
                t.name,
                duration(t.secs),
                duration(SLOW_TEST_SECS)
            );
        }
    }
    let history = history_file();
    std::fs::create_dir_all(history.parent().context("history file has no parent")?)?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&history)?;
    writeln!(file, "{}", serde_json::to_string(record)?)?;
    Ok(())
}

/// Whether the test function `module::path::name` in `tests/` has a doc comment right above it.
fn slow_test_documented(root: &Path, name: &str) -> bool {
    let mut parts: Vec<&str> = name.split("::").collect();
    let Some(func) = parts.pop() else { return false };
    let dir = root.join("tests").join(parts.join("/"));
    let Ok(text) = std::fs::read_to_string(dir.with_extension("rs")) else { return false };
    doc_comment_above(&text, func)
}

fn doc_comment_above(source: &str, func: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    let Some(at) = lines.iter().position(|l| l.trim_start().starts_with(&format!("async fn {func}("))) else {
        return false;
    };
    lines[..at]
        .iter()
        .rev()
        .map(|l| l.trim_start())
        .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
        .any(|l| l.starts_with("///"))
}

pub fn read_history() -> anyhow::Result<Vec<RunRecord>> {
    let path = history_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no runs recorded in {}: run `cargo xtask test` (or `.ci/run`) first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {} is not a run record", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_each_test_from_its_name_to_its_result() {
        let t0 = Instant::now();
        let mut p = LibtestTimer::default();
        p.feed(b"\nrunning 3 tests\ntest a::first ... ", t0);
        p.feed(b"ok\ntest a::skipped ... ignored\ntest b::second ... ", t0 + Duration::from_secs(5));
        // A child process writing to the inherited stdout mid-test.
        p.feed(b"child says hi\n", t0 + Duration::from_secs(6));
        p.feed(b"FAILED\n", t0 + Duration::from_secs(12));
        assert_eq!(p.times.len(), 2, "{:?}", p.times);
        assert_eq!((p.times[0].name.as_str(), p.times[0].secs, p.times[0].outcome.as_str()), ("a::first", 5.0, "ok"));
        assert_eq!(
            (p.times[1].name.as_str(), p.times[1].secs, p.times[1].outcome.as_str()),
            ("b::second", 7.0, "FAILED")
        );
    }

    #[test]
    fn a_slow_test_needs_a_doc_comment() {
        let src = "/// Slow: waits out two leases.\n#[tokio::test(flavor = \"multi_thread\")]\nasync fn slow() {}\n\n#[tokio::test]\nasync fn bare() {}\n";
        assert!(doc_comment_above(src, "slow"));
        assert!(!doc_comment_above(src, "bare"));
        assert!(!doc_comment_above(src, "missing"));
    }

    #[test]
    fn durations_read_as_minutes_past_ninety_seconds() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 05 s");
    }
}
