//! `manifests/distributed/compute_policy.yaml` (spec §10.5): the workload classes the scheduler
//! honours. Keys that describe a task runtime Ripple does not run (isolation, autoscaling, …) are
//! read and kept out of the way; unknown `prefer`/`fallback` values and algorithms are refused at
//! load, so a typo never silently changes scheduling.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use resource_mesh_types::{Capacity, ResourceType};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the compute policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the compute policy {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Node pools a workload class may prefer or fall back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    /// Cloud VMs (`hardware_class: cloud_vm`).
    CloudEphemeral,
    /// This node.
    LocalContainerized,
    /// Nodes with GPUs.
    GpuNodePool,
    /// Any node (CPU inference spread over the mesh).
    CpuMoeDistributed,
    /// The nodes with the most storage.
    StorageTierNodes,
    /// This node, then nodes in its region.
    NearestAvailable,
    AnyAvailable,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequest {
    pub cpu: Option<u32>,
    pub gpu: Option<u32>,
    pub memory_gb: Option<u32>,
    pub storage_gb: Option<u64>,
    pub bandwidth_mbps: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub timeout_minutes: Option<u32>,
}

impl ResourceRequest {
    pub fn capacity(&self) -> Capacity {
        Capacity {
            cpu_cores: self.cpu.unwrap_or(0),
            memory_gb: self.memory_gb.unwrap_or(0),
            gpu_slots: self.gpu.unwrap_or(0),
            storage_gb: self.storage_gb.unwrap_or(0),
            ..Capacity::default()
        }
    }

    pub fn duration_secs(&self) -> Option<u32> {
        self.timeout_seconds.or(self.timeout_minutes.map(|m| m.saturating_mul(60)))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkloadClass {
    pub prefer: Pool,
    pub fallback: Pool,
    #[serde(default)]
    pub resource_request: ResourceRequest,
    /// Runtime keys (isolation, data_locality): not the scheduler's.
    #[serde(flatten)]
    pub runtime: BTreeMap<String, yaml_serde::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Scheduling {
    pub algorithm: Algorithm,
    #[serde(flatten)]
    pub runtime: BTreeMap<String, yaml_serde::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    LocalityAwareBinpack,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ComputePolicy {
    pub name: String,
    pub workload_classes: BTreeMap<String, WorkloadClass>,
    pub scheduling: Scheduling,
    /// Autoscaling is for a task runtime; kept, not used.
    #[serde(default)]
    pub autoscaling: Option<yaml_serde::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    compute_policy: ComputePolicy,
}

impl ComputePolicy {
    pub fn path(manifests: &Path) -> PathBuf {
        manifests.join("distributed/compute_policy.yaml")
    }

    pub fn load(manifests: &Path) -> Result<Self, PolicyError> {
        let path = Self::path(manifests);
        let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|reason| PolicyError::Invalid { path, reason })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let policy = file.compute_policy;
        for (name, class) in &policy.workload_classes {
            let duration = class.resource_request.duration_secs();
            if duration == Some(0) {
                return Err(format!("workload class `{name}`: a timeout of 0 allocates nothing"));
            }
        }
        Ok(policy)
    }

    /// The class a request of `resource_type` belongs to when the caller names none.
    pub fn default_class(resource_type: ResourceType) -> &'static str {
        match resource_type {
            ResourceType::Compute => "agent_task",
            ResourceType::Inference => "inference",
            ResourceType::Storage => "storage_heavy",
            ResourceType::Memory => "agent_task",
        }
    }

    pub fn class(&self, name: &str) -> Result<&WorkloadClass, String> {
        self.workload_classes.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.workload_classes.keys().map(String::as_str).collect();
            format!("unknown workload class `{name}`; {} defines {}", self.name, known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_policy_loads_with_the_spec_classes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let policy = ComputePolicy::load(&root).expect("manifests/distributed/compute_policy.yaml loads");
        assert_eq!(policy.scheduling.algorithm, Algorithm::LocalityAwareBinpack);
        let inference = policy.class("inference").expect("inference class");
        assert_eq!((inference.prefer, inference.fallback), (Pool::GpuNodePool, Pool::CpuMoeDistributed));
        assert_eq!(inference.resource_request.capacity().gpu_slots, 1);
        assert_eq!(inference.resource_request.duration_secs(), Some(120));
        assert_eq!(policy.class("build").map(|c| c.resource_request.duration_secs()), Ok(Some(3600)));
        assert!(policy.class("nope").is_err_and(|e| e.contains("agent_task")));
    }

    #[test]
    fn typos_in_scheduling_keys_are_refused() {
        let bad = "compute_policy:\n  name: x\n  workload_classes:\n    a:\n      prefer: gpu-pool\n      fallback: any-available\n  scheduling:\n    algorithm: locality_aware_binpack\n";
        assert!(ComputePolicy::parse(bad).is_err_and(|e| e.contains("gpu-pool")));
        let algo = "compute_policy:\n  name: x\n  workload_classes: {}\n  scheduling:\n    algorithm: round_robin\n";
        assert!(ComputePolicy::parse(algo).is_err_and(|e| e.contains("round_robin")));
    }
}
