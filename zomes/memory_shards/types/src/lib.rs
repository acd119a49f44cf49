//! Inputs and outputs of the memory_shards coordinator zomes (`shards`, `routing`, `sync`), shared
//! by the zomes, the sidecar and the tests. Not a zome: it exports no externs and is not part of
//! the DNA hash.
use hdi::prelude::*;

pub use memory_shards_integrity::{
    anchors, is_cid, is_collection, is_entry_type, ShardClaim, ShardMap, SyncCheckpoint, UnitEntryTypes,
    COLLECTION_MAX, HASH_FUNCTIONS, HASH_SHA256_JUMP, REPLICATION_MAX, SHARD_COUNT_MAX, VECTOR_COUNT_MAX,
};

/// `shards.create_map`: a new collection, at epoch 1.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CreateMapInput {
    pub collection: String,
    pub shard_count: u32,
    pub replication_factor: u32,
    pub hash_function: String,
}

/// A shard map as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MapRecord {
    pub map_id: ActionHash,
    pub owner: AgentPubKey,
    pub created_at: Timestamp,
    pub map: ShardMap,
}

/// `routing.claim_shard`: this node takes replica `replica` of shard `shard`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClaimInput {
    pub map_id: ActionHash,
    pub shard: u32,
    pub replica: u32,
    pub vector_capacity: u32,
}

/// A claim as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClaimRecord {
    pub claim_id: ActionHash,
    pub claimed_at: Timestamp,
    pub claim: ShardClaim,
}

/// `sync.checkpoint`: how far this node's replica behind `claim_id` has synced. Without a
/// sequence, the next one after this replica's last checkpoint.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckpointInput {
    pub claim_id: ActionHash,
    pub sequence: Option<u64>,
    pub vector_count: u64,
    pub snapshot_cid: Option<String>,
}

/// A checkpoint as the DHT holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckpointRecord {
    pub checkpoint_id: ActionHash,
    pub holder: AgentPubKey,
    pub written_at: Timestamp,
    pub checkpoint: SyncCheckpoint,
}

impl CheckpointRecord {
    /// The spec's `conflict_resolution: last_write_wins` between replicas of one shard: the
    /// higher sequence wins, then the later write, then the greater holder key (so every node
    /// picks the same winner from the same records).
    pub fn wins_over(&self, other: &CheckpointRecord) -> bool {
        let key = |c: &CheckpointRecord| (c.checkpoint.sequence, c.written_at, c.holder.get_raw_39().to_vec());
        key(self) > key(other)
    }
}

/// Builds a `MapRecord`, `ClaimRecord` or `CheckpointRecord` from a record of its entry type.
pub trait FromRecord: Sized {
    fn from_record(record: &Record) -> Option<Self>;
}

impl FromRecord for MapRecord {
    fn from_record(record: &Record) -> Option<Self> {
        is_entry_type(record.action(), UnitEntryTypes::ShardMap).ok()?.then_some(())?;
        Some(Self {
            map_id: record.action_address().clone(),
            owner: record.action().author().clone(),
            created_at: record.action().timestamp(),
            map: record.entry().to_app_option().ok()??,
        })
    }
}

impl FromRecord for ClaimRecord {
    fn from_record(record: &Record) -> Option<Self> {
        is_entry_type(record.action(), UnitEntryTypes::ShardClaim).ok()?.then_some(())?;
        Some(Self {
            claim_id: record.action_address().clone(),
            claimed_at: record.action().timestamp(),
            claim: record.entry().to_app_option().ok()??,
        })
    }
}

impl FromRecord for CheckpointRecord {
    fn from_record(record: &Record) -> Option<Self> {
        is_entry_type(record.action(), UnitEntryTypes::SyncCheckpoint).ok()?.then_some(())?;
        Some(Self {
            checkpoint_id: record.action_address().clone(),
            holder: record.action().author().clone(),
            written_at: record.action().timestamp(),
            checkpoint: record.entry().to_app_option().ok()??,
        })
    }
}
