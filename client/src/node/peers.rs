//! Who is on the mesh, as this node reads it: discovery through the local conductor, the rows every
//! surface and service shows (`/peers`, `holochain.query_peers`, the scheduler's candidates), and the
//! short cache that lets many callers share one conductor query.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use agent_registry_types::{Availability, DiscoveryQuery, HeartbeatSample, NodeAdvert, PeerRecord};

use crate::mesh::{Mesh, MeshError, PRIMARY_ROLE};
use crate::node::NodeAgent;

/// `/peers` row: a node found by discovery and what state it is in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerRow {
    pub agent_pubkey: String,
    /// `online` (heartbeat in the window and advert says online), `offline`, `draining`, `maintenance`.
    pub state: String,
    pub is_self: bool,
    pub last_heartbeat_ms: Option<i64>,
    pub load: Option<HeartbeatSample>,
    pub advert: NodeAdvert,
}

/// Discovery answers for up to `DISCOVERY_TTL`, per query: many agents asking the same question
/// at once (MCP sessions, dashboards) cost one conductor query, and concurrent misses wait for the
/// one in flight instead of each starting their own. This node's own advert changes invalidate it.
#[derive(Default)]
pub struct DiscoveryCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedPeers>>,
    /// One lock per query: misses of the same query wait for each other, different queries run
    /// side by side.
    in_flight: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct CachedPeers {
    at: Instant,
    own_advert: Option<String>,
    peers: Vec<PeerRecord>,
}

pub const DISCOVERY_TTL: Duration = Duration::from_secs(1);

impl DiscoveryCache {
    fn fresh(&self, key: &str, own_advert: &Option<String>) -> Option<Vec<PeerRecord>> {
        let entries = self.entries.lock().ok()?;
        let hit = entries.get(key)?;
        (hit.at.elapsed() < DISCOVERY_TTL && &hit.own_advert == own_advert).then(|| hit.peers.clone())
    }

    async fn query(&self, mesh: &Mesh, node: &NodeAgent, query: &DiscoveryQuery) -> Result<Vec<PeerRecord>, MeshError> {
        let key = serde_json::to_string(query).unwrap_or_default();
        let own_advert = node.state().advert.map(|a| a.version.to_string());
        if let Some(peers) = self.fresh(&key, &own_advert) {
            return Ok(peers);
        }
        let lock = match self.in_flight.lock() {
            Ok(mut locks) => {
                locks.retain(|_, lock| Arc::strong_count(lock) > 1); // drop the idle ones
                locks.entry(key.clone()).or_default().clone()
            }
            Err(_) => Default::default(),
        };
        let _this_query = lock.lock().await;
        if let Some(peers) = self.fresh(&key, &own_advert) {
            return Ok(peers); // answered while this call waited
        }
        let peers: Vec<PeerRecord> = mesh.call(PRIMARY_ROLE, "discovery", "query_peers", query).await?;
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, e| e.at.elapsed() < DISCOVERY_TTL);
            entries.insert(key, CachedPeers { at: Instant::now(), own_advert, peers: peers.clone() });
        }
        Ok(peers)
    }

    /// Discovery through the local conductor (answers at most `DISCOVERY_TTL` old). `online_only` also
    /// drops nodes whose advert says they are not online (a node that stopped cleanly is still in the
    /// heartbeat window).
    pub async fn find_peers(
        &self,
        mesh: &Mesh,
        node: &NodeAgent,
        query: &DiscoveryQuery,
    ) -> Result<Vec<PeerRow>, MeshError> {
        let found = self.query(mesh, node, query).await?;
        Ok(found
            .into_iter()
            .map(|p| PeerRow {
                agent_pubkey: p.agent.to_string(),
                state: peer_state(p.online, p.advert.availability).into(),
                is_self: p.agent == mesh.agent,
                last_heartbeat_ms: p.last_heartbeat.as_ref().map(|h| h.at.as_millis()),
                load: p.last_heartbeat.map(|h| h.sample),
                advert: p.advert,
            })
            .filter(|row| !query.online_only || row.state == "online")
            .collect())
    }
}

/// A node is online only while it beats and its advert does not say otherwise.
fn peer_state(beating: bool, availability: Availability) -> &'static str {
    match (beating, availability) {
        (false, _) | (_, Availability::Offline) => "offline",
        (true, Availability::Online) => "online",
        (true, Availability::Draining) => "draining",
        (true, Availability::Maintenance) => "maintenance",
    }
}
