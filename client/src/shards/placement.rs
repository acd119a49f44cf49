//! Where shards live and where keys go, decided the same way on every node from the same DHT
//! state, without talking (spec §10.7 `consistent_hash`):
//!
//! - **key → shard**: jump consistent hash (Lamping & Veach) of the first 8 bytes of sha256(key),
//!   so growing a collection's shard count moves only the keys that must move;
//! - **shard → nodes**: the eligible nodes (online with the grace buckets, see
//!   `MeshView::all_with_grace`; advertising vector capacity) ranked by
//!   sha256(`collection/shard/agent key`), highest first (rendezvous hashing: the "ring"). The
//!   first `replication_factor` with room are the shard's placed holders; when one leaves, the
//!   next on the ring takes its place and no other shard moves.
//!
//! `plan` turns placement and the claims on the DHT into what this node should claim or release.
//! `manifests/distributed/memory_policy.yaml` sets the numbers.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use holochain_types::prelude::{ActionHash, AgentPubKey};
use memory_shards_types::{ClaimRecord, HASH_FUNCTIONS, REPLICATION_MAX, SHARD_COUNT_MAX};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::node::MIN_DEPARTURE_WINDOW_SECS;

#[derive(Debug, thiserror::Error)]
pub enum MemoryPolicyError {
    #[error("cannot read the memory policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the memory policy {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The parts of memory_policy.yaml the shard loop reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPolicy {
    pub name: String,
    pub shard_count: u32,
    pub replication_factor: u32,
    pub hash_function: String,
    pub scan_interval_secs: u32,
    pub settle_secs: u32,
    pub conflict_resolution: String,
}

#[derive(Deserialize)]
struct File {
    memory_policy: PolicyFile,
}

#[derive(Deserialize)]
struct PolicyFile {
    name: String,
    vector_store: VectorStoreFile,
    placement: PlacementFile,
    sync: SyncFile,
    #[serde(flatten)]
    _rest: HashMap<String, yaml_serde::Value>,
}

#[derive(Deserialize)]
struct VectorStoreFile {
    sharding: ShardingFile,
    #[serde(flatten)]
    _rest: HashMap<String, yaml_serde::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardingFile {
    strategy: String,
    hash_function: String,
    shard_count: u32,
    replication_factor: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacementFile {
    scan_interval_seconds: u32,
    settle_seconds: u32,
}

#[derive(Deserialize)]
struct SyncFile {
    conflict_resolution: String,
    #[serde(flatten)]
    _rest: HashMap<String, yaml_serde::Value>,
}

impl MemoryPolicy {
    pub fn path(manifests: &Path) -> PathBuf {
        manifests.join("distributed/memory_policy.yaml")
    }

    pub fn load(manifests: &Path) -> Result<Self, MemoryPolicyError> {
        let path = Self::path(manifests);
        let text =
            std::fs::read_to_string(&path).map_err(|source| MemoryPolicyError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|reason| MemoryPolicyError::Invalid { path, reason })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let p = file.memory_policy;
        let s = p.vector_store.sharding;
        if s.strategy != "consistent_hash" {
            return Err(format!("sharding.strategy `{}` is not supported: use consistent_hash", s.strategy));
        }
        if !HASH_FUNCTIONS.contains(&s.hash_function.as_str()) {
            return Err(format!("sharding.hash_function `{}` must be one of {HASH_FUNCTIONS:?}", s.hash_function));
        }
        check_shape(s.shard_count, s.replication_factor)?;
        if p.placement.settle_seconds < MIN_DEPARTURE_WINDOW_SECS {
            return Err(format!(
                "settle_seconds must be at least {MIN_DEPARTURE_WINDOW_SECS} (longer than the liveness protocol takes to see a node back)"
            ));
        }
        if p.placement.scan_interval_seconds == 0 {
            return Err("scan_interval_seconds must be positive".into());
        }
        if p.sync.conflict_resolution != "last_write_wins" {
            return Err(format!(
                "sync.conflict_resolution `{}` is not supported: use last_write_wins",
                p.sync.conflict_resolution
            ));
        }
        Ok(Self {
            name: p.name,
            shard_count: s.shard_count,
            replication_factor: s.replication_factor,
            hash_function: s.hash_function,
            scan_interval_secs: p.placement.scan_interval_seconds,
            settle_secs: p.placement.settle_seconds,
            conflict_resolution: p.sync.conflict_resolution,
        })
    }
}

/// The bounds the DNA enforces (rule SM1), checked before anything is written.
pub fn check_shape(shard_count: u32, replication_factor: u32) -> Result<(), String> {
    if !(1..=SHARD_COUNT_MAX).contains(&shard_count) {
        return Err(format!("shard_count must be 1-{SHARD_COUNT_MAX}, not {shard_count}"));
    }
    if !(1..=REPLICATION_MAX).contains(&replication_factor) {
        return Err(format!("replication_factor must be 1-{REPLICATION_MAX}, not {replication_factor}"));
    }
    Ok(())
}

/// The shard `key` belongs to: jump consistent hash of the first 8 bytes of sha256(key).
pub fn shard_of(key: &str, shard_count: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    jump_consistent_hash(u64::from_be_bytes(first), shard_count)
}

/// Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014).
fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets.max(1)) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// A node's place on shard `shard`'s ring: sha256(`collection/shard/` + agent key bytes).
pub fn rank(collection: &str, shard: u32, agent: &AgentPubKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("{collection}/{shard}/").as_bytes());
    h.update(agent.get_raw_39());
    h.finalize().into()
}

