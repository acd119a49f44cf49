//! Vector-memory shards over the mesh (memory_shards DNA; spec §10.7): a collection's shard map,
//! which node holds which replica of which shard, and how far each replica has synced live on the
//! DHT. Every node computes placement and routing from that state the same way
//! (`placement.rs`); this node's shard loop claims the shards placed on it and hands back those
//! it no longer should hold once their placed holders have them. The CLI, the HTTP API and the MCP
//! `memory.*` tools all go through `ShardService`.
pub mod placement;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holochain_types::prelude::*;
use serde::{Deserialize, Serialize};

use memory_shards_types::*;

use crate::artifacts::ArtifactService;
use crate::mesh::{Mesh, MeshError};
use crate::node::view::MeshView;
use crate::node::NodeAgent;
use crate::policy::PolicyService;
use placement::{check_shape, plan, shard_of, Eligible, MemoryPolicy, Shape, Step};

/// The hApp role of the memory_shards DNA.
pub const ROLE: &str = crate::mesh::SHARDS_ROLE;
/// Longest routing key accepted (keys are hashed; this only bounds requests).
pub const KEY_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Boxed: a denial carries its whole verdict.
    #[error(transparent)]
    Gate(#[from] Box<crate::policy::GateError>),
    /// Storing or fetching a snapshot's bytes.
    #[error(transparent)]
    Snapshot(#[from] crate::artifacts::ArtifactError),
}

/// A collection's map, for people and scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapView {
    pub collection: String,
    pub map_id: String,
    pub owner: String,
    pub created_at: String,
    pub shard_count: u32,
    pub replication_factor: u32,
    pub hash_function: String,
    pub epoch: u32,
}

/// One live holder of a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HolderView {
    pub agent: String,
    pub name: String,
    pub replica: u32,
    pub claim_id: String,
    pub is_self: bool,
}

/// A replica's latest checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointView {
    pub checkpoint_id: String,
    pub holder: String,
    pub shard: u32,
    pub replica: u32,
    pub sequence: u64,
    pub vector_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_cid: Option<String>,
    pub written_at: String,
}

/// One shard in `shards map`: who should hold it, who does, and the state that wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRow {
    pub shard: u32,
    /// The placed holders' agent keys (ring order).
    pub placed: Vec<String>,
    /// The live holders (ring order; the first is the primary).
    pub holders: Vec<HolderView>,
    pub under_replicated: bool,
    /// The last write among the live replicas' checkpoints (`last_write_wins`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointView>,
}

/// `shards map`: the map and every shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapReport {
    pub map: MapView,
    /// Online nodes advertising vector capacity.
    pub eligible_nodes: usize,
    pub live_replicas: usize,
    pub under_replicated_shards: usize,
    pub shards: Vec<ShardRow>,
}

/// `shards route`: where a key goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    pub collection: String,
    pub key: String,
    pub shard: u32,
    pub epoch: u32,
    /// The first live holder on the shard's ring, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<HolderView>,
    pub holders: Vec<HolderView>,
}

/// `shards claims`: every claim on a map, live or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimView {
    pub claim_id: String,
    pub holder: String,
    pub name: String,
    pub shard: u32,
    pub replica: u32,
    pub epoch: u32,
    pub claimed_at: String,
    /// The holder is online and advertises vector capacity.
    pub live: bool,
    pub is_self: bool,
}

/// What the shard loop has been doing on this node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardLoopState {
    /// This node's advertised vector capacity (0: it holds no shards).
    pub vector_capacity: u32,
    pub collections: usize,
    /// Claims this node holds.
    pub held: usize,
    pub claims_made: u64,
    pub claims_released: u64,
    /// Releases waiting for the settle window.
    pub handing_over: usize,
    /// This node restarted and has not heard its peers yet (`MeshView::has_heard_the_mesh`): it
    /// claims and hands back nothing on a picture of the mesh that may be stale.
    #[serde(default)]
    pub waiting_for_mesh: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `shards checkpoint`: what to record for this node's replica of a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    pub collection: Option<String>,
    pub shard: u32,
    pub vector_count: u64,
    #[serde(default)]
    pub snapshot_cid: Option<String>,
    /// Omitted: one after this replica's last checkpoint.
    #[serde(default)]
    pub sequence: Option<u64>,
}

