//! The spec's `locality_aware_binpack` (§10.5): which providers may take a task, and in what order.
//! Pure: the same candidates give the same plan on every node, and a dry run shows exactly why.
//!
//! Eligibility: online, offering something, serving the model (inference), enough free capacity
//! for the task (per the provider's ledger), enough bandwidth, and in the workload class's
//! `prefer` or `fallback` pool. Score (0–1, higher first), weighted by `locality_preference`:
//!
//! | preference | weights |
//! |---|---|
//! | nearest  | 0.50 locality + 0.25 packing + 0.25 preferred pool |
//! | cheapest | 0.50 cheapness + 0.25 packing + 0.25 preferred pool |
//! | fastest  | 0.50 speed + 0.25 headroom + 0.25 preferred pool |
//! | any      | 0.60 packing + 0.40 preferred pool |
//!
//! locality: this node 1, same region 0.6, elsewhere 0.2. packing: the provider's utilisation after
//! the task, over the resources the task uses (binpacking fills busy nodes first and keeps whole
//! nodes free for big tasks); headroom is 1 − packing. cheapness: own or edge hardware is cheap,
//! cloud VMs are not. speed: tokens/s (inference) or free cores, against the best candidate, less
//! the current CPU load. Ties go to the lower agent key, so every node orders them alike.
use serde::{Deserialize, Serialize};

use agent_registry_types::HardwareClass;
use resource_mesh_types::{describe_capacity, Capacity, LocalityPreference, ResourceOffer, ResourceType};

use super::policy::{Pool, WorkloadClass};

/// A provider as the scheduler sees it: its advert, liveness, offer and current load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub agent: String,
    pub name: String,
    pub is_self: bool,
    pub online: bool,
    pub region: String,
    pub hardware_class: HardwareClass,
    pub tokens_per_second: u32,
    pub bandwidth_mbps: u32,
    /// From the latest heartbeat.
    pub cpu_percent: Option<u8>,
    pub offer: Option<ResourceOffer>,
    /// What the provider's latest grant holds now.
    pub in_use: Capacity,
}

/// What to place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub resource_type: ResourceType,
    pub requirements: Capacity,
    pub model_name: Option<String>,
    pub locality_preference: LocalityPreference,
    pub workload_class: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scored {
    pub agent: String,
    pub name: String,
    pub score: f64,
    /// The parts of the score, for the dry run.
    pub locality: f64,
    pub packing: f64,
    pub preferred_pool: bool,
    pub cheapness: f64,
    pub speed: f64,
    /// Free capacity after this task.
    pub free_after: Capacity,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Filtered {
    pub agent: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub algorithm: String,
    pub task: Task,
    /// Best first.
    pub candidates: Vec<Scored>,
    pub filtered: Vec<Filtered>,
}

pub fn locality_aware_binpack(task: &Task, class: &WorkloadClass, nodes: &[Candidate]) -> Plan {
    let self_region = nodes.iter().find(|n| n.is_self).map(|n| n.region.as_str()).unwrap_or("");
    let min_bandwidth = class.resource_request.bandwidth_mbps.unwrap_or(0);
    let mut eligible = vec![];
    let mut filtered = vec![];
    for node in nodes {
        match eligibility(task, class, min_bandwidth, node) {
            Ok(free_after) => eligible.push((node, free_after)),
            Err(reason) => filtered.push(Filtered { agent: node.agent.clone(), name: node.name.clone(), reason }),
        }
    }
    let best_speed = eligible.iter().map(|(n, _)| raw_speed(task, n)).fold(0.0_f64, f64::max);
    let most_storage = eligible.iter().map(|(n, _)| free(n).storage_gb).max().unwrap_or(0);
    let mut candidates: Vec<Scored> = eligible
        .into_iter()
        .map(|(node, free_after)| {
            let locality = if node.is_self {
                1.0
            } else if !self_region.is_empty() && node.region.eq_ignore_ascii_case(self_region) {
                0.6
            } else {
                0.2
            };
            let packing = packing(task, node);
            let preferred_pool = in_pool(class.prefer, node, locality, most_storage);
            let pool = if preferred_pool { 1.0 } else { 0.0 };
            let cheapness = cheapness(node);
            let load = f64::from(node.cpu_percent.unwrap_or(0)) / 100.0;
            let speed = if best_speed > 0.0 { raw_speed(task, node) / best_speed } else { 1.0 } * (1.0 - 0.5 * load);
            let score = match task.locality_preference {
                LocalityPreference::Nearest => 0.5 * locality + 0.25 * packing + 0.25 * pool,
                LocalityPreference::Cheapest => 0.5 * cheapness + 0.25 * packing + 0.25 * pool,
                LocalityPreference::Fastest => 0.5 * speed + 0.25 * (1.0 - packing) + 0.25 * pool,
                LocalityPreference::Any => 0.6 * packing + 0.4 * pool,
            };
            Scored {
                agent: node.agent.clone(),
                name: node.name.clone(),
                score: (score * 1000.0).round() / 1000.0,
                locality,
                packing: (packing * 1000.0).round() / 1000.0,
                preferred_pool,
                cheapness,
                speed: (speed * 1000.0).round() / 1000.0,
                free_after,
            }
        })
        .collect();
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.agent.cmp(&b.agent)));
    Plan { algorithm: "locality_aware_binpack".into(), task: task.clone(), candidates, filtered }
}

