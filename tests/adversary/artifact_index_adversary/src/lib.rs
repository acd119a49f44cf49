//! Test-only adversary for artifact_index: each extern commits, without any check, what it is
//! given, so a test can break any rule of `docs/integrity/artifact_index.md`. With self-validation
//! on, the commit fails with the rule; on a conductor with self-validation off, the data reaches
//! honest peers, which must reject it and warrant the author.
use artifact_index_integrity::*;
use hdk::prelude::*;

/// Any artifact_index entry.
#[derive(Serialize, Deserialize, Debug)]
pub enum Forged {
    Artifact(Artifact),
    Provenance(Provenance),
    Claim(ReplicaClaim),
}

impl From<Forged> for EntryTypes {
    fn from(forged: Forged) -> Self {
        match forged {
            Forged::Artifact(e) => EntryTypes::Artifact(e),
            Forged::Provenance(e) => EntryTypes::Provenance(e),
            Forged::Claim(e) => EntryTypes::ReplicaClaim(e),
        }
    }
}

#[hdk_extern]
pub fn create_unchecked(entry: Forged) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::from(entry))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct UpdateInput {
    pub original: ActionHash,
    pub entry: Forged,
}

#[hdk_extern]
pub fn update_unchecked(input: UpdateInput) -> ExternResult<ActionHash> {
    update_entry(input.original, EntryTypes::from(input.entry))
}

#[hdk_extern]
pub fn delete_unchecked(action: ActionHash) -> ExternResult<ActionHash> {
    delete_entry(action)
}

#[derive(Serialize, Deserialize, Debug)]
pub struct LinkInput {
    pub base: AnyLinkableHash,
    pub target: AnyLinkableHash,
    /// The `LinkTypes` variant's name.
    pub link_type: String,
}

#[hdk_extern]
pub fn create_link_unchecked(input: LinkInput) -> ExternResult<ActionHash> {
    create_link(input.base, input.target, link_type(&input.link_type)?, ())
}

#[hdk_extern]
pub fn delete_link_unchecked(link: ActionHash) -> ExternResult<ActionHash> {
    delete_link(link, GetOptions::network())
}

/// The hash of an anchor path (`["cid", "<cid>"]`), so the test can file links under it.
#[hdk_extern]
pub fn anchor_hash(components: Vec<String>) -> ExternResult<EntryHash> {
    Path::from(components.iter().map(|c| Component::from(c.as_str())).collect::<Vec<_>>()).path_entry_hash()
}

/// The link create actions of one type on a base (to delete them).
#[derive(Serialize, Deserialize, Debug)]
pub struct LinksInput {
    pub base: AnyLinkableHash,
    pub link_type: String,
}

#[hdk_extern]
pub fn get_link_hashes(input: LinksInput) -> ExternResult<Vec<ActionHash>> {
    Ok(get_links(LinkQuery::try_new(input.base, link_type(&input.link_type)?)?, GetStrategy::Network)?
        .into_iter()
        .map(|l| l.create_link_hash)
        .collect())
}

fn link_type(name: &str) -> ExternResult<LinkTypes> {
    Ok(match name {
        "CidToArtifacts" => LinkTypes::CidToArtifacts,
        "DigestToArtifacts" => LinkTypes::DigestToArtifacts,
        "NameToArtifacts" => LinkTypes::NameToArtifacts,
        "LabelToArtifacts" => LinkTypes::LabelToArtifacts,
        "AllArtifacts" => LinkTypes::AllArtifacts,
        "ArtifactToProvenance" => LinkTypes::ArtifactToProvenance,
        "CidToReplicaClaims" => LinkTypes::CidToReplicaClaims,
        other => return Err(wasm_error!(WasmErrorInner::Guest(format!("no link type {other}")))),
    })
}
