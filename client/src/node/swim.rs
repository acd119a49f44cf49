//! The liveness protocol alone: SWIM (Das, Gupta and Motivala, 2002) with Lifeguard's local
//! health (Dadgar et al., 2018). No I/O: time is passed in and messages come out, so the
//! simulation in the tests runs it for minutes of mesh time in milliseconds.
//!
//! Every period a node probes one member, round robin over a list shuffled each round. A member
//! that does not answer within the probe timeout is probed again through `indirect_probes` other
//! members; one that answers neither way by the end of the period is suspected, and declared dead
//! once the suspicion has stood for the suspicion timeout without the member refuting it (a
//! member refutes by raising its incarnation). News of suspicions, refutations and deaths rides
//! on the probes and their answers, each item a bounded number of times, so a node's traffic is
//! one probe and one answer per period whatever the mesh's size.
//!
//! Lifeguard: a node whose probes go unanswered, whose helpers do not even say they could not
//! reach the target (nacks), or which has to refute a suspicion of itself, takes it as a sign
//! that the trouble may be its own: its local health score rises, and its probe timeout and
//! probe interval stretch with it, so an overloaded or cut-off node is slow to accuse the others
//! while the others refute it.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use agent_registry_types::HeartbeatSample;

pub use crate::manifests::LivenessSettings;

/// Every this many periods a node pings one member it holds dead: members on the far side of a
/// partition are held dead by this side and vice versa, and nothing else would bring them back
/// together until their next DHT heartbeat (half an hour on the pinned networks). One message per
/// node every ten periods, whatever the mesh's size (Serf's reconnect, in SWIM's terms).
const RECONNECT_PERIODS: u64 = 10;

/// A member's key, as text (the agent key's base64): short on the wire, and any string in tests.
pub type Id = String;

/// What a node thinks of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Listed by the registry, not heard from yet: the DHT heartbeat rule judges it meanwhile.
    Listed,
    Alive,
    /// Unanswering; still counted alive until the suspicion times out or it refutes.
    Suspect,
    Dead,
    /// Declared dead, then seen beating on the DHT, but not answering probes (a restarted node
    /// its peers cannot reach yet): the heartbeat rule judges it until it answers.
    Unreachable,
}

impl MemberState {
    /// The protocol's verdict: alive or not, or none where the heartbeat rule decides.
    pub fn alive(self) -> Option<bool> {
        match self {
            MemberState::Alive | MemberState::Suspect => Some(true),
            MemberState::Dead => Some(false),
            MemberState::Listed | MemberState::Unreachable => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Listed => "listed",
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Unreachable => "unreachable",
        }
    }
}

/// One item of news about a member, piggybacked on messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct News {
    #[serde(rename = "m")]
    pub member: Id,
    #[serde(rename = "i")]
    pub inc: u64,
    #[serde(rename = "s")]
    pub state: Rumour,
    /// Who suspects it (suspicions only): independent accusers shorten the suspicion.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Id>,
}

