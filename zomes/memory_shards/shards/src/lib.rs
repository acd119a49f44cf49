//! Coordinator `shards`: shard maps. A collection's owner creates its map (shard count,
//! replication factor, hash function, epoch); anyone reads it by name or lists them all. When two
//! nodes create a map under the same name, the earliest (then the smallest hash) is the
//! collection's map on every node.
use hdk::prelude::*;
use memory_shards_integrity::{EntryTypes, LinkTypes};
use memory_shards_types::*;
use peer_reads::{link_targets, links_from_peers, links_from_peers_each, records_from_peers};

/// The owner (this agent): creates `collection`'s map at epoch 1. Refused when the collection
/// already has one.
#[hdk_extern]
pub fn create_map(input: CreateMapInput) -> ExternResult<MapRecord> {
    if let Some(existing) = get_map(input.collection.clone())? {
        return Err(wasm_error!(WasmErrorInner::Guest(format!(
            "collection `{}` already has a shard map ({} shards, replication {}, by {})",
            input.collection, existing.map.shard_count, existing.map.replication_factor, existing.owner
        ))));
    }
    let map = ShardMap {
        collection: input.collection,
        shard_count: input.shard_count,
        replication_factor: input.replication_factor,
        hash_function: input.hash_function,
        epoch: 1,
    };
    let id = create_entry(EntryTypes::ShardMap(map.clone()))?;
    create_link(anchors::collection(&map.collection).path_entry_hash()?, id.clone(), LinkTypes::CollectionToMaps, ())?;
    create_link(anchors::all_maps(&map.collection).path_entry_hash()?, id.clone(), LinkTypes::AllMaps, ())?;
    let record = get(id, GetOptions::local())?
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the map just written is missing".into())))?;
    MapRecord::from_record(&record)
        .ok_or_else(|| wasm_error!(WasmErrorInner::Guest("the map just written is not a map".into())))
}

/// Anyone: the collection's map, if it has one.
#[hdk_extern]
pub fn get_map(collection: String) -> ExternResult<Option<MapRecord>> {
    let maps = maps_under(anchors::collection(&collection), LinkTypes::CollectionToMaps)?;
    Ok(maps.into_iter().find(|m| m.map.collection == collection))
}

/// Anyone: every collection's map, by name.
#[hdk_extern]
pub fn list_maps(_: ()) -> ExternResult<Vec<MapRecord>> {
    let queries = anchors::all_map_shards()
        .map(|path| LinkQuery::try_new(path.path_entry_hash()?, LinkTypes::AllMaps))
        .collect::<ExternResult<Vec<_>>>()?;
    let targets = links_from_peers_each(queries)?.into_iter().flat_map(link_targets).collect();
    // Earliest first, so the first of each name is the collection's map.
    let mut all = maps_at(targets)?;
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|m| seen.insert(m.map.collection.clone()));
    all.sort_by(|a, b| a.map.collection.cmp(&b.map.collection));
    Ok(all)
}

/// The maps linked under `path`, earliest first.
fn maps_under(path: Path, link_type: LinkTypes) -> ExternResult<Vec<MapRecord>> {
    maps_at(link_targets(links_from_peers(LinkQuery::try_new(path.path_entry_hash()?, link_type)?)?))
}

/// The maps at `targets`, earliest first, each once.
fn maps_at(targets: Vec<ActionHash>) -> ExternResult<Vec<MapRecord>> {
    let mut maps: Vec<MapRecord> =
        records_from_peers(targets)?.iter().flatten().filter_map(MapRecord::from_record).collect();
    maps.sort_by(|a, b| (a.created_at, &a.map_id).cmp(&(b.created_at, &b.map_id)));
    maps.dedup_by(|a, b| a.map_id == b.map_id);
    Ok(maps)
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
