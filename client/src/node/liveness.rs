//! Liveness, live: runs the protocol in [`super::swim`] between this node's sidecar and its
//! peers' sidecars, over remote signals through the agent_registry cell
//! (`capabilities.send_liveness` out, `recv_remote_signal` in, which the zome re-emits to this
//! sidecar only as what the sending node says), and tells the mesh view what it learns.
//!
//! The members are the nodes the view knows an advert of; a node whose advert says it stopped
//! is not probed. DHT heartbeats stay the durable record: one newer than a death this node
//! declared brings the node back under the heartbeat rule (a restarted node its probes cannot
//! reach yet).
//!
//! Restarts: kitsune2 gives a node a new address on every start, and peers that still hold the
//! old one drop its messages in every DNA whose new agent info has not reached them (the first
//! message on a new connection carries one DNA's only, holochain#5962) until they next poll the
//! bootstrap server: a minute or more of a node that can reach its peers while they cannot answer
//! it. Three moves close that window. The node introduces itself: its agent infos for every DNA
//! go to the peers it knows (this reaches them where the liveness channel's DNA got through).
//! While a node doubts a member (suspect, unreachable, or dead for less than `DOUBT_WINDOW`) it
//! reads every peer's current infos from the bootstrap server every `BOOTSTRAP_REFRESH_EVERY`,
//! so it reaches a member that restarted at a new address within seconds, in every DNA. And it
//! does the same when its transport's count of messages dropped from unknown addresses rises:
//! a node that stopped cleanly and came back was never doubted.
//!
//! Partitions: after a heal, each side's transport ignores the other's addresses for gossip,
//! publish and fetch until it holds an agent info signed after its last failed attempt. A member
//! that comes back is handed this node's infos at once and after each re-sign for a while
//! (`REINTRODUCE_RETURNED_FOR`), over this channel, which that mark does not hold back.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

use agent_registry_types::{LivenessMessage, NodeAdvert, RegistrySignal, LIVENESS_PAYLOAD_MAX};
use holochain_types::prelude::{AgentPubKey, Timestamp};

use super::swim::{Envelope, LivenessSettings, MemberState, Outgoing, Swim, SwimCounters};
use super::view::{Live, MeshView};
use super::NodeAgent;
use crate::mesh::{unix_ms, Mesh, MeshError, PRIMARY_ROLE};

/// Zome calls sending messages at once, at most; beyond that a message is dropped, as a
/// datagram would be, and counted.
const MAX_SENDS_IN_FLIGHT: usize = 4;
/// How often a starting node re-introduces itself to members that have not answered it yet,
/// and for how long after its start; afterwards only when its agent infos change.
const INTRODUCE_EVERY: Duration = Duration::from_secs(5);
const INTRODUCE_WHILE: Duration = Duration::from_secs(60);
/// How often a node that doubts a member re-reads its peers' agent infos from the bootstrap
/// server, and for how long after a member's death (later, kitsune2's own polling, at most a
/// minute apart, is left to find a node that comes back).
const BOOTSTRAP_REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How long after a member comes back (a healed partition, a restart) it is handed this node's
/// agent infos each time the conductor re-signs them (every minute, see the conductor template):
/// its transport ignores this node's address for gossip, publish and fetch until it holds an
/// info signed after its last failed attempt to reach it, and kitsune2's own ways of delivering
/// one (the bootstrap server, both sides' polls, each with backoff) took over three minutes.
const REINTRODUCE_RETURNED_FOR: Duration = Duration::from_secs(180);
const DOUBT_WINDOW: Duration = Duration::from_secs(600);
/// Messages taken from the inbox in one step: their answers go out in one zome call, so a burst
/// (a busy conductor delivering late) costs one send, not one each.
const INBOX_BATCH: usize = 64;

/// A member that came back: when, and the signed infos last handed to it since (none yet right
/// after it came back).
struct Returned {
    at: std::time::Instant,
    handed: Option<Vec<String>>,
}

/// What one liveness remote signal carries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Wire {
    Swim(Envelope),
    /// The sender's own signed agent infos, one per DNA.
    Introduce {
        agent_infos: Vec<String>,
    },
    /// The sender's advert as it published it in this run, sent with its introductions and to
    /// each member that becomes alive to it: a restarted node's advert update (offline → online)
    /// is otherwise dropped by peers that do not know its new address yet, and reaches them only
    /// when the DHT republishes it, minutes later.
    Advert {
        at: Timestamp,
        advert: NodeAdvert,
    },
}

