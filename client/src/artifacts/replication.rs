//! Who repairs an under-replicated artifact, decided the same way on every node without talking:
//! the eligible online nodes that do not hold it, ranked by XOR distance between the sha256 of
//! their agent key and the sha256 of the CID (IPFS Cluster's rule); the `deficit` closest each add
//! one replica. An artifact must stay under-replicated for a grace window first, and a node makes
//! at most so many repairs a minute. `manifests/distributed/storage_policy.yaml` sets the numbers.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use holochain_types::prelude::AgentPubKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StoragePolicyError {
    #[error("cannot read the storage policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the storage policy {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The parts of storage_policy.yaml the replication loop reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoragePolicy {
    pub name: String,
    pub min_providers: usize,
    pub lease_secs: u32,
    pub grace_secs: u32,
    pub max_repairs_per_minute: u32,
    pub scan_interval_secs: u32,
}

#[derive(Deserialize)]
struct File {
    storage_policy: PolicyFile,
}

#[derive(Deserialize)]
struct PolicyFile {
    name: String,
    tiers: HashMap<String, yaml_serde::Value>,
    replication: ReplicationFile,
    #[serde(flatten)]
    _rest: HashMap<String, yaml_serde::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicationFile {
    tier: String,
    lease_seconds: u32,
    grace_seconds: u32,
    max_repairs_per_minute: u32,
    scan_interval_seconds: u32,
}

impl StoragePolicy {
    pub fn path(manifests: &Path) -> PathBuf {
        manifests.join("distributed/storage_policy.yaml")
    }

    pub fn load(manifests: &Path) -> Result<Self, StoragePolicyError> {
        let path = Self::path(manifests);
        let text =
            std::fs::read_to_string(&path).map_err(|source| StoragePolicyError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|reason| StoragePolicyError::Invalid { path, reason })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let p = file.storage_policy;
        let r = p.replication;
        let tier =
            p.tiers.get(&r.tier).ok_or_else(|| format!("replication.tier `{}` is not among the tiers", r.tier))?;
        let min_providers = tier
            .get("min_providers")
            .and_then(yaml_serde::Value::as_u64)
            .ok_or_else(|| format!("tier `{}` needs a whole number min_providers", r.tier))?;
        if !(1..=64).contains(&min_providers) {
            return Err(format!("min_providers must be 1-64, not {min_providers}"));
        }
        if r.grace_seconds < crate::node::MIN_DEPARTURE_WINDOW_SECS {
            return Err(format!(
                "grace_seconds must be at least {} (longer than the liveness protocol takes to see a node back)",
                crate::node::MIN_DEPARTURE_WINDOW_SECS
            ));
        }
        let lease_range = artifact_index_types::LEASE_MIN_SECS..=artifact_index_types::LEASE_MAX_SECS;
        if !lease_range.contains(&i64::from(r.lease_seconds)) {
            return Err(format!("lease_seconds must be {}-{}", lease_range.start(), lease_range.end()));
        }
        if r.max_repairs_per_minute == 0 || r.scan_interval_seconds == 0 {
            return Err("max_repairs_per_minute and scan_interval_seconds must be positive".into());
        }
        Ok(Self {
            name: p.name,
            min_providers: min_providers as usize,
            lease_secs: r.lease_seconds,
            grace_secs: r.grace_seconds,
            max_repairs_per_minute: r.max_repairs_per_minute,
            scan_interval_secs: r.scan_interval_seconds,
        })
    }
}

/// A node that could hold a replica, as its advert and heartbeats describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub agent: AgentPubKey,
    /// Free local storage from the advert, in bytes.
    pub free_bytes: u64,
    /// The advert shows an IPFS repo (a node without one cannot pin).
    pub has_ipfs: bool,
}

impl Candidate {
    /// An IPFS repo, room for `size` bytes, and no replica of the CID yet.
    fn could_repair(&self, size: u64, holders: &[AgentPubKey]) -> bool {
        self.has_ipfs && self.free_bytes >= size && !holders.contains(&self.agent)
    }
}

/// sha256(agent key) XOR sha256(CID), compared as a big-endian number.
pub fn distance(agent: &AgentPubKey, cid: &str) -> [u8; 32] {
    let a = Sha256::digest(agent.get_raw_39());
    let c = Sha256::digest(cid.as_bytes());
    let mut d = [0u8; 32];
    for (i, byte) in d.iter_mut().enumerate() {
        *byte = a[i] ^ c[i];
    }
    d
}

/// The nodes that should each add one replica of `cid` now: the `min_providers - live` closest
/// online candidates with an IPFS repo and room for `size` bytes that do not hold it already.
pub fn responsible(
    cid: &str,
    size: u64,
    online: &[Candidate],
    holders: &[AgentPubKey],
    min_providers: usize,
) -> Vec<AgentPubKey> {
    let deficit = min_providers.saturating_sub(holders.len());
    let mut eligible: Vec<&Candidate> = online.iter().filter(|c| c.could_repair(size, holders)).collect();
    eligible.sort_by_key(|c| distance(&c.agent, cid));
    eligible.dedup_by(|a, b| a.agent == b.agent);
    eligible.into_iter().take(deficit).map(|c| c.agent.clone()).collect()
}

/// How many grace periods (`grace_seconds`) `me` waits before its repair of `cid`: one, or two
/// when a node that would rank before it is unseen — its advert says online but this node does
/// not see it alive. Heartbeats can be late to reach one node (a busy machine, a slow gossip
/// round) while that node is alive and repairing; the second window lets its claim arrive first,
/// so one missing replica is not repaired twice. A node that is really gone costs one window.
pub fn grace_windows(cid: &str, size: u64, me: &AgentPubKey, unseen: &[Candidate], holders: &[AgentPubKey]) -> u32 {
    let mine = distance(me, cid);
    if unseen.iter().any(|c| c.could_repair(size, holders) && distance(&c.agent, cid) < mine) {
        2
    } else {
        1
    }
}

