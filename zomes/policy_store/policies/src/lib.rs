//! Coordinator `policies`: the network's admins publish Rego packages as numbered versions; anyone
//! reads a package's current version, all its versions, or the current version of every package.
use hdk::prelude::*;
use peer_reads::{from_peers, link_targets, links, links_from_peers, records};
use policy_store_integrity::{EntryTypes, LinkTypes};
use policy_store_types::*;

/// Admins only (rule PB1): publishes `input` as the next version of its package, updating the
/// current one. Publishing what is already the current version returns it unchanged.
#[hdk_extern]
pub fn publish_bundle(input: PublishInput) -> ExternResult<BundleRecord> {
    let current = current_version(&input.package)?;
    if let Some(current) = &current {
        if current.bundle.rego == input.rego && current.bundle.data == input.data {
            return Ok(current.clone());
        }
    }
    let bundle = PolicyBundle {
        package: input.package.clone(),
        version: current.as_ref().map_or(1, |c| c.bundle.version + 1),
        rego: input.rego,
        data: input.data,
        description: input.description,
    };
    let id = match &current {
        Some(current) => update_entry(current.bundle_id.clone(), EntryTypes::PolicyBundle(bundle))?,
        None => create_entry(EntryTypes::PolicyBundle(bundle))?,
    };
    create_link(anchors::package(&input.package).path_entry_hash()?, id.clone(), LinkTypes::PackageToBundles, ())?;
    create_link(anchors::all_bundles().path_entry_hash()?, id.clone(), LinkTypes::AllBundles, ())?;
    get(id, GetOptions::local())?
        .as_ref()
        .and_then(BundleRecord::from_record)
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the bundle just written is missing".into())))
}

/// Anyone: the admins named in this network's DNA properties.
#[hdk_extern]
pub fn get_policy_admins() -> ExternResult<Vec<AgentPubKey>> {
    Ok(PolicyProperties::current()?.admins.into_iter().map(AgentPubKey::from).collect())
}

/// Anyone: the current version of `package`, if it has been published.
#[hdk_extern]
pub fn get_current_bundle(package: String) -> ExternResult<Option<BundleRecord>> {
    current_version(&package)
}

/// Anyone: every version of `package`, oldest first.
#[hdk_extern]
pub fn get_bundle_versions(package: String) -> ExternResult<Vec<BundleRecord>> {
    let mut versions = versions_of(&package)?;
    versions.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
    Ok(versions)
}

/// Anyone: the current version of every published package, by package name.
#[hdk_extern]
pub fn get_current_bundles() -> ExternResult<Vec<BundleRecord>> {
    current_bundles(&from_peers())
}

/// Anyone: `get_current_bundles` from this node's own store, without asking peers: what a node
/// that has just restarted enforces at once, before its peers can answer it.
#[hdk_extern]
pub fn get_current_bundles_local() -> ExternResult<Vec<BundleRecord>> {
    current_bundles(&GetOptions::local())
}

fn current_bundles(options: &GetOptions) -> ExternResult<Vec<BundleRecord>> {
    let query = LinkQuery::try_new(anchors::all_bundles().path_entry_hash()?, LinkTypes::AllBundles)?;
    let links = links(query, options.clone())?;
    Ok(current_versions(bundles_at(link_targets(links), options)?))
}

fn current_version(package: &str) -> ExternResult<Option<BundleRecord>> {
    Ok(versions_of(package)?.into_iter().max_by(|a, b| a.precedence().cmp(&b.precedence())))
}

fn versions_of(package: &str) -> ExternResult<Vec<BundleRecord>> {
    let links = links_from_peers(LinkQuery::try_new(
        anchors::package(package).path_entry_hash()?,
        LinkTypes::PackageToBundles,
    )?)?;
    // Validation (LK1) files only bundles of this package here; the filter keeps reads honest anyway.
    Ok(bundles_at(link_targets(links), &from_peers())?.into_iter().filter(|b| b.bundle.package == package).collect())
}

fn bundles_at(hashes: Vec<ActionHash>, options: &GetOptions) -> ExternResult<Vec<BundleRecord>> {
    Ok(records(hashes, options)?.iter().flatten().filter_map(BundleRecord::from_record).collect())
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
