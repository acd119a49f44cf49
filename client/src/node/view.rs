//! The mesh view: this node's one live model of who is on the mesh (every node's advert, its
//! newest heartbeat, and from those whether it is online), held in memory and answered from
//! memory, with, once the scheduler asks, every node's resource offer and the capacity in use on
//! it. It is the only reader of the discovery zome; `/peers`, `holochain.query_peers`, the
//! scheduler, inference routing, shard placement, artifact repair, peer checks and metrics all
//! read it, so they agree on one definition of "online" ([`PeerState`]).
//!
//! Three feeds keep it current, each covering what the one before can miss:
//! - **signals**, applied as they arrive: this node's own heartbeats and advert changes, and other
//!   nodes' advert changes (remote signals the capabilities zome relays);
//! - a **catch-up read** every `catch_up`, asking only for what was written since the last one
//!   (other nodes' heartbeats travel only this way), with a lookback for ops that arrive late;
//! - a **full read** on start, at every tick until the conductor has gossiped with its peers,
//!   then less and less often up to every `reconcile`; it also drops nodes no longer listed and
//!   repairs what a lost signal or a late op left out.
//!
//! Whether a node is alive comes first from the liveness protocol ([`super::liveness`]): its
//! verdict, once it has one, is seconds old. Where it has none (a node not heard from yet, or one
//! beating on the DHT that its probes cannot reach) the heartbeat rule decides, judged at the
//! moment of the last read (see [`judged_at`]): other nodes' heartbeats arrive only by reads, so
//! between two reads the view cannot tell a live node from a silent one.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use agent_registry_types::{
    AdvertSeen, Availability, DiscoveryQuery, HeartbeatSample, HeartbeatSeen, NodeAdvert, PeerRecord, RegistryChanges,
    RegistryProperties, RegistrySignal,
};
use holochain_types::prelude::{AgentPubKey, Timestamp};

use memory_shards_types::{ClaimRecord, MapRecord};
use resource_mesh_types::ProviderStatus;

use super::swim::MemberState;
use crate::mesh::{Mesh, MeshError, MeshStatus, PRIMARY_ROLE, RESOURCES_ROLE, SHARDS_ROLE};

/// How often the view reads what changed, and reads everything, by default.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(5);
pub const DEFAULT_RECONCILE: Duration = Duration::from_secs(300);
/// A catch-up asks from this long before the previous one started: ops written on another node
/// reach this one after gossip, stamped with their author's clock.
const LOOKBACK: Duration = Duration::from_secs(30);
/// How often the shard maps and their claims are read again, once anything has asked for them.
/// Claims change when a node takes or hands back a shard; a route a claim behind finds its holder
/// by liveness and asks the next. Every map's claims are read in each refresh, so every 5 s
/// catch-up would cost as much as the maps are many.
const SHARDS_REFRESH: Duration = Duration::from_secs(30);
/// Adverts read one by one per catch-up pass, at most (`MeshView::repair_missing_adverts`).
const MAX_ADVERT_REPAIRS: usize = 8;

/// How the view keeps itself current (`[node] view_catch_up_secs`, `view_signals` in ripple.toml).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewSettings {
    pub catch_up: Duration,
    pub reconcile: Duration,
    /// Apply registry signals as they arrive. Off, the view learns only from its reads.
    pub signals: bool,
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self { catch_up: DEFAULT_CATCH_UP, reconcile: DEFAULT_RECONCILE, signals: true }
    }
}

/// What state a node is in. A node is online only while it is alive (by the liveness protocol,
/// else by a heartbeat in the current or previous bucket, on this node's clock) and its advert
/// does not say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    Online,
    Offline,
    Draining,
    Maintenance,
}

impl PeerState {
    fn of(beating: bool, availability: Availability) -> Self {
        match (beating, availability) {
            (false, _) | (_, Availability::Offline) => PeerState::Offline,
            (true, Availability::Online) => PeerState::Online,
            (true, Availability::Draining) => PeerState::Draining,
            (true, Availability::Maintenance) => PeerState::Maintenance,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Online => "online",
            PeerState::Offline => "offline",
            PeerState::Draining => "draining",
            PeerState::Maintenance => "maintenance",
        }
    }
}

/// A node as the view knows it, with its state at the moment of the read.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshNode {
    pub agent: AgentPubKey,
    pub advert: Arc<NodeAdvert>,
    pub last_heartbeat: Option<HeartbeatSeen>,
    /// What the liveness protocol says of it, and the load it sent with its last message.
    pub live: Option<Live>,
    pub state: PeerState,
    pub is_self: bool,
}

/// The liveness protocol's word on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub state: MemberState,
    pub load: Option<HeartbeatSample>,
}

impl MeshNode {
    pub fn is_online(&self) -> bool {
        self.state == PeerState::Online
    }

    /// The newest load sample: the one on its last liveness message, else its newest heartbeat's.
    pub fn load(&self) -> Option<&HeartbeatSample> {
        let live = self.live.as_ref().and_then(|l| l.load.as_ref());
        live.or(self.last_heartbeat.as_ref().map(|h| &h.sample))
    }

    /// The busier of CPU and GPU in the newest load sample.
    pub fn load_percent(&self) -> Option<u8> {
        self.load().map(|s| s.cpu_percent.max(s.gpu_percent.unwrap_or(0)))
    }

    pub fn row(&self) -> PeerRow {
        PeerRow {
            agent_pubkey: self.agent.to_string(),
            state: self.state.as_str().into(),
            is_self: self.is_self,
            liveness: self.live.as_ref().map(|l| l.state),
            last_heartbeat_ms: self.last_heartbeat.as_ref().map(|h| h.at.as_millis()),
            load: self.load().cloned(),
            advert: (*self.advert).clone(),
        }
    }
}