impl News {
    fn of(member: Id, inc: u64, state: Rumour) -> Self {
        Self { member, inc, state, by: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rumour {
    Alive,
    Suspect,
    Dead,
}

/// One protocol message: the sender's incarnation and load, news, and what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub inc: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<HeartbeatSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub news: Vec<News>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Ping {
        seq: u64,
    },
    Ack {
        seq: u64,
    },
    /// Probe `target` for me and tell me how it went under my `seq`.
    PingReq {
        seq: u64,
        target: Id,
    },
    /// The target of your `PingReq` answered me.
    IndirectAck {
        seq: u64,
    },
    /// The target of your `PingReq` did not answer me (Lifeguard: I, at least, hear you).
    Nack {
        seq: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub to: Id,
    pub envelope: Envelope,
}

/// Counters for `/status` and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwimCounters {
    pub messages_sent: u64,
    pub messages_received: u64,
    pub probes: u64,
    pub probes_failed: u64,
    pub suspicions: u64,
    pub deaths: u64,
    pub refutations: u64,
    /// Pings to members held dead, in case they are back (a healed partition).
    pub reconnects: u64,
}

#[derive(Debug, Clone)]
struct Member {
    inc: u64,
    state: MemberState,
    /// While suspect: the members that suspect it (Lifeguard's independent confirmations).
    accusers: BTreeSet<Id>,
    /// When the state last changed (this node's clock, ms).
    since_ms: u64,
    load: Option<HeartbeatSample>,
}

#[derive(Debug)]
struct Probe {
    target: Id,
    seq: u64,
    started_ms: u64,
    /// The end of this probe's period: unanswered by then, the target is suspected.
    deadline_ms: u64,
    answered: bool,
    /// How many members were asked to probe the target; none before the probe timeout.
    helpers: Option<usize>,
    nacks: usize,
}

/// A probe this node makes for another (`PingReq`), keyed by this node's own sequence number.
#[derive(Debug)]
struct Relay {
    origin: Id,
    origin_seq: u64,
    deadline_ms: u64,
}

#[derive(Debug)]
struct Gossip {
    news: News,
    sent: u32,
}

pub struct Swim {
    me: Id,
    inc: u64,
    settings: LivenessSettings,
    members: BTreeMap<Id, Member>,
    round: Vec<Id>,
    probe: Option<Probe>,
    next_probe_ms: u64,
    next_reconnect_ms: u64,
    seq: u64,
    relays: HashMap<u64, Relay>,
    gossip: Vec<Gossip>,
    health: u32,
    load: Option<HeartbeatSample>,
    changed: BTreeSet<Id>,
    /// Members that became alive after being anything else: the way to them works again.
    returned: BTreeSet<Id>,
    rng: u64,
    counters: SwimCounters,
}

impl Swim {
    /// `inc` starts at the node's start time in ms, so a restarted node's word outranks what was
    /// said of it before it stopped.
    pub fn new(me: Id, inc: u64, settings: LivenessSettings, seed: u64) -> Self {
        let mut swim = Self {
            me,
            inc,
            settings,
            members: BTreeMap::new(),
            round: Vec::new(),
            probe: None,
            next_probe_ms: 0,
            next_reconnect_ms: 0,
            seq: 0,
            relays: HashMap::new(),
            gossip: Vec::new(),
            health: 0,
            load: None,
            changed: BTreeSet::new(),
            returned: BTreeSet::new(),
            rng: seed | 1,
            counters: SwimCounters::default(),
        };
        // Tell the mesh this node is (back) at its new incarnation.
        swim.spread(News::of(swim.me.clone(), inc, Rumour::Alive));
        swim
    }

    pub fn me(&self) -> &Id {
        &self.me
    }

    pub fn incarnation(&self) -> u64 {
        self.inc
    }

    pub fn local_health(&self) -> u32 {
        self.health
    }

    pub fn counters(&self) -> SwimCounters {
        self.counters
    }

    /// This node's load, carried on every message it sends from now on.
    pub fn set_load(&mut self, load: Option<HeartbeatSample>) {
        self.load = load;
    }