/// A node that may hold shards: online in agent_registry (with the grace buckets), advertising
/// `capacity` vector shards.
#[derive(Debug, Clone, PartialEq)]
pub struct Eligible {
    pub agent: AgentPubKey,
    pub capacity: u32,
}

/// A collection's shape, as its map says.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape<'a> {
    pub collection: &'a str,
    pub shard_count: u32,
    pub replication_factor: u32,
}

impl Shape<'_> {
    /// `nodes` in shard `shard`'s ring order, highest rank first.
    fn ring<'n>(&self, shard: u32, nodes: impl Iterator<Item = &'n AgentPubKey>) -> Vec<&'n AgentPubKey> {
        let mut ranked: Vec<(&AgentPubKey, [u8; 32])> = nodes.map(|a| (a, rank(self.collection, shard, a))).collect();
        ranked.sort_by_key(|x| std::cmp::Reverse(x.1));
        ranked.into_iter().map(|(a, _)| a).collect()
    }

    /// For every shard, the nodes it should be on: the first `replication_factor` eligible nodes
    /// on its ring that still have room, shards taken in order (so capacity is shared the same way
    /// on every node).
    pub fn placement(&self, eligible: &[Eligible]) -> Vec<Vec<AgentPubKey>> {
        let mut used: HashMap<&AgentPubKey, u32> = HashMap::new();
        let capacity: HashMap<&AgentPubKey, u32> = eligible.iter().map(|e| (&e.agent, e.capacity)).collect();
        (0..self.shard_count)
            .map(|shard| {
                let mut placed = vec![];
                for agent in self.ring(shard, eligible.iter().map(|e| &e.agent)) {
                    if placed.len() as u32 == self.replication_factor {
                        break;
                    }
                    let n = used.entry(agent).or_default();
                    if *n < capacity[agent] {
                        *n += 1;
                        placed.push(agent.clone());
                    }
                }
                placed
            })
            .collect()
    }

    /// The live claims on `shard` — holders eligible now, one claim per holder — in ring order:
    /// the first is the shard's primary.
    pub fn live_holders<'c>(
        &self,
        shard: u32,
        claims: &'c [ClaimRecord],
        eligible: &[Eligible],
    ) -> Vec<&'c ClaimRecord> {
        let mut by_holder: BTreeMap<&AgentPubKey, &ClaimRecord> = BTreeMap::new();
        for c in claims.iter().filter(|c| c.claim.shard == shard) {
            if eligible.iter().any(|e| e.agent == c.claim.holder) {
                by_holder.entry(&c.claim.holder).or_insert(c); // oldest claim first (the zome's order)
            }
        }
        self.ring(shard, by_holder.keys().copied()).into_iter().map(|a| by_holder[a]).collect()
    }
}

/// One thing this node should do about a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Claim this replica slot (placed here and not held; or moving off a slot a higher-ranked
    /// holder also claimed).
    Claim { shard: u32, replica: u32 },
    /// Hand the shard back: not placed here, and every placed holder holds it. The caller waits
    /// for the settle window before releasing the claim.
    Release { shard: u32, claim_id: ActionHash },
    /// Release a second claim of this node on the same shard (the slot it moved off) at once: the
    /// node still holds the shard under its other claim.
    Drop { shard: u32, claim_id: ActionHash },
}

