//! Coordinator `replication`: replica leases. A node that pins a CID claims it for a while and
//! renews the claim while it holds the data; a claim nobody renews runs out, and the sidecars
//! repair artifacts whose live claims fall below the storage policy's `min_providers`.
use artifact_index_integrity::{anchors, EntryTypes, LinkTypes};
use artifact_index_types::*;
use hdk::prelude::*;
use peer_reads::{from_peers, links_from_peers};

/// The pinning node (this agent): creates or renews its lease on `cid` for `lease_secs` from now,
/// and files the latest version under the CID.
#[hdk_extern]
pub fn claim_replica(input: ClaimReplicaInput) -> ExternResult<ReplicaRecord> {
    let now = sys_time()?;
    let until = Timestamp::from_micros(now.as_micros() + i64::from(input.lease_secs) * 1_000_000);
    let claim = ReplicaClaim { cid: input.cid.clone(), until, endpoint: input.endpoint };
    let anchor = anchors::cid(&input.cid).path_entry_hash()?;
    let id = match own_claims()?.into_iter().find(|r| r.claim.cid == input.cid) {
        Some(previous) => {
            let claim = ReplicaClaim { until: until.max(previous.claim.until), ..claim.clone() };
            let id = update_entry(previous.claim_id.clone(), EntryTypes::ReplicaClaim(claim))?;
            unlink_own(&anchor, Some(&previous.claim_id))?;
            id
        }
        None => create_entry(EntryTypes::ReplicaClaim(claim))?,
    };
    create_link(anchor, id.clone(), LinkTypes::CidToReplicaClaims, ())?;
    let record = get(id, GetOptions::local())?
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the claim just written is missing".into())))?;
    replica_record(&record, now)
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the claim just written is not a claim".into())))
}

/// The pinning node (this agent): stops advertising its replica of `cid` (its lease then only
/// runs out). Returns whether there was one.
#[hdk_extern]
pub fn drop_replica(cid: String) -> ExternResult<bool> {
    unlink_own(&anchors::cid(&cid).path_entry_hash()?, None)
}

/// Anyone: the latest claim of every node holding `cid`, live or run out, nearest expiry last.
#[hdk_extern]
pub fn get_replicas_for_cid(cid: String) -> ExternResult<Vec<ReplicaRecord>> {
    let now = sys_time()?;
    let query = LinkQuery::try_new(anchors::cid(&cid).path_entry_hash()?, LinkTypes::CidToReplicaClaims)?;
    let mut latest: Vec<ReplicaRecord> = vec![];
    for link in links_from_peers(query)? {
        let Some(id) = link.target.into_action_hash() else { continue };
        let Some(replica) = get(id, from_peers())?.and_then(|r| replica_record(&r, now)) else { continue };
        if replica.claim.cid != cid {
            continue;
        }
        match latest.iter_mut().find(|r| r.holder == replica.holder) {
            Some(known) if known.claim.until >= replica.claim.until => {}
            Some(known) => *known = replica,
            None => latest.push(replica),
        }
    }
    latest.sort_by_key(|r| std::cmp::Reverse(r.claim.until));
    Ok(latest)
}

/// This node: the latest version of each of its own claims, from its source chain.
#[hdk_extern]
pub fn get_my_replicas(_: ()) -> ExternResult<Vec<ReplicaRecord>> {
    own_claims()
}

fn own_claims() -> ExternResult<Vec<ReplicaRecord>> {
    let now = sys_time()?;
    let filter = ChainQueryFilter::new().entry_type(UnitEntryTypes::ReplicaClaim.try_into()?).include_entries(true);
    let mut latest: Vec<ReplicaRecord> = vec![];
    for record in query(filter)? {
        let Some(replica) = replica_record(&record, now) else { continue };
        // Chain order: a later version of a CID's claim replaces the earlier.
        latest.retain(|r| r.claim.cid != replica.claim.cid);
        latest.push(replica);
    }
    Ok(latest)
}

/// Removes this agent's replica links under `anchor` (only the one to `target` if given).
fn unlink_own(anchor: &EntryHash, target: Option<&ActionHash>) -> ExternResult<bool> {
    let me = agent_info()?.agent_initial_pubkey;
    let query = LinkQuery::try_new(anchor.clone(), LinkTypes::CidToReplicaClaims)?;
    let mut removed = false;
    for link in links_from_peers(query)? {
        let points_at = link.target.clone().into_action_hash();
        if link.author == me && target.is_none_or(|t| points_at.as_ref() == Some(t)) {
            delete_link(link.create_link_hash, GetOptions::local())?;
            removed = true;
        }
    }
    Ok(removed)
}

fn replica_record(record: &Record, now: Timestamp) -> Option<ReplicaRecord> {
    if !is_entry_type(record.action(), UnitEntryTypes::ReplicaClaim).ok()? {
        return None;
    }
    let claim = record.entry().to_app_option::<ReplicaClaim>().ok()??;
    Some(ReplicaRecord {
        claim_id: record.action_address().clone(),
        holder: record.action().author().clone(),
        live: claim.until > now,
        claim,
    })
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