    /// The registry's members: new ones are listed (and probed); ones whose advert says they
    /// stopped (`active` false) are forgotten, so nobody probes a node that left cleanly.
    pub fn set_members<'a>(&mut self, listed: impl IntoIterator<Item = (&'a str, bool)>, now_ms: u64) {
        for (id, active) in listed {
            if id == self.me {
                continue;
            }
            match (active, self.members.contains_key(id)) {
                (true, false) => {
                    let member = Member {
                        inc: 0,
                        state: MemberState::Listed,
                        accusers: BTreeSet::new(),
                        since_ms: now_ms,
                        load: None,
                    };
                    self.members.insert(id.to_string(), member);
                    self.changed.insert(id.to_string());
                }
                (false, true) if self.members[id].state != MemberState::Alive => {
                    self.members.remove(id);
                    self.changed.insert(id.to_string());
                }
                _ => {}
            }
        }
    }

    /// A member beat on the DHT at `at_ms`: one this node declared dead before that has come
    /// back, even if it cannot answer probes yet.
    pub fn heard_beat(&mut self, id: &str, at_ms: u64) {
        if let Some(member) = self.members.get_mut(id) {
            if member.state == MemberState::Dead && at_ms > member.since_ms {
                member.state = MemberState::Unreachable;
                member.since_ms = at_ms;
                self.changed.insert(id.to_string());
            }
        }
    }

    pub fn state_of(&self, id: &str) -> Option<MemberState> {
        self.members.get(id).map(|m| m.state)
    }

    pub fn load_of(&self, id: &str) -> Option<&HeartbeatSample> {
        self.members.get(id).and_then(|m| m.load.as_ref())
    }

    pub fn members(&self) -> impl Iterator<Item = (&Id, MemberState)> {
        self.members.iter().map(|(id, m)| (id, m.state))
    }

    /// Whether a member is suspect or unreachable, or died within `dead_within_ms`: one that may
    /// come back (or already has) at a new address.
    pub fn has_doubts(&self, now_ms: u64, dead_within_ms: u64) -> bool {
        self.members.values().any(|m| match m.state {
            MemberState::Suspect | MemberState::Unreachable => true,
            MemberState::Dead => now_ms.saturating_sub(m.since_ms) <= dead_within_ms,
            MemberState::Listed | MemberState::Alive => false,
        })
    }

    /// Members whose state or load changed since the last call.
    pub fn take_changes(&mut self) -> Vec<Id> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// Members that became alive (from listed, suspect, unreachable or dead) since the last call:
    /// each has just been heard from, so a message to it now is likely to arrive.
    pub fn take_returned(&mut self) -> Vec<Id> {
        std::mem::take(&mut self.returned).into_iter().collect()
    }

    /// Advances time: expires suspicions and relayed probes, moves the current probe on (to
    /// indirect probes, then to a verdict) and starts the next one when its interval is up.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.expire_suspicions(now_ms);
        self.expire_relays(now_ms, &mut out);
        if let Some(probe) = &self.probe {
            let (target, seq) = (probe.target.clone(), probe.seq);
            let indirect_due =
                !probe.answered && probe.helpers.is_none() && now_ms >= probe.started_ms + self.probe_timeout();
            if indirect_due {
                let helpers = self.pick_helpers(&target);
                for helper in &helpers {
                    out.push(self.message(helper, Body::PingReq { seq, target: target.clone() }));
                }
                if let Some(probe) = &mut self.probe {
                    probe.helpers = Some(helpers.len());
                }
            }
            if self.probe.as_ref().is_some_and(|p| p.answered || now_ms >= p.deadline_ms) {
                self.finish_probe(now_ms);
            }
        }
        if now_ms >= self.next_reconnect_ms {
            self.next_reconnect_ms = now_ms + self.settings.period_ms * RECONNECT_PERIODS;
            if let Some(target) = self.random_dead() {
                // The ping tells it that it is held dead; alive, it refutes in its answer.
                let seq = self.next_seq();
                out.push(self.message(&target, Body::Ping { seq }));
                self.counters.reconnects += 1;
            }
        }
        if self.probe.is_none() && now_ms >= self.next_probe_ms {
            let interval = self.scaled(self.settings.period_ms);
            self.next_probe_ms = now_ms + interval;
            if let Some(target) = self.next_target() {
                let seq = self.next_seq();
                out.push(self.message(&target, Body::Ping { seq }));
                self.counters.probes += 1;
                let deadline_ms = now_ms + interval;
                let probe =
                    Probe { target, seq, started_ms: now_ms, deadline_ms, answered: false, helpers: None, nacks: 0 };
                self.probe = Some(probe);
            }
        }
        out
    }

    /// A message from `from`: its word on itself and its news applied, and the answer it needs.
    pub fn receive(&mut self, from: &str, envelope: Envelope, now_ms: u64) -> Vec<Outgoing> {
        self.counters.messages_received += 1;
        if from == self.me {
            return Vec::new();
        }
        self.apply(News::of(from.to_string(), envelope.inc, Rumour::Alive), now_ms);
        if let (Some(load), Some(member)) = (envelope.load, self.members.get_mut(from)) {
            member.load = Some(load);
            self.changed.insert(from.to_string());
        }
        for news in envelope.news {
            self.apply(news, now_ms);
        }
        let mut out = Vec::new();
        match envelope.body {
            Body::Ping { seq } => out.push(self.message(from, Body::Ack { seq })),
            Body::Ack { seq } => {
                if let Some(relay) = self.relays.remove(&seq) {
                    out.push(self.message(&relay.origin, Body::IndirectAck { seq: relay.origin_seq }));
                } else {
                    self.answered(seq, Some(from), now_ms);
                }
            }
            Body::PingReq { seq, target } if target != self.me => {
                let my_seq = self.next_seq();
                // Lifeguard: nack at 80 % of the probe timeout, so the nack is back in the period.
                let deadline_ms = now_ms + self.probe_timeout() * 4 / 5;
                self.relays.insert(my_seq, Relay { origin: from.to_string(), origin_seq: seq, deadline_ms });
                out.push(self.message(&target, Body::Ping { seq: my_seq }));
            }
            // Asked to probe myself: I am plainly here.
            Body::PingReq { seq, .. } => out.push(self.message(from, Body::IndirectAck { seq })),
            Body::IndirectAck { seq } => self.answered(seq, None, now_ms),
            Body::Nack { seq } => {
                if let Some(probe) = self.probe.as_mut().filter(|p| p.seq == seq) {
                    probe.nacks += 1;
                }
            }
        }
        out
    }

    fn answered(&mut self, seq: u64, from: Option<&str>, now_ms: u64) {
        let Some(probe) = self.probe.as_mut().filter(|p| p.seq == seq) else { return };
        if from.is_some_and(|f| f != probe.target) {
            return;
        }
        probe.answered = true;
        let target = probe.target.clone();
        // An answer through a helper carries no incarnation: it confirms a member nobody doubts.
        if let Some(member) = self.members.get_mut(&target) {
            if matches!(member.state, MemberState::Listed | MemberState::Unreachable) {
                member.state = MemberState::Alive;
                member.since_ms = now_ms;
                self.changed.insert(target.clone());
                self.returned.insert(target);
            }
        }
    }

    fn finish_probe(&mut self, now_ms: u64) {
        let Some(probe) = self.probe.take() else { return };
        if probe.answered {
            self.health = self.health.saturating_sub(1);
            return;
        }
        self.counters.probes_failed += 1;
        // Lifeguard: one point for the failed probe, one for each helper that did not even nack.
        let missed_nacks = probe.helpers.unwrap_or(0).saturating_sub(probe.nacks) as u32;
        self.health = (self.health + 1 + missed_nacks).min(self.settings.max_local_health);
        let Some(member) = self.members.get(&probe.target) else { return };
        match member.state {
            // A suspect this node fails to reach too: its own accusation confirms the others'.
            MemberState::Alive | MemberState::Listed | MemberState::Suspect => {
                let news =
                    News { by: Some(self.me.clone()), ..News::of(probe.target.clone(), member.inc, Rumour::Suspect) };
                self.apply(news, now_ms);
            }
            // Its DHT beats say it lives; the heartbeat rule keeps judging it.
            MemberState::Unreachable | MemberState::Dead => {}
        }
    }

    /// SWIM's rules for news, with the incarnation deciding between rumours.
    fn apply(&mut self, news: News, now_ms: u64) {
        if news.member == self.me {
            if news.state != Rumour::Alive && news.inc >= self.inc {
                // Refute: a higher incarnation outranks every rumour of the old one.
                self.inc = news.inc + 1;
                self.health = (self.health + 1).min(self.settings.max_local_health);
                self.counters.refutations += 1;
                self.spread(News::of(self.me.clone(), self.inc, Rumour::Alive));
            }
            return;
        }
        if let Some(m) = self.members.get_mut(&news.member) {
            // Another node suspects a member this node already suspects: a confirmation, passed on.
            let confirms = news.state == Rumour::Suspect && news.inc == m.inc && m.state == MemberState::Suspect;
            if confirms {
                if news.by.as_ref().is_some_and(|by| m.accusers.insert(by.clone())) {
                    self.spread(news);
                }
                return;
            }
        }
        let new_state = match news.state {
            Rumour::Alive => MemberState::Alive,
            Rumour::Suspect => MemberState::Suspect,
            Rumour::Dead => MemberState::Dead,
        };
        let accepted = match self.members.get(&news.member) {
            None => true,
            Some(m) => match news.state {
                Rumour::Alive => {
                    news.inc > m.inc
                        || (news.inc == m.inc && matches!(m.state, MemberState::Listed | MemberState::Unreachable))
                }
                Rumour::Suspect => {
                    news.inc > m.inc
                        || (news.inc == m.inc && matches!(m.state, MemberState::Alive | MemberState::Listed))
                }
                Rumour::Dead => {
                    news.inc > m.inc
                        || (news.inc == m.inc && !matches!(m.state, MemberState::Dead | MemberState::Unreachable))
                }
            },
        };
        if !accepted {
            return;
        }
        let member = self.members.entry(news.member.clone()).or_insert(Member {
            inc: 0,
            state: MemberState::Listed,
            accusers: BTreeSet::new(),
            since_ms: now_ms,
            load: None,
        });
        let state_changed = member.state != new_state;
        member.inc = news.inc;
        member.accusers = news.by.iter().filter(|_| new_state == MemberState::Suspect).cloned().collect();
        if state_changed {
            member.state = new_state;
            member.since_ms = now_ms;
            self.changed.insert(news.member.clone());
            match new_state {
                MemberState::Alive => _ = self.returned.insert(news.member.clone()),
                MemberState::Suspect => self.counters.suspicions += 1,
                MemberState::Dead => self.counters.deaths += 1,
                _ => {}
            }
        }
        self.spread(news);
    }

    fn expire_suspicions(&mut self, now_ms: u64) {
        let expired: Vec<News> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.state == MemberState::Suspect && now_ms >= m.since_ms + self.suspicion_timeout(m.accusers.len())
            })
            .map(|(id, m)| News::of(id.clone(), m.inc, Rumour::Dead))
            .collect();
        for news in expired {
            self.apply(news, now_ms);
        }
    }

    fn expire_relays(&mut self, now_ms: u64, out: &mut Vec<Outgoing>) {
        let expired: Vec<u64> =
            self.relays.iter().filter(|(_, r)| now_ms >= r.deadline_ms).map(|(seq, _)| *seq).collect();
        for seq in expired {
            if let Some(relay) = self.relays.remove(&seq) {
                out.push(self.message(&relay.origin, Body::Nack { seq: relay.origin_seq }));
            }
        }
    }

    /// The next member of the round, reshuffling when the round is done. Dead members are not
    /// probed; a restarted one announces itself.
    fn next_target(&mut self) -> Option<Id> {
        loop {
            if self.round.is_empty() {
                let mut round: Vec<Id> = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.state != MemberState::Dead)
                    .map(|(id, _)| id.clone())
                    .collect();
                if round.is_empty() {
                    return None;
                }
                self.shuffle(&mut round);
                self.round = round;
            }
            let id = self.round.pop()?;
            if self.members.get(&id).is_some_and(|m| m.state != MemberState::Dead) {
                return Some(id);
            }
        }
    }

    /// One member held dead, at random: the next to ping in case it is back.
    fn random_dead(&mut self) -> Option<Id> {
        let count = self.members.values().filter(|m| m.state == MemberState::Dead).count();
        if count == 0 {
            return None;
        }
        let pick = (self.random() % count as u64) as usize;
        self.members.iter().filter(|(_, m)| m.state == MemberState::Dead).nth(pick).map(|(id, _)| id.clone())
    }

    fn pick_helpers(&mut self, target: &str) -> Vec<Id> {
        let mut alive: Vec<Id> = self
            .members
            .iter()
            .filter(|(id, m)| *id != target && m.state == MemberState::Alive)
            .map(|(id, _)| id.clone())
            .collect();
        self.shuffle(&mut alive);
        alive.truncate(self.settings.indirect_probes);
        alive
    }

    fn message(&mut self, to: &str, body: Body) -> Outgoing {
        let mut news = Vec::new();
        // A member I doubt hears it from me, so it can refute.
        if let Some(m) = self.members.get(to).filter(|m| matches!(m.state, MemberState::Suspect | MemberState::Dead)) {
            let state = if m.state == MemberState::Dead { Rumour::Dead } else { Rumour::Suspect };
            news.push(News::of(to.to_string(), m.inc, state));
        }
        let limit = self.retransmit_limit();
        self.gossip.sort_by_key(|g| g.sent);
        for gossip in self.gossip.iter_mut().take(self.settings.news_per_message.saturating_sub(news.len())) {
            gossip.sent += 1;
            news.push(gossip.news.clone());
        }
        self.gossip.retain(|g| g.sent < limit);
        self.counters.messages_sent += 1;
        Outgoing { to: to.to_string(), envelope: Envelope { inc: self.inc, load: self.load.clone(), news, body } }
    }

    /// Queues news to pass on, replacing older news of the same member.
    fn spread(&mut self, news: News) {
        self.gossip.retain(|g| g.news.member != news.member);
        self.gossip.push(Gossip { news, sent: 0 });
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Mesh size's log10, at least one: SWIM's dissemination time grows with it.
    fn log_size(&self) -> f64 {
        ((self.members.len() + 1) as f64).log10().max(1.0)
    }

    fn retransmit_limit(&self) -> u32 {
        (f64::from(self.settings.retransmit_mult) * self.log_size()).ceil() as u32
    }

    /// Lifeguard's suspicion timeout: `suspicion_max_mult` times the minimum while one node
    /// suspects the member, falling to the minimum as independent accusers confirm it (expected:
    /// `suspicion_mult - 2`, fewer in a small mesh). A crashed node is suspected by every prober
    /// within seconds; a node on a lossy link, by one now and then, which leaves it time to refute.
    fn suspicion_timeout(&self, accusers: usize) -> u64 {
        let min = f64::from(self.settings.suspicion_mult) * self.log_size() * self.settings.period_ms as f64;
        let max = min * f64::from(self.settings.suspicion_max_mult.max(1));
        let expected =
            (self.settings.suspicion_mult.saturating_sub(2) as usize).min(self.members.len().saturating_sub(1));
        let confirmations = accusers.saturating_sub(1);
        if expected == 0 {
            return min as u64;
        }
        let fraction = ((confirmations + 1) as f64).ln() / ((expected + 1) as f64).ln();
        (max - (max - min) * fraction).max(min) as u64
    }

    fn probe_timeout(&self) -> u64 {
        self.scaled(self.settings.probe_timeout_ms)
    }

    fn scaled(&self, ms: u64) -> u64 {
        ms * u64::from(self.health + 1)
    }

    /// xorshift64*: enough to shuffle probe order, with no dependency.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn shuffle(&mut self, ids: &mut [Id]) {
        for i in (1..ids.len()).rev() {
            let j = (self.random() % (i as u64 + 1)) as usize;
            ids.swap(i, j);
        }
    }
}