/// What `me` should do for every shard of a map, given the live claims and who is eligible.
pub fn plan(me: &AgentPubKey, shape: &Shape, claims: &[ClaimRecord], eligible: &[Eligible]) -> Vec<Step> {
    let placement = shape.placement(eligible);
    let mut steps = vec![];
    for (shard, placed) in (0..shape.shard_count).zip(&placement) {
        let live = shape.live_holders(shard, claims, eligible);
        let mine: Vec<&ClaimRecord> =
            claims.iter().filter(|c| c.claim.shard == shard && &c.claim.holder == me).collect();
        let slots_of_others: Vec<(u32, &AgentPubKey)> =
            live.iter().filter(|c| &c.claim.holder != me).map(|c| (c.claim.replica, &c.claim.holder)).collect();
        let taken = |r: u32| slots_of_others.iter().any(|(slot, _)| *slot == r);
        // A node's slot is its place among the shard's placed holders, so nodes that claim at
        // the same moment from the same view never collide; any free slot if another holds it.
        let own_slot = placed.iter().position(|p| p == me).map(|i| i as u32).filter(|r| !taken(*r));
        let free_slot = own_slot.or_else(|| (0..shape.replication_factor).find(|r| !taken(*r)));
        let placed_here = placed.contains(me);
        match mine.first() {
            None if placed_here => {
                // No free slot means a holder that is no longer placed still has one: share its
                // slot until it hands the shard over.
                let replica = free_slot.unwrap_or_else(|| lowest_ranked_slot(shape, shard, &slots_of_others));
                steps.push(Step::Claim { shard, replica });
            }
            None => {}
            Some(_) => {
                // Keep a claim whose slot no higher-ranked holder shares; any other is a leftover.
                let me_rank = rank(shape.collection, shard, me);
                let contested = |c: &ClaimRecord| {
                    slots_of_others.iter().any(|(slot, holder)| {
                        *slot == c.claim.replica && rank(shape.collection, shard, holder) > me_rank
                    })
                };
                let keep = mine.iter().position(|c| !contested(c)).unwrap_or(0);
                steps.extend(
                    (0..mine.len())
                        .filter(|i| *i != keep)
                        .map(|i| Step::Drop { shard, claim_id: mine[i].claim_id.clone() }),
                );
                let kept = mine[keep];
                let handed_over = placed.iter().all(|p| p == me || live.iter().any(|c| &c.claim.holder == p));
                if !placed_here && handed_over {
                    steps.push(Step::Release { shard, claim_id: kept.claim_id.clone() });
                } else if placed_here && contested(kept) {
                    // Move to a free slot; the contested claim is dropped once the new one is seen.
                    if let Some(free) = free_slot {
                        steps.push(Step::Claim { shard, replica: free });
                    }
                }
            }
        }
    }
    steps
}

