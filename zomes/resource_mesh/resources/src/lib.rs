//! Coordinator `resources`: a provider publishes what it offers (derived by its sidecar from the
//! node's advert), and anyone reads a provider's offer and load in one hop each, for scheduling.
use hdk::prelude::*;
use peer_reads::{from_peers, link_targets, links_from_peers, records_from_peers};
use resource_mesh_integrity::capacity::used_at;
use resource_mesh_integrity::{EntryTypes, LinkTypes};
use resource_mesh_types::*;

#[derive(Debug, thiserror::Error)]
enum ResourcesError {
    #[error("offer rejected before publishing: {0}")]
    InvalidOffer(resource_mesh_integrity::RuleViolation),
}

impl From<ResourcesError> for WasmError {
    fn from(e: ResourcesError) -> Self {
        wasm_error!(WasmErrorInner::Guest(e.to_string()))
    }
}

/// The provider itself (its sidecar): creates the offer on first call and updates it afterwards,
/// pointing its offer link at the new version. Publishing an unchanged offer writes nothing.
#[hdk_extern]
pub fn publish_offer(offer: ResourceOffer) -> ExternResult<OfferRecord> {
    offer.check().map_err(ResourcesError::InvalidOffer)?;
    let me = agent_info()?.agent_initial_pubkey;
    let filter = ChainQueryFilter::new().entry_type(UnitEntryTypes::ResourceOffer.try_into()?).include_entries(true);
    let versions = query(filter)?;
    if let Some(current) = versions.last().and_then(offer_record) {
        if current.offer == offer {
            return Ok(current);
        }
    }
    let version = match versions.first() {
        None => create_entry(EntryTypes::ResourceOffer(offer.clone()))?,
        Some(original) => update_entry(original.action_address().clone(), EntryTypes::ResourceOffer(offer.clone()))?,
    };
    for old in get_links(LinkQuery::try_new(me.clone(), LinkTypes::ProviderToOffer)?, GetStrategy::Local)? {
        if old.author == me {
            delete_link(old.create_link_hash, GetOptions::local())?;
        }
    }
    create_link(me.clone(), version.clone(), LinkTypes::ProviderToOffer, ())?;
    Ok(OfferRecord { provider: me, version, offer })
}

/// Anyone: a provider's current offer and what its latest grant holds now.
#[hdk_extern]
pub fn get_provider_status(provider: AgentPubKey) -> ExternResult<ProviderStatus> {
    let offer = newest_target(&provider, LinkTypes::ProviderToOffer)?
        .and_then(|hash| get(hash, from_peers()).transpose())
        .transpose()?
        .as_ref()
        .and_then(offer_record);
    let latest_grant = newest_target(&provider, LinkTypes::ProviderToLedger)?;
    let mut holdings = match &latest_grant {
        Some(hash) => get(hash.clone(), from_peers())?
            .and_then(|r| entry_of::<AllocationGrant>(&r, UnitEntryTypes::AllocationGrant))
            .map(|g| g.holdings)
            .unwrap_or_default(),
        None => vec![],
    };
    if holdings.iter().any(|h| !h.released) {
        let released = waiting_releases(&provider)?;
        for holding in holdings.iter_mut().filter(|h| released.contains(&h.request)) {
            holding.released = true;
        }
    }
    let now = sys_time()?.as_micros();
    Ok(ProviderStatus {
        provider,
        offer,
        in_use: used_at(&holdings, now).unwrap_or_default(),
        active: u32::try_from(holdings.iter().filter(|h| h.counts_at(now)).count()).unwrap_or(u32::MAX),
        latest_grant,
    })
}

/// Anyone (the scheduler, once per candidate set): `get_provider_status` for each provider.
#[hdk_extern]
pub fn get_provider_statuses(providers: Vec<AgentPubKey>) -> ExternResult<Vec<ProviderStatus>> {
    providers.into_iter().map(get_provider_status).collect()
}

/// The requests of the provider's grants whose releases wait in its inbox. Its next grant folds
/// them into the holdings it carries; until then the latest grant still lists them, yet the
/// capacity is free (the provider accounts for every release in its inbox when it grants), so
/// readers count it free at once rather than at the provider's next grant or the expiry.
fn waiting_releases(provider: &AgentPubKey) -> ExternResult<Vec<ActionHash>> {
    let inbox = links_from_peers(LinkQuery::try_new(provider.clone(), LinkTypes::ProviderInbox)?)?;
    let grants: Vec<ActionHash> = records_from_peers(link_targets(inbox))?
        .iter()
        .flatten()
        .filter_map(|r| entry_of::<AllocationRelease>(r, UnitEntryTypes::AllocationRelease))
        .map(|release| release.grant)
        .collect();
    Ok(records_from_peers(grants)?
        .iter()
        .flatten()
        .filter(|r| r.action().author() == provider)
        .filter_map(|r| entry_of::<AllocationGrant>(r, UnitEntryTypes::AllocationGrant))
        .map(|grant| grant.request)
        .collect())
}

/// The target of the provider's own newest link of `link_type` on its agent key.
fn newest_target(provider: &AgentPubKey, link_type: LinkTypes) -> ExternResult<Option<ActionHash>> {
    let links = links_from_peers(LinkQuery::try_new(provider.clone(), link_type)?)?;
    Ok(links
        .into_iter()
        .filter(|l| &l.author == provider)
        .max_by_key(|l| l.timestamp)
        .and_then(|l| l.target.into_action_hash()))
}

fn offer_record(record: &Record) -> Option<OfferRecord> {
    Some(OfferRecord {
        provider: record.action().author().clone(),
        version: record.action_address().clone(),
        offer: entry_of(record, UnitEntryTypes::ResourceOffer)?,
    })
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
