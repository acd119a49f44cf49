//! Coordinator `sync`: replica checkpoints. The holder of a replica records how far it has synced
//! (sequence, vector count, snapshot CID) by advancing its checkpoint; readers pick, per shard,
//! the last write as the spec's `conflict_resolution: last_write_wins` defines it
//! (`CheckpointRecord::wins_over`).
use hdk::prelude::*;
use memory_shards_integrity::{EntryTypes, LinkTypes};
use memory_shards_types::*;
use peer_reads::{from_peers, link_targets, links_from_peers, records_from_peers};

/// The holder (this agent): records a checkpoint of its replica behind `claim_id`, as the next
/// version of its previous checkpoint on that claim. The sequence must rise.
#[hdk_extern]
pub fn checkpoint(input: CheckpointInput) -> ExternResult<CheckpointRecord> {
    let fail = |m: String| wasm_error!(WasmErrorInner::Guest(m));
    let me = agent_info()?.agent_initial_pubkey;
    let claim = get(input.claim_id.clone(), from_peers())?
        .as_ref()
        .and_then(ClaimRecord::from_record)
        .ok_or_else(|| fail(format!("no shard claim {}", input.claim_id)))?;
    if claim.claim.holder != me {
        return Err(fail(format!("claim {} is held by {}, not this node", input.claim_id, claim.claim.holder)));
    }
    let previous = my_latest(&input.claim_id)?;
    let sequence = match (input.sequence, &previous) {
        (Some(s), Some(p)) if s <= p.checkpoint.sequence => {
            return Err(fail(format!(
                "sequence {s} is not after this replica's last checkpoint {}",
                p.checkpoint.sequence
            )))
        }
        (Some(s), _) => s,
        (None, Some(p)) => p.checkpoint.sequence + 1,
        (None, None) => 1,
    };
    let checkpoint = SyncCheckpoint {
        claim: input.claim_id.clone(),
        shard: claim.claim.shard,
        replica: claim.claim.replica,
        sequence,
        vector_count: input.vector_count,
        snapshot_cid: input.snapshot_cid,
    };
    let id = match &previous {
        Some(p) => {
            let id = update_entry(p.checkpoint_id.clone(), EntryTypes::SyncCheckpoint(checkpoint))?;
            for link in links_from_peers(LinkQuery::try_new(input.claim_id.clone(), LinkTypes::ClaimToCheckpoints)?)? {
                if link.author == me {
                    delete_link(link.create_link_hash, GetOptions::local())?;
                }
            }
            id
        }
        None => create_entry(EntryTypes::SyncCheckpoint(checkpoint))?,
    };
    create_link(input.claim_id, id.clone(), LinkTypes::ClaimToCheckpoints, ())?;
    let record = get(id, GetOptions::local())?.ok_or_else(|| fail("the checkpoint just written is missing".into()))?;
    CheckpointRecord::from_record(&record).ok_or_else(|| fail("the checkpoint just written is not a checkpoint".into()))
}

/// Anyone: the latest checkpoint of each of these claims' replicas (claims without one are left
/// out).
#[hdk_extern]
pub fn get_checkpoints(claim_ids: Vec<ActionHash>) -> ExternResult<Vec<CheckpointRecord>> {
    let mut latest = vec![];
    for claim_id in claim_ids {
        let targets =
            link_targets(links_from_peers(LinkQuery::try_new(claim_id.clone(), LinkTypes::ClaimToCheckpoints)?)?);
        let best = records_from_peers(targets)?
            .iter()
            .flatten()
            .filter_map(CheckpointRecord::from_record)
            .filter(|c| c.checkpoint.claim == claim_id)
            .reduce(|a, b| if b.wins_over(&a) { b } else { a });
        latest.extend(best);
    }
    Ok(latest)
}

/// This node's latest checkpoint on `claim_id`, from its source chain.
fn my_latest(claim_id: &ActionHash) -> ExternResult<Option<CheckpointRecord>> {
    let mine =
        query(ChainQueryFilter::new().entry_type(UnitEntryTypes::SyncCheckpoint.try_into()?).include_entries(true))?;
    Ok(mine
        .iter()
        .filter_map(CheckpointRecord::from_record)
        .filter(|c| &c.checkpoint.claim == claim_id)
        .max_by_key(|c| c.checkpoint.sequence))
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