/// A mesh of `Swim`s over a simulated network: latency, loss per link, crashes, restarts.
/// Shared by the tests and `cargo xtask bench liveness`.
pub mod sim {
    use super::*;

    pub const TICK_MS: u64 = 10;

    pub struct Sim {
        pub nodes: Vec<Swim>,
        pub up: Vec<bool>,
        pub now_ms: u64,
        /// Chance in 1,000 that a datagram to or from each node is lost.
        pub loss_per_mille: Vec<u64>,
        /// Each node's side of a partition: datagrams between sides are lost.
        pub side: Vec<u8>,
        inflight: BTreeMap<(u64, u64), (usize, usize, Envelope)>,
        order: u64,
        rng: u64,
        pub bytes_sent: Vec<u64>,
        pub messages_sent: Vec<u64>,
        settings: LivenessSettings,
    }

    pub fn id(i: usize) -> Id {
        format!("n{i}")
    }

    impl Sim {
        pub fn new(n: usize, settings: LivenessSettings, seed: u64) -> Self {
            let mut sim = Self {
                nodes: Vec::new(),
                up: vec![true; n],
                now_ms: 1_000_000,
                loss_per_mille: vec![0; n],
                side: vec![0; n],
                inflight: BTreeMap::new(),
                order: 0,
                rng: seed | 1,
                bytes_sent: vec![0; n],
                messages_sent: vec![0; n],
                settings,
            };
            for i in 0..n {
                let node = sim.fresh(i);
                sim.nodes.push(node);
            }
            sim
        }