/// `/peers` row: a node found by discovery and what state it is in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerRow {
    pub agent_pubkey: String,
    /// `online` (alive and the advert says online), `offline`, `draining`, `maintenance`.
    pub state: String,
    pub is_self: bool,
    /// The liveness protocol's word: `alive`, `suspect` (unanswering, still counted alive),
    /// `dead`, or `listed` / `unreachable` (not heard, so the heartbeat rule decides). None for
    /// this node itself and where the protocol does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<MemberState>,
    pub last_heartbeat_ms: Option<i64>,
    pub load: Option<HeartbeatSample>,
    pub advert: NodeAdvert,
}

/// The view's own health, for `/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ViewReport {
    pub nodes: usize,
    pub online: usize,
    /// Since the newest successful read (catch-up or full); none before the first.
    pub age_ms: Option<u64>,
    pub last_full_read_ms_ago: Option<u64>,
    pub signals_applied: u64,
    pub catch_ups: u64,
    pub full_reads: u64,
    pub last_error: Option<String>,
    pub catch_up_secs: u64,
    pub signals: bool,
}

/// One node's entry: the newest advert and heartbeat heard of, from whichever feed.
#[derive(Debug, Clone, Default)]
struct Known {
    advert: Option<(Timestamp, Arc<NodeAdvert>)>,
    heartbeat: Option<HeartbeatSeen>,
}

impl Known {
    /// The node in its state (by the protocol's verdict, else by its heartbeats within `window`);
    /// none before its advert is known.
    fn seen(&self, agent: &AgentPubKey, window: &Window, me: &AgentPubKey, live: Option<&Live>) -> Option<MeshNode> {
        let (_, advert) = self.advert.as_ref()?;
        let last_heartbeat = self.heartbeat.clone().filter(|h| window.contains(h.at));
        let alive = live.and_then(|l| l.state.alive()).unwrap_or(last_heartbeat.is_some());
        Some(MeshNode {
            agent: agent.clone(),
            advert: advert.clone(),
            state: PeerState::of(alive, advert.availability),
            last_heartbeat,
            live: live.cloned(),
            is_self: agent == me,
        })
    }
}

/// What the view holds and its merge rules, apart from any I/O: tested alone, and fed directly by
/// the benchmark.
#[derive(Debug, Default)]
pub struct MeshIndex {
    known: HashMap<AgentPubKey, Known>,
    /// The liveness protocol's verdicts, kept apart: a full read's drops do not touch them.
    live: HashMap<AgentPubKey, Live>,
}

impl MeshIndex {
    /// A newer advert replaces an older one; the same moment twice changes nothing.
    fn advert(&mut self, agent: AgentPubKey, at: Timestamp, advert: NodeAdvert) -> bool {
        let known = self.known.entry(agent).or_default();
        if known.advert.as_ref().is_some_and(|(have, _)| *have >= at) {
            return false;
        }
        known.advert = Some((at, Arc::new(advert)));
        true
    }

    /// A newer heartbeat replaces an older one.
    fn heartbeat(&mut self, seen: HeartbeatSeen) -> bool {
        let known = self.known.entry(seen.agent.clone()).or_default();
        if known.heartbeat.as_ref().is_some_and(|have| have.at >= seen.at) {
            return false;
        }
        known.heartbeat = Some(seen);
        true
    }

    /// A catch-up read's changes, each merged by the rules above.
    pub fn merge(&mut self, changes: RegistryChanges) {
        for AdvertSeen { agent, at, advert, .. } in changes.adverts {
            self.advert(agent, at, advert);
        }
        for seen in changes.heartbeats {
            self.heartbeat(seen);
        }
    }

    /// A full read: every listed node as read, and nodes it did not list dropped, except nodes it
    /// heard beating and news that arrived after the read started (a node that just joined, heard
    /// of by signal). A beating node is alive: when the read missed its advert (an update's new
    /// version not yet here while the old one's deletion is), the view keeps the version it has
    /// and `missing_adverts` names the node if it has none.
    pub fn replace(&mut self, full: RegistryChanges) {
        let listed: std::collections::HashSet<&AgentPubKey> =
            full.adverts.iter().map(|a| &a.agent).chain(full.heartbeats.iter().map(|h| &h.agent)).collect();
        let started = full.read_at;
        let live = &self.live;
        self.known.retain(|agent, known| {
            listed.contains(agent)
                // Answering probes: its listing is in flux (an advert update's delete integrated
                // before its create) and its beat late, not gone from the registry.
                || live.get(agent).is_some_and(|l| l.state == MemberState::Alive)
                || known.advert.as_ref().is_some_and(|(at, _)| *at >= started)
                || (known.advert.is_none() && known.heartbeat.as_ref().is_some_and(|h| h.at >= started))
        });
        self.merge(full);
    }

    /// Whether a node other than `me` beat at or after `since`, or the liveness protocol heard
    /// one alive (it holds verdicts of this run only), or no other node is known.
    pub fn heard_since(&self, since: Timestamp, me: &AgentPubKey) -> bool {
        let mut others = self.known.iter().filter(|(agent, known)| *agent != me && known.advert.is_some()).peekable();
        others.peek().is_none()
            || self.live.values().any(|l| l.state == MemberState::Alive)
            || others.any(|(_, known)| known.heartbeat.as_ref().is_some_and(|h| h.at >= since))
    }

    /// Nodes heard beating whose advert the view lacks: a read to repair, since catch-ups ask
    /// only for adverts written lately.
    pub fn missing_adverts(&self) -> Vec<AgentPubKey> {
        let missing = self.known.iter().filter(|(_, known)| known.advert.is_none() && known.heartbeat.is_some());
        missing.map(|(agent, _)| agent.clone()).collect()
    }

