//! Coordinator `discovery`: finds nodes by capability and liveness. It reads the capability index
//! (one path, chosen for selectivity) and the two newest heartbeat buckets; it never scans adverts
//! or history.
use std::collections::BTreeMap;

use agent_registry_integrity::heartbeat::{anchor, HEARTBEAT_SHARDS};
use agent_registry_integrity::index::{buckets_at_least, ALL_NODES_SHARDS};
use agent_registry_integrity::{
    AdvertIndexTag, HeartbeatSample, IndexKey, LinkTypes, NodeAdvert, RegistryProperties, CPU_CORES_MAX, RAM_GB_MAX,
    STORAGE_GB_MAX, VRAM_GB_MAX,
};
use agent_registry_types::{AdvertSeen, DiscoveryQuery, HeartbeatSeen, PeerRecord, RegistryChanges};
use hdk::prelude::*;
use peer_reads::{from_peers, links_each};

/// Anyone: nodes matching every given filter, online nodes first, then by name.
#[hdk_extern]
pub fn query_peers(query: DiscoveryQuery) -> ExternResult<Vec<PeerRecord>> {
    let heard = heartbeats_in_window()?;
    // "Who is online" alone: when few nodes are online, look each one up (one read per node) rather
    // than read the whole sharded node list (16 reads of everyone's listings).
    let listings = if query.online_only && is_unfiltered(&query) && heard.len() <= usize::from(ALL_NODES_SHARDS) {
        latest_listings_of(&heard.keys().cloned().collect::<Vec<_>>())?
    } else {
        latest_listings(candidate_keys(&query))?
    };
    let mut peers: Vec<PeerRecord> = read_adverts(listings, &from_peers())?
        .into_iter()
        .filter(|seen| query.matches(&seen.advert))
        .map(|AdvertSeen { agent, version, advert, .. }| {
            let last_heartbeat = heard.get(&agent).cloned();
            PeerRecord { online: last_heartbeat.is_some(), agent, advert_version: version, advert, last_heartbeat }
        })
        .filter(|peer| peer.online || !query.online_only)
        .collect();
    peers.sort_by(|a, b| {
        b.online
            .cmp(&a.online)
            .then_with(|| a.advert.agent_name.cmp(&b.advert.agent_name))
            .then_with(|| a.agent.cmp(&b.agent))
    });
    if let Some(limit) = query.limit {
        peers.truncate(limit as usize);
    }
    Ok(peers)
}

/// Anyone: one node's current advert and liveness, if it has advertised.
#[hdk_extern]
pub fn get_peer(agent: AgentPubKey) -> ExternResult<Option<PeerRecord>> {
    let listings = latest_listings_of(std::slice::from_ref(&agent))?;
    let Some(AdvertSeen { agent, version, advert, .. }) = read_adverts(listings, &from_peers())?.pop() else {
        return Ok(None);
    };
    let last_heartbeat = heartbeats_in_window_of(&agent)?;
    Ok(Some(PeerRecord { online: last_heartbeat.is_some(), agent, advert_version: version, advert, last_heartbeat }))
}

/// Anyone: what the registry holds that was written after `since` (a listing or heartbeat link's
/// timestamp): each newly listed node's newest advert and each node's newest heartbeat in the
/// online window. Without `since`, every listed node and the whole window. The sidecar's mesh view
/// reads everything on start and at a slow interval, and only the changes in between.
#[hdk_extern]
pub fn read_changes(since: Option<Timestamp>) -> ExternResult<RegistryChanges> {
    changes(since, from_peers())
}

/// The node itself: `read_changes` from this node's own store, without the network. A node that
/// restarted holds the registry as it last saw it, and its peers may not reach it for a while:
/// its sidecar's view starts from this at once instead of waiting on them.
#[hdk_extern]
pub fn read_changes_local(since: Option<Timestamp>) -> ExternResult<RegistryChanges> {
    changes(since, GetOptions::local())
}

fn changes(since: Option<Timestamp>, options: GetOptions) -> ExternResult<RegistryChanges> {
    let read_at = sys_time()?;
    let after = |query: LinkQuery| match since {
        Some(at) => query.after(at),
        None => query,
    };
    let listing_queries = (0..ALL_NODES_SHARDS)
        .map(|shard| {
            Ok(after(LinkQuery::try_new(IndexKey::AllNodes { shard }.path_hash()?, LinkTypes::CapabilityToNodes)?))
        })
        .collect::<ExternResult<Vec<_>>>()?;
    let listings = listings_per_agent(links_each(listing_queries, &options)?.into_iter().flatten());
    let heartbeat_queries = window_anchor_hashes(0..HEARTBEAT_SHARDS)?
        .into_iter()
        .map(|base| Ok(after(LinkQuery::try_new(base, LinkTypes::BucketToHeartbeats)?)))
        .collect::<ExternResult<Vec<_>>>()?;
    let heartbeats =
        newest_heartbeats(links_each(heartbeat_queries, &options)?.into_iter().flatten()).into_values().collect();
    Ok(RegistryChanges { read_at, adverts: read_adverts(listings, &options)?, heartbeats })
}