/// Grace windows and the repair rate limit of one node.
#[derive(Debug, Default)]
pub struct RepairGate {
    under_since: HashMap<String, Instant>,
    recent: VecDeque<Instant>,
}

impl RepairGate {
    /// Records whether `cid` is under-replicated now; true once it has been for `grace`.
    pub fn due(&mut self, cid: &str, under: bool, grace: Duration, now: Instant) -> bool {
        if !under {
            self.under_since.remove(cid);
            return false;
        }
        let since = *self.under_since.entry(cid.to_string()).or_insert(now);
        now.duration_since(since) >= grace
    }

    /// Takes one repair from the per-minute budget, if any is left.
    pub fn take(&mut self, per_minute: u32, now: Instant) -> bool {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            self.recent.pop_front();
        }
        if self.recent.len() >= per_minute as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// Forgets an artifact once repaired, so a later deficit starts a fresh grace window.
    pub fn repaired(&mut self, cid: &str) {
        self.under_since.remove(cid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

    fn node(n: u8) -> Candidate {
        Candidate { agent: AgentPubKey::from_raw_32(vec![n; 32]), free_bytes: 1 << 40, has_ipfs: true }
    }

    #[test]
    fn the_committed_policy_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let policy = StoragePolicy::load(&root).expect("manifests/distributed/storage_policy.yaml loads");
        assert_eq!(policy.min_providers, 3, "the spec's warm tier");
        assert_eq!((policy.lease_secs, policy.grace_secs), (600, 600));
    }

    #[test]
    fn every_node_picks_the_same_closest_repairers() {
        let online: Vec<Candidate> = (1..=6).map(node).collect();
        let holder = online[0].agent.clone();
        let picked = responsible(CID, 10, &online, std::slice::from_ref(&holder), 3);
        assert_eq!(picked.len(), 2, "a deficit of two needs two repairers");
        assert!(!picked.contains(&holder), "a holder never repairs what it holds");
        let mut shuffled = online.clone();
        shuffled.reverse();
        assert_eq!(
            responsible(CID, 10, &shuffled, std::slice::from_ref(&holder), 3),
            picked,
            "order of discovery does not matter"
        );
        let mut ranked: Vec<&Candidate> = online.iter().filter(|c| c.agent != holder).collect();
        ranked.sort_by_key(|c| distance(&c.agent, CID));
        assert_eq!(picked, vec![ranked[0].agent.clone(), ranked[1].agent.clone()], "the closest ones");
        assert!(responsible(CID, 10, &online, &[holder.clone(), picked[0].clone(), picked[1].clone()], 3).is_empty());
    }

    #[test]
    fn nodes_without_room_or_ipfs_are_skipped() {
        let full = Candidate { free_bytes: 5, ..node(1) };
        let no_ipfs = Candidate { has_ipfs: false, ..node(2) };
        assert!(responsible(CID, 10, &[full, no_ipfs.clone()], &[], 1).is_empty());
        assert_eq!(responsible(CID, 10, &[no_ipfs, node(3)], &[], 1), vec![node(3).agent]);
    }

    #[test]
    fn a_closer_node_not_seen_beating_gets_one_more_window() {
        let mut nodes: Vec<Candidate> = (1..=4).map(node).collect();
        nodes.sort_by_key(|c| distance(&c.agent, CID));
        let (closest, me, farther) = (&nodes[0], &nodes[1].agent, &nodes[2]);
        assert_eq!(grace_windows(CID, 10, me, &[], &[]), 1, "nobody unseen");
        assert_eq!(grace_windows(CID, 10, me, std::slice::from_ref(farther), &[]), 1, "only a farther one");
        assert_eq!(grace_windows(CID, 10, me, std::slice::from_ref(closest), &[]), 2);
        assert_eq!(
            grace_windows(CID, 10, me, std::slice::from_ref(closest), std::slice::from_ref(&closest.agent)),
            1,
            "it holds a replica already: it would not repair"
        );
        let no_ipfs = Candidate { has_ipfs: false, ..closest.clone() };
        assert_eq!(grace_windows(CID, 10, me, &[no_ipfs], &[]), 1, "it could not repair");
    }

    #[test]
    fn repairs_wait_out_the_grace_window_and_the_rate_limit() {
        let mut gate = RepairGate::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(12);
        assert!(!gate.due(CID, true, grace, t0));
        assert!(!gate.due(CID, true, grace, t0 + Duration::from_secs(11)));
        assert!(gate.due(CID, true, grace, t0 + Duration::from_secs(12)));
        assert!(!gate.due(CID, false, grace, t0 + Duration::from_secs(13)), "healed: the window restarts");
        assert!(!gate.due(CID, true, grace, t0 + Duration::from_secs(14)));
        assert!(gate.take(2, t0) && gate.take(2, t0));
        assert!(!gate.take(2, t0 + Duration::from_secs(59)));
        assert!(gate.take(2, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_short_grace_or_lease_is_refused() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/distributed/storage_policy.yaml"),
        )
        .unwrap();
        let short = text.replace("grace_seconds: 600", "grace_seconds: 5");
        assert!(StoragePolicy::parse(&short).is_err_and(|e| e.contains("grace_seconds must be at least 10")));
        let lease = text.replace("lease_seconds: 600", "lease_seconds: 1");
        assert!(StoragePolicy::parse(&lease).is_err_and(|e| e.contains("lease_seconds")));
    }
}