    pub fn signal(&mut self, signal: RegistrySignal) -> bool {
        match signal {
            RegistrySignal::Advert { agent, at, advert } => self.advert(agent, at, advert),
            RegistrySignal::Heartbeat { agent, at, sample } => self.heartbeat(HeartbeatSeen { agent, at, sample }),
            // The liveness service's, which tells the view its verdicts (`set_live`).
            RegistrySignal::Liveness { .. } => false,
        }
    }

    /// The liveness protocol's word on `agent`; none when it no longer knows the node.
    pub fn set_live(&mut self, agent: AgentPubKey, live: Option<Live>) {
        match live {
            Some(live) => self.live.insert(agent, live),
            None => self.live.remove(&agent),
        };
    }

    /// Every known node's newest heartbeat and whether its advert says it is active: what the
    /// liveness protocol probes.
    pub fn members(&self) -> Vec<(AgentPubKey, bool, Option<Timestamp>)> {
        self.known
            .iter()
            .filter_map(|(agent, known)| {
                let (_, advert) = known.advert.as_ref()?;
                let active = advert.availability != Availability::Offline;
                Some((agent.clone(), active, known.heartbeat.as_ref().map(|h| h.at)))
            })
            .collect()
    }

    /// Every node with an advert, in its state at `now`, matching `query`: online first, then by
    /// name and key, at most `query.limit`.
    pub fn find(
        &self,
        query: &DiscoveryQuery,
        props: &RegistryProperties,
        now: Timestamp,
        me: &AgentPubKey,
    ) -> Vec<MeshNode> {
        self.find_in(query, &Window::at(props, now, now), me)
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    fn find_in(&self, query: &DiscoveryQuery, window: &Window, me: &AgentPubKey) -> Vec<MeshNode> {
        let mut found: Vec<MeshNode> = self
            .known
            .iter()
            .filter(|(_, known)| known.advert.as_ref().is_some_and(|(_, advert)| query.matches(advert)))
            .filter_map(|(agent, known)| known.seen(agent, window, me, self.live.get(agent)))
            .filter(|node| !query.online_only || node.is_online())
            .collect();
        found.sort_by(|a, b| {
            b.is_online()
                .cmp(&a.is_online())
                .then_with(|| a.advert.agent_name.cmp(&b.advert.agent_name))
                .then_with(|| a.agent.cmp(&b.agent))
        });
        if let Some(limit) = query.limit {
            found.truncate(limit as usize);
        }
        found
    }
}

/// Heartbeat buckets in the online window: the bucket of the judged moment and the one before.
const ONLINE_BUCKETS: i64 = 2;
/// Buckets added to the online window for decisions that move work off a node
/// (`MeshView::all_with_grace`). Two: a node restarted moments ago has its beats reach its peers
/// up to ~30 s late until they re-read the bootstrap server (issue 26), and one bucket of 10 s
/// still let the mesh test's peers see it leave again right after taking its shards back.
const GRACE_BUCKETS: i64 = 2;

/// The online window: `buckets` heartbeat buckets ending with the bucket of the moment liveness
/// is judged at, up to the bucket of now (a heartbeat newer than the judged moment counts too).
struct Window {
    bucket_micros: i64,
    first_bucket: i64,
    last_bucket: i64,
}

impl Window {
    fn at(props: &RegistryProperties, judged: Timestamp, now: Timestamp) -> Self {
        Self::spanning(ONLINE_BUCKETS, props, judged, now)
    }

    fn spanning(buckets: i64, props: &RegistryProperties, judged: Timestamp, now: Timestamp) -> Self {
        Self {
            bucket_micros: props.bucket_micros(),
            first_bucket: props.bucket_of(judged) - (buckets - 1),
            last_bucket: props.bucket_of(now),
        }
    }

    fn contains(&self, at: Timestamp) -> bool {
        // The same division as `RegistryProperties::bucket_of`, without cloning the properties.
        let bucket = at.as_micros().div_euclid(self.bucket_micros);
        (self.first_bucket..=self.last_bucket).contains(&bucket)
    }
}

/// The moment a view judges liveness at: the DHT moment of its last read, because other nodes'
/// heartbeats reach it only by reads, and a node must not drop out of the window for beats the
/// view has not looked for yet (between reads a live node's newest known beat ages by up to a
/// catch-up period). Never more than two periods back, so nodes still age out while reads fail.
fn judged_at(now: Timestamp, last_read: Option<Timestamp>, catch_up: Duration) -> Timestamp {
    let floor = now.as_micros() - 2 * catch_up.as_micros() as i64;
    match last_read {
        Some(read) => Timestamp::from_micros(read.as_micros().clamp(floor, now.as_micros())),
        None => now,
    }
}

#[derive(Default)]
struct Health {
    /// The newest successful read, and the DHT moment the next catch-up asks from.
    read: Option<(Instant, Timestamp)>,
    full_read: Option<Instant>,
    signals_applied: u64,
    catch_ups: u64,
    full_reads: u64,
    last_error: Option<String>,
}

/// Every memory_shards collection and the claims on it that are not released, as of one read.
#[derive(Debug)]
pub struct ShardsSeen {
    pub maps: Vec<(MapRecord, Vec<ClaimRecord>)>,
    /// When they were read (`SHARDS_REFRESH`).
    pub read: Instant,
}

impl ShardsSeen {
    pub fn map(&self, collection: &str) -> Option<&(MapRecord, Vec<ClaimRecord>)> {
        self.maps.iter().find(|(map, _)| map.map.collection == collection)
    }
}

/// A provider's resource offer and the capacity its grants hold, and when the view read them.
struct ProviderSeen {
    read: Instant,
    status: ProviderStatus,
}

pub struct MeshView {
    mesh: Arc<Mesh>,
    props: RegistryProperties,
    settings: ViewSettings,
    nodes: RwLock<MeshIndex>,
    /// Shard maps and claims, once something asked for them: kept current with each catch-up.
    shards: RwLock<Option<Arc<ShardsSeen>>>,
    /// Resource offers and their use, by provider, read when the scheduler asks ([`Self::providers`]).
    providers: RwLock<HashMap<AgentPubKey, ProviderSeen>>,
    health: std::sync::Mutex<Health>,
    /// When this view started: news written since then shows that this node hears the mesh.
    started: Timestamp,
    /// One read of the DHT at a time: a catch-up and a full read must not interleave their cursors.
    reads: tokio::sync::Mutex<()>,
}

impl MeshView {
    /// A view that has read everything once (an unreadable DHT leaves it empty, with the error in
    /// its report; the loop tries again), and applies registry signals from now on.
    pub async fn start(mesh: Arc<Mesh>, settings: ViewSettings) -> Result<Arc<Self>, MeshError> {
        let props: RegistryProperties = mesh.call(PRIMARY_ROLE, "heartbeat", "get_heartbeat_settings", &()).await?;
        let view = Arc::new(Self {
            mesh: mesh.clone(),
            props,
            settings,
            nodes: Default::default(),
            shards: Default::default(),
            providers: Default::default(),
            health: Default::default(),
            started: Timestamp::now(),
            reads: Default::default(),
        });
        if settings.signals {
            let weak = Arc::downgrade(&view);
            mesh.on_signal(PRIMARY_ROLE, move |signal: RegistrySignal| {
                if let Some(view) = weak.upgrade() {
                    view.apply_signal(signal);
                }
            })
            .await;
        }
        // A node that restarted holds the mesh as it last saw it: the view starts from that at
        // once, since its peers may not reach it for a while (issue 26), and reads the network
        // from its first tick. A node that holds nobody else reads the network now.
        let known_locally = view.read_local().await;
        if !known_locally {
            if let Err(e) = view.read_all().await {
                tracing::warn!("the mesh view's first read failed ({e}); it tries again in {:?}", settings.catch_up);
            }
        }
        Ok(view)
    }