/// Free capacity after the task, or why the node cannot take it.
fn eligibility(task: &Task, class: &WorkloadClass, min_bandwidth: u32, node: &Candidate) -> Result<Capacity, String> {
    if !node.online {
        return Err("offline (no heartbeat in the window, or its advert says so)".into());
    }
    let Some(offer) = &node.offer else {
        return Err("offers no resources".into());
    };
    if let Some(model) = &task.model_name {
        if !offer.models.iter().any(|m| m.eq_ignore_ascii_case(model)) {
            return Err(format!("does not serve model {model}"));
        }
    }
    if node.bandwidth_mbps < min_bandwidth {
        return Err(format!(
            "advertises {} Mbit/s; the {} class needs {min_bandwidth}",
            node.bandwidth_mbps, task.workload_class
        ));
    }
    let free = free(node);
    let short = task.requirements.over(&free);
    if !short.is_empty() {
        return Err(format!("not enough free {} (free: {})", short.join(", "), describe_capacity(&free)));
    }
    let in_class = in_pool(class.prefer, node, if node.is_self { 1.0 } else { 0.0 }, 0)
        || in_pool(class.fallback, node, if node.is_self { 1.0 } else { 0.0 }, 0);
    if !in_class {
        return Err(format!(
            "not in the {} class's preferred ({}) or fallback ({}) pool",
            task.workload_class,
            pool_name(class.prefer),
            pool_name(class.fallback)
        ));
    }
    Ok(subtract(&free, &task.requirements))
}

fn in_pool(pool: Pool, node: &Candidate, locality: f64, most_storage: u64) -> bool {
    let offer = node.offer.as_ref();
    match pool {
        Pool::CloudEphemeral => node.hardware_class == HardwareClass::CloudVm,
        Pool::LocalContainerized => node.is_self,
        Pool::GpuNodePool => offer.is_some_and(|o| o.capacity.gpu_slots > 0),
        Pool::StorageTierNodes => most_storage == 0 || free(node).storage_gb * 2 >= most_storage,
        Pool::NearestAvailable => locality >= 0.6,
        Pool::CpuMoeDistributed | Pool::AnyAvailable => true,
    }
}

