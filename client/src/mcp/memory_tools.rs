//! The `memory.*` tools over this node's shard service. Arguments arrive already validated
//! against the catalog's input schema; results are checked against the output schema by the
//! caller.
use serde::Deserialize;
use serde_json::Value;

use super::holochain_tools::parse;
use crate::runtime::services::Services;
use crate::shards::CheckpointRequest;

pub const NAMES: &[&str] = &["memory.route", "memory.shard_map", "memory.checkpoint"];

pub async fn call(
    state: &Services,
    tool: &str,
    arguments: Value,
    _progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let shards = &state.shards;
    let out = match tool {
        "memory.route" => {
            let input: Route = parse(arguments)?;
            serde_json::to_value(
                shards.route(input.collection.as_deref(), &input.key).await.map_err(|e| e.to_string())?,
            )
        }
        "memory.shard_map" => {
            let input: ShardMap = parse(arguments)?;
            serde_json::to_value(shards.report(input.collection.as_deref()).await.map_err(|e| e.to_string())?)
        }
        "memory.checkpoint" => {
            let request: CheckpointRequest = parse(arguments)?;
            serde_json::to_value(shards.checkpoint(&request, "mcp").await.map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unknown tool {other}")),
    };
    out.map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    key: String,
    collection: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardMap {
    collection: Option<String>,
}
