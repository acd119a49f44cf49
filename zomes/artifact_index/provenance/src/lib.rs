//! Coordinator `provenance`: a builder attaches an in-toto/SLSA statement to an artifact
//! registration. The statement's source-chain signature is the attestation: anyone can check it
//! offline against the builder's key, and the builder's chain as the DHT reports it.
use artifact_index_integrity::{EntryTypes, LinkTypes};
use artifact_index_types::*;
use hdk::prelude::*;
use peer_reads::{from_peers, links_from_peers};

/// The builder (this agent): attaches `statement` to the artifact registration (once: the same
/// statement again returns the first). Validation
/// refuses a statement whose builder is another agent or whose subjects miss the artifact.
#[hdk_extern]
pub fn attest(input: AttestInput) -> ExternResult<ActionHash> {
    let provenance = Provenance { artifact: input.artifact_id.clone(), statement: input.statement };
    // The same statement about the same artifact again (a repeated publish) is the one written.
    let entry_hash = hash_entry(&provenance)?;
    let filter = ChainQueryFilter::new().entry_type(UnitEntryTypes::Provenance.try_into()?);
    if let Some(existing) = query(filter)?.into_iter().find(|r| r.action().entry_hash() == Some(&entry_hash)) {
        return Ok(existing.action_address().clone());
    }
    let id = create_entry(EntryTypes::Provenance(provenance))?;
    create_link(input.artifact_id, id.clone(), LinkTypes::ArtifactToProvenance, ())?;
    Ok(id)
}

/// Anyone: the statements attached to an artifact registration, oldest first, each with its
/// signed action and what the builder's chain says about it.
#[hdk_extern]
pub fn get_provenance_for_artifact(artifact_id: ActionHash) -> ExternResult<Vec<ProvenanceRecord>> {
    let query = LinkQuery::try_new(artifact_id, LinkTypes::ArtifactToProvenance)?;
    let mut found = vec![];
    for link in links_from_peers(query)? {
        let Some(id) = link.target.into_action_hash() else { continue };
        let Some(record) = get(id.clone(), from_peers())? else { continue };
        if !is_entry_type(record.action(), UnitEntryTypes::Provenance)? {
            continue;
        }
        let Some(provenance) = record.entry().to_app_option::<Provenance>().ok().flatten() else { continue };
        let builder = record.action().author().clone();
        let chain = chain_check(&builder, &id, record.action().action_seq())?;
        found.push(ProvenanceRecord { provenance_id: id, builder, record, provenance, chain });
    }
    found.sort_by_key(|p| p.record.action().timestamp());
    Ok(found)
}

/// Whether the builder's chain, as its agent-activity authorities hold it, runs unbroken from
/// this action at `seq` back to genesis, and what warrants they hold against the builder.
fn chain_check(builder: &AgentPubKey, id: &ActionHash, seq: u32) -> ExternResult<ChainCheck> {
    let (on_chain, status) = match must_get_agent_activity(builder.clone(), ChainFilter::new(id.clone())) {
        Ok(activity) => {
            let on_chain = activity.first().is_some_and(|a| a.action.action_address() == id);
            let unbroken = activity.len() == seq as usize + 1
                && activity.iter().zip((0..=seq).rev()).all(|(a, s)| a.action.action().action_seq() == s);
            (on_chain, if unbroken { "valid" } else { "broken" })
        }
        Err(_) => (false, "unavailable"),
    };
    let status_only =
        get_agent_activity(builder.clone(), ChainQueryFilter::new(), ActivityRequest::Status, from_peers())?;
    let warrants = u32::try_from(status_only.warrants.len()).unwrap_or(u32::MAX);
    Ok(ChainCheck { seq, on_chain, warrants, status: status.into() })
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