        fn fresh(&mut self, i: usize) -> Swim {
            let n = self.up.len();
            let mut swim = Swim::new(id(i), self.now_ms, self.settings, self.random() ^ i as u64);
            let ids: Vec<Id> = (0..n).map(id).collect();
            swim.set_members(ids.iter().map(|s| (s.as_str(), true)), self.now_ms);
            swim
        }

        pub fn kill(&mut self, i: usize) {
            self.up[i] = false;
        }

        pub fn restart(&mut self, i: usize) {
            self.up[i] = true;
            self.nodes[i] = self.fresh(i);
        }

        /// What node `i` thinks of node `j`.
        pub fn state(&self, i: usize, j: usize) -> Option<MemberState> {
            self.nodes[i].state_of(&id(j))
        }

        pub fn run_for(&mut self, ms: u64, mut each_tick: impl FnMut(&Sim)) {
            let end = self.now_ms + ms;
            while self.now_ms < end {
                self.now_ms += TICK_MS;
                self.deliver();
                for i in 0..self.nodes.len() {
                    if self.up[i] {
                        let out = self.nodes[i].tick(self.now_ms);
                        self.send(i, out);
                    }
                }
                each_tick(self);
            }
        }

        fn deliver(&mut self) {
            while let Some((&key, _)) = self.inflight.first_key_value() {
                if key.0 > self.now_ms {
                    return;
                }
                let (_, (from, to, envelope)) = self.inflight.pop_first().expect("just seen");
                if self.up[to] {
                    let out = self.nodes[to].receive(&id(from), envelope, self.now_ms);
                    self.send(to, out);
                }
            }
        }

