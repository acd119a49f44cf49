//! Test-only adversary for resource_mesh: each extern commits, without any check, what it is given,
//! so a test can break any rule of `docs/integrity/resource_mesh.md`. Run with self-validation on,
//! the commit fails with the rule; run on a conductor with self-validation off, the data reaches
//! honest peers, which must reject it and warrant the author.
use hdk::prelude::*;
use resource_mesh_integrity::*;

/// Any resource_mesh entry.
#[derive(Serialize, Deserialize, Debug)]
pub enum Forged {
    Offer(ResourceOffer),
    Request(AllocationRequest),
    Grant(AllocationGrant),
    Rejection(AllocationRejection),
    Release(AllocationRelease),
    Receipt(UsageReceipt),
    Ack(UsageAck),
}

impl From<Forged> for EntryTypes {
    fn from(forged: Forged) -> Self {
        match forged {
            Forged::Offer(e) => EntryTypes::ResourceOffer(e),
            Forged::Request(e) => EntryTypes::AllocationRequest(e),
            Forged::Grant(e) => EntryTypes::AllocationGrant(e),
            Forged::Rejection(e) => EntryTypes::AllocationRejection(e),
            Forged::Release(e) => EntryTypes::AllocationRelease(e),
            Forged::Receipt(e) => EntryTypes::UsageReceipt(e),
            Forged::Ack(e) => EntryTypes::UsageAck(e),
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

/// The entry of a grant (the test builds ledger-consistent forgeries from it).
#[hdk_extern]
pub fn get_grant(hash: ActionHash) -> ExternResult<Option<AllocationGrant>> {
    Ok(get(hash, GetOptions::network())?.and_then(|r| r.entry().to_app_option::<AllocationGrant>().ok().flatten()))
}

/// The timestamp of any action (the test derives answer windows from a request's).
#[hdk_extern]
pub fn get_timestamp(hash: ActionHash) -> ExternResult<Option<Timestamp>> {
    Ok(get(hash, GetOptions::network())?.map(|r| r.action().timestamp()))
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
        "ProviderInbox" => LinkTypes::ProviderInbox,
        "RequestToAnswer" => LinkTypes::RequestToAnswer,
        "Followups" => LinkTypes::Followups,
        "ProviderToOffer" => LinkTypes::ProviderToOffer,
        "ProviderToLedger" => LinkTypes::ProviderToLedger,
        other => return Err(wasm_error!(WasmErrorInner::Guest(format!("no link type {other}")))),
    })
}
