//! Coordinator `artifacts`: registers artifacts (CID, sha256, size, name, media type, labels) and
//! answers lookups by CID, digest, name, label and shard. Anyone may register; the registering
//! agent is the action's author, and every registration is kept (several agents may vouch for the
//! same CID).
use artifact_index_integrity::{anchors, EntryTypes, LinkTypes};
use artifact_index_types::*;
use hdk::prelude::*;
use peer_reads::{from_peers, links_from_peers};

/// Anyone: registers `artifact` and files it under its CID, digest, name, labels and shard. A
/// registration this agent already made of exactly this artifact is returned instead.
#[hdk_extern]
pub fn register_artifact(artifact: Artifact) -> ExternResult<ArtifactRecord> {
    let entry_hash = hash_entry(&artifact)?;
    let mine = query(ChainQueryFilter::new().entry_type(UnitEntryTypes::Artifact.try_into()?).include_entries(true))?;
    if let Some(existing) = mine.iter().find(|r| r.action().entry_hash() == Some(&entry_hash)) {
        if let Some(record) = ArtifactRecord::from_record(existing) {
            return Ok(record);
        }
    }
    let id = create_entry(EntryTypes::Artifact(artifact.clone()))?;
    let mut anchors = vec![
        (anchors::cid(&artifact.cid), LinkTypes::CidToArtifacts),
        (anchors::digest(&artifact.sha256), LinkTypes::DigestToArtifacts),
        (anchors::name(&artifact.name), LinkTypes::NameToArtifacts),
        (anchors::shard(&artifact.sha256), LinkTypes::AllArtifacts),
    ];
    anchors.extend(artifact.labels.iter().map(|l| (anchors::label(l), LinkTypes::LabelToArtifacts)));
    for (path, link_type) in anchors {
        create_link(path.path_entry_hash()?, id.clone(), link_type, ())?;
    }
    let record = get(id.clone(), GetOptions::local())?
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the registration just written is missing".into())))?;
    ArtifactRecord::from_record(&record)
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the registration just written is not an artifact".into())))
}

/// Anyone: one registration.
#[hdk_extern]
pub fn get_artifact(artifact_id: ActionHash) -> ExternResult<Option<ArtifactRecord>> {
    Ok(get(artifact_id, from_peers())?.as_ref().and_then(ArtifactRecord::from_record))
}

/// Anyone: every registration of a CID, oldest first.
#[hdk_extern]
pub fn get_artifacts_for_cid(cid: String) -> ExternResult<Vec<ArtifactRecord>> {
    artifacts_under(anchors::cid(&cid), LinkTypes::CidToArtifacts)
}

/// Anyone: every registration with this sha256 (lower-case hex), oldest first.
#[hdk_extern]
pub fn get_artifacts_for_sha256(sha256: String) -> ExternResult<Vec<ArtifactRecord>> {
    artifacts_under(anchors::digest(&sha256.to_ascii_lowercase()), LinkTypes::DigestToArtifacts)
}

/// Anyone: every artifact with exactly this name, oldest first.
#[hdk_extern]
pub fn get_artifacts_for_name(name: String) -> ExternResult<Vec<ArtifactRecord>> {
    artifacts_under(anchors::name(&name), LinkTypes::NameToArtifacts)
}

/// Anyone: every artifact carrying this label, oldest first.
#[hdk_extern]
pub fn get_artifacts_for_label(label: String) -> ExternResult<Vec<ArtifactRecord>> {
    artifacts_under(anchors::label(&label), LinkTypes::LabelToArtifacts)
}

/// Anyone: the artifacts of one of the 16 shards (0-15) of the all-artifacts index; a full scan
/// (the replication loop's) reads them one at a time.
#[hdk_extern]
pub fn get_artifacts_in_shard(shard: u8) -> ExternResult<Vec<ArtifactRecord>> {
    let Some(path) = anchors::shards().nth(usize::from(shard)) else {
        return Err(wasm_error!(WasmErrorInner::Guest(format!("shard {shard} is not in 0-{}", SHARDS - 1))));
    };
    artifacts_under(path, LinkTypes::AllArtifacts)
}

fn artifacts_under(path: Path, link_type: LinkTypes) -> ExternResult<Vec<ArtifactRecord>> {
    let links = links_from_peers(LinkQuery::try_new(path.path_entry_hash()?, link_type)?)?;
    let mut found = vec![];
    for link in links {
        let Some(id) = link.target.into_action_hash() else { continue };
        if let Some(record) = get(id, from_peers())?.as_ref().and_then(ArtifactRecord::from_record) {
            found.push(record);
        }
    }
    found.sort_by_key(|r| r.registered_at);
    found.dedup_by(|a, b| a.artifact_id == b.artifact_id);
    Ok(found)
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