/// Anyone: every node seen in the current or previous heartbeat bucket, with its newest sample.
#[hdk_extern]
pub fn get_online_nodes(_: ()) -> ExternResult<Vec<HeartbeatSeen>> {
    Ok(heartbeats_in_window()?.into_values().collect())
}

fn is_unfiltered(q: &DiscoveryQuery) -> bool {
    DiscoveryQuery { online_only: q.online_only, limit: q.limit, ..Default::default() } == *q
}

/// The index paths to read: the most selective filter given (exact values before ranges), or the
/// whole sharded node list when there is none.
fn candidate_keys(q: &DiscoveryQuery) -> Vec<IndexKey> {
    let lower = |s: &String| s.to_ascii_lowercase();
    let at_least =
        |min: u64, max: u64, key: fn(u64) -> IndexKey| buckets_at_least(min, max).into_iter().map(key).collect();
    if let Some(model) = &q.model {
        vec![IndexKey::Model(lower(model))]
    } else if let Some(vendor) = &q.gpu_vendor {
        vec![IndexKey::GpuVendor(lower(vendor))]
    } else if let Some(region) = &q.region {
        vec![IndexKey::Region(lower(region))]
    } else if let Some(min) = q.min_vram_gb {
        at_least(min.into(), VRAM_GB_MAX.into(), |bucket| IndexKey::GpuVram { bucket })
    } else if let Some(arch) = &q.cpu_arch {
        vec![IndexKey::CpuArch(lower(arch))]
    } else if let Some(min) = q.min_cpu_cores {
        at_least(min.into(), CPU_CORES_MAX.into(), |bucket| IndexKey::CpuCores { bucket })
    } else if let Some(min) = q.min_ram_gb {
        at_least(min.into(), RAM_GB_MAX.into(), |bucket| IndexKey::RamGb { bucket })
    } else if let Some(min) = q.min_storage_gb {
        // Total storage is the sum of three fields, each bounded by STORAGE_GB_MAX.
        at_least(min, STORAGE_GB_MAX.saturating_mul(3), |bucket| IndexKey::StorageGb { bucket })
    } else {
        (0..ALL_NODES_SHARDS).map(|shard| IndexKey::AllNodes { shard }).collect()
    }
}

/// Per agent, the advert versions its listings on any of `keys` name, newest first.
fn latest_listings(keys: Vec<IndexKey>) -> ExternResult<Listings> {
    let inputs = keys
        .iter()
        .map(|key| {
            Ok(GetLinksInput::from_query(
                LinkQuery::try_new(key.path_hash()?, LinkTypes::CapabilityToNodes)?,
                from_peers(),
            ))
        })
        .collect::<ExternResult<Vec<_>>>()?;
    Ok(listings_per_agent(HDK.with(|h| h.borrow().get_links(inputs))?.into_iter().flatten()))
}

/// The same for named agents, read from their "all nodes" shard.
fn latest_listings_of(agents: &[AgentPubKey]) -> ExternResult<Listings> {
    let inputs = agents
        .iter()
        .map(|agent| {
            let query = LinkQuery::try_new(IndexKey::all_nodes_for(agent).path_hash()?, LinkTypes::CapabilityToNodes)?
                .author(agent.clone());
            Ok(GetLinksInput::from_query(query, from_peers()))
        })
        .collect::<ExternResult<Vec<_>>>()?;
    Ok(listings_per_agent(HDK.with(|h| h.borrow().get_links(inputs))?.into_iter().flatten()))
}

/// Per agent, the advert versions it listed, newest first.
type Listings = BTreeMap<AgentPubKey, Vec<ActionHash>>;

fn listings_per_agent(links: impl Iterator<Item = Link>) -> Listings {
    let mut seen: BTreeMap<AgentPubKey, Vec<(Timestamp, ActionHash)>> = BTreeMap::new();
    for link in links {
        let (Some(agent), Some(tag)) = (link.target.into_agent_pub_key(), AdvertIndexTag::from_tag(&link.tag)) else {
            continue; // validation (IX1, IX2) keeps these out; skip rather than fail the query
        };
        seen.entry(agent).or_default().push((link.timestamp, tag.advert));
    }
    seen.into_iter()
        .map(|(agent, mut listed)| {
            listed.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            let mut versions: Vec<ActionHash> = Vec::with_capacity(listed.len());
            for (_, version) in listed {
                if !versions.contains(&version) {
                    versions.push(version); // one advert is listed under each of its index keys
                }
            }
            (agent, versions)
        })
        .collect()
}