fn pool_name(pool: Pool) -> &'static str {
    match pool {
        Pool::CloudEphemeral => "cloud-ephemeral",
        Pool::LocalContainerized => "local-containerized",
        Pool::GpuNodePool => "gpu-node-pool",
        Pool::CpuMoeDistributed => "cpu-moe-distributed",
        Pool::StorageTierNodes => "storage-tier-nodes",
        Pool::NearestAvailable => "nearest-available",
        Pool::AnyAvailable => "any-available",
    }
}

fn free(node: &Candidate) -> Capacity {
    node.offer.as_ref().map_or_else(Capacity::default, |o| subtract(&o.capacity, &node.in_use))
}

pub fn subtract(a: &Capacity, b: &Capacity) -> Capacity {
    Capacity {
        cpu_cores: a.cpu_cores.saturating_sub(b.cpu_cores),
        memory_gb: a.memory_gb.saturating_sub(b.memory_gb),
        gpu_slots: a.gpu_slots.saturating_sub(b.gpu_slots),
        vram_gb: a.vram_gb.saturating_sub(b.vram_gb),
        storage_gb: a.storage_gb.saturating_sub(b.storage_gb),
        model_slots: a.model_slots.saturating_sub(b.model_slots),
    }
}

/// Mean utilisation after the task over the resources the task asks for.
fn packing(task: &Task, node: &Candidate) -> f64 {
    let Some(offer) = &node.offer else { return 0.0 };
    let (o, u, r) = (&offer.capacity, &node.in_use, &task.requirements);
    let dims: [(u64, u64, u64); 6] = [
        (o.cpu_cores.into(), u.cpu_cores.into(), r.cpu_cores.into()),
        (o.memory_gb.into(), u.memory_gb.into(), r.memory_gb.into()),
        (o.gpu_slots.into(), u.gpu_slots.into(), r.gpu_slots.into()),
        (o.vram_gb.into(), u.vram_gb.into(), r.vram_gb.into()),
        (o.storage_gb, u.storage_gb, r.storage_gb),
        (o.model_slots.into(), u.model_slots.into(), r.model_slots.into()),
    ];
    let used: Vec<f64> = dims
        .iter()
        .filter(|(offered, _, wanted)| *offered > 0 && *wanted > 0)
        .map(|(offered, in_use, wanted)| ((in_use + wanted) as f64 / *offered as f64).min(1.0))
        .collect();
    if used.is_empty() {
        0.0
    } else {
        used.iter().sum::<f64>() / used.len() as f64
    }
}

fn cheapness(node: &Candidate) -> f64 {
    if node.is_self {
        return 1.0;
    }
    match node.hardware_class {
        HardwareClass::IotArm | HardwareClass::Mobile => 0.9,
        HardwareClass::Desktop => 0.8,
        HardwareClass::EdgeServer => 0.6,
        HardwareClass::CloudVm => 0.2,
    }
}

