//! When this node writes a DHT heartbeat. Every beat is kept forever on every node holding the
//! registry (Holochain has no TTL), so beats are few: one at start, one every cadence (a bucket
//! less ten minutes by default, so a live node never leaves the DHT rule's online window), and one when the
//! node's load moves to another band, drawn from a small daily allowance. The liveness protocol
//! carries the live load on every message; the DHT beat is the durable record
//! (docs/reliability.md, "The DHT heartbeat").
use std::time::{Duration, Instant};

use agent_registry_types::HeartbeatSample;
use serde::{Deserialize, Serialize};

/// Beats for a load-band change a node may write a day, on top of its cadence.
pub const LOAD_BEATS_PER_DAY: u32 = 12;
/// How many of them may come back to back (a node that goes busy, then idle again).
const LOAD_BEAT_BURST: f64 = 2.0;
/// After a failed write, the next try waits this long (or the cadence, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// Coarse load: each of CPU, GPU and memory is idle (< 50 %), busy (< 90 %) or saturated.
/// Readers that place work care about these steps, not about each percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBand([u8; 3]);

impl LoadBand {
    pub fn of(sample: &HeartbeatSample) -> Self {
        let band = |p: u8| match p {
            0..50 => 0,
            50..90 => 1,
            _ => 2,
        };
        Self([band(sample.cpu_percent), sample.gpu_percent.map_or(0, band), band(sample.memory_percent)])
    }
}

/// Why a beat is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeatReason {
    Cadence,
    LoadBand,
}

/// The schedule: when the next beat is due and whether a band change may have one now.
#[derive(Debug)]
pub struct Cadence {
    every: Duration,
    /// Half the interval the caller checks at: a beat due between two checks goes at the nearer
    /// one, so a cadence that is a whole number of checks is kept, not stretched by one.
    slack: Duration,
    /// The network's minimum spacing (HB4), plus a second for clock skew between sidecar and host.
    min_gap: Duration,
    load_beats: f64,
    refilled_at: Instant,
    last_beat: Option<(Instant, LoadBand)>,
    retry_at: Option<Instant>,
}

impl Cadence {
    pub fn new(every: Duration, min_interval: Duration, check_every: Duration, now: Instant) -> Self {
        Self {
            every,
            slack: check_every / 2,
            min_gap: min_interval + Duration::from_secs(1),
            load_beats: LOAD_BEAT_BURST,
            refilled_at: now,
            last_beat: None,
            retry_at: None,
        }
    }

    /// Whether to beat now, with `band` the node's load band at `now`.
    pub fn due(&mut self, band: LoadBand, now: Instant) -> Option<BeatReason> {
        self.refill(now);
        if self.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        let Some((at, beat_band)) = self.last_beat else { return Some(BeatReason::Cadence) };
        let since = now.saturating_duration_since(at);
        if since < self.min_gap {
            None // HB4 would refuse it, whatever is due
        } else if since + self.slack >= self.every {
            Some(BeatReason::Cadence)
        } else if band != beat_band && self.load_beats >= 1.0 {
            Some(BeatReason::LoadBand)
        } else {
            None
        }
    }

    /// A beat was written: the cadence counts from it. `now` is when the write returned, not
    /// when it was asked for: a write that waited for the chain is dated when it committed.
    pub fn wrote(&mut self, reason: BeatReason, band: LoadBand, now: Instant) {
        if reason == BeatReason::LoadBand {
            self.load_beats -= 1.0;
        }
        self.last_beat = Some((now, band));
        self.retry_at = None;
    }