/// How many of an agent's newest advert versions a query tries before leaving the agent out.
const ADVERT_VERSIONS_TRIED: usize = 3;

/// Each agent's newest advert that can be read, fetched in one batch per round. A listing can
/// arrive before the advert it names (a node that just republished): then the version before it
/// stands in, so the node does not drop out of the mesh's view while its update spreads.
fn read_adverts(listings: Listings, options: &GetOptions) -> ExternResult<Vec<AdvertSeen>> {
    let mut out = Vec::with_capacity(listings.len());
    let mut pending: Vec<(AgentPubKey, std::vec::IntoIter<ActionHash>)> =
        listings.into_iter().map(|(agent, versions)| (agent, versions.into_iter())).collect();
    for _ in 0..ADVERT_VERSIONS_TRIED {
        let round: Vec<(AgentPubKey, ActionHash, std::vec::IntoIter<ActionHash>)> = pending
            .drain(..)
            .filter_map(|(agent, mut rest)| rest.next().map(|version| (agent, version, rest)))
            .collect();
        if round.is_empty() {
            break;
        }
        let inputs = round.iter().map(|(_, v, _)| GetInput::new(v.clone().into(), options.clone())).collect();
        let records = HDK.with(|h| h.borrow().get(inputs))?;
        for ((agent, version, rest), record) in round.into_iter().zip(records) {
            let advert = record.filter(|r| r.action().author() == &agent).and_then(|r| {
                let advert = r.entry().to_app_option::<NodeAdvert>().ok().flatten()?;
                Some((r.action().timestamp(), advert))
            });
            match advert {
                Some((at, advert)) => out.push(AdvertSeen { agent, version, at, advert }),
                None => pending.push((agent, rest)),
            }
        }
    }
    Ok(out)
}

/// The anchors of the current and previous bucket (as this node's clock sees it) for `shards`.
fn window_anchor_hashes(shards: impl Iterator<Item = u8> + Clone) -> ExternResult<Vec<EntryHash>> {
    let props = RegistryProperties::current()?;
    let now = props.bucket_of(sys_time()?);
    [now, now - 1]
        .into_iter()
        .flat_map(|bucket| shards.clone().map(move |shard| anchor(bucket, shard).path_entry_hash()))
        .collect()
}

fn heartbeats_in_window() -> ExternResult<BTreeMap<AgentPubKey, HeartbeatSeen>> {
    read_heartbeats(window_anchor_hashes(0..HEARTBEAT_SHARDS)?, None)
}

fn heartbeats_in_window_of(agent: &AgentPubKey) -> ExternResult<Option<HeartbeatSeen>> {
    let shard = agent_registry_integrity::heartbeat::shard_of(agent);
    Ok(read_heartbeats(window_anchor_hashes(std::iter::once(shard))?, Some(agent))?.remove(agent))
}

/// The newest well-formed heartbeat per agent under `bases`.
fn read_heartbeats(
    bases: Vec<EntryHash>,
    author: Option<&AgentPubKey>,
) -> ExternResult<BTreeMap<AgentPubKey, HeartbeatSeen>> {
    let inputs = bases
        .into_iter()
        .map(|base| {
            let mut query = LinkQuery::try_new(base, LinkTypes::BucketToHeartbeats)?;
            if let Some(author) = author {
                query = query.author(author.clone());
            }
            Ok(GetLinksInput::from_query(query, from_peers()))
        })
        .collect::<ExternResult<Vec<_>>>()?;
    Ok(newest_heartbeats(HDK.with(|h| h.borrow().get_links(inputs))?.into_iter().flatten()))
}

/// The newest well-formed heartbeat per agent among `links`.
fn newest_heartbeats(links: impl Iterator<Item = Link>) -> BTreeMap<AgentPubKey, HeartbeatSeen> {
    let mut newest: BTreeMap<AgentPubKey, HeartbeatSeen> = BTreeMap::new();
    for link in links {
        let (Some(agent), Ok(sample)) = (link.target.into_agent_pub_key(), HeartbeatSample::from_tag(&link.tag)) else {
            continue;
        };
        if newest.get(&agent).is_none_or(|seen| seen.at < link.timestamp) {
            newest.insert(agent.clone(), HeartbeatSeen { agent, at: link.timestamp, sample });
        }
    }
    newest
}
