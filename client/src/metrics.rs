//! The sidecar's Prometheus metrics: zome-call latency, peers, heartbeat age and memory, rendered
//! in the text exposition format at `/metrics`.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the zome-call latency buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    errors: u64,
}

/// Counters shared by the node agent, the mesh client and the HTTP API.
#[derive(Default)]
pub struct Metrics {
    zome_calls: Mutex<BTreeMap<(String, String), Histogram>>,
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
        let Ok(mut calls) = self.zome_calls.lock() else { return };
        let h = calls.entry((zome.to_string(), function.to_string())).or_default();
        let secs = took.as_secs_f64();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        if !ok {
            h.errors += 1;
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

        let _ = writeln!(
            out,
            "# HELP ripple_zome_call_duration_seconds Zome call latency through the app websocket.\n\
             # TYPE ripple_zome_call_duration_seconds histogram"
        );
        let Ok(calls) = self.zome_calls.lock() else { return out };
        for ((zome, function), h) in calls.iter() {
            let labels = format!("zome=\"{zome}\",fn=\"{function}\"");
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(out, "ripple_zome_call_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "ripple_zome_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "ripple_zome_call_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "ripple_zome_call_duration_seconds_count{{{labels}}} {}", h.count);
        }
        let _ = writeln!(
            out,
            "# HELP ripple_zome_call_errors Zome calls that returned an error.\n# TYPE ripple_zome_call_errors counter"
        );
        for ((zome, function), h) in calls.iter() {
            let _ = writeln!(out, "ripple_zome_call_errors{{zome=\"{zome}\",fn=\"{function}\"}} {}", h.errors);
        }
        out
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
        assert!(text.contains("ripple_peers 2"));
        assert!(!text.contains("ripple_conductor_rss_bytes "), "attached: the conductor's memory is not ours");
        assert!(!text.contains("ripple_online_peers"));
    }
}
