//! The node agent: turns a hardware probe into this node's advert, republishes it when it changes,
//! beats at the network's pace, and says `offline` on the way out.
pub mod cadence;
pub mod declared;
pub mod liveness;
pub mod probe;
pub mod swim;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use agent_registry_types::{
    AdvertRecord, Availability, Compute, HardwareClass, HeartbeatSample, Inference, Memory, Network, NodeAdvert,
    PublishProgress, RegistryProperties, Storage,
};
use holochain_types::prelude::{ActionHash, Timestamp};

use crate::mesh::{unix_ms, Mesh, MeshError, PRIMARY_ROLE};
use cadence::{BeatReason, Cadence, LoadBand};
use probe::{Probe, ProbeSources};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("heartbeat_secs = {configured}: {reason}")]
    HeartbeatPeriod { configured: u32, reason: String },
    #[error("the advert built from this node's probe and config is invalid: {0}")]
    InvalidAdvert(String),
}

/// How long a stopping node waits for validators to acknowledge its last writes.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);
/// The shortest settle or repair grace a policy may set (memory_policy `settle_seconds`,
/// storage_policy `grace_seconds`): the liveness protocol sees a restarted node back within
/// seconds, and a shorter window would move work off a node that is only restarting.
pub const MIN_DEPARTURE_WINDOW_SECS: u32 = 10;
/// How often the node samples its load to see whether a beat is due (at most: the cadence, when
/// it is shorter).
const LOAD_CHECK_EVERY: Duration = Duration::from_secs(15);

/// What the operator configured about this node (the rest comes from the probe).
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub data_dir: PathBuf,
    pub agent_name: String,
    pub hardware_class: Option<HardwareClass>,
    pub region: String,
    pub bandwidth_mbps: u32,
    pub heartbeat_secs: Option<u32>,
    pub advert_refresh: Duration,
    pub sources: ProbeSources,
    /// Where other nodes' sidecars reach this one's peer routes (its peer listener, or the loopback
    /// API for nodes on one machine): the inference endpoint the advert names, since peers ask this
    /// node's sidecar, never its LocalAI port. Set when the API is bound.
    pub peer_endpoint: Option<String>,
    pub max_batch_size: u32,
    pub tokens_per_second: u32,
    pub vector_shards: u32,
    pub redis_memory_gb: u32,
    pub s3_available_gb: u64,
    /// How the mesh view keeps itself current.
    pub view: view::ViewSettings,
}

/// The node agent's view of itself, as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeState {
    pub advert: Option<AdvertRecord>,
    pub probe: Option<Probe>,
    pub heartbeat_period_secs: u32,
    pub heartbeat_bucket_secs: u32,
    pub heartbeats_sent: u64,
    /// Of those, beats for a change of load band (the rest keep the cadence).
    pub load_band_beats: u64,
    pub heartbeat_failures: u64,
    pub last_heartbeat_ms: Option<i64>,
    pub last_error: Option<String>,
    #[serde(skip)]
    last_heartbeat_at: Option<Instant>,
    /// When this run published `advert` (none if it found the DHT's version current).
    #[serde(skip)]
    advert_published_at: Option<Timestamp>,
}

pub struct NodeAgent {
    mesh: Arc<Mesh>,
    /// Changed by `reconfigure` (MCP `holochain.register_node`, a repeated `join_mesh`).
    settings: Mutex<NodeSettings>,
    period: Duration,
    cadence: Mutex<Cadence>,
    seq: Mutex<u64>,
    /// Kept between samples: CPU usage is measured over the interval between two refreshes.
    system: Mutex<sysinfo::System>,
    /// GPU utilisation as of the last heartbeat.
    gpu_percent: Mutex<Option<u8>>,
    /// Held by every write to this node's agent_registry chain. The conductor refuses a commit
    /// whose chain head moved meanwhile, and adverts (MCP, refresh loop) and heartbeats race.
    chain: tokio::sync::Mutex<()>,
    state: Mutex<NodeState>,
}