        fn send(&mut self, from: usize, out: Vec<Outgoing>) {
            for Outgoing { to, envelope } in out {
                let to: usize = to[1..].parse().expect("sim ids are n<number>");
                self.messages_sent[from] += 1;
                self.bytes_sent[from] += serde_json::to_string(&envelope).map_or(0, |s| s.len() as u64);
                let lost = self.random() % 1000 < self.loss_per_mille[from].max(self.loss_per_mille[to]);
                if lost || !self.up[from] || self.side[from] != self.side[to] {
                    continue;
                }
                let latency = 2 + self.random() % 20;
                self.order += 1;
                self.inflight.insert((self.now_ms + latency, self.order), (from, to, envelope));
            }
        }

        /// Every node holds every other alive.
        pub fn all_alive(&self) -> bool {
            let n = self.nodes.len();
            (0..n).all(|i| (0..n).filter(|j| *j != i).all(|j| self.state(i, j) == Some(MemberState::Alive)))
        }

        fn random(&mut self) -> u64 {
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// The seconds from `kill` until every survivor holds node 0 dead, and whether any survivor
    /// meanwhile thought another survivor dead.
    pub fn crash_detection(n: usize, seed: u64) -> (f64, bool) {
        let mut sim = Sim::new(n, LivenessSettings::default(), seed);
        sim.run_for(60_000, |_| {});
        assert!(sim.all_alive(), "{n} nodes: everyone alive to everyone before the kill");
        sim.kill(0);
        let killed_at = sim.now_ms;
        let mut seen_dead_at = None;
        let mut false_death = false;
        sim.run_for(30_000, |sim| {
            let survivors = 1..sim.nodes.len();
            false_death |=
                survivors.clone().any(|i| survivors.clone().any(|j| sim.state(i, j) == Some(MemberState::Dead)));
            if seen_dead_at.is_none() && survivors.clone().all(|i| sim.state(i, 0) == Some(MemberState::Dead)) {
                seen_dead_at = Some(sim.now_ms);
            }
        });
        let at = seen_dead_at.expect("every survivor marks the killed node dead");
        ((at - killed_at) as f64 / 1000.0, false_death)
    }
}

#[cfg(test)]
mod tests {
    use super::sim::{self, id, Sim};
    use super::*;

