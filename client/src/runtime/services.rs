//! The services one joined node runs, in one place: the surfaces (`api`, `mcp`, the dashboard)
//! hold an `Arc<Services>` and call into it; nothing here knows how it is reached.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::mesh::{CellReport, Mesh, MeshError, MeshStatus, PeerSeen};
use crate::metrics::Metrics;
use crate::node::liveness::{Liveness, LivenessReport};
use crate::node::view::{MeshView, ViewReport};
use crate::node::{NodeAgent, NodeState};

/// Facts fixed for the life of `ripple up`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub network: String,
    pub network_seed: String,
    pub embedded: bool,
    pub admin_url: String,
    pub bootstrap_url: Option<url::Url>,
    pub relay_url: Option<url::Url>,
    pub serving_bootstrap: bool,
    /// The network's admins, on a network that admits by invitation.
    pub admins: Vec<String>,
    pub started: Instant,
}

/// One joined node's services.
pub struct Services {
    pub mesh: Arc<Mesh>,
    pub node: Arc<NodeAgent>,
    pub metrics: Arc<Metrics>,
    pub info: NodeInfo,
    /// What this node knows of the mesh: every read of who is on it goes here.
    pub view: Arc<MeshView>,
    /// Who is alive right now, by probing: feeds the view.
    pub liveness: Arc<Liveness>,
    pub resources: Arc<crate::resources::ResourceService>,
    pub artifacts: Arc<crate::artifacts::ArtifactService>,
    pub policy: Arc<crate::policy::PolicyService>,
    pub shards: Arc<crate::shards::ShardService>,
    pub inference: Arc<crate::inference::InferenceService>,
    /// Checks other nodes' requests to this one.
    pub peer: crate::peer::Verifier,
}

/// `/status`: the spec's `holochain.join_mesh` outputs, plus diagnostics and the node agent's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub network: String,
    pub network_seed: String,
    pub agent_pubkey: String,
    /// ripple-local: the node that created the network and publishes its policy; joiners pass it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_admin: Option<String>,
    pub cell_ids: Vec<CellReport>,
    pub peer_count: usize,
    pub mesh_status: MeshStatus,
    pub diagnostics: Diagnostics,
    pub node: NodeState,
    /// The mesh view: how many nodes it knows, how fresh it is.
    #[serde(default)]
    pub view: ViewReport,
    /// The liveness protocol: members, verdicts, local health, traffic.
    #[serde(default)]
    pub liveness: LivenessReport,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diagnostics {
    /// `embedded` or `attached`.
    pub conductor: String,
    pub admin_url: String,
    pub app_port: u16,
    /// The bootstrap+relay this node uses (unknown when attached: the conductor's own config).
    pub bootstrap_url: Option<String>,
    pub bootstrap_reachable: Option<bool>,
    pub bootstrap_error: Option<String>,
    pub relay_url: Option<String>,
    /// This node serves ripple-local's bootstrap+relay for the others.
    pub serving_bootstrap: bool,
    pub peers_seen: Vec<PeerSeen>,
    pub last_gossip_ms: Option<i64>,
    pub completed_gossip_rounds: u64,
    pub pending_fetch_ops: usize,
    /// Why the gossip figures are unknown: the conductor did not answer its metrics call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip_error: Option<String>,
    /// Messages dropped for an unknown peer address (a peer that restarted, not yet learnt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_messages: Option<crate::mesh::BlockedMessages>,
    pub uptime_secs: u64,
}

impl Services {
    /// The spec's `holochain.join_mesh` outputs, with diagnostics: `/status`, `ripple status`,
    /// the MCP tools and the `ready` line all report this.
    pub async fn status(&self) -> Result<StatusReport, MeshError> {
        let view = self.mesh.network_view().await?;
        let (bootstrap_reachable, bootstrap_error) = match &self.info.bootstrap_url {
            Some(url) => match crate::bootstrap::probe(url, Duration::from_secs(3)).await {
                Ok(()) => (Some(true), None),
                Err(e) => (Some(false), Some(e)),
            },
            None => (None, None),
        };
        Ok(StatusReport {
            network: self.info.network.clone(),
            network_seed: self.info.network_seed.clone(),
            agent_pubkey: self.mesh.agent.to_string(),
            policy_admin: self.mesh.policy_admin.as_ref().map(|k| k.to_string()),
            cell_ids: self.mesh.cell_reports(),
            peer_count: view.peer_count,
            mesh_status: view.mesh_status,
            diagnostics: Diagnostics {
                conductor: if self.info.embedded { "embedded" } else { "attached" }.into(),
                admin_url: self.info.admin_url.clone(),
                app_port: self.mesh.app_port,
                bootstrap_url: self.info.bootstrap_url.as_ref().map(|u| u.to_string()),
                bootstrap_reachable,
                bootstrap_error,
                relay_url: self.info.relay_url.as_ref().map(|u| u.to_string()),
                serving_bootstrap: self.info.serving_bootstrap,
                peers_seen: view.peers_seen,
                last_gossip_ms: view.last_gossip_ms,
                completed_gossip_rounds: view.completed_gossip_rounds,
                pending_fetch_ops: view.pending_fetch_ops,
                gossip_error: view.gossip_error,
                blocked_messages: view.blocked_messages,
                uptime_secs: self.info.started.elapsed().as_secs(),
            },
            node: self.node.state(),
            view: self.view.report(),
            liveness: self.liveness.report(),
        })
    }

    /// The resource functions' view of these services.
    pub fn requester(&self) -> crate::resources::Requester<'_> {
        crate::resources::Requester {
            mesh: &self.mesh,
            node: &self.node,
            view: &self.view,
            policy: &self.policy,
            resources: &self.resources,
        }
    }
}