    /// Merges what this node's own store holds (no network); whether it names another node.
    async fn read_local(&self) -> bool {
        let local: Result<RegistryChanges, _> =
            self.mesh.call(PRIMARY_ROLE, "discovery", "read_changes_local", &None::<Timestamp>).await;
        match local {
            Ok(changes) => {
                let others = changes.adverts.iter().any(|a| a.agent != self.mesh.agent);
                if let Ok(mut nodes) = self.nodes.write() {
                    nodes.merge(changes);
                }
                others
            }
            Err(e) => {
                tracing::debug!("reading the registry from this node's own store failed: {e}");
                false
            }
        }
    }

    /// Keeps the view current until `stop` changes. Until the conductor has gossiped with its
    /// peers, every read is a full one: a catch-up only asks for what is new, and a node that just
    /// joined has yet to hear of the nodes that advertised long ago. From then on full reads come
    /// less and less often (doubling up to `reconcile`).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let period = self.settings.catch_up;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut full_every = (period * 2).min(self.settings.reconcile);
        let mut next_full = Instant::now();
        let mut synced = false;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticks.tick() => {}
            }
            let result = if !synced || Instant::now() >= next_full {
                // Connected before the read started: the read saw what gossip brought.
                let connected = self.mesh.network_view().await.is_ok_and(|v| v.mesh_status == MeshStatus::Connected);
                let result = self.read_all().await;
                if synced {
                    full_every = (full_every * 2).min(self.settings.reconcile);
                }
                synced = connected && result.is_ok();
                next_full = Instant::now() + full_every;
                result
            } else {
                self.catch_up().await
            };
            if let Err(e) = result {
                tracing::debug!("mesh view read failed: {e}");
            }
            self.repair_missing_adverts().await;
            let shards_due =
                self.shards.read().is_ok_and(|s| s.as_ref().is_some_and(|s| s.read.elapsed() >= SHARDS_REFRESH));
            if shards_due {
                if let Err(e) = self.read_shards().await {
                    tracing::debug!("mesh view: reading shard maps failed: {e}");
                }
            }
        }
    }

    /// Reads the adverts of nodes heard beating without one (at most a few per pass), one node
    /// at a time: without this a node whose advert a read missed would stay out of the view until
    /// it next changed its advert.
    async fn repair_missing_adverts(&self) {
        let missing = self.nodes.read().map(|nodes| nodes.missing_adverts()).unwrap_or_default();
        for agent in missing.into_iter().take(MAX_ADVERT_REPAIRS) {
            if let Err(e) = self.refresh(&agent).await {
                tracing::debug!("mesh view: reading the advert of {agent} failed: {e}");
            }
        }
    }

    /// A member's advert, as it says it published it (over the liveness channel); true if newer
    /// than the one the view holds. Counted by the liveness report, not as a registry signal.
    pub fn heard_advert(&self, agent: AgentPubKey, at: Timestamp, advert: NodeAdvert) -> bool {
        self.nodes.write().map(|mut nodes| nodes.signal(RegistrySignal::Advert { agent, at, advert })).unwrap_or(false)
    }

    fn apply_signal(&self, signal: RegistrySignal) -> bool {
        let applied = self.nodes.write().map(|mut nodes| nodes.signal(signal)).unwrap_or(false);
        if applied {
            self.health(|h| h.signals_applied += 1);
        }
        applied
    }

    /// Reads what was written since the previous read (everything, before the first).
    pub async fn catch_up(&self) -> Result<(), MeshError> {
        let _one = self.reads.lock().await;
        let Some(since) = self.health_read(|h| h.read.map(|(_, at)| at)) else {
            drop(_one);
            return self.read_all().await;
        };
        let since = Timestamp::from_micros(since.as_micros() - LOOKBACK.as_micros() as i64);
        let changes = self.read(Some(since)).await?;
        let read_at = changes.read_at;
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.merge(changes);
        }
        self.health(|h| {
            h.read = Some((Instant::now(), read_at));
            h.catch_ups += 1;
            h.last_error = None;
        });
        Ok(())
    }

    /// Reads every listed node and the whole online window, and drops nodes no longer listed.
    pub async fn read_all(&self) -> Result<(), MeshError> {
        let _one = self.reads.lock().await;
        let full = self.read(None).await?;
        let read_at = full.read_at;
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.replace(full);
        }
        self.health(|h| {
            h.read = Some((Instant::now(), read_at));
            h.full_read = Some(Instant::now());
            h.full_reads += 1;
            h.last_error = None;
        });
        Ok(())
    }

    async fn read(&self, since: Option<Timestamp>) -> Result<RegistryChanges, MeshError> {
        let started = Instant::now();
        let result: Result<RegistryChanges, MeshError> =
            self.mesh.call(PRIMARY_ROLE, "discovery", "read_changes", &since).await;
        let took_ms = started.elapsed().as_millis();
        match &result {
            Ok(changes) => {
                tracing::debug!(took_ms, full = since.is_none(), adverts = changes.adverts.len(), "mesh view read");
            }
            Err(e) => self.health(|h| h.last_error = Some(e.to_string())),
        }
        result
    }

    /// One node read from the DHT now (for a caller that needs fresher news of it than the view
    /// has), merged into the view. None when the node has never advertised.
    pub async fn refresh(&self, agent: &AgentPubKey) -> Result<Option<MeshNode>, MeshError> {
        let found: Option<PeerRecord> = self.mesh.call(PRIMARY_ROLE, "discovery", "get_peer", agent).await?;
        if let Some(record) = found {
            if let Ok(mut nodes) = self.nodes.write() {
                // This read gives no write time: it fills a gap, as the oldest news, and every
                // feed's later word on the node replaces it.
                nodes.advert(agent.clone(), Timestamp::from_micros(0), record.advert);
                if let Some(seen) = record.last_heartbeat {
                    nodes.heartbeat(seen);
                }
            }
        }
        Ok(self.node(agent))
    }

    /// Reads every shard map and its claims now, and keeps them current from here on.
    pub async fn read_shards(&self) -> Result<Arc<ShardsSeen>, MeshError> {
        let maps: Vec<MapRecord> = self.mesh.call(SHARDS_ROLE, "shards", "list_maps", &()).await?;
        let ids: Vec<_> = maps.iter().map(|m| m.map_id.clone()).collect();
        let claims: Vec<Vec<ClaimRecord>> = self.mesh.call(SHARDS_ROLE, "routing", "get_claims_of", &ids).await?;
        let seen = Arc::new(ShardsSeen { maps: maps.into_iter().zip(claims).collect(), read: Instant::now() });
        if let Ok(mut slot) = self.shards.write() {
            *slot = Some(seen.clone());
        }
        Ok(seen)
    }

    /// The shard maps and claims as of the view's last read of them (read now, the first time).
    pub async fn shards(&self) -> Result<Arc<ShardsSeen>, MeshError> {
        match self.shards.read().ok().and_then(|s| s.clone()) {
            Some(seen) => Ok(seen),
            None => self.read_shards().await,
        }
    }

    /// Every known node with its resource offer and the capacity in use on it: the scheduler's
    /// candidates. A provider's status is reused for one catch-up period and read again after
    /// that, the stale ones in one call. Capacity changes with every grant, so the scheduler
    /// refreshes a provider once it has answered ([`Self::refresh_provider`]); a status that is
    /// stale meanwhile costs at most one rejected request.
    pub async fn providers(&self) -> Result<Vec<(MeshNode, ProviderStatus)>, MeshError> {
        let nodes = self.all();
        let stale: Vec<AgentPubKey> = {
            let seen = self.providers.read().unwrap_or_else(|p| p.into_inner());
            nodes
                .iter()
                .filter(|n| seen.get(&n.agent).is_none_or(|p| p.read.elapsed() >= self.settings.catch_up))
                .map(|n| n.agent.clone())
                .collect()
        };
        if !stale.is_empty() {
            self.read_providers(stale).await?;
        }
        let seen = self.providers.read().unwrap_or_else(|p| p.into_inner());
        Ok(nodes
            .into_iter()
            .filter_map(|node| {
                let status = seen.get(&node.agent)?.status.clone();
                Some((node, status))
            })
            .collect())
    }

    /// Applies what this node learnt of a provider's use before the DHT tells it (a release the
    /// provider confirmed), until the provider's status is read again.
    pub fn amend_provider(&self, agent: &AgentPubKey, amend: impl FnOnce(&mut ProviderStatus)) {
        if let Some(seen) = self.providers.write().unwrap_or_else(|p| p.into_inner()).get_mut(agent) {
            amend(&mut seen.status);
        }
    }

    /// One provider's offer and use read again now (after it granted or rejected a request).
    pub async fn refresh_provider(&self, agent: &AgentPubKey) -> Result<(), MeshError> {
        self.read_providers(vec![agent.clone()]).await
    }

    async fn read_providers(&self, agents: Vec<AgentPubKey>) -> Result<(), MeshError> {
        let statuses: Vec<ProviderStatus> =
            self.mesh.call(RESOURCES_ROLE, "resources", "get_provider_statuses", &agents).await?;
        let read = Instant::now();
        let mut seen = self.providers.write().unwrap_or_else(|p| p.into_inner());
        for status in statuses {
            seen.insert(status.provider.clone(), ProviderSeen { read, status });
        }
        Ok(())
    }

    /// Every known node matching `query`, online first.
    pub fn find(&self, query: &DiscoveryQuery) -> Vec<MeshNode> {
        self.find_in_window(query, &self.window(ONLINE_BUCKETS))
    }

    /// Every known node, `online` counted over `GRACE_BUCKETS` more than the online window:
    /// for decisions that move work off a node (shard placement), which should act only once a
    /// node has certainly gone, not when its beats are a few seconds late (a busy or just
    /// restarted node's heartbeats can reach its peers only by gossip). The same rule on every
    /// node from the same heartbeats, so nodes still agree.
    pub fn all_with_grace(&self) -> Vec<MeshNode> {
        self.find_in_window(&DiscoveryQuery::default(), &self.window(ONLINE_BUCKETS + GRACE_BUCKETS))
    }

    fn find_in_window(&self, query: &DiscoveryQuery, window: &Window) -> Vec<MeshNode> {
        self.nodes.read().map(|nodes| nodes.find_in(query, window, &self.mesh.agent)).unwrap_or_default()
    }

    fn window(&self, buckets: i64) -> Window {
        let now = Timestamp::now();
        let last_read = self.health_read(|h| h.read.map(|(_, at)| at));
        Window::spanning(buckets, &self.props, judged_at(now, last_read, self.settings.catch_up), now)
    }

    /// Whether this node may act on its picture of the mesh: since this view started it has
    /// read a heartbeat another node wrote, or it knows of no other node. A node just restarted
    /// holds what its store had when it stopped; until news from its peers reaches it, their
    /// beats age out of its view and it would see itself alone.
    pub fn has_heard_the_mesh(&self) -> bool {
        self.nodes.read().is_ok_and(|nodes| nodes.heard_since(self.started, &self.mesh.agent))
    }

    /// The liveness protocol's word on `agent` (none: it no longer knows the node).
    pub fn set_live(&self, agent: AgentPubKey, live: Option<Live>) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.set_live(agent, live);
        }
    }

    /// Every node with an advert, whether it says it is active, and its newest heartbeat: the
    /// liveness protocol's members.
    pub fn members(&self) -> Vec<(AgentPubKey, bool, Option<Timestamp>)> {
        self.nodes.read().map(|nodes| nodes.members()).unwrap_or_default()
    }

    /// Every known node.
    pub fn all(&self) -> Vec<MeshNode> {
        self.find(&DiscoveryQuery::default())
    }

    /// Every online node.
    pub fn online(&self) -> Vec<MeshNode> {
        self.find(&DiscoveryQuery { online_only: true, ..Default::default() })
    }

    /// `find` as `/peers` rows.
    pub fn rows(&self, query: &DiscoveryQuery) -> Vec<PeerRow> {
        self.find(query).iter().map(MeshNode::row).collect()
    }

    /// One node, if the view knows its advert.
    pub fn node(&self, agent: &AgentPubKey) -> Option<MeshNode> {
        let window = self.window(ONLINE_BUCKETS);
        let nodes = self.nodes.read().ok()?;
        nodes.known.get(agent)?.seen(agent, &window, &self.mesh.agent, nodes.live.get(agent))
    }

    /// Whether `agent` has an advert on this network (only admitted agents can write one): the
    /// view's word, or for a node it has not heard of yet (one that just joined), a read of that
    /// node from the DHT.
    pub async fn is_member(&self, agent: &AgentPubKey) -> Result<bool, MeshError> {
        Ok(self.node(agent).is_some() || self.refresh(agent).await?.is_some())
    }

    /// Since the newest successful read.
    pub fn age(&self) -> Option<Duration> {
        self.health_read(|h| h.read.map(|(at, _)| at.elapsed()))
    }

    pub fn report(&self) -> ViewReport {
        let all = self.all();
        let ms = |d: Duration| d.as_millis() as u64;
        self.health_read(|h| ViewReport {
            nodes: all.len(),
            online: all.iter().filter(|n| n.is_online()).count(),
            age_ms: h.read.map(|(at, _)| ms(at.elapsed())),
            last_full_read_ms_ago: h.full_read.map(|at| ms(at.elapsed())),
            signals_applied: h.signals_applied,
            catch_ups: h.catch_ups,
            full_reads: h.full_reads,
            last_error: h.last_error.clone(),
            catch_up_secs: self.settings.catch_up.as_secs(),
            signals: self.settings.signals,
        })
    }

    fn health(&self, change: impl FnOnce(&mut Health)) {
        change(&mut self.health.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn health_read<T>(&self, read: impl FnOnce(&Health) -> T) -> T {
        read(&self.health.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET_SECS: u32 = 60;

    fn props() -> RegistryProperties {
        RegistryProperties {
            heartbeat_bucket_secs: BUCKET_SECS,
            heartbeat_min_interval_secs: 10,
            network_admins: vec![],
        }
    }

    fn key(seed: u8) -> AgentPubKey {
        AgentPubKey::from_raw_32(vec![seed; 32])
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    fn advert(name: &str, availability: Availability, region: &str) -> NodeAdvert {
        let mut a = (*crate::inference::routing::tests::peer(1, name, &[], None, region).advert).clone();
        a.availability = availability;
        a
    }

    fn beat(seed: u8, at: i64) -> HeartbeatSeen {
        let sample = HeartbeatSample {
            seq: 1,
            cpu_percent: 5,
            gpu_percent: None,
            memory_percent: 10,
            availability: Availability::Online,
        };
        HeartbeatSeen { agent: key(seed), at: secs(at), sample }
    }

    fn seen(seed: u8, at: i64, advert: NodeAdvert) -> AdvertSeen {
        let version = holochain_types::prelude::ActionHash::from_raw_32(vec![seed; 32]);
        AdvertSeen { agent: key(seed), version, at: secs(at), advert }
    }

    fn states(nodes: &MeshIndex, now: i64) -> Vec<(String, PeerState)> {
        nodes
            .find(&DiscoveryQuery::default(), &props(), secs(now), &key(0))
            .into_iter()
            .map(|n| (n.advert.agent_name.clone(), n.state))
            .collect()
    }

    #[test]
    fn the_newer_advert_wins_whichever_feed_brings_it() {
        let mut nodes = MeshIndex::default();
        assert!(nodes.advert(key(1), secs(100), advert("new", Availability::Online, "eu")));
        // A catch-up read that lags behind the signal brings the older version: it is ignored.
        assert!(!nodes.advert(key(1), secs(90), advert("old", Availability::Online, "eu")));
        assert!(!nodes.advert(key(1), secs(100), advert("same moment", Availability::Online, "eu")));
        nodes.heartbeat(beat(1, 110));
        assert_eq!(states(&nodes, 120), vec![("new".into(), PeerState::Online)]);
        // An update says draining: the node stays known but is no longer online.
        nodes.signal(RegistrySignal::Advert {
            agent: key(1),
            at: secs(115),
            advert: advert("new", Availability::Draining, "eu"),
        });
        assert_eq!(states(&nodes, 120), vec![("new".into(), PeerState::Draining)]);
    }

    #[test]
    fn a_node_is_offline_once_its_newest_heartbeat_leaves_the_window() {
        let mut nodes = MeshIndex::default();
        nodes.advert(key(1), secs(0), advert("a", Availability::Online, "eu"));
        nodes.heartbeat(beat(1, 61)); // bucket 1
        assert!(!nodes.heartbeat(beat(1, 30)), "an older heartbeat does not replace a newer one");
        assert_eq!(states(&nodes, 119)[0].1, PeerState::Online); // current bucket
        assert_eq!(states(&nodes, 179)[0].1, PeerState::Online); // previous bucket
        assert_eq!(states(&nodes, 180)[0].1, PeerState::Offline); // two buckets on
        let found = nodes.find(&DiscoveryQuery::default(), &props(), secs(180), &key(0));
        assert_eq!(found[0].last_heartbeat, None, "a heartbeat outside the window is not shown as the last one");
        // A node whose advert says offline is offline while it still beats (it stopped cleanly).
        nodes.advert(key(1), secs(170), advert("a", Availability::Offline, "eu"));
        nodes.heartbeat(beat(1, 175));
        assert_eq!(states(&nodes, 176)[0].1, PeerState::Offline);
    }

    #[test]
    fn liveness_is_judged_at_the_last_read_and_ages_out_when_reads_stop() {
        let period = Duration::from_secs(5);
        // Read at 118: a beat at 61 (bucket 1) is still in the window judged then, at 121.
        let judged = judged_at(secs(121), Some(secs(118)), period);
        assert_eq!(judged, secs(118));
        let window = Window::at(&props(), judged, secs(121));
        assert!(window.contains(secs(61)) && window.contains(secs(120)), "a beat newer than the read counts too");
        // Reads failing since 118: by 200 the window is judged at 190, and the beat is too old.
        assert_eq!(judged_at(secs(200), Some(secs(118)), period), secs(190));
        assert!(!Window::at(&props(), secs(190), secs(200)).contains(secs(61)));
        // With the grace buckets (shard placement) the beat at 61 counts until bucket 5 begins.
        let grace = ONLINE_BUCKETS + GRACE_BUCKETS;
        assert!(Window::spanning(grace, &props(), secs(299), secs(299)).contains(secs(61)));
        assert!(!Window::spanning(grace, &props(), secs(300), secs(300)).contains(secs(61)));
        // Before the first read, and for a read stamped after now (another clock), now.
        assert_eq!(judged_at(secs(50), None, period), secs(50));
        assert_eq!(judged_at(secs(50), Some(secs(60)), period), secs(50));
    }

    #[test]
    fn a_catch_up_repairs_a_missed_signal_and_a_full_read_drops_unlisted_nodes() {
        let mut nodes = MeshIndex::default();
        let full = RegistryChanges {
            read_at: secs(100),
            adverts: vec![
                seen(1, 10, advert("a", Availability::Online, "eu")),
                seen(2, 20, advert("b", Availability::Online, "us")),
            ],
            heartbeats: vec![beat(1, 95), beat(2, 96)],
        };
        nodes.replace(full);
        assert_eq!(states(&nodes, 100).len(), 2);
        // Node b moved region; its signal never arrived. The next catch-up brings the new version.
        nodes.merge(RegistryChanges {
            read_at: secs(130),
            adverts: vec![seen(2, 120, advert("b", Availability::Online, "ap"))],
            heartbeats: vec![beat(2, 125)],
        });
        let in_ap = nodes.find(
            &DiscoveryQuery { region: Some("AP".into()), ..Default::default() },
            &props(),
            secs(130),
            &key(0),
        );
        assert_eq!(in_ap.len(), 1);
        assert_eq!(in_ap[0].agent, key(2));
        // Node c joined while the next full read ran (heard by signal); node a's listing is gone.
        nodes.signal(RegistrySignal::Advert {
            agent: key(3),
            at: secs(201),
            advert: advert("c", Availability::Online, "eu"),
        });
        nodes.replace(RegistryChanges {
            read_at: secs(200),
            adverts: vec![seen(2, 120, advert("b", Availability::Online, "ap"))],
            heartbeats: vec![],
        });
        let names: Vec<String> = states(&nodes, 200).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["b".to_string(), "c".to_string()]);
    }

    #[test]
    fn answers_filter_sort_and_limit_like_the_discovery_zome() {
        let mut nodes = MeshIndex::default();
        for (seed, name, region, beating) in [(1, "zed", "eu", true), (2, "amy", "EU", false), (3, "bob", "us", true)] {
            nodes.advert(key(seed), secs(1), advert(name, Availability::Online, region));
            if beating {
                nodes.heartbeat(beat(seed, 100));
            }
        }
        let names = |q: DiscoveryQuery| -> Vec<String> {
            nodes.find(&q, &props(), secs(100), &key(3)).iter().map(|n| n.advert.agent_name.clone()).collect()
        };
        assert_eq!(names(DiscoveryQuery::default()), ["bob", "zed", "amy"], "online first, then by name");
        assert_eq!(names(DiscoveryQuery { region: Some("eu".into()), ..Default::default() }), ["zed", "amy"]);
        assert_eq!(
            names(DiscoveryQuery { region: Some("eu".into()), online_only: true, ..Default::default() }),
            ["zed"]
        );
        assert_eq!(names(DiscoveryQuery { limit: Some(1), ..Default::default() }), ["bob"]);
        let me = nodes.find(&DiscoveryQuery::default(), &props(), secs(100), &key(3));
        assert!(me[0].is_self && !me[1].is_self);
        assert_eq!(me[0].row().state, "online");
    }

    #[test]
    fn a_full_read_keeps_a_beating_node_whose_advert_it_missed_and_names_it_when_it_has_none() {
        let mut nodes = MeshIndex::default();
        nodes.replace(RegistryChanges {
            read_at: secs(100),
            adverts: vec![seen(1, 10, advert("a", Availability::Online, "eu"))],
            heartbeats: vec![beat(1, 95)],
        });
        // Node a updates its advert; this full read sees the old version deleted and not the new
        // one, but hears a beating. Node b beats but the view never had its advert.
        nodes.replace(RegistryChanges {
            read_at: secs(110),
            adverts: vec![],
            heartbeats: vec![beat(1, 105), beat(2, 106)],
        });
        assert_eq!(states(&nodes, 110), vec![("a".into(), PeerState::Online)], "the version it had");
        assert_eq!(nodes.missing_adverts(), vec![key(2)]);
        nodes.advert(key(2), Timestamp::from_micros(0), advert("b", Availability::Online, "us"));
        assert!(nodes.missing_adverts().is_empty());
        // Neither listed nor beating: gone, unless the liveness protocol hears it alive.
        nodes.set_live(key(2), Some(Live { state: MemberState::Alive, load: None }));
        nodes.replace(RegistryChanges { read_at: secs(200), adverts: vec![], heartbeats: vec![] });
        assert_eq!(states(&nodes, 200), vec![("b".into(), PeerState::Online)]);
    }

    #[test]
    fn a_restarted_node_hears_the_mesh_once_another_nodes_new_beat_arrives() {
        let mut nodes = MeshIndex::default();
        assert!(nodes.heard_since(secs(100), &key(1)), "the first node of a mesh knows nobody else");
        nodes.advert(key(1), secs(1), advert("me", Availability::Online, "eu"));
        nodes.heartbeat(beat(1, 101));
        assert!(nodes.heard_since(secs(100), &key(1)), "its own beats alone");
        // From its store: a peer that beat before this node started.
        nodes.advert(key(2), secs(1), advert("peer", Availability::Online, "eu"));
        nodes.heartbeat(beat(2, 95));
        assert!(!nodes.heard_since(secs(100), &key(1)), "old news of a peer is not hearing the mesh");
        nodes.heartbeat(beat(2, 104));
        assert!(nodes.heard_since(secs(100), &key(1)));
    }

    #[test]
    fn the_protocols_verdict_comes_before_the_heartbeat_rule_where_it_has_one() {
        let mut nodes = MeshIndex::default();
        nodes.advert(key(1), secs(1), advert("a", Availability::Online, "eu"));
        nodes.advert(key(2), secs(1), advert("b", Availability::Online, "eu"));
        nodes.heartbeat(beat(1, 95));
        nodes.heartbeat(beat(2, 95));
        assert!(!nodes.heard_since(secs(100), &key(0)), "old beats only");
        let live = |state| Some(Live { state, load: None });
        // a crashed: its beat is still in the window, but the protocol says dead.
        nodes.set_live(key(1), live(MemberState::Dead));
        assert_eq!(states(&nodes, 100), vec![("b".into(), PeerState::Online), ("a".into(), PeerState::Offline)]);
        // b's beats aged out, but it answers probes; a is unreachable: its beats decide again.
        nodes.set_live(key(2), live(MemberState::Alive));
        nodes.set_live(key(1), live(MemberState::Unreachable));
        assert_eq!(states(&nodes, 200), vec![("b".into(), PeerState::Online), ("a".into(), PeerState::Offline)]);
        assert_eq!(states(&nodes, 100), vec![("a".into(), PeerState::Online), ("b".into(), PeerState::Online)]);
        assert!(nodes.heard_since(secs(100), &key(0)), "b answered this run");
        // The load b sent on its last message is the row's load.
        let sample = HeartbeatSample { cpu_percent: 77, ..beat(2, 0).sample };
        nodes.set_live(key(2), Some(Live { state: MemberState::Suspect, load: Some(sample) }));
        let found = nodes.find(&DiscoveryQuery::default(), &props(), secs(200), &key(0));
        let b = found.iter().find(|n| n.agent == key(2)).unwrap();
        assert_eq!(
            (b.state, b.load_percent(), b.row().liveness),
            (PeerState::Online, Some(77), Some(MemberState::Suspect))
        );
    }

    #[test]
    fn a_heartbeat_before_the_advert_waits_for_it() {
        let mut nodes = MeshIndex::default();
        nodes.heartbeat(beat(1, 100));
        assert!(states(&nodes, 100).is_empty(), "a node without an advert is not listed");
        nodes.advert(key(1), secs(50), advert("late", Availability::Online, "eu"));
        assert_eq!(states(&nodes, 100), vec![("late".into(), PeerState::Online)]);
    }
}