/// The mesh as the shard loop and routing see it.
struct View {
    eligible: Vec<Eligible>,
    names: HashMap<AgentPubKey, String>,
}

pub struct ShardService {
    mesh: Arc<Mesh>,
    node: Arc<NodeAgent>,
    policy: MemoryPolicy,
    policy_gate: Arc<PolicyService>,
    /// Snapshot bytes are stored, offered and fetched as content-addressed artifacts.
    artifacts: Arc<ArtifactService>,
    /// Which nodes are online with vector capacity.
    view: Arc<MeshView>,
    state: Mutex<ShardLoopState>,
    /// Releases proposed by `plan`, by claim, since when: done once the settle window has passed.
    handover: Mutex<HashMap<ActionHash, Instant>>,
    /// Serialises this node's memory_shards writes: concurrent calls would race for the chain head.
    chain: tokio::sync::Mutex<()>,
    /// The nodes the previous pass placed shards among, to log who joined or left placement.
    placed_among: Mutex<Vec<AgentPubKey>>,
}

impl ShardService {
    pub fn new(
        mesh: Arc<Mesh>,
        node: Arc<NodeAgent>,
        policy: MemoryPolicy,
        policy_gate: Arc<PolicyService>,
        artifacts: Arc<ArtifactService>,
        view: Arc<MeshView>,
    ) -> Arc<Self> {
        Arc::new(Self {
            mesh,
            node,
            policy,
            policy_gate,
            artifacts,
            view,
            state: Default::default(),
            handover: Default::default(),
            chain: Default::default(),
            placed_among: Default::default(),
        })
    }

    pub fn policy(&self) -> &MemoryPolicy {
        &self.policy
    }

    pub fn state(&self) -> ShardLoopState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Creates `collection`'s map with the policy's defaults where not given. Gated
    /// (`memory.create_map`).
    pub async fn create(
        &self,
        collection: &str,
        shard_count: Option<u32>,
        replication_factor: Option<u32>,
        via: &str,
    ) -> Result<MapView, ShardError> {
        check_collection(collection)?;
        let input = CreateMapInput {
            collection: collection.into(),
            shard_count: shard_count.unwrap_or(self.policy.shard_count),
            replication_factor: replication_factor.unwrap_or(self.policy.replication_factor),
            hash_function: self.policy.hash_function.clone(),
        };
        check_shape(input.shard_count, input.replication_factor).map_err(ShardError::BadInput)?;
        if let Some(existing) = self.find(collection).await? {
            return Err(ShardError::Conflict(format!(
                "collection `{collection}` already has a shard map ({} shards, replication {}, owner {})",
                existing.map.shard_count, existing.map.replication_factor, existing.owner
            )));
        }
        let args = serde_json::to_value(&input).unwrap_or_default();
        self.policy_gate.gate("memory.create_map", via, &args, &[]).await.map_err(Box::new)?;
        let _chain = self.chain.lock().await;
        let map: MapRecord = self.mesh.call(ROLE, "shards", "create_map", &input).await?;
        self.refresh_view().await;
        Ok(map_view(&map))
    }

    /// Every collection on the mesh, by name.
    pub async fn maps(&self) -> Result<Vec<MapView>, ShardError> {
        let maps: Vec<MapRecord> = self.mesh.call(ROLE, "shards", "list_maps", &()).await?;
        Ok(maps.iter().map(map_view).collect())
    }

    async fn find(&self, collection: &str) -> Result<Option<MapRecord>, ShardError> {
        Ok(self.mesh.call(ROLE, "shards", "get_map", &collection).await?)
    }

    /// The named collection's map, read now; without a name, the mesh's only collection.
    async fn resolve(&self, collection: Option<&str>) -> Result<MapRecord, ShardError> {
        if let Some(name) = collection {
            check_collection(name)?;
            return self.find(name).await?.ok_or_else(|| no_collection(name));
        }
        let maps: Vec<MapRecord> = self.mesh.call(ROLE, "shards", "list_maps", &()).await?;
        the_only(maps, |m| m)
    }