fn raw_speed(task: &Task, node: &Candidate) -> f64 {
    match task.resource_type {
        ResourceType::Inference => f64::from(node.tokens_per_second),
        _ => f64::from(free(node).cpu_cores),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::policy::ComputePolicy;

    fn policy() -> ComputePolicy {
        ComputePolicy::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")).expect("policy")
    }

    fn node(name: &str, is_self: bool, region: &str, capacity: Capacity) -> Candidate {
        Candidate {
            agent: format!("uhCAk{name}"),
            name: name.into(),
            is_self,
            online: true,
            region: region.into(),
            hardware_class: HardwareClass::Desktop,
            tokens_per_second: 0,
            bandwidth_mbps: 1000,
            cpu_percent: Some(10),
            offer: Some(ResourceOffer { capacity, models: vec![], peer_endpoint: None }),
            in_use: Capacity::default(),
        }
    }

    fn cores(n: u32) -> Capacity {
        Capacity { cpu_cores: n, memory_gb: 4 * n, ..Capacity::default() }
    }

    fn task(preference: LocalityPreference) -> Task {
        Task {
            resource_type: ResourceType::Compute,
            requirements: cores(1),
            model_name: None,
            locality_preference: preference,
            workload_class: "agent_task".into(),
        }
    }

    fn order(plan: &Plan) -> Vec<&str> {
        plan.candidates.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn nearest_prefers_this_node_then_its_region() {
        let policy = policy();
        let nodes = vec![
            node("far", false, "eu-central", cores(64)),
            node("me", true, "us-west", cores(8)),
            node("near", false, "us-west", cores(8)),
        ];
        let plan =
            locality_aware_binpack(&task(LocalityPreference::Nearest), policy.class("agent_task").unwrap(), &nodes);
        assert_eq!(order(&plan), ["me", "near", "far"]);
        assert!(plan.filtered.is_empty());
    }

    #[test]
    fn offline_full_and_modelless_nodes_are_filtered_with_reasons() {
        let policy = policy();
        let mut offline = node("offline", false, "us-west", cores(8));
        offline.online = false;
        let mut full = node("full", false, "us-west", cores(2));
        full.in_use = cores(2);
        let nodes = vec![offline, full, node("ok", false, "", cores(2))];
        let plan = locality_aware_binpack(&task(LocalityPreference::Any), policy.class("agent_task").unwrap(), &nodes);
        assert_eq!(order(&plan), ["ok"]);
        let reasons: Vec<(&str, &str)> = plan.filtered.iter().map(|f| (f.name.as_str(), f.reason.as_str())).collect();
        assert!(reasons[0].0 == "offline" && reasons[0].1.starts_with("offline"), "{reasons:?}");
        assert!(reasons[1].0 == "full" && reasons[1].1.contains("not enough free cpu_cores, memory_gb"), "{reasons:?}");

        let mut inference = task(LocalityPreference::Any);
        inference.resource_type = ResourceType::Inference;
        inference.model_name = Some("qwen3-4b".into());
        let plan = locality_aware_binpack(&inference, policy.class("inference").unwrap(), &nodes[2..]);
        assert_eq!(plan.filtered[0].reason, "does not serve model qwen3-4b");
    }

    #[test]
    fn binpack_fills_the_busier_node_first_and_fastest_does_the_opposite() {
        let policy = policy();
        let mut busy = node("busy", false, "", cores(8));
        busy.in_use = cores(6);
        let idle = node("idle", false, "", cores(8));
        let class = policy.class("agent_task").unwrap();
        let any = locality_aware_binpack(&task(LocalityPreference::Any), class, &[idle.clone(), busy.clone()]);
        assert_eq!(order(&any), ["busy", "idle"]);
        let fastest = locality_aware_binpack(&task(LocalityPreference::Fastest), class, &[busy, idle]);
        assert_eq!(order(&fastest), ["idle", "busy"]);
    }

    #[test]
    fn cheapest_avoids_cloud_and_classes_pick_their_pools() {
        let policy = policy();
        let mut cloud = node("cloud", false, "", cores(64));
        cloud.hardware_class = HardwareClass::CloudVm;
        let pi = Candidate { hardware_class: HardwareClass::IotArm, ..node("pi", false, "", cores(4)) };
        let cheapest = locality_aware_binpack(
            &task(LocalityPreference::Cheapest),
            policy.class("agent_task").unwrap(),
            &[cloud.clone(), pi.clone()],
        );
        assert_eq!(order(&cheapest), ["pi", "cloud"]);
        // build: prefer cloud-ephemeral, fall back to this node; a remote desktop is out.
        let mut build = task(LocalityPreference::Any);
        build.workload_class = "build".into();
        let me = node("me", true, "", cores(4));
        let plan = locality_aware_binpack(&build, policy.class("build").unwrap(), &[pi, me, cloud]);
        assert_eq!(order(&plan), ["cloud", "me"]);
        assert!(plan.filtered[0].reason.contains("cloud-ephemeral"), "{:?}", plan.filtered);
    }
}
