//! Which node answers a query for a model: every online node whose inference server lists the
//! model and advertises its endpoint, least loaded first, then nearest. Pure: the order is the
//! failover order, and a dry listing (`ripple models`) shows it.
use serde::{Deserialize, Serialize};

use crate::node::view::MeshNode;

/// A node that can answer for a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub agent: String,
    pub name: String,
    pub is_self: bool,
    pub endpoint: String,
    /// The model as that server names it (case kept).
    pub model: String,
    /// The busier of CPU and GPU in the latest heartbeat, if one was seen.
    pub load_percent: Option<u8>,
    pub region: String,
}

/// Load is compared in steps of this many percent, so that noise between two idle nodes does not
/// reorder them and locality decides.
const LOAD_STEP: u8 = 25;

/// The online nodes serving `model` (case-insensitive), in the order to ask them.
pub fn servers_for(model: &str, peers: &[MeshNode], my_region: &str) -> Vec<Server> {
    let mut servers: Vec<Server> = peers
        .iter()
        .filter(|p| p.is_online())
        .filter_map(|p| {
            let endpoint = p.advert.inference.endpoint.clone()?;
            let served = p.advert.inference.models_loaded.iter().find(|m| m.eq_ignore_ascii_case(model))?;
            Some(Server {
                agent: p.agent.to_string(),
                name: p.advert.agent_name.clone(),
                is_self: p.is_self,
                endpoint,
                model: served.clone(),
                load_percent: p.load_percent(),
                region: p.advert.network.region.clone(),
            })
        })
        .collect();
    servers.sort_by(|a, b| {
        let step = |s: &Server| s.load_percent.map_or(u8::MAX, |l| l / LOAD_STEP);
        let locality = |s: &Server| {
            if s.is_self {
                0
            } else if !my_region.is_empty() && s.region == my_region {
                1
            } else {
                2
            }
        };
        step(a).cmp(&step(b)).then(locality(a).cmp(&locality(b))).then_with(|| a.agent.cmp(&b.agent))
    });
    servers
}

/// Every model served on the mesh (as first named), with its servers in routing order.
pub fn models_on_mesh(peers: &[MeshNode], my_region: &str) -> Vec<(String, Vec<Server>)> {
    let mut names: Vec<String> = Vec::new();
    for p in peers.iter().filter(|p| p.is_online()) {
        for m in &p.advert.inference.models_loaded {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(m)) {
                names.push(m.clone());
            }
        }
    }
    names.sort_by_key(|n| n.to_lowercase());
    names
        .into_iter()
        .map(|n| {
            let servers = servers_for(&n, peers, my_region);
            (n, servers)
        })
        .filter(|(_, servers)| !servers.is_empty())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::node::view::PeerState;
    use agent_registry_types::*;
    use holochain_types::prelude::*;

    /// An online node (`is_self` when `seed` is 3).
    pub(crate) fn peer(seed: u8, name: &str, models: &[&str], cpu: Option<u8>, region: &str) -> MeshNode {
        let agent = AgentPubKey::from_raw_32(vec![seed; 32]);
        let advert = NodeAdvert {
            agent_name: name.into(),
            hardware_class: HardwareClass::Desktop,
            compute: Compute { cpu_cores: 4, cpu_arch: "x86_64".into(), ram_gb: 8, gpus: vec![] },
            storage: Storage { local_ssd_gb: 10, ipfs_pinned_gb: 0, s3_available_gb: 0 },
            inference: Inference {
                models_loaded: models.iter().map(|m| m.to_string()).collect(),
                max_batch_size: 1,
                tokens_per_second: 10,
                endpoint: Some(format!("http://127.0.0.1:80{seed:02}")),
            },
            memory: Memory { vector_shards: 0, redis_memory_gb: 0 },
            network: Network { bandwidth_mbps: 100, region: region.into() },
            availability: Availability::Online,
        };
        let last_heartbeat = cpu.map(|cpu_percent| HeartbeatSeen {
            agent: agent.clone(),
            at: Timestamp::from_micros(0),
            sample: HeartbeatSample {
                seq: 1,
                cpu_percent,
                gpu_percent: None,
                memory_percent: 10,
                availability: Availability::Online,
            },
        });
        MeshNode {
            agent,
            advert: advert.into(),
            last_heartbeat,
            live: None,
            state: PeerState::Online,
            is_self: seed == 3,
        }
    }

    #[test]
    fn least_loaded_then_nearest_then_by_key() {
        let peers = [
            peer(1, "far-idle", &["smol"], Some(5), "eu"),
            peer(2, "near-idle", &["SMOL"], Some(10), "us"),
            peer(3, "me-busy", &["smol"], Some(90), "us"),
            peer(4, "other-model", &["llama"], Some(0), "us"),
            peer(5, "no-heartbeat", &["smol"], None, "us"),
        ];
        let order: Vec<String> = servers_for("Smol", &peers, "us").into_iter().map(|s| s.name).collect();
        assert_eq!(order, ["near-idle", "far-idle", "me-busy", "no-heartbeat"]);
        // Between equally idle nodes this node goes first.
        let idle_me = [peer(1, "far-idle", &["smol"], Some(5), "eu"), peer(3, "me", &["smol"], Some(20), "us")];
        assert_eq!(servers_for("smol", &idle_me, "us")[0].name, "me");
    }

    #[test]
    fn offline_nodes_and_nodes_without_an_endpoint_do_not_serve() {
        let mut offline = peer(1, "offline", &["smol"], Some(0), "");
        offline.state = PeerState::Offline;
        let mut draining = peer(2, "draining", &["smol"], Some(0), "");
        draining.state = PeerState::Draining;
        let mut no_endpoint = peer(3, "no-endpoint", &["smol"], Some(0), "");
        std::sync::Arc::make_mut(&mut no_endpoint.advert).inference.endpoint = None;
        assert!(servers_for("smol", &[offline, draining, no_endpoint], "").is_empty());
    }

    #[test]
    fn the_mesh_lists_each_model_once_with_its_servers() {
        let peers = [peer(1, "a", &["smol", "Llama"], Some(0), ""), peer(2, "b", &["SMOL"], Some(50), "")];
        let models = models_on_mesh(&peers, "");
        let names: Vec<(&str, usize)> = models.iter().map(|(n, s)| (n.as_str(), s.len())).collect();
        assert_eq!(names, [("Llama", 1), ("smol", 2)]);
    }
}