    /// The collection's map and unreleased claims as the mesh view holds them (`resolve`'s rules);
    /// a name the view lacks is read again at once, in case it was created a moment ago.
    async fn known(&self, collection: Option<&str>) -> Result<(MapRecord, Vec<ClaimRecord>), ShardError> {
        let mut seen = self.view.shards().await?;
        let Some(name) = collection else {
            return the_only(seen.maps.clone(), |(map, _)| map);
        };
        check_collection(name)?;
        if seen.map(name).is_none() {
            seen = self.view.read_shards().await?;
        }
        seen.map(name).cloned().ok_or_else(|| no_collection(name))
    }

    /// Nodes online with the grace buckets (`MeshView::all_with_grace`) and vector capacity, and
    /// every known node's name.
    fn placement_view(&self) -> View {
        let nodes = self.view.all_with_grace();
        let names = nodes.iter().map(|n| (n.agent.clone(), n.advert.agent_name.clone())).collect();
        let eligible = nodes
            .iter()
            .filter(|n| n.is_online() && n.advert.memory.vector_shards > 0)
            .map(|n| Eligible { agent: n.agent.clone(), capacity: n.advert.memory.vector_shards })
            .collect();
        View { eligible, names }
    }

    fn holder(&self, claim: &ClaimRecord, view: &View) -> HolderView {
        HolderView {
            agent: claim.claim.holder.to_string(),
            name: view.names.get(&claim.claim.holder).cloned().unwrap_or_default(),
            replica: claim.claim.replica,
            claim_id: claim.claim_id.to_string(),
            is_self: claim.claim.holder == self.mesh.agent,
        }
    }

    /// The map and, per shard, its placed and live holders and winning checkpoint.
    pub async fn report(&self, collection: Option<&str>) -> Result<MapReport, ShardError> {
        let (map, claims) = self.known(collection).await?;
        let view = self.placement_view();
        let shape = shape(&map);
        let placement = shape.placement(&view.eligible);
        let live_ids: Vec<ActionHash> = (0..map.map.shard_count)
            .flat_map(|s| shape.live_holders(s, &claims, &view.eligible))
            .map(|c| c.claim_id.clone())
            .collect();
        let checkpoints: Vec<CheckpointRecord> = self.mesh.call(ROLE, "sync", "get_checkpoints", &live_ids).await?;
        let winners = winners(&checkpoints);
        let shards: Vec<ShardRow> = (0..map.map.shard_count)
            .zip(&placement)
            .map(|(shard, placed)| {
                let holders: Vec<HolderView> =
                    shape.live_holders(shard, &claims, &view.eligible).iter().map(|c| self.holder(c, &view)).collect();
                ShardRow {
                    shard,
                    placed: placed.iter().map(|a| a.to_string()).collect(),
                    under_replicated: (holders.len() as u32) < map.map.replication_factor,
                    holders,
                    checkpoint: winners.get(&shard).map(|c| checkpoint_view(c)),
                }
            })
            .collect();
        Ok(MapReport {
            map: map_view(&map),
            eligible_nodes: view.eligible.len(),
            live_replicas: shards.iter().map(|s| s.holders.len()).sum(),
            under_replicated_shards: shards.iter().filter(|s| s.under_replicated).count(),
            shards,
        })
    }

    /// Where `key` goes: its shard and that shard's live holders, primary first.
    pub async fn route(&self, collection: Option<&str>, key: &str) -> Result<RouteView, ShardError> {
        if key.is_empty() || key.len() > KEY_MAX {
            return Err(ShardError::BadInput(format!("a key is 1-{KEY_MAX} bytes")));
        }
        let (map, claims) = self.known(collection).await?;
        let view = self.placement_view();
        let shard = shard_of(key, map.map.shard_count);
        let holders: Vec<HolderView> =
            shape(&map).live_holders(shard, &claims, &view.eligible).iter().map(|c| self.holder(c, &view)).collect();
        Ok(RouteView {
            collection: map.map.collection.clone(),
            key: key.into(),
            shard,
            epoch: map.map.epoch,
            primary: holders.first().cloned(),
            holders,
        })
    }

