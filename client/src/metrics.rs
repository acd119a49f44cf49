//! The sidecar's Prometheus metrics: zome-call and MCP tool-call latency, peers, heartbeat age and
//! memory, rendered in the text exposition format at `/metrics`.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    errors: u64,
}

impl Histogram {
    fn observe(&mut self, took: Duration, ok: bool) {
        let secs = took.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
        if !ok {
            self.errors += 1;
        }
    }
}

/// Counters shared by the node agent, the mesh client, the MCP server and the HTTP API.
#[derive(Default)]
pub struct Metrics {
    /// By `zome="…",fn="…"` labels.
    zome_calls: Mutex<BTreeMap<String, Histogram>>,
    /// By `tool="…"` label.
    mcp_calls: Mutex<BTreeMap<String, Histogram>>,
    /// Authentication of other nodes' requests to this one (one series).
    peer_auth: Mutex<BTreeMap<String, Histogram>>,
}

/// Point-in-time values that are read when `/metrics` is scraped.
pub struct Gauges {
    pub peers: usize,
    pub online_peers: Option<usize>,
    pub heartbeat_age_secs: Option<f64>,
    pub heartbeats_sent: u64,
    pub heartbeat_failures: u64,
    /// Resident memory of this process, which includes the conductor when it is embedded.
    pub process_rss_bytes: Option<u64>,
    pub embedded_conductor: bool,
    pub uptime_secs: f64,
}

impl Metrics {
    pub fn observe_zome_call(&self, zome: &str, function: &str, took: Duration, ok: bool) {
        if let Ok(mut calls) = self.zome_calls.lock() {
            calls.entry(format!("zome=\"{zome}\",fn=\"{function}\"")).or_default().observe(took, ok);
        }
    }

    /// One MCP tool call; `ok` is false for tool errors (bad input included).
    pub fn observe_mcp_call(&self, tool: &str, took: Duration, ok: bool) {
        if let Ok(mut calls) = self.mcp_calls.lock() {
            calls.entry(format!("tool=\"{tool}\"")).or_default().observe(took, ok);
        }
    }

    pub fn observe_peer_auth(&self, took: Duration, ok: bool) {
        if let Ok(mut checks) = self.peer_auth.lock() {
            checks.entry("check=\"signature\"".into()).or_default().observe(took, ok);
        }
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: Option<f64>| {
            if let Some(v) = value {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
        };
        gauge(
            "ripple_peers",
            "Other agents the conductor knows in the agent_registry space.",
            Some(gauges.peers as f64),
        );
        gauge(
            "ripple_online_peers",
            "Peers with a heartbeat in the online window.",
            gauges.online_peers.map(|n| n as f64),
        );
        gauge(
            "ripple_heartbeat_age_seconds",
            "Seconds since this node's last successful heartbeat.",
            gauges.heartbeat_age_secs,
        );
        gauge("ripple_heartbeats_sent", "Heartbeats written since start.", Some(gauges.heartbeats_sent as f64));
        gauge(
            "ripple_heartbeat_failures",
            "Heartbeats that failed since start.",
            Some(gauges.heartbeat_failures as f64),
        );
        gauge(
            "ripple_conductor_rss_bytes",
            "Resident memory of the sidecar process with its embedded conductor (absent when attached).",
            gauges.process_rss_bytes.filter(|_| gauges.embedded_conductor).map(|b| b as f64),
        );
        gauge(
            "ripple_process_rss_bytes",
            "Resident memory of the sidecar process.",
            gauges.process_rss_bytes.map(|b| b as f64),
        );
        gauge("ripple_uptime_seconds", "Seconds since the sidecar started.", Some(gauges.uptime_secs));

        if let Ok(calls) = self.zome_calls.lock() {
            histograms(
                &mut out,
                "ripple_zome_call",
                "Zome call latency through the app websocket",
                "Zome calls",
                &calls,
            );
        }
        if let Ok(calls) = self.mcp_calls.lock() {
            histograms(
                &mut out,
                "ripple_mcp_call",
                "MCP tool call latency, validation included",
                "MCP tool calls",
                &calls,
            );
        }
        if let Ok(checks) = self.peer_auth.lock() {
            let (help, what) = ("Checks of peer requests' signature, freshness and nonce", "Refused peer requests");
            histograms(&mut out, "ripple_peer_auth", help, what, &checks);
        }
        out
    }
}

/// `<name>_duration_seconds` histograms and `<name>_errors` counters, one series per label set.
fn histograms(out: &mut String, name: &str, help: &str, what: &str, series: &BTreeMap<String, Histogram>) {
    let metric = format!("{name}_duration_seconds");
    let _ = writeln!(out, "# HELP {metric} {help}.\n# TYPE {metric} histogram");
    for (labels, h) in series {
        for (count, bound) in h.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{metric}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{metric}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{metric}_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "{metric}_count{{{labels}}} {}", h.count);
    }
    let _ = writeln!(out, "# HELP {name}_errors {what} that returned an error.\n# TYPE {name}_errors counter");
    for (labels, h) in series {
        let _ = writeln!(out, "{name}_errors{{{labels}}} {}", h.errors);
    }
}

/// Resident memory of this process (Linux `/proc/self/statm`; `None` elsewhere).
pub fn process_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_errors_are_counted() {
        let m = Metrics::default();
        m.observe_zome_call("discovery", "query_peers", Duration::from_millis(3), true);
        m.observe_zome_call("discovery", "query_peers", Duration::from_millis(300), false);
        m.observe_mcp_call("holochain.query_peers", Duration::from_millis(2), true);
        let text = m.render(&Gauges {
            peers: 2,
            online_peers: None,
            heartbeat_age_secs: Some(1.5),
            heartbeats_sent: 3,
            heartbeat_failures: 0,
            process_rss_bytes: Some(1024),
            embedded_conductor: false,
            uptime_secs: 9.0,
        });
        assert!(text.contains(
            "ripple_zome_call_duration_seconds_bucket{zome=\"discovery\",fn=\"query_peers\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "ripple_zome_call_duration_seconds_bucket{zome=\"discovery\",fn=\"query_peers\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("ripple_zome_call_duration_seconds_bucket{zome=\"discovery\",fn=\"query_peers\",le=\"0.5\"} 2"));
        assert!(text.contains("ripple_zome_call_duration_seconds_count{zome=\"discovery\",fn=\"query_peers\"} 2"));
        assert!(text.contains("ripple_zome_call_errors{zome=\"discovery\",fn=\"query_peers\"} 1"));
        assert!(text.contains("ripple_mcp_call_duration_seconds_count{tool=\"holochain.query_peers\"} 1"));
        assert!(text.contains("ripple_mcp_call_errors{tool=\"holochain.query_peers\"} 0"));
        assert!(text.contains("ripple_peers 2"));
        assert!(!text.contains("ripple_conductor_rss_bytes "), "attached: the conductor's memory is not ours");
        assert!(!text.contains("ripple_online_peers"));
    }
}
