//! Test-only adversary for policy_store: each extern commits, without any check, what it is given,
//! so a test can break any rule of `docs/integrity/policy_store.md`. With self-validation on, the
//! commit fails with the rule; on a conductor with self-validation off, the data reaches honest
//! peers, which must reject it and warrant the author.
use hdk::prelude::*;
use policy_store_integrity::*;

/// Any policy_store entry.
#[derive(Serialize, Deserialize, Debug)]
pub enum Forged {
    Bundle(PolicyBundle),
    Decision(Decision),
    Audit(AuditEvent),
}

impl From<Forged> for EntryTypes {
    fn from(forged: Forged) -> Self {
        match forged {
            Forged::Bundle(e) => EntryTypes::PolicyBundle(e),
            Forged::Decision(e) => EntryTypes::Decision(e),
            Forged::Audit(e) => EntryTypes::AuditEvent(e),
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
    delete_link(link, GetOptions::local())
}

/// The hash of an anchor path (`["policy", "tools.call"]`), so the test can file links under it.
#[hdk_extern]
pub fn anchor_hash(components: Vec<String>) -> ExternResult<EntryHash> {
    Path::from(components.iter().map(|c| Component::from(c.as_str())).collect::<Vec<_>>()).path_entry_hash()
}

fn link_type(name: &str) -> ExternResult<LinkTypes> {
    Ok(match name {
        "PackageToBundles" => LinkTypes::PackageToBundles,
        "AllBundles" => LinkTypes::AllBundles,
        "DecisionsByHour" => LinkTypes::DecisionsByHour,
        "AuditByHour" => LinkTypes::AuditByHour,
        "AuditBySubject" => LinkTypes::AuditBySubject,
        other => return Err(wasm_error!(WasmErrorInner::Guest(format!("no link type {other}")))),
    })
}