    /// Every claim on the collection's map that has not been released, oldest first.
    pub async fn claims(&self, collection: Option<&str>) -> Result<Vec<ClaimView>, ShardError> {
        let (_, claims) = self.known(collection).await?;
        let view = self.placement_view();
        Ok(claims
            .iter()
            .map(|c| ClaimView {
                claim_id: c.claim_id.to_string(),
                holder: c.claim.holder.to_string(),
                name: view.names.get(&c.claim.holder).cloned().unwrap_or_default(),
                shard: c.claim.shard,
                replica: c.claim.replica,
                epoch: c.claim.epoch,
                claimed_at: c.claimed_at.to_string(),
                live: view.eligible.iter().any(|e| e.agent == c.claim.holder),
                is_self: c.claim.holder == self.mesh.agent,
            })
            .collect())
    }

    /// Records how far this node's replica of a shard has synced. Gated (`memory.checkpoint`).
    pub async fn checkpoint(&self, request: &CheckpointRequest, via: &str) -> Result<CheckpointView, ShardError> {
        let claim = self.replica_claim(request).await?;
        self.record_checkpoint(&claim, request, via).await
    }

    /// Passes the gate and writes a checked request's checkpoint on `claim`.
    async fn record_checkpoint(
        &self,
        claim: &ClaimRecord,
        request: &CheckpointRequest,
        via: &str,
    ) -> Result<CheckpointView, ShardError> {
        let args = serde_json::to_value(request).unwrap_or_default();
        self.policy_gate.gate("memory.checkpoint", via, &args, &[]).await.map_err(Box::new)?;
        let input = CheckpointInput {
            claim_id: claim.claim_id.clone(),
            sequence: request.sequence,
            vector_count: request.vector_count,
            snapshot_cid: request.snapshot_cid.clone(),
        };
        let _chain = self.chain.lock().await;
        let written: CheckpointRecord = self.mesh.call(ROLE, "sync", "checkpoint", &input).await.map_err(|e| {
            match e {
                // The zome's own refusal (a sequence that does not rise) is the caller's to fix.
                MeshError::ZomeCall { reason, .. } if reason.contains("is not after") => ShardError::Conflict(reason),
                other => ShardError::Mesh(other),
            }
        })?;
        Ok(checkpoint_view(&written))
    }

