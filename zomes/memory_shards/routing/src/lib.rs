//! Coordinator `routing`: shard claims. A node with vector capacity claims a replica slot of a
//! shard it should hold and deletes the claim when it hands the shard back. Which node should
//! hold what, and where a key goes, the sidecars compute from these claims (placement and
//! routing in `client/src/shards`).
use hdk::prelude::*;
use memory_shards_integrity::{EntryTypes, LinkTypes};
use memory_shards_types::*;
use peer_reads::{from_peers, link_targets, links_from_peers, links_from_peers_each, records_from_peers};

/// The holding node (this agent): claims replica `replica` of shard `shard` in the map's epoch,
/// or returns its live claim on that slot if it has one.
#[hdk_extern]
pub fn claim_shard(input: ClaimInput) -> ExternResult<ClaimRecord> {
    if let Some(existing) = my_claims()?
        .into_iter()
        .find(|c| c.claim.map == input.map_id && c.claim.shard == input.shard && c.claim.replica == input.replica)
    {
        return Ok(existing);
    }
    let map = get(input.map_id.clone(), from_peers())?
        .as_ref()
        .and_then(MapRecord::from_record)
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest(format!("no shard map {}", input.map_id))))?;
    let claim = ShardClaim {
        map: input.map_id.clone(),
        shard: input.shard,
        replica: input.replica,
        epoch: map.map.epoch,
        holder: agent_info()?.agent_initial_pubkey,
        vector_capacity: input.vector_capacity,
    };
    let id = create_entry(EntryTypes::ShardClaim(claim))?;
    create_link(input.map_id, id.clone(), LinkTypes::MapToClaims, ())?;
    let record = get(id, GetOptions::local())?
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the claim just written is missing".into())))?;
    ClaimRecord::from_record(&record)
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the claim just written is not a claim".into())))
}

/// The holding node: releases its claim (unlinks and deletes it). Returns whether it held it.
#[hdk_extern]
pub fn release_claim(claim_id: ActionHash) -> ExternResult<bool> {
    let Some(claim) = my_claims()?.into_iter().find(|c| c.claim_id == claim_id) else {
        return Ok(false);
    };
    let me = agent_info()?.agent_initial_pubkey;
    for link in links_from_peers(LinkQuery::try_new(claim.claim.map.clone(), LinkTypes::MapToClaims)?)? {
        if link.author == me && link.target.clone().into_action_hash().as_ref() == Some(&claim_id) {
            delete_link(link.create_link_hash, GetOptions::local())?;
        }
    }
    delete_entry(claim_id)?;
    Ok(true)
}

/// Anyone: the claims on a map's shards that have not been released, oldest first.
#[hdk_extern]
pub fn get_claims(map_id: ActionHash) -> ExternResult<Vec<ClaimRecord>> {
    Ok(get_claims_of(vec![map_id])?.pop().unwrap_or_default())
}

/// Anyone: `get_claims` of every map in `map_ids`, in order, with two host calls in all (every
/// map's links, then every claim record): the mesh view's refresh of all maps.
#[hdk_extern]
pub fn get_claims_of(map_ids: Vec<ActionHash>) -> ExternResult<Vec<Vec<ClaimRecord>>> {
    let queries =
        map_ids.iter().map(|map| LinkQuery::try_new(map.clone(), LinkTypes::MapToClaims)).collect::<Result<_, _>>()?;
    let targets: Vec<Vec<ActionHash>> = links_from_peers_each(queries)?.into_iter().map(link_targets).collect();
    let mut records = records_from_peers(targets.iter().flatten().cloned().collect())?.into_iter();
    Ok(map_ids
        .iter()
        .zip(targets)
        .map(|(map_id, targets)| {
            let mut claims: Vec<ClaimRecord> = records
                .by_ref()
                .take(targets.len())
                .flatten()
                .filter_map(|r| ClaimRecord::from_record(&r))
                .filter(|c| &c.claim.map == map_id)
                .collect();
            claims.sort_by(|a, b| (a.claimed_at, &a.claim_id).cmp(&(b.claimed_at, &b.claim_id)));
            claims.dedup_by(|a, b| a.claim_id == b.claim_id);
            claims
        })
        .collect())
}

/// This node: its claims that it has not released, from its source chain.
#[hdk_extern]
pub fn get_my_claims(_: ()) -> ExternResult<Vec<ClaimRecord>> {
    my_claims()
}

fn my_claims() -> ExternResult<Vec<ClaimRecord>> {
    let claims =
        query(ChainQueryFilter::new().entry_type(UnitEntryTypes::ShardClaim.try_into()?).include_entries(true))?;
    let deleted: Vec<ActionHash> = query(ChainQueryFilter::new().action_type(ActionType::Delete))?
        .iter()
        .filter_map(|r| match &r.action().data {
            ActionData::Delete(d) => Some(d.deletes_address.clone()),
            _ => None,
        })
        .collect();
    Ok(claims.iter().filter_map(ClaimRecord::from_record).filter(|c| !deleted.contains(&c.claim_id)).collect())
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