/// The slot of the lowest-ranked of these holders.
fn lowest_ranked_slot(shape: &Shape, shard: u32, slots: &[(u32, &AgentPubKey)]) -> u32 {
    slots.iter().min_by_key(|(_, holder)| rank(shape.collection, shard, holder)).map(|(slot, _)| *slot).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use holochain_types::prelude::Timestamp;
    use memory_shards_types::ShardClaim;

    fn agent(i: u8) -> AgentPubKey {
        AgentPubKey::from_raw_32(vec![i; 32])
    }

    fn eligible(agents: &[u8]) -> Vec<Eligible> {
        agents.iter().map(|i| Eligible { agent: agent(*i), capacity: 16 }).collect()
    }

    const SHAPE: Shape<'static> = Shape { collection: "docs", shard_count: 16, replication_factor: 2 };

    /// The mesh's claims, driven by every eligible node planning in turn until nobody has
    /// anything left to do (releases applied at once: the settle window is the caller's).
    struct Mesh {
        claims: Vec<ClaimRecord>,
        next_id: u32,
        steps: usize,
    }

    impl Mesh {
        fn settle(&mut self, nodes: &[Eligible]) {
            for _round in 0..10 {
                let mut acted = false;
                for node in nodes {
                    for step in plan(&node.agent, &SHAPE, &self.claims, nodes) {
                        acted = true;
                        self.steps += 1;
                        match step {
                            Step::Claim { shard, replica } => self.claim(&node.agent, shard, replica),
                            Step::Release { claim_id, .. } | Step::Drop { claim_id, .. } => {
                                self.claims.retain(|c| c.claim_id != claim_id)
                            }
                        }
                    }
                }
                if !acted {
                    return;
                }
            }
            panic!("the mesh did not settle in 10 rounds: it oscillates");
        }

        /// Every node plans on the same snapshot and then all act: the race of nodes that see
        /// nothing of each other's claims yet.
        fn settle_concurrently(&mut self, nodes: &[Eligible]) {
            for _round in 0..10 {
                let snapshot = self.claims.clone();
                let steps: Vec<(AgentPubKey, Step)> = nodes
                    .iter()
                    .flat_map(|n| plan(&n.agent, &SHAPE, &snapshot, nodes).into_iter().map(|s| (n.agent.clone(), s)))
                    .collect();
                if steps.is_empty() {
                    return;
                }
                for (agent, step) in steps {
                    self.steps += 1;
                    match step {
                        Step::Claim { shard, replica } => self.claim(&agent, shard, replica),
                        Step::Release { claim_id, .. } | Step::Drop { claim_id, .. } => {
                            self.claims.retain(|c| c.claim_id != claim_id)
                        }
                    }
                }
            }
            panic!("the mesh did not settle in 10 rounds: it oscillates");
        }

        fn claim(&mut self, holder: &AgentPubKey, shard: u32, replica: u32) {
            self.next_id += 1;
            let mut id = self.next_id.to_be_bytes().to_vec();
            id.resize(32, 0);
            self.claims.push(ClaimRecord {
                claim_id: ActionHash::from_raw_32(id),
                claimed_at: Timestamp::from_micros(i64::from(self.next_id)),
                claim: ShardClaim {
                    map: ActionHash::from_raw_32(vec![9; 32]),
                    shard,
                    replica,
                    epoch: 1,
                    holder: holder.clone(),
                    vector_capacity: 16,
                },
            });
        }

        /// Per shard, the live holders in ring order.
        fn routes(&self, nodes: &[Eligible]) -> Vec<Vec<AgentPubKey>> {
            (0..SHAPE.shard_count)
                .map(|s| SHAPE.live_holders(s, &self.claims, nodes).iter().map(|c| c.claim.holder.clone()).collect())
                .collect()
        }
    }

    #[test]
    fn keys_spread_over_the_shards_and_growing_the_count_only_moves_keys_to_the_new_shard() {
        let keys: Vec<String> = (0..4000).map(|i| format!("doc-{i}")).collect();
        let mut per_shard = [0u32; 16];
        for k in &keys {
            per_shard[shard_of(k, 16) as usize] += 1;
        }
        assert!(per_shard.iter().all(|n| (150..=350).contains(n)), "uneven: {per_shard:?}");
        for k in &keys {
            let (before, after) = (shard_of(k, 16), shard_of(k, 17));
            assert!(after == before || after == 16, "{k} moved from {before} to {after}");
        }
        assert_eq!(shard_of("doc-1", 16), shard_of("doc-1", 16));
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn four_nodes_hold_every_shard_twice_and_a_departure_moves_only_its_shards() {
        let four = eligible(&[1, 2, 3, 4]);
        let placed = SHAPE.placement(&four);
        for holders in &placed {
            assert_eq!(holders.len(), 2);
            assert_ne!(holders[0], holders[1]);
        }
        let three = eligible(&[1, 2, 3]);
        let after = SHAPE.placement(&three);
        for (before, after) in placed.iter().zip(&after) {
            let kept: Vec<&AgentPubKey> = before.iter().filter(|a| **a != agent(4)).collect();
            assert!(
                kept.iter().all(|a| after.contains(a)),
                "a surviving holder lost its shard: {before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn capacity_limits_how_many_shards_a_node_is_placed_on() {
        let mut nodes = eligible(&[1, 2, 3, 4]);
        nodes[0].capacity = 1;
        let placed = SHAPE.placement(&nodes);
        assert_eq!(placed.iter().filter(|h| h.contains(&agent(1))).count(), 1);
        assert!(placed.iter().all(|h| h.len() == 2));
        let tiny = [Eligible { agent: agent(1), capacity: 3 }];
        let placed = SHAPE.placement(&tiny);
        assert_eq!(placed.iter().filter(|h| !h.is_empty()).count(), 3, "a lone node fills only its capacity");
    }

    #[test]
    fn the_mesh_converges_re_claims_after_a_loss_and_settles_back_without_oscillating() {
        let four = eligible(&[1, 2, 3, 4]);
        let mut mesh = Mesh { claims: vec![], next_id: 0, steps: 0 };
        mesh.settle(&four);
        let routes = mesh.routes(&four);
        assert_eq!(routes, SHAPE.placement(&four), "every shard is held by its two placed nodes");
        assert_eq!(mesh.claims.len(), 32);
        for shard in 0..16 {
            let mut slots: Vec<u32> =
                mesh.claims.iter().filter(|c| c.claim.shard == shard).map(|c| c.claim.replica).collect();
            slots.sort();
            assert_eq!(slots, vec![0, 1], "shard {shard} uses both replica slots once");
        }

        // Node 4 goes offline: its claims stay on the DHT but no longer count.
        let three = eligible(&[1, 2, 3]);
        mesh.steps = 0;
        mesh.settle(&three);
        let held_by_4 = routes.iter().filter(|h| h.contains(&agent(4))).count();
        assert_eq!(mesh.steps, held_by_4, "one claim per shard node 4 held, nothing else moves");
        assert!(mesh.routes(&three).iter().all(|h| h.len() == 2));

        // It comes back: it re-claims nothing (its old claims are still there), the interim
        // holders hand back, and the result is the original placement.
        mesh.steps = 0;
        mesh.settle(&four);
        assert_eq!(mesh.routes(&four), routes);
        assert_eq!(mesh.steps, held_by_4, "exactly the interim claims are released");
        assert!(plan(&agent(1), &SHAPE, &mesh.claims, &four).is_empty());
    }

    #[test]
    fn nodes_that_claim_at_the_same_time_end_with_one_claim_per_slot() {
        let four = eligible(&[1, 2, 3, 4]);
        let mut mesh = Mesh { claims: vec![], next_id: 0, steps: 0 };
        mesh.settle_concurrently(&four);
        assert_eq!(mesh.routes(&four), SHAPE.placement(&four));
        assert_eq!(mesh.claims.len(), 32, "the moved-off claims are dropped");
        for shard in 0..16 {
            let mut slots: Vec<u32> =
                mesh.claims.iter().filter(|c| c.claim.shard == shard).map(|c| c.claim.replica).collect();
            slots.sort();
            assert_eq!(slots, vec![0, 1], "shard {shard}");
        }
        assert_eq!(mesh.steps, 32, "each node claims its place's slot: nothing collides, nothing moves");
    }

    #[test]
    fn a_slot_collision_is_resolved_by_the_lower_ranked_holder() {
        let two = eligible(&[1, 2]);
        let shape = Shape { shard_count: 1, ..SHAPE };
        let mut mesh = Mesh { claims: vec![], next_id: 0, steps: 0 };
        mesh.claim(&agent(1), 0, 0);
        mesh.claim(&agent(2), 0, 0);
        let lower = if rank("docs", 0, &agent(1)) < rank("docs", 0, &agent(2)) { agent(1) } else { agent(2) };
        let higher = if lower == agent(1) { agent(2) } else { agent(1) };
        let contested = mesh.claims.iter().find(|c| c.claim.holder == lower).unwrap().claim_id.clone();
        assert_eq!(plan(&lower, &shape, &mesh.claims, &two), vec![Step::Claim { shard: 0, replica: 1 }]);
        assert!(plan(&higher, &shape, &mesh.claims, &two).is_empty());
        // Once the new claim exists, the contested one is dropped at once (not after a window)
        // and the new one is kept, whatever their age.
        mesh.claim(&lower, 0, 1);
        assert_eq!(
            plan(&lower, &shape, &mesh.claims, &two),
            vec![Step::Drop { shard: 0, claim_id: contested.clone() }]
        );
        mesh.claims.retain(|c| c.claim_id != contested);
        assert!(plan(&lower, &shape, &mesh.claims, &two).is_empty());
        assert!(plan(&higher, &shape, &mesh.claims, &two).is_empty());
    }

    #[test]
    fn the_committed_policy_parses_and_bad_values_are_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let text = std::fs::read_to_string(MemoryPolicy::path(&root)).unwrap();
        let policy = MemoryPolicy::parse(&text).unwrap();
        assert_eq!((policy.shard_count, policy.replication_factor), (16, 2));
        assert_eq!(policy.hash_function, "sha256-jump");
        let bad = |from: &str, to: &str| MemoryPolicy::parse(&text.replace(from, to)).unwrap_err();
        assert!(bad("shard_count: 16", "shard_count: 0").contains("shard_count"));
        assert!(bad("strategy: consistent_hash", "strategy: range").contains("consistent_hash"));
        assert!(bad("settle_seconds: 600", "settle_seconds: 5").contains("settle"));
        assert!(bad("conflict_resolution: last_write_wins", "conflict_resolution: merge").contains("last_write_wins"));
    }
}