    /// A checkpoint with the replica's snapshot bytes: they are stored in this node's IPFS, the
    /// checkpoint names their CID, and this node offers them to its peers (pinned, with a replica
    /// claim), so a replica behind it fetches them through this node's peer route. The snapshot
    /// this replica offered before is withdrawn. Bad input and a node without the replica are
    /// refused before any byte is stored; bytes whose checkpoint is refused are not kept.
    pub async fn checkpoint_with_snapshot<S>(
        &self,
        mut request: CheckpointRequest,
        snapshot: S,
        via: &str,
    ) -> Result<CheckpointView, ShardError>
    where
        S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        if request.snapshot_cid.is_some() {
            return Err(ShardError::BadInput("give the snapshot's bytes or its CID, not both".into()));
        }
        let claim = self.replica_claim(&request).await?;
        let previous: Vec<CheckpointRecord> =
            self.mesh.call(ROLE, "sync", "get_checkpoints", &vec![claim.claim_id.clone()]).await?;
        let added = self.artifacts.stage(snapshot).await?;
        request.snapshot_cid = Some(added.cid.clone());
        let written = self.record_checkpoint(&claim, &request, via).await?;
        self.artifacts.offer(&added.cid).await?;
        let replaced = previous.iter().filter_map(|c| c.checkpoint.snapshot_cid.as_ref()).filter(|c| **c != added.cid);
        for cid in replaced {
            if let Err(e) = self.artifacts.withdraw(cid).await {
                tracing::warn!("keeping the replaced snapshot {cid} of shard {}: {e}", request.shard);
            }
        }
        Ok(written)
    }

    /// The bytes of a shard's winning snapshot (`last_write_wins` among its live replicas), from
    /// this node's IPFS or from the holder's peer route, with the checkpoint that names them and
    /// where they came from. The bytes' content address is checked against the CID as they pass.
    pub async fn snapshot(
        &self,
        collection: Option<&str>,
        shard: u32,
    ) -> Result<(CheckpointView, crate::artifacts::ByteStream, String), ShardError> {
        let map = self.resolve(collection).await?;
        let name = &map.map.collection;
        if shard >= map.map.shard_count {
            return Err(ShardError::BadInput(format!(
                "shard {shard} is beyond `{name}`'s {} shards (0-{})",
                map.map.shard_count,
                map.map.shard_count - 1
            )));
        }
        // Only this shard's live replicas' checkpoints: one read per replica, not per map.
        let (claims, view) = (self.claims_on(&map).await?, self.placement_view());
        let live: Vec<ActionHash> =
            shape(&map).live_holders(shard, &claims, &view.eligible).iter().map(|c| c.claim_id.clone()).collect();
        let checkpoints: Vec<CheckpointRecord> = self.mesh.call(ROLE, "sync", "get_checkpoints", &live).await?;
        let checkpoint = winners(&checkpoints).remove(&shard).map(checkpoint_view).ok_or_else(|| {
            ShardError::NotFound(format!("no live replica of shard {shard} of `{name}` has recorded a checkpoint"))
        })?;
        let cid = checkpoint.snapshot_cid.clone().ok_or_else(|| {
            ShardError::NotFound(format!(
                "the winning checkpoint of shard {shard} of `{name}` (sequence {}, by {}) names no snapshot",
                checkpoint.sequence, checkpoint.holder
            ))
        })?;
        let (bytes, source) = self.artifacts.open(&cid, false).await?;
        Ok((checkpoint, bytes, source))
    }

    /// This node's live claim on the shard a checkpoint is for, after checking the request.
    async fn replica_claim(&self, request: &CheckpointRequest) -> Result<ClaimRecord, ShardError> {
        if let Some(cid) = &request.snapshot_cid {
            if !is_cid(cid) {
                return Err(ShardError::BadInput(format!("snapshot `{cid}` is not a CIDv0 or CIDv1")));
            }
        }
        if request.vector_count > VECTOR_COUNT_MAX {
            return Err(ShardError::BadInput(format!("vector_count must be at most {VECTOR_COUNT_MAX}")));
        }
        let map = self.resolve(request.collection.as_deref()).await?;
        if request.shard >= map.map.shard_count {
            return Err(ShardError::BadInput(format!(
                "shard {} is beyond `{}`'s {} shards (0-{})",
                request.shard,
                map.map.collection,
                map.map.shard_count,
                map.map.shard_count - 1
            )));
        }
        let mine: Vec<ClaimRecord> = self.mesh.call(ROLE, "routing", "get_my_claims", &()).await?;
        let held: Vec<&ClaimRecord> = mine.iter().filter(|c| c.claim.map == map.map_id).collect();
        let Some(claim) = held.iter().find(|c| c.claim.shard == request.shard) else {
            let shards: Vec<String> = held.iter().map(|c| c.claim.shard.to_string()).collect();
            return Err(ShardError::Conflict(format!(
                "this node holds no replica of shard {} of `{}` (it holds {})",
                request.shard,
                map.map.collection,
                if shards.is_empty() { "none".to_string() } else { format!("shards {}", shards.join(", ")) }
            )));
        };
        Ok((*claim).clone())
    }

    async fn claims_on(&self, map: &MapRecord) -> Result<Vec<ClaimRecord>, ShardError> {
        Ok(self.mesh.call(ROLE, "routing", "get_claims", &map.map_id).await?)
    }

    /// The shard loop: claims what is placed on this node, hands back what is not once its
    /// placed holders hold it and the settle window has passed. Idle while this node advertises
    /// no vector capacity.
    pub async fn run(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs(u64::from(self.policy.scan_interval_secs));
        crate::periodic::every(every, stop, || async {
            let result = self.maintain().await;
            if let Err(e) = &result {
                tracing::warn!("shard loop: {e}");
            }
            self.update(|s| s.last_error = result.err().map(|e| e.to_string()));
        })
        .await
    }

    fn update(&self, change: impl FnOnce(&mut ShardLoopState)) {
        if let Ok(mut s) = self.state.lock() {
            change(&mut s);
        }
    }

    /// One pass of the loop.
    pub async fn maintain(&self) -> Result<(), ShardError> {
        let capacity = self.node.settings().vector_shards;
        self.update(|s| s.vector_capacity = capacity);
        let mine: Vec<ClaimRecord> = self.mesh.call(ROLE, "routing", "get_my_claims", &()).await?;
        self.update(|s| s.held = mine.len());
        if capacity == 0 && mine.is_empty() {
            return Ok(());
        }
        let view = self.placement_view();
        let me = self.mesh.agent.clone();
        if capacity > 0 && !view.eligible.iter().any(|e| e.agent == me) {
            return Ok(()); // not online in its own view yet: placement would leave this node out
        }
        let waiting = !self.view.has_heard_the_mesh();
        self.update(|s| s.waiting_for_mesh = waiting);
        if waiting {
            return Ok(());
        }
        self.log_placement_changes(&view);
        let maps: Vec<MapRecord> = self.mesh.call(ROLE, "shards", "list_maps", &()).await?;
        self.update(|s| s.collections = maps.len());
        let settle = Duration::from_secs(self.policy.settle_secs.into());
        let (mut proposed, mut wrote) = (vec![], false);
        let ids: Vec<ActionHash> = maps.iter().map(|m| m.map_id.clone()).collect();
        let all_claims: Vec<Vec<ClaimRecord>> = self.mesh.call(ROLE, "routing", "get_claims_of", &ids).await?;
        for (map, claims) in maps.iter().zip(all_claims) {
            for step in plan(&me, &shape(map), &claims, &view.eligible) {
                match step {
                    Step::Claim { shard, replica } => {
                        let input =
                            ClaimInput { map_id: map.map_id.clone(), shard, replica, vector_capacity: capacity };
                        let _chain = self.chain.lock().await;
                        let _: ClaimRecord = self.mesh.call(ROLE, "routing", "claim_shard", &input).await?;
                        tracing::info!(
                            "claimed replica {replica} of shard {shard} of `{}` (placed here among {} online nodes)",
                            map.map.collection,
                            view.eligible.len()
                        );
                        self.update(|s| s.claims_made += 1);
                        wrote = true;
                    }
                    Step::Drop { shard, claim_id } => {
                        let _chain = self.chain.lock().await;
                        let _: bool = self.mesh.call(ROLE, "routing", "release_claim", &claim_id).await?;
                        tracing::info!("dropped a second claim on shard {shard} of `{}`", map.map.collection);
                        wrote = true;
                    }
                    Step::Release { shard, claim_id } => {
                        let since = *self.handover().entry(claim_id.clone()).or_insert_with(Instant::now);
                        if since.elapsed() < settle {
                            proposed.push(claim_id);
                            continue;
                        }
                        let _chain = self.chain.lock().await;
                        let _: bool = self.mesh.call(ROLE, "routing", "release_claim", &claim_id).await?;
                        tracing::info!("handed shard {shard} of `{}` back to its placed holders", map.map.collection);
                        self.update(|s| s.claims_released += 1);
                        wrote = true;
                    }
                }
            }
        }
        // A release no longer proposed (its holder left again) starts its window afresh.
        let waiting = {
            let mut handover = self.handover();
            handover.retain(|id, _| proposed.contains(id));
            handover.len()
        };
        self.update(|s| s.handing_over = waiting);
        if wrote {
            self.refresh_view().await;
        }
        Ok(())
    }

    /// Names the nodes that joined or left the set shards are placed among since the last pass:
    /// the reason behind every claim and hand-back that follows.
    fn log_placement_changes(&self, view: &View) {
        let now: Vec<AgentPubKey> = view.eligible.iter().map(|e| e.agent.clone()).collect();
        let before = std::mem::replace(&mut *self.placed_among.lock().unwrap_or_else(|p| p.into_inner()), now.clone());
        let name = |a: &AgentPubKey| view.names.get(a).cloned().unwrap_or_else(|| a.to_string());
        let joined: Vec<String> = now.iter().filter(|a| !before.contains(a)).map(name).collect();
        let left: Vec<String> = before.iter().filter(|a| !now.contains(a)).map(name).collect();
        if !joined.is_empty() || !left.is_empty() {
            tracing::info!(
                "shard placement now among {} online nodes (joined: {}; left: {})",
                now.len(),
                if joined.is_empty() { "none".into() } else { joined.join(", ") },
                if left.is_empty() { "none".into() } else { left.join(", ") }
            );
        }
    }

    /// After this node's own shard writes: routes read here see them at once.
    async fn refresh_view(&self) {
        if let Err(e) = self.view.read_shards().await {
            tracing::debug!("re-reading shard maps after a write: {e}");
        }
    }

    /// The pending hand-backs. Only instants live there, so a panic elsewhere cannot leave them
    /// half-written: a poisoned lock is still usable.
    fn handover(&self) -> std::sync::MutexGuard<'_, HashMap<ActionHash, Instant>> {
        self.handover.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn shape(map: &MapRecord) -> Shape<'_> {
    Shape {
        collection: &map.map.collection,
        shard_count: map.map.shard_count,
        replication_factor: map.map.replication_factor,
    }
}

