//! Test-only adversary for agent_registry: each extern commits, without any check, data that
//! breaks one rule of `docs/integrity/agent_registry.md`. Run on a conductor with self-validation
//! disabled, so the data reaches honest peers, which must reject it and warrant the author.
use agent_registry_integrity::heartbeat::{anchor, shard_of};
use agent_registry_integrity::{
    AdvertIndexTag, EntryTypes, HeartbeatSample, IndexKey, LinkTypes, NodeAdvert, RegistryProperties,
};
use hdk::prelude::*;

/// AR1 (bad fields) or AR2 (a second advert): creates an advert entry as given.
#[hdk_extern]
pub fn create_advert_unchecked(advert: NodeAdvert) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::NodeAdvert(advert))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct UpdateAdvertInput {
    pub original: ActionHash,
    pub advert: NodeAdvert,
}

/// AR3: updates any advert action (another node's, or an update instead of the original).
#[hdk_extern]
pub fn update_advert_unchecked(input: UpdateAdvertInput) -> ExternResult<ActionHash> {
    update_entry(input.original, EntryTypes::NodeAdvert(input.advert))
}

/// AR4: deletes an advert.
#[hdk_extern]
pub fn delete_advert(action: ActionHash) -> ExternResult<ActionHash> {
    delete_entry(action)
}

/// Where a forged link goes.
#[derive(Serialize, Deserialize, Debug)]
pub enum ForgedBase {
    /// The capability-index path of a model name.
    ModelIndex(String),
    /// This node's own "all nodes" shard.
    OwnAllNodesShard,
    /// The heartbeat anchor `buckets_ago` buckets before now, in this node's shard.
    HeartbeatBucket { buckets_ago: i64 },
}

/// What a forged link's tag holds.
#[derive(Serialize, Deserialize, Debug)]
pub enum ForgedTag {
    Advert(ActionHash),
    Heartbeat(HeartbeatSample),
    Raw(Vec<u8>),
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ForgedLink {
    pub base: ForgedBase,
    /// Defaults to this node.
    pub target: Option<AgentPubKey>,
    pub heartbeat: bool,
    pub tag: ForgedTag,
}

/// IX1, IX2, HB1, HB2, HB3: creates a capability-index or heartbeat link as described.
#[hdk_extern]
pub fn create_forged_link(input: ForgedLink) -> ExternResult<ActionHash> {
    let me = agent_info()?.agent_initial_pubkey;
    let base = match input.base {
        ForgedBase::ModelIndex(model) => IndexKey::Model(model).path_hash()?,
        ForgedBase::OwnAllNodesShard => IndexKey::all_nodes_for(&me).path_hash()?,
        ForgedBase::HeartbeatBucket { buckets_ago } => {
            let props = RegistryProperties::current()?;
            anchor(props.bucket_of(sys_time()?) - buckets_ago, shard_of(&me)).path_entry_hash()?
        }
    };
    let tag = match input.tag {
        ForgedTag::Advert(advert) => AdvertIndexTag { advert }.to_tag()?,
        ForgedTag::Heartbeat(sample) => sample.to_tag()?,
        ForgedTag::Raw(bytes) => LinkTag::new(bytes),
    };
    let link_type = if input.heartbeat { LinkTypes::BucketToHeartbeats } else { LinkTypes::CapabilityToNodes };
    create_link(base, input.target.unwrap_or(me), link_type, tag)
}

/// IX3 (another node's listing) or HB5 (a heartbeat): deletes a link.
#[hdk_extern]
pub fn delete_any_link(create_link_hash: ActionHash) -> ExternResult<ActionHash> {
    delete_link(create_link_hash, GetOptions::network())
}

/// Helper for tests: the create-link hashes of `agent`'s listings on its "all nodes" shard.
#[hdk_extern]
pub fn get_listing_links(agent: AgentPubKey) -> ExternResult<Vec<ActionHash>> {
    let query =
        LinkQuery::try_new(IndexKey::all_nodes_for(&agent).path_hash()?, LinkTypes::CapabilityToNodes)?.author(agent);
    Ok(get_links(query, GetStrategy::Network)?.into_iter().map(|l| l.create_link_hash).collect())
}