/// Result of `advert refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvertRefresh {
    /// False when the probe found nothing new, so nothing was written.
    pub changed: bool,
    pub advert: AdvertRecord,
}

impl NodeAgent {
    /// Reads the network's heartbeat timing, publishes the advert if the DHT's differs from the
    /// probe, and writes the first heartbeat.
    pub async fn start(mesh: Arc<Mesh>, settings: NodeSettings) -> Result<Arc<Self>, NodeError> {
        let timing: RegistryProperties = mesh.call(PRIMARY_ROLE, "heartbeat", "get_heartbeat_settings", &()).await?;
        let period = heartbeat_period(&timing, settings.heartbeat_secs)?;
        let every = Duration::from_secs(period.into());
        let current: Option<AdvertRecord> = mesh.call(PRIMARY_ROLE, "capabilities", "get_my_node_advert", &()).await?;
        let state = NodeState {
            advert: current,
            heartbeat_period_secs: period,
            heartbeat_bucket_secs: timing.heartbeat_bucket_secs,
            ..Default::default()
        };
        let agent = Arc::new(Self {
            mesh,
            settings: Mutex::new(settings),
            period: every,
            cadence: Mutex::new(Cadence::new(
                every,
                Duration::from_secs(timing.heartbeat_min_interval_secs.into()),
                load_check_every(every),
                Instant::now(),
            )),
            seq: Mutex::new(0),
            system: Mutex::new(sysinfo::System::new()),
            gpu_percent: Mutex::new(None),
            chain: tokio::sync::Mutex::new(()),
            state: Mutex::new(state),
        });
        agent.refresh_advert().await?;
        agent.beat_if_due().await;
        Ok(agent)
    }

    pub fn state(&self) -> NodeState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The advert this run published and when, for members that may have missed its signal.
    pub fn published_advert(&self) -> Option<(Timestamp, NodeAdvert)> {
        let state = self.state.lock().ok()?;
        Some((state.advert_published_at?, state.advert.as_ref()?.advert.clone()))
    }

    pub fn heartbeat_age(&self) -> Option<Duration> {
        self.state.lock().ok()?.last_heartbeat_at.map(|t| t.elapsed())
    }