/// `/status`'s `liveness` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LivenessReport {
    pub period_ms: u64,
    pub incarnation: u64,
    /// Lifeguard's local health score: 0 is healthy; each point stretches the probe timeouts.
    pub local_health: u32,
    pub members: usize,
    pub alive: usize,
    pub suspect: usize,
    pub dead: usize,
    #[serde(flatten)]
    pub counters: SwimCounters,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub send_failures: u64,
    /// Messages dropped because earlier sends were still in flight.
    pub send_dropped: u64,
    pub unreadable_messages: u64,
    /// Agent infos sent to members after this node started (or its address changed), and the
    /// peers' infos this node added to its conductor's peer store.
    pub introductions_sent: u64,
    pub introductions_received: u64,
    /// Members' adverts received with their introductions, and those the view took as news.
    pub adverts_received: u64,
    pub adverts_applied: u64,
    /// Reads of every peer's agent infos from the bootstrap server, while a member is in doubt
    /// or the transport drops messages from unknown addresses; the latter alone counted apart.
    pub bootstrap_refreshes: u64,
    pub refreshes_for_blocked: u64,
    pub last_error: Option<String>,
}

pub struct Liveness {
    mesh: Arc<Mesh>,
    view: Arc<MeshView>,
    node: Arc<NodeAgent>,
    settings: LivenessSettings,
    swim: Mutex<Swim>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<(AgentPubKey, String)>>>,
    sends: Arc<Semaphore>,
    report: Arc<Mutex<LivenessReport>>,
    started: std::time::Instant,
    /// The addresses last introduced to every member.
    introduced: Mutex<BTreeSet<String>>,
    /// Members that came back within `REINTRODUCE_RETURNED_FOR`.
    returned: Mutex<BTreeMap<String, Returned>>,
    /// An introduction is under way (it reads the conductor, off the protocol's loop).
    introducing: AtomicBool,
    /// Where peers' current agent infos are read after a suspicion (unknown when attached).
    bootstrap: Option<url::Url>,
    last_refresh: Mutex<Option<std::time::Instant>>,
    /// The transport's count of messages dropped from unknown addresses, at the last look.
    blocked_incoming: Arc<AtomicU64>,
}

