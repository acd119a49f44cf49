//! Test-only adversary for memory_shards: each extern commits, without any check, what it is
//! given, so a test can break any rule of `docs/integrity/memory_shards.md`. With self-validation
//! on, the commit fails with the rule; on a conductor with self-validation off, the data reaches
//! honest peers, which must reject it and warrant the author.
use hdk::prelude::*;
use memory_shards_integrity::*;

/// Any memory_shards entry.
#[derive(Serialize, Deserialize, Debug)]
pub enum Forged {
    Map(ShardMap),
    Claim(ShardClaim),
    Checkpoint(SyncCheckpoint),
}

impl From<Forged> for EntryTypes {
    fn from(forged: Forged) -> Self {
        match forged {
            Forged::Map(e) => EntryTypes::ShardMap(e),
            Forged::Claim(e) => EntryTypes::ShardClaim(e),
            Forged::Checkpoint(e) => EntryTypes::SyncCheckpoint(e),
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

/// The hash of an anchor path (`["collection", "<name>"]`), so the test can file links under it.
#[hdk_extern]
pub fn anchor_hash(components: Vec<String>) -> ExternResult<EntryHash> {
    Path::from(components.iter().map(|c| Component::from(c.as_str())).collect::<Vec<_>>()).path_entry_hash()
}

/// The links of one type on a base, with their authors and targets (to delete one of them).
#[derive(Serialize, Deserialize, Debug)]
pub struct LinksInput {
    pub base: AnyLinkableHash,
    pub link_type: String,
}

#[hdk_extern]
pub fn get_links_of(input: LinksInput) -> ExternResult<Vec<Link>> {
    get_links(LinkQuery::try_new(input.base, link_type(&input.link_type)?)?, GetStrategy::Network)
}

fn link_type(name: &str) -> ExternResult<LinkTypes> {
    Ok(match name {
        "CollectionToMaps" => LinkTypes::CollectionToMaps,
        "AllMaps" => LinkTypes::AllMaps,
        "MapToClaims" => LinkTypes::MapToClaims,
        "ClaimToCheckpoints" => LinkTypes::ClaimToCheckpoints,
        other => return Err(wasm_error!(WasmErrorInner::Guest(format!("no link type {other}")))),
    })
}