    /// A write failed: try again after a pause, not at every check.
    pub fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + RETRY_AFTER.min(self.every));
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let earned = elapsed.as_secs_f64() * f64::from(LOAD_BEATS_PER_DAY) / DAY.as_secs_f64();
        self.load_beats = (self.load_beats + earned).min(LOAD_BEAT_BURST);
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_registry_types::Availability;

    fn band(cpu: u8) -> LoadBand {
        LoadBand::of(&HeartbeatSample {
            seq: 1,
            cpu_percent: cpu,
            gpu_percent: None,
            memory_percent: 20,
            availability: Availability::Online,
        })
    }

    const MIN: Duration = Duration::from_secs(30);
    const EVERY: Duration = Duration::from_secs(3000);
    const CHECK: Duration = Duration::from_secs(15);

    #[test]
    fn bands_move_only_at_their_edges() {
        assert_eq!(band(0), band(49));
        assert_ne!(band(49), band(50));
        assert_eq!(band(50), band(89));
        assert_ne!(band(89), band(90));
        assert_eq!(band(90), band(100));
    }

    #[test]
    fn the_first_beat_is_due_at_once_then_every_cadence() {
        let start = Instant::now();
        let mut cadence = Cadence::new(EVERY, MIN, CHECK, start);
        assert_eq!(cadence.due(band(10), start), Some(BeatReason::Cadence));
        cadence.wrote(BeatReason::Cadence, band(10), start);
        assert_eq!(cadence.due(band(10), start + EVERY - CHECK), None);
        // A check a moment early still keeps the cadence, or every beat would slip a check late.
        let early = start + EVERY - Duration::from_millis(5);
        assert_eq!(cadence.due(band(10), early), Some(BeatReason::Cadence));
    }

    #[test]
    fn a_band_change_beats_early_but_not_closer_than_the_network_allows() {
        let start = Instant::now();
        let mut cadence = Cadence::new(EVERY, MIN, CHECK, start);
        cadence.wrote(BeatReason::Cadence, band(10), start);
        assert_eq!(cadence.due(band(60), start + MIN), None, "HB4 would refuse it");
        let later = start + MIN + Duration::from_secs(1);
        assert_eq!(cadence.due(band(60), later), Some(BeatReason::LoadBand));
        cadence.wrote(BeatReason::LoadBand, band(60), later);
        assert_eq!(cadence.due(band(70), later + Duration::from_secs(600)), None, "same band: nothing new");
    }

    /// A node whose load swings all day writes its cadence plus the allowance, no more: the
    /// bound the storage formula in docs/reliability.md rests on.
    #[test]
    fn a_load_that_swings_all_day_stays_within_the_daily_allowance() {
        let start = Instant::now();
        let mut cadence = Cadence::new(EVERY, MIN, CHECK, start);
        let mut beats = 0;
        let mut t = Duration::ZERO;
        while t < DAY {
            let now = start + t;
            let b = band(if (t.as_secs() / 60).is_multiple_of(2) { 10 } else { 95 });
            if let Some(reason) = cadence.due(b, now) {
                cadence.wrote(reason, b, now);
                beats += 1;
            }
            t += Duration::from_secs(15);
        }
        let cadence_beats = (DAY.as_secs() / EVERY.as_secs()) as u32;
        assert!(beats <= cadence_beats + LOAD_BEATS_PER_DAY + 2, "{beats} beats in a day");
        assert!(beats > cadence_beats, "band changes did beat: {beats}");
    }

    /// A cadence just above the minimum spacing, checked coarsely: the slack that keeps the
    /// cadence must not pull a beat inside HB4's spacing.
    #[test]
    fn a_cadence_beat_never_comes_closer_than_the_network_allows() {
        let start = Instant::now();
        let every = MIN + Duration::from_secs(1);
        let mut cadence = Cadence::new(every, MIN, CHECK, start);
        cadence.wrote(BeatReason::Cadence, band(10), start);
        assert_eq!(cadence.due(band(10), start + every - CHECK / 2), None, "inside HB4's spacing");
        assert_eq!(cadence.due(band(10), start + MIN + Duration::from_secs(1)), Some(BeatReason::Cadence));
    }

    #[test]
    fn a_failed_write_is_retried_after_a_pause() {
        let start = Instant::now();
        let mut cadence = Cadence::new(EVERY, MIN, CHECK, start);
        cadence.failed(start);
        assert_eq!(cadence.due(band(10), start + Duration::from_secs(59)), None);
        assert_eq!(cadence.due(band(10), start + RETRY_AFTER), Some(BeatReason::Cadence));
    }
}