    #[test]
    fn a_quiet_mesh_costs_each_node_the_same_few_messages_a_second_at_any_size() {
        let mut rates = Vec::new();
        for n in [5, 50] {
            let mut sim = Sim::new(n, LivenessSettings::default(), 7);
            sim.run_for(120_000, |_| {});
            assert!(sim.all_alive(), "{n} nodes: everyone alive to everyone");
            let deaths: u64 = sim.nodes.iter().map(|s| s.counters().deaths + s.counters().suspicions).sum();
            assert_eq!(deaths, 0, "{n} nodes: nobody suspected on a clean network");
            let per_node_per_sec = sim.messages_sent.iter().sum::<u64>() as f64 / n as f64 / 120.0;
            let bytes_per_message =
                sim.bytes_sent.iter().sum::<u64>() as f64 / sim.messages_sent.iter().sum::<u64>() as f64;
            rates.push(per_node_per_sec);
            assert!((1.8..=2.2).contains(&per_node_per_sec), "{n} nodes: {per_node_per_sec} messages/s per node");
            assert!(bytes_per_message < 400.0, "{n} nodes: {bytes_per_message} bytes a message");
        }
        assert!((rates[0] - rates[1]).abs() < 0.1, "constant per node from 5 to 50 nodes: {rates:?}");
    }

    #[test]
    fn every_survivor_marks_a_killed_node_dead_within_seconds_and_nobody_else() {
        // The goal is 10 s at 5 to 8 nodes; the suspicion timeout grows with log10 of the size.
        for (n, seed, goal) in [(5, 1, 10.0), (5, 2, 10.0), (8, 3, 10.0), (50, 4, 15.0)] {
            let (secs, false_death) = sim::crash_detection(n, seed);
            assert!(!false_death, "{n} nodes: a survivor was declared dead");
            assert!(secs <= goal, "{n} nodes: {secs} s until every survivor saw the crash");
        }
    }

    #[test]
    fn a_node_on_a_link_losing_a_fifth_of_its_datagrams_is_never_declared_dead() {
        let mut sim = Sim::new(5, LivenessSettings::default(), 11);
        sim.loss_per_mille[0] = 200;
        let mut declared_dead = Vec::new();
        sim.run_for(600_000, |sim| {
            for i in 0..5 {
                for j in (0..5).filter(|j| *j != i) {
                    if sim.state(i, j) == Some(MemberState::Dead) {
                        declared_dead.push((i, j, sim.now_ms));
                    }
                }
            }
        });
        assert!(declared_dead.is_empty(), "false deaths: {:?}", &declared_dead[..declared_dead.len().min(5)]);
        let suspicions: u64 = sim.nodes.iter().map(|s| s.counters().suspicions).sum();
        let refutations = sim.nodes[0].counters().refutations;
        assert!(suspicions > 0 && refutations > 0, "the loss was felt ({suspicions}) and refuted ({refutations})");
    }

    #[test]
    fn a_restarted_node_is_alive_again_at_its_new_incarnation() {
        let mut sim = Sim::new(5, LivenessSettings::default(), 5);
        sim.run_for(10_000, |_| {});
        sim.kill(2);
        sim.run_for(20_000, |_| {});
        assert!((0..5).filter(|i| *i != 2).all(|i| sim.state(i, 2) == Some(MemberState::Dead)));
        sim.restart(2);
        sim.run_for(5_000, |_| {});
        assert!(sim.all_alive(), "the restarted node's word outranks its death");
    }