impl Liveness {
    /// Starts listening for peers' liveness messages; `run` probes.
    pub async fn start(
        mesh: Arc<Mesh>,
        view: Arc<MeshView>,
        node: Arc<NodeAgent>,
        settings: LivenessSettings,
        bootstrap: Option<url::Url>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        mesh.on_signal(PRIMARY_ROLE, move |signal: RegistrySignal| {
            if let RegistrySignal::Liveness { agent, payload } = signal {
                let _ = tx.send((agent, payload));
            }
        })
        .await;
        let now = unix_ms().max(0) as u64;
        let seed = rand_seed() ^ now;
        let swim = Swim::new(mesh.agent.to_string(), now, settings, seed);
        let report = LivenessReport { period_ms: settings.period_ms, ..Default::default() };
        Arc::new(Self {
            mesh,
            view,
            node,
            settings,
            swim: Mutex::new(swim),
            inbox: Mutex::new(Some(rx)),
            sends: Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT)),
            report: Arc::new(Mutex::new(report)),
            started: std::time::Instant::now(),
            introduced: Mutex::new(BTreeSet::new()),
            returned: Mutex::new(BTreeMap::new()),
            introducing: AtomicBool::new(false),
            bootstrap,
            last_refresh: Mutex::new(None),
            blocked_incoming: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The transport's counters, and the protocol's state read now.
    pub fn report(&self) -> LivenessReport {
        let mut report = self.report.lock().map(|r| r.clone()).unwrap_or_default();
        self.with_swim(|swim| {
            let count = |s: MemberState| swim.members().filter(|(_, state)| *state == s).count();
            report.incarnation = swim.incarnation();
            report.local_health = swim.local_health();
            report.members = swim.members().count();
            report.alive = count(MemberState::Alive);
            report.suspect = count(MemberState::Suspect);
            report.dead = count(MemberState::Dead);
            report.counters = swim.counters();
        });
        report
    }

    /// Probes and answers until `stop` changes. Nothing here waits on the conductor: a loop that
    /// stalled on a slow call would leave probes unanswered and its peers would declare it dead.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(mut inbox) = self.inbox.lock().ok().and_then(|mut i| i.take()) else { return };
        let period = Duration::from_millis(self.settings.period_ms);
        // Ten steps a period: a probe's timeouts are fractions of it.
        let mut steps = tokio::time::interval(period / 10);
        steps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut members = tokio::time::interval(period);
        members.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut introduce = tokio::time::interval_at(tokio::time::Instant::now() + period, INTRODUCE_EVERY);
        introduce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let out = tokio::select! {
                _ = stop.changed() => return,
                Some((from, payload)) = inbox.recv() => {
                    let mut out = self.receive(&from, &payload);
                    for _ in 1..INBOX_BATCH {
                        let Ok((from, payload)) = inbox.try_recv() else { break };
                        out.extend(self.receive(&from, &payload));
                    }
                    out
                }
                _ = steps.tick() => self.with_swim(|swim| swim.tick(now_ms())),
                _ = members.tick() => {
                    self.sync_members();
                    let doubts = self.with_swim(|swim| swim.has_doubts(now_ms(), DOUBT_WINDOW.as_millis() as u64));
                    self.refresh_from_bootstrap(doubts);
                    Vec::new()
                }
                _ = introduce.tick() => {
                    self.introduce_in_background();
                    Vec::new()
                }
            };
            self.send(out);
            self.publish_changes();
            self.welcome_returned();
        }
    }

    /// Each member that just became alive to it gets this node's advert now, and its agent infos
    /// at the next introduction (see `REINTRODUCE_RETURNED_FOR`). Adverts sent with the
    /// introductions are dropped by a peer that does not know this node's new address yet, and
    /// once the peer answers it is no longer introduced to: without this, a node restarted after a
    /// clean stop stays offline on that peer until the DHT republishes its advert (5 minutes).
    fn welcome_returned(self: &Arc<Self>) {
        let returned = self.with_swim(Swim::take_returned);
        if returned.is_empty() {
            return;
        }
        if let Ok(mut welcomed) = self.returned.lock() {
            let now = std::time::Instant::now();
            welcomed.extend(returned.iter().map(|id| (id.clone(), Returned { at: now, handed: None })));
        }
        self.send_advert(returned);
        self.introduce_in_background();
    }

    /// The advert this node published in this run, to `to`.
    fn send_advert(&self, to: Vec<String>) {
        if let Some((at, advert)) = self.node.published_advert() {
            let wire = Wire::Advert { at, advert };
            self.send_wire(to.into_iter().map(|id| (id, &wire)).collect());
        }
    }

    fn receive(&self, from: &AgentPubKey, payload: &str) -> Vec<Outgoing> {
        self.update_report(|r| r.bytes_received += payload.len() as u64);
        match serde_json::from_str::<Wire>(payload) {
            Ok(Wire::Swim(envelope)) => self.with_swim(|swim| swim.receive(&from.to_string(), envelope, now_ms())),
            Ok(Wire::Introduce { agent_infos }) => {
                let (mesh, report, from) = (self.mesh.clone(), self.report.clone(), from.clone());
                tokio::spawn(async move {
                    let added = mesh.add_agent_infos_of(&from, agent_infos).await;
                    if let Ok(mut r) = report.lock() {
                        match added {
                            Ok(n) if n > 0 => r.introductions_received += 1,
                            Ok(_) => {
                                r.last_error = Some(format!("{from} introduced itself with no agent info of its own"))
                            }
                            Err(e) => r.last_error = Some(format!("adding the agent infos of {from}: {e}")),
                        }
                    }
                });
                Vec::new()
            }
            Ok(Wire::Advert { at, advert }) => {
                match advert.check() {
                    Ok(()) => {
                        let applied = self.view.heard_advert(from.clone(), at, advert);
                        self.update_report(|r| {
                            r.adverts_received += 1;
                            r.adverts_applied += u64::from(applied);
                        });
                    }
                    Err(e) => {
                        self.update_report(|r| r.last_error = Some(format!("{from} sent an invalid advert: {e}")))
                    }
                }
                Vec::new()
            }
            Err(e) => {
                self.update_report(|r| {
                    r.unreadable_messages += 1;
                    r.last_error = Some(format!("unreadable liveness message from {from}: {e}"));
                });
                Vec::new()
            }
        }
    }

    /// The view's nodes as members, its heartbeats as news of restarts, and this node's load.
    fn sync_members(&self) {
        let members = self.view.members();
        let load = self.node.load_sample();
        let members: Vec<(String, bool, Option<u64>)> = members
            .into_iter()
            .map(|(agent, active, beat)| {
                (agent.to_string(), active, beat.map(|at| (at.as_micros() / 1000).max(0) as u64))
            })
            .collect();
        let now = now_ms();
        self.with_swim(|swim| {
            swim.set_members(members.iter().map(|(id, active, _)| (id.as_str(), *active)), now);
            for (id, _, beat) in &members {
                if let Some(at_ms) = beat {
                    swim.heard_beat(id, *at_ms);
                }
            }
            swim.set_load(Some(load));
        });
    }

    /// Hands each changed member's state to the view.
    fn publish_changes(&self) {
        let changes: Vec<(String, Option<Live>)> = self.with_swim(|swim| {
            let changed = swim.take_changes().into_iter();
            changed
                .map(|id| {
                    let live = swim.state_of(&id).map(|state| Live { state, load: swim.load_of(&id).cloned() });
                    (id, live)
                })
                .collect()
        });
        for (id, live) in changes {
            if let Ok(agent) = AgentPubKey::try_from(id.as_str()) {
                self.view.set_live(agent, live);
            }
        }
    }

    /// Every peer's current agent infos from the bootstrap server, in the background, at most
    /// every `BOOTSTRAP_REFRESH_EVERY`, when a peer may have restarted at an address this node
    /// does not know: a member is in doubt (`doubts`), or the transport dropped more messages
    /// from unknown addresses since the last look (a peer that restarted cleanly is not
    /// doubted, yet its messages to this node are dropped until its address is learnt).
    fn refresh_from_bootstrap(&self, doubts: bool) {
        let Some(bootstrap) = self.bootstrap.clone() else { return };
        let Ok(mut last) = self.last_refresh.lock() else { return };
        if last.is_some_and(|at| at.elapsed() < BOOTSTRAP_REFRESH_EVERY) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let (mesh, report, blocked_before) = (self.mesh.clone(), self.report.clone(), self.blocked_incoming.clone());
        tokio::spawn(async move {
            // A failed read keeps the last count, so the next good one is not mistaken for a rise.
            let rising = match mesh.blocked_messages().await {
                Ok(now) => now.incoming > blocked_before.swap(now.incoming, Ordering::AcqRel),
                Err(_) => false,
            };
            if !doubts && !rising {
                return;
            }
            let result = mesh.refresh_peers_from(&bootstrap).await;
            if let Ok(mut r) = report.lock() {
                match result {
                    Ok(_) => {
                        r.bootstrap_refreshes += 1;
                        r.refreshes_for_blocked += u64::from(!doubts);
                    }
                    Err(e) => r.last_error = Some(e.to_string()),
                }
            }
        });
    }

    fn introduce_in_background(self: &Arc<Self>) {
        if self.introducing.swap(true, Ordering::AcqRel) {
            return; // the last one is still reading the conductor
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.introduce().await;
            this.introducing.store(false, Ordering::Release);
        });
    }

    /// This node's agent infos to the members that need them: all of them when its addresses
    /// changed since they were last introduced (a restart, a new relay), else, in the first minute after
    /// the start, those that have not answered this node yet.
    async fn introduce(&self) {
        let infos = match self.mesh.own_agent_infos().await {
            Ok(infos) if !infos.signed.is_empty() => infos,
            Ok(_) => return,
            Err(e) => {
                self.update_report(|r| r.last_error = Some(format!("reading this node's agent infos: {e}")));
                return;
            }
        };
        let changed = self.introduced.lock().is_ok_and(|last| *last != infos.urls);
        let starting = self.started.elapsed() <= INTRODUCE_WHILE;
        let mut to: BTreeSet<String> = if changed || starting {
            self.with_swim(|swim| {
                let members = swim.members().filter(|(_, state)| changed || *state != MemberState::Alive);
                members.map(|(id, _)| id.clone()).collect()
            })
        } else {
            BTreeSet::new()
        };
        let returned = self.returned_needing(&infos.signed);
        let with_advert: Vec<String> = to.iter().cloned().collect();
        to.extend(returned);
        if to.is_empty() {
            return;
        }
        let wire = Wire::Introduce { agent_infos: infos.signed };
        self.send_wire(to.iter().map(|id| (id.clone(), &wire)).collect());
        self.send_advert(with_advert);
        self.update_report(|r| r.introductions_sent += 1);
        if let Ok(mut last) = self.introduced.lock() {
            *last = infos.urls;
        }
    }

    /// The members that came back lately and have not been handed `signed` (this node's infos as
    /// the conductor signed them last) yet, marked as handed; those back for longer are dropped.
    fn returned_needing(&self, signed: &[String]) -> Vec<String> {
        let Ok(mut returned) = self.returned.lock() else { return Vec::new() };
        returned.retain(|_, r| r.at.elapsed() < REINTRODUCE_RETURNED_FOR);
        returned
            .iter_mut()
            .filter(|(_, r)| r.handed.as_deref() != Some(signed))
            .map(|(id, r)| {
                r.handed = Some(signed.to_vec());
                id.clone()
            })
            .collect()
    }

    fn send(&self, out: Vec<Outgoing>) {
        let wires: Vec<(String, Wire)> = out.into_iter().map(|o| (o.to, Wire::Swim(o.envelope))).collect();
        self.send_wire(wires.iter().map(|(to, wire)| (to.clone(), wire)).collect());
    }

    /// One zome call for the batch, in the background: the protocol's clock must not wait on it.
    fn send_wire(&self, out: Vec<(String, &Wire)>) {
        if out.is_empty() {
            return;
        }
        let mut messages = Vec::with_capacity(out.len());
        let mut bytes = 0;
        for (to, wire) in out {
            let (Ok(to), Ok(payload)) = (AgentPubKey::try_from(to.as_str()), serde_json::to_string(wire)) else {
                continue;
            };
            if payload.len() > LIVENESS_PAYLOAD_MAX {
                tracing::warn!("liveness message of {} bytes not sent (limit {LIVENESS_PAYLOAD_MAX})", payload.len());
                continue;
            }
            bytes += payload.len() as u64;
            messages.push(LivenessMessage { to, payload });
        }
        let Ok(permit) = self.sends.clone().try_acquire_owned() else {
            self.update_report(|r| r.send_dropped += messages.len() as u64);
            return;
        };
        self.update_report(|r| r.bytes_sent += bytes);
        let (mesh, report) = (self.mesh.clone(), self.report.clone());
        tokio::spawn(async move {
            let result: Result<(), _> = mesh.call(PRIMARY_ROLE, "capabilities", "send_liveness", &messages).await;
            if let Err(e) = result {
                tracing::debug!("sending liveness messages failed: {e}");
                if let Ok(mut r) = report.lock() {
                    r.send_failures += 1;
                    r.last_error = Some(e.to_string());
                }
            }
            drop(permit);
        });
    }

    fn with_swim<T>(&self, f: impl FnOnce(&mut Swim) -> T) -> T {
        f(&mut self.swim.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn update_report(&self, f: impl FnOnce(&mut LivenessReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }
}

/// A node that (re)started introduces itself to every peer its conductor knows, before anything
/// waits on those peers (the mesh view's first read would otherwise time out on them): see the
/// module's note. Returns how many peers it told.
pub async fn introduce_to_known_peers(mesh: &Mesh) -> Result<usize, MeshError> {
    let infos = mesh.own_agent_infos().await?;
    let peers = mesh.known_peers().await?;
    let Ok(payload) = serde_json::to_string(&Wire::Introduce { agent_infos: infos.signed.clone() }) else {
        return Ok(0);
    };
    if infos.signed.is_empty() || peers.is_empty() {
        return Ok(0);
    }
    let messages: Vec<LivenessMessage> =
        peers.iter().map(|to| LivenessMessage { to: to.clone(), payload: payload.clone() }).collect();
    mesh.call::<_, ()>(PRIMARY_ROLE, "capabilities", "send_liveness", &messages).await?;
    Ok(peers.len())
}

fn now_ms() -> u64 {
    unix_ms().max(0) as u64
}

/// Probe order differs per node and per start.
fn rand_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