    pub fn settings(&self) -> NodeSettings {
        match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `change` to the settings the advert is built from, then probes and republishes
    /// if the advert differs. Settings that would make an invalid advert are not kept.
    pub async fn reconfigure(&self, change: &(dyn Fn(&mut NodeSettings) + Sync)) -> Result<AdvertRefresh, NodeError> {
        let before = self.settings();
        let mut after = before.clone();
        change(&mut after);
        if let Ok(mut s) = self.settings.lock() {
            *s = after;
        }
        let result = self.refresh_advert().await;
        if result.is_err() {
            if let Ok(mut s) = self.settings.lock() {
                *s = before;
            }
        }
        result
    }

    /// Probes again and republishes the advert (availability online) if anything changed.
    pub async fn refresh_advert(&self) -> Result<AdvertRefresh, NodeError> {
        let settings = self.settings();
        let probe = probe::probe(&settings.data_dir, &settings.sources).await;
        let mut advert = build_advert(&settings, &probe, Availability::Online);
        if let Ok(mut state) = self.state.lock() {
            state.probe = Some(probe);
            if let Some(published) = &state.advert {
                let (old, new) = (&published.advert.storage, &mut advert.storage);
                new.local_ssd_gb = steady(old.local_ssd_gb, new.local_ssd_gb);
                new.ipfs_pinned_gb = steady(old.ipfs_pinned_gb, new.ipfs_pinned_gb);
            }
        }
        self.publish_if_changed(advert).await
    }

    /// Marks this node offline in its advert (on a clean shutdown).
    pub async fn go_offline(&self) -> Result<AdvertRefresh, NodeError> {
        let advert = self.state.lock().ok().and_then(|s| s.advert.clone()).map(|r| r.advert);
        let Some(mut advert) = advert else {
            return Err(NodeError::InvalidAdvert("no advert was published, so none to mark offline".into()));
        };
        advert.availability = Availability::Offline;
        let refresh = self.publish_if_changed(advert).await?;
        // A node without peers has nobody to publish to: don't wait for receipts that cannot come.
        let has_peers = self.mesh.network_view().await.is_ok_and(|view| view.peer_count > 0);
        if refresh.changed && has_peers {
            self.await_published(&refresh.advert.version).await;
        }
        Ok(refresh)
    }

    /// Waits (bounded) until validators acknowledge everything written since `since`: a node
    /// that stops right after writing would otherwise take its last update down with it.
    async fn await_published(&self, since: &ActionHash) {
        let deadline = Instant::now() + PUBLISH_WAIT;
        loop {
            let progress: Result<PublishProgress, _> =
                self.mesh.call(PRIMARY_ROLE, "capabilities", "get_publish_progress", since).await;
            match progress {
                Ok(p) if p.acknowledged >= p.actions => return,
                Ok(p) if Instant::now() > deadline => {
                    tracing::warn!(
                        "stopping with {} of {} actions acknowledged by validators",
                        p.acknowledged,
                        p.actions
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot read publish progress: {e}");
                    return;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn publish_if_changed(&self, advert: NodeAdvert) -> Result<AdvertRefresh, NodeError> {
        advert.check().map_err(|e| NodeError::InvalidAdvert(e.to_string()))?;
        let _chain = self.chain.lock().await;
        let current = self.state.lock().ok().and_then(|s| s.advert.clone());
        if let Some(current) = current.filter(|c| c.advert == advert) {
            return Ok(AdvertRefresh { changed: false, advert: current });
        }
        let record: AdvertRecord = self.mesh.call(PRIMARY_ROLE, "capabilities", "publish_node_advert", &advert).await?;
        if let Ok(mut state) = self.state.lock() {
            state.advert = Some(record.clone());
            state.advert_published_at = Some(Timestamp::now());
        }
        tracing::info!(version = %record.version, "advert published");
        Ok(AdvertRefresh { changed: true, advert: record })
    }

    /// This node's load now: CPU and memory measured since the previous sample, and the GPU
    /// utilisation of the last load check (reading it runs `nvidia-smi`). The liveness protocol
    /// carries it on every message.
    pub fn load_sample(&self) -> HeartbeatSample {
        let seq = self.seq.lock().map(|s| *s).unwrap_or(0);
        let (cpu_percent, memory_percent) = self.system.lock().map_or((0, 0), |mut s| {
            s.refresh_cpu_usage();
            s.refresh_memory();
            (
                percent(f64::from(s.global_cpu_usage())),
                percent(100.0 * s.used_memory() as f64 / s.total_memory().max(1) as f64),
            )
        });
        let gpu_percent = self.gpu_percent.lock().ok().and_then(|g| *g);
        HeartbeatSample { seq, cpu_percent, gpu_percent, memory_percent, availability: Availability::Online }
    }

    /// Samples the load (the GPU's too) and writes a heartbeat if one is due: the cadence's, or
    /// a load-band change's. Failures are counted and kept for `/status`.
    pub async fn beat_if_due(&self) {
        let has_gpus = self.state.lock().is_ok_and(|s| s.probe.as_ref().is_some_and(|p| !p.gpus.is_empty()));
        if has_gpus {
            let gpu_percent = probe::nvidia_utilisation().await;
            if let Ok(mut g) = self.gpu_percent.lock() {
                *g = gpu_percent;
            }
        }
        let sample = self.load_sample();
        let band = LoadBand::of(&sample);
        let now = Instant::now();
        let Some(reason) = self.cadence.lock().ok().and_then(|mut c| c.due(band, now)) else { return };
        let sample = HeartbeatSample { seq: self.next_seq(), ..sample };
        let result: Result<ActionHash, _> = {
            let _chain = self.chain.lock().await;
            self.mesh.call(PRIMARY_ROLE, "heartbeat", "heartbeat", &sample).await
        };
        if let Ok(mut cadence) = self.cadence.lock() {
            match &result {
                Ok(_) => cadence.wrote(reason, band, Instant::now()),
                Err(_) => cadence.failed(Instant::now()),
            }
        }
        let Ok(mut state) = self.state.lock() else { return };
        match result {
            Ok(_) => {
                state.heartbeats_sent += 1;
                state.load_band_beats += u64::from(reason == BeatReason::LoadBand);
                state.last_heartbeat_ms = Some(unix_ms());
                state.last_heartbeat_at = Some(Instant::now());
                state.last_error = None;
            }
            Err(e) => {
                tracing::warn!("heartbeat failed: {e}");
                state.heartbeat_failures += 1;
                state.last_error = Some(e.to_string());
            }
        }
    }

    fn next_seq(&self) -> u64 {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        *seq
    }

    /// Beats when due (checked every `LOAD_CHECK_EVERY`) and re-probes every `advert_refresh`
    /// until `stop` fires.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let check_every = load_check_every(self.period);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        let refresh_every = self.settings().advert_refresh;
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + refresh_every, refresh_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = beat.tick() => self.beat_if_due().await,
                _ = refresh.tick() => {
                    if let Err(e) = self.refresh_advert().await {
                        tracing::warn!("advert refresh failed: {e}");
                        if let Ok(mut state) = self.state.lock() {
                            state.last_error = Some(e.to_string());
                        }
                    }
                }
            }
        }
    }
}

/// How much sooner than a whole bucket a node beats by default: room, inside the online window,
/// for a failed write's retries (one a minute), the load check's interval, the beat's way to its
/// readers and clock skew.
const BEAT_MARGIN_SECS: u32 = 600;

/// The default heartbeat period: a bucket less `BEAT_MARGIN_SECS` (3,000 s on the pinned
/// networks' 3,600 s buckets), at least half a bucket, never faster than the network allows
/// (HB4). Beats at most a bucket apart keep a live node in the online window (current or previous
/// bucket), and every holder keeps each beat forever, so the cadence is as slow as that allows:
/// the storage budget in docs/reliability.md.
pub fn default_heartbeat_secs(timing: &RegistryProperties) -> u32 {
    let bucket = timing.heartbeat_bucket_secs;
    bucket.saturating_sub(BEAT_MARGIN_SECS).max(bucket / 2).max(timing.heartbeat_min_interval_secs + 1)
}

/// The most heartbeats a node writes a day at the default period, restarts aside: the cadence's
/// and the load-band allowance's.
pub fn max_beats_a_day(timing: &RegistryProperties) -> f64 {
    86_400.0 / f64::from(default_heartbeat_secs(timing)) + f64::from(cadence::LOAD_BEATS_PER_DAY)
}

/// The configured period, checked against the network's window, or the default.
fn heartbeat_period(timing: &RegistryProperties, configured: Option<u32>) -> Result<u32, NodeError> {
    let min = timing.heartbeat_min_interval_secs;
    let bucket = timing.heartbeat_bucket_secs;
    match configured {
        None => Ok(default_heartbeat_secs(timing)),
        Some(secs) if secs <= min => Err(NodeError::HeartbeatPeriod {
            configured: secs,
            reason: format!("the network rejects heartbeats closer than {min} s (heartbeat_min_interval_secs); use more"),
        }),
        Some(secs) if secs >= bucket => Err(NodeError::HeartbeatPeriod {
            configured: secs,
            reason: format!("must be shorter than the network's {bucket} s heartbeat bucket, or the node drops out of the online window"),
        }),
        Some(secs) => Ok(secs),
    }
}

/// How often the node samples its load to see whether a beat is due.
fn load_check_every(cadence: Duration) -> Duration {
    LOAD_CHECK_EVERY.min(cadence)
}

fn percent(value: f64) -> u8 {
    value.round().clamp(0.0, 100.0) as u8
}

/// Free space moves all the time; keep the published figure while it is within 10 %, so the
/// advert is not rewritten (and re-indexed) for noise.
fn steady(published: u64, probed: u64) -> u64 {
    if published.abs_diff(probed) * 10 <= published {
        published
    } else {
        probed
    }
}

/// The advert for this node: probe results plus configured facts.
pub fn build_advert(settings: &NodeSettings, probe: &Probe, availability: Availability) -> NodeAdvert {
    NodeAdvert {
        agent_name: settings.agent_name.clone(),
        hardware_class: settings.hardware_class.unwrap_or(probe.hardware_class_guess),
        compute: Compute {
            cpu_cores: probe.cpu_cores,
            cpu_arch: probe.cpu_arch.clone(),
            ram_gb: probe.ram_gb,
            gpus: probe.gpus.clone(),
        },
        storage: Storage {
            local_ssd_gb: probe.disk_free_gb,
            ipfs_pinned_gb: probe.ipfs_repo_gb.unwrap_or(0),
            s3_available_gb: settings.s3_available_gb,
        },
        inference: Inference {
            models_loaded: probe.models_loaded.clone(),
            max_batch_size: settings.max_batch_size,
            tokens_per_second: settings.tokens_per_second,
            endpoint: settings.sources.localai_url.as_ref().and(settings.peer_endpoint.clone()),
        },
        memory: Memory { vector_shards: settings.vector_shards, redis_memory_gb: settings.redis_memory_gb },
        network: Network { bandwidth_mbps: settings.bandwidth_mbps, region: settings.region.clone() },
        availability,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(bucket: u32, min: u32) -> RegistryProperties {
        RegistryProperties { heartbeat_bucket_secs: bucket, heartbeat_min_interval_secs: min, ..Default::default() }
    }

    #[test]
    fn storage_noise_does_not_rewrite_the_advert() {
        assert_eq!(steady(100, 95), 100);
        assert_eq!(steady(100, 110), 100);
        assert_eq!(steady(100, 80), 80);
        assert_eq!(steady(0, 1), 1);
    }

    #[test]
    fn the_default_period_leaves_ten_minutes_of_a_bucket_but_never_below_half_or_the_minimum() {
        assert_eq!(heartbeat_period(&timing(3600, 30), None).unwrap(), 3000, "the pinned networks' bucket");
        assert_eq!(heartbeat_period(&timing(7200, 30), None).unwrap(), 6600);
        assert_eq!(heartbeat_period(&timing(1200, 30), None).unwrap(), 600);
        assert_eq!(heartbeat_period(&timing(300, 30), None).unwrap(), 150);
        assert_eq!(heartbeat_period(&timing(10, 2), None).unwrap(), 5);
        assert_eq!(heartbeat_period(&timing(40, 30), None).unwrap(), 31);
    }

    #[test]
    fn a_node_on_a_pinned_network_writes_at_most_41_beats_a_day_before_restarts() {
        let beats = max_beats_a_day(&RegistryProperties::default());
        assert!((beats - 40.8).abs() < 1e-9, "{beats}");
    }

    #[test]
    fn a_configured_period_outside_the_window_is_refused_with_the_reason() {
        let fast = heartbeat_period(&timing(300, 30), Some(30)).unwrap_err().to_string();
        assert!(fast.contains("heartbeat_secs = 30") && fast.contains("closer than 30 s"), "{fast}");
        let slow = heartbeat_period(&timing(300, 30), Some(300)).unwrap_err().to_string();
        assert!(slow.contains("300 s heartbeat bucket"), "{slow}");
        assert_eq!(heartbeat_period(&timing(300, 30), Some(60)).unwrap(), 60);
    }
}
