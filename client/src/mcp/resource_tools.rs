//! The `resources.*` tools (spec §11.4) over this node's resource service. Arguments arrive already
//! validated against the catalog's input schema; results are checked against the output schema by
//! the caller.
use serde::Deserialize;
use serde_json::{json, Value};

use resource_mesh_types::{Capacity, LocalityPreference, ResourceType};

use super::holochain_tools::{parse, without_nulls};
use crate::resources::{self, AllocateRequest};
use crate::runtime::services::Services;

pub const NAMES: &[&str] =
    &["resources.allocate", "resources.release", "resources.query_available", "resources.schedule_task"];

pub async fn call(
    state: &Services,
    tool: &str,
    arguments: Value,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    match tool {
        "resources.allocate" => {
            let input: Allocate = parse(arguments)?;
            let request = AllocateRequest {
                resource_type: input.resource_type,
                requirements: input.requirements.capacity(input.resource_type),
                model_name: input.requirements.model_name.clone(),
                locality_preference: input.locality_preference,
                duration_secs: input.duration_seconds.map(whole),
                workload_class: input.workload_class,
            };
            progress("scheduling and asking the best provider");
            let allocation =
                resources::allocate(&state.requester(), &request, "mcp").await.map_err(|e| e.to_string())?;
            serde_json::to_value(allocation).map_err(|e| e.to_string())
        }
        "resources.release" => {
            let input: Release = parse(arguments)?;
            let release_id =
                resources::release(&state.requester(), &input.allocation_id, "mcp").await.map_err(|e| e.to_string())?;
            Ok(json!({ "allocation_id": input.allocation_id, "release_id": release_id }))
        }
        "resources.query_available" => {
            let input: QueryAvailable = parse(arguments)?;
            let rows = resources::available(&state.requester()).await.map_err(|e| e.to_string())?;
            let nodes: Vec<Value> = rows
                .into_iter()
                .filter(|r| !input.online_only.unwrap_or(true) || r.state == "online")
                .filter(|r| input.resource_type.is_none_or(|t| has_free(&r.free, t)))
                .filter(|r| {
                    input.model_name.as_ref().is_none_or(|m| r.models.iter().any(|x| x.eq_ignore_ascii_case(m)))
                })
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .collect();
            Ok(json!({ "count": nodes.len(), "nodes": nodes }))
        }
        "resources.schedule_task" => {
            let input: ScheduleTask = parse(arguments)?;
            let resource_type = input.resource_type.unwrap_or(match input.workload_class.as_str() {
                "inference" => ResourceType::Inference,
                "storage_heavy" => ResourceType::Storage,
                _ => ResourceType::Compute,
            });
            let requirements = input.requirements.unwrap_or_default();
            let request = AllocateRequest {
                resource_type,
                requirements: requirements.capacity(resource_type),
                model_name: input.model_name.or(requirements.model_name.clone()),
                locality_preference: input.locality_preference,
                duration_secs: input.duration_seconds.map(whole),
                workload_class: Some(input.workload_class),
            };
            let (task, duration) = resources::task_for(&state.resources.policy, &request).map_err(|e| e.to_string())?;
            let plan = resources::plan(&state.requester(), &request).await.map_err(|e| e.to_string())?;
            let plan_json = json!({
                "algorithm": plan.algorithm,
                "workload_class": task.workload_class,
                "requirements": task.requirements,
                "duration_seconds": duration,
                "candidates": plan.candidates.iter().map(|c| json!({
                    "node_id": c.agent, "node_name": c.name, "score": c.score, "locality": c.locality,
                    "packing": c.packing, "preferred_pool": c.preferred_pool, "cheapness": c.cheapness,
                    "speed": c.speed, "free_after": c.free_after,
                })).collect::<Vec<_>>(),
                "filtered": plan.filtered.iter().map(|f| json!({
                    "node_id": f.agent, "node_name": f.name, "reason": f.reason,
                })).collect::<Vec<_>>(),
            });
            if input.dry_run {
                return Ok(json!({ "plan": plan_json }));
            }
            progress("asking the best provider");
            let allocation =
                resources::allocate(&state.requester(), &request, "mcp").await.map_err(|e| e.to_string())?;
            Ok(without_nulls(json!({ "plan": plan_json, "allocation": allocation })))
        }
        other => Err(format!("tool `{other}` is in the catalog but not implemented")),
    }
}

/// The spec's requirement numbers, rounded up to whole units.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Requirements {
    cpu_cores: Option<f64>,
    memory_gb: Option<f64>,
    gpu: Option<bool>,
    gpu_vram_gb: Option<f64>,
    storage_gb: Option<f64>,
    model_name: Option<String>,
    /// Accepted as the spec lists it; memory allocations are sized by memory_gb.
    #[allow(dead_code)]
    vector_dimensions: Option<f64>,
}

impl Requirements {
    /// Whole units, as `resources::requirements` completes them.
    fn capacity(&self, resource_type: ResourceType) -> Option<Capacity> {
        let capacity = Capacity {
            cpu_cores: self.cpu_cores.map_or(0, whole),
            memory_gb: self.memory_gb.map_or(0, whole),
            gpu_slots: u32::from(self.gpu.unwrap_or(false) || self.gpu_vram_gb.is_some_and(|v| v > 0.0)),
            vram_gb: self.gpu_vram_gb.map_or(0, whole),
            storage_gb: self.storage_gb.map_or(0, |v| v.max(0.0).ceil() as u64),
            model_slots: 0,
        };
        resources::requirements(capacity, resource_type, self.model_name.as_deref())
    }
}

fn whole(v: f64) -> u32 {
    v.max(0.0).ceil().min(f64::from(u32::MAX)) as u32
}

fn has_free(free: &Capacity, resource_type: ResourceType) -> bool {
    match resource_type {
        ResourceType::Compute => free.cpu_cores > 0,
        ResourceType::Inference => free.model_slots > 0,
        ResourceType::Storage => free.storage_gb > 0,
        ResourceType::Memory => free.memory_gb > 0,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Allocate {
    resource_type: ResourceType,
    requirements: Requirements,
    #[serde(default)]
    locality_preference: LocalityPreference,
    duration_seconds: Option<f64>,
    workload_class: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    allocation_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryAvailable {
    resource_type: Option<ResourceType>,
    model_name: Option<String>,
    online_only: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleTask {
    workload_class: String,
    resource_type: Option<ResourceType>,
    model_name: Option<String>,
    requirements: Option<Requirements>,
    #[serde(default)]
    locality_preference: LocalityPreference,
    duration_seconds: Option<f64>,
    #[serde(default)]
    dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_requirements_round_up_to_whole_units() {
        let r = Requirements { cpu_cores: Some(0.5), gpu_vram_gb: Some(7.2), ..Default::default() };
        let c = r.capacity(ResourceType::Compute).unwrap_or_default();
        assert_eq!((c.cpu_cores, c.gpu_slots, c.vram_gb), (1, 1, 8));
        let model_only = Requirements { model_name: Some("qwen3-4b".into()), ..Default::default() };
        assert_eq!(model_only.capacity(ResourceType::Inference).map(|c| c.model_slots), Some(1));
        assert_eq!(Requirements::default().capacity(ResourceType::Compute), None);
    }
}