fn map_view(m: &MapRecord) -> MapView {
    MapView {
        collection: m.map.collection.clone(),
        map_id: m.map_id.to_string(),
        owner: m.owner.to_string(),
        created_at: m.created_at.to_string(),
        shard_count: m.map.shard_count,
        replication_factor: m.map.replication_factor,
        hash_function: m.map.hash_function.clone(),
        epoch: m.map.epoch,
    }
}

/// Per shard, the checkpoint that wins among `checkpoints` (`last_write_wins`).
fn winners(checkpoints: &[CheckpointRecord]) -> BTreeMap<u32, &CheckpointRecord> {
    let mut winners: BTreeMap<u32, &CheckpointRecord> = BTreeMap::new();
    for c in checkpoints {
        let slot = winners.entry(c.checkpoint.shard).or_insert(c);
        if c.wins_over(slot) {
            *slot = c;
        }
    }
    winners
}

fn checkpoint_view(c: &CheckpointRecord) -> CheckpointView {
    CheckpointView {
        checkpoint_id: c.checkpoint_id.to_string(),
        holder: c.holder.to_string(),
        shard: c.checkpoint.shard,
        replica: c.checkpoint.replica,
        sequence: c.checkpoint.sequence,
        vector_count: c.checkpoint.vector_count,
        snapshot_cid: c.checkpoint.snapshot_cid.clone(),
        written_at: c.written_at.to_string(),
    }
}
fn check_collection(name: &str) -> Result<(), ShardError> {
    if is_collection(name) {
        return Ok(());
    }
    Err(ShardError::BadInput(format!("collection `{name}` must be 1-{COLLECTION_MAX} characters of [a-z0-9._-]")))
}

fn no_collection(name: &str) -> ShardError {
    ShardError::NotFound(format!("no collection `{name}` on the mesh: create it with `ripple shards create {name}`"))
}

/// The mesh's one collection, when no name was given.
fn the_only<T>(mut maps: Vec<T>, map: impl Fn(&T) -> &MapRecord) -> Result<T, ShardError> {
    match maps.len() {
        0 => Err(ShardError::NotFound(
            "no collections on the mesh yet: create one with `ripple shards create NAME`".into(),
        )),
        1 => Ok(maps.remove(0)),
        _ => Err(ShardError::BadInput(format!(
            "the mesh has {} collections ({}): name one",
            maps.len(),
            maps.iter().map(|m| map(m).map.collection.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
