//! The entries and the rules that need nothing but their own fields (SM1, SC1, SC3, CP2).
use hdi::prelude::*;

use crate::rules::{ensure, Rule, RuleViolation};

pub const COLLECTION_MAX: usize = 64;
pub const SHARD_COUNT_MAX: u32 = 1024;
pub const REPLICATION_MAX: u32 = 16;
/// More vectors than any one replica will hold; anything larger is a corrupt count.
pub const VECTOR_COUNT_MAX: u64 = 1_000_000_000_000;
/// Key → shard: jump consistent hash (Lamping & Veach) of the first 8 bytes (big-endian) of the
/// key's sha256. Shard → holders: rendezvous order of sha256(`collection/shard/agent`).
pub const HASH_SHA256_JUMP: &str = "sha256-jump";
pub const HASH_FUNCTIONS: [&str; 1] = [HASH_SHA256_JUMP];

/// How a collection is split and replicated. The owner is the action's author.
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// 1-64 characters of `[a-z0-9._-]`.
    pub collection: String,
    pub shard_count: u32,
    pub replication_factor: u32,
    /// One of `HASH_FUNCTIONS`.
    pub hash_function: String,
    /// Starts at 1; a resharded collection gets a new map with a higher epoch.
    pub epoch: u32,
}

/// "`holder` holds replica `replica` of shard `shard` of the map's collection in `epoch`".
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct ShardClaim {
    /// The `ShardMap` record.
    pub map: ActionHash,
    pub shard: u32,
    pub replica: u32,
    pub epoch: u32,
    /// The holding node: always the action's author.
    pub holder: AgentPubKey,
    /// How many shard replicas the holder advertises room for (its `memory.vector_shards`).
    pub vector_capacity: u32,
}

/// How far one replica has synced. Between replicas of a shard the last write wins: the
/// checkpoint with the highest `sequence`, then the latest action timestamp, then the greatest
/// author key (see docs/integrity/memory_shards.md).
#[hdk_entry_helper]
#[derive(Clone, PartialEq, Eq)]
pub struct SyncCheckpoint {
    /// The `ShardClaim` record of the replica.
    pub claim: ActionHash,
    pub shard: u32,
    pub replica: u32,
    /// The replica's write sequence (version) at the snapshot.
    pub sequence: u64,
    pub vector_count: u64,
    /// The IPFS CID of the replica's snapshot, if one was written.
    pub snapshot_cid: Option<String>,
}

impl ShardMap {
    /// Rules: SM1.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(is_collection(&self.collection), Rule::SM1, || {
            format!("collection `{}` must be 1-{COLLECTION_MAX} characters of [a-z0-9._-]", clip(&self.collection))
        })?;
        ensure((1..=SHARD_COUNT_MAX).contains(&self.shard_count), Rule::SM1, || {
            format!("shard_count must be 1-{SHARD_COUNT_MAX}, not {}", self.shard_count)
        })?;
        ensure((1..=REPLICATION_MAX).contains(&self.replication_factor), Rule::SM1, || {
            format!("replication_factor must be 1-{REPLICATION_MAX}, not {}", self.replication_factor)
        })?;
        ensure(HASH_FUNCTIONS.contains(&self.hash_function.as_str()), Rule::SM1, || {
            format!("hash_function `{}` must be one of {HASH_FUNCTIONS:?}", clip(&self.hash_function))
        })?;
        ensure(self.epoch >= 1, Rule::SM1, || "epoch starts at 1".into())
    }
}

impl ShardClaim {
    /// Rules: SC1 (the holder is the author), SC3 (vector capacity).
    pub fn check(&self, author: &AgentPubKey) -> Result<(), RuleViolation> {
        ensure(&self.holder == author, Rule::SC1, || {
            format!("a claim is made by its holder, not on behalf of {}", self.holder)
        })?;
        ensure(self.vector_capacity >= 1, Rule::SC3, || "only a node advertising vector capacity holds shards".into())
    }
}

impl SyncCheckpoint {
    /// Rules: CP2.
    pub fn check(&self) -> Result<(), RuleViolation> {
        ensure(self.vector_count <= VECTOR_COUNT_MAX, Rule::CP2, || {
            format!("vector_count {} is more than {VECTOR_COUNT_MAX}", self.vector_count)
        })?;
        if let Some(cid) = &self.snapshot_cid {
            ensure(is_cid(cid), Rule::CP2, || format!("snapshot `{}` is not a CIDv0 or CIDv1", clip(cid)))?;
        }
        Ok(())
    }
}

pub fn is_collection(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= COLLECTION_MAX
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// A CID as IPFS prints one: CIDv0 is base58btc `Qm` + 44 characters (a sha2-256 multihash);
/// CIDv1 is a multibase string, base32 lower case (`b…`) or base58btc (`z…`).
pub fn is_cid(s: &str) -> bool {
    const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let base58 = |t: &str| t.chars().all(|c| BASE58.contains(c));
    if s.len() == 46 && s.starts_with("Qm") {
        return base58(s);
    }
    if !(9..=128).contains(&s.len()) {
        return false;
    }
    match s.split_at(1) {
        ("b", rest) => rest.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
        ("z", rest) => base58(rest),
        _ => false,
    }
}

/// At most 80 characters of untrusted input, for messages.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ShardMap {
        ShardMap {
            collection: "docs.v1".into(),
            shard_count: 16,
            replication_factor: 2,
            hash_function: HASH_SHA256_JUMP.into(),
            epoch: 1,
        }
    }

    #[test]
    fn map_fields_are_bounded() {
        assert_eq!(map().check(), Ok(()));
        let rule = |m: ShardMap| m.check().map_err(|v| v.rule);
        assert_eq!(rule(ShardMap { collection: "Docs".into(), ..map() }), Err(Rule::SM1));
        assert_eq!(rule(ShardMap { collection: String::new(), ..map() }), Err(Rule::SM1));
        assert_eq!(rule(ShardMap { shard_count: 0, ..map() }), Err(Rule::SM1));
        assert_eq!(rule(ShardMap { shard_count: SHARD_COUNT_MAX + 1, ..map() }), Err(Rule::SM1));
        assert_eq!(rule(ShardMap { replication_factor: 0, ..map() }), Err(Rule::SM1));
        assert_eq!(rule(ShardMap { hash_function: "md5".into(), ..map() }), Err(Rule::SM1));
        assert_eq!(rule(ShardMap { epoch: 0, ..map() }), Err(Rule::SM1));
    }

    #[test]
    fn checkpoints_are_bounded() {
        let cp = SyncCheckpoint {
            claim: ActionHash::from_raw_36(vec![0; 36]),
            shard: 0,
            replica: 0,
            sequence: 1,
            vector_count: 10,
            snapshot_cid: Some("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".into()),
        };
        assert_eq!(cp.check(), Ok(()));
        let rule = |c: SyncCheckpoint| c.check().map_err(|v| v.rule);
        assert_eq!(rule(SyncCheckpoint { snapshot_cid: Some("ipfs://x".into()), ..cp.clone() }), Err(Rule::CP2));
        assert_eq!(rule(SyncCheckpoint { vector_count: VECTOR_COUNT_MAX + 1, ..cp }), Err(Rule::CP2));
    }
}