    #[test]
    fn a_dead_member_beating_on_the_dht_again_is_left_to_the_heartbeat_rule_until_it_answers() {
        let mut swim = Swim::new(id(0), 1, LivenessSettings::default(), 3);
        swim.set_members([("n1", true)], 0);
        assert_eq!(swim.state_of("n1").and_then(MemberState::alive), None, "listed: the heartbeat rule decides");
        let dead = News::of(id(1), 0, Rumour::Dead);
        swim.receive("n2", Envelope { inc: 1, load: None, news: vec![dead], body: Body::Nack { seq: 99 } }, 100);
        assert_eq!(swim.state_of("n1"), Some(MemberState::Dead));
        swim.heard_beat("n1", 50);
        assert_eq!(swim.state_of("n1"), Some(MemberState::Dead), "a beat from before the death changes nothing");
        swim.heard_beat("n1", 150);
        assert_eq!(swim.state_of("n1"), Some(MemberState::Unreachable));
        // Probed and silent, it is not suspected again: its beats speak for it.
        for now in (200..5_000).step_by(10) {
            swim.tick(now);
        }
        assert_eq!(swim.state_of("n1"), Some(MemberState::Unreachable));
        // Its own message, at its incarnation, makes it alive.
        swim.receive("n1", Envelope { inc: 0, load: None, news: vec![], body: Body::Ping { seq: 1 } }, 5_000);
        assert_eq!(swim.state_of("n1"), Some(MemberState::Alive));
    }

    /// Nothing but the protocol: no DHT heartbeat brings the sides back together.
    #[test]
    fn a_healed_partition_is_alive_again_within_two_reconnect_intervals() {
        let mut sim = Sim::new(5, LivenessSettings::default(), 13);
        sim.run_for(10_000, |_| {});
        assert!(sim.all_alive());
        sim.side = vec![0, 0, 0, 1, 1];
        sim.run_for(120_000, |_| {});
        for i in 0..5 {
            for j in (0..5).filter(|j| *j != i) {
                let expected = if sim.side[i] == sim.side[j] { MemberState::Alive } else { MemberState::Dead };
                assert_eq!(sim.state(i, j), Some(expected), "n{i} on n{j} during the partition");
            }
        }
        sim.side = vec![0; 5];
        let healed = sim.now_ms;
        let mut all_alive_at = None;
        sim.run_for(60_000, |sim| {
            if all_alive_at.is_none() && sim.all_alive() {
                all_alive_at = Some(sim.now_ms);
            }
        });
        let secs = (all_alive_at.expect("everyone alive again after the heal") - healed) as f64 / 1000.0;
        let interval = (RECONNECT_PERIODS * LivenessSettings::default().period_ms) as f64 / 1000.0;
        assert!(secs <= 2.0 * interval, "all alive {secs} s after the heal");
        assert!(sim.all_alive(), "and they stay alive");
    }

    /// The liveness layer re-sends this node's advert to each member in this list: the first
    /// answer after a start, a suspicion lifted or a death undone each mark the way open again.
    #[test]
    fn a_member_is_returned_once_each_time_it_becomes_alive_again() {
        let mut swim = Swim::new(id(0), 1, LivenessSettings::default(), 3);
        swim.set_members([("n1", true)], 0);
        assert!(swim.take_returned().is_empty(), "listed is not heard from");
        let ping = |seq| Envelope { inc: 5, load: None, news: vec![], body: Body::Ping { seq } };
        swim.receive("n1", ping(1), 10);
        assert_eq!(swim.take_returned(), vec![id(1)], "first heard from");
        swim.receive("n1", ping(2), 20);
        assert!(swim.take_returned().is_empty(), "alive already");
        let dead = News::of(id(1), 5, Rumour::Dead);
        swim.receive("n2", Envelope { inc: 1, load: None, news: vec![dead], body: Body::Nack { seq: 99 } }, 30);
        assert_eq!(swim.state_of("n1"), Some(MemberState::Dead));
        assert_eq!(swim.take_returned(), vec![id(2)], "the news's bearer is heard from; n1 is not");
        swim.receive("n1", Envelope { inc: 6, ..ping(3) }, 40);
        assert_eq!(swim.take_returned(), vec![id(1)], "back from the dead at a new incarnation");
    }

    #[test]
    fn a_node_that_left_cleanly_is_not_probed() {
        let mut swim = Swim::new(id(0), 1, LivenessSettings::default(), 3);
        swim.set_members([("n1", true), ("n2", true)], 0);
        swim.set_members([("n1", false)], 0);
        let probed: BTreeSet<Id> = (0..20_000).step_by(10).flat_map(|t| swim.tick(t)).map(|o| o.to).collect();
        assert_eq!(probed.into_iter().collect::<Vec<_>>(), vec![id(2)]);
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let slow = LivenessSettings { probe_timeout_ms: 1_000, ..Default::default() };
        assert!(slow.check().unwrap_err().contains("below period_ms"));
        let fast = LivenessSettings { period_ms: 10, ..Default::default() };
        assert!(fast.check().unwrap_err().contains("100 to 60000"));
        assert!(LivenessSettings::default().check().is_ok());
    }
}
