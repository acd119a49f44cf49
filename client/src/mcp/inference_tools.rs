//! The `inference.*` tools over this node's inference service. Arguments arrive already validated
//! against the catalog's input schema; results are checked against the output schema by the
//! caller.
use serde_json::Value;

use super::holochain_tools::parse;
use crate::inference::{InferenceError, LoadModel, MoeQuery, SingleQuery, UnloadModel};
use crate::runtime::services::Services;

pub const NAMES: &[&str] =
    &["inference.single_query", "inference.moe_query", "inference.load_model", "inference.unload_model"];

pub async fn call(
    state: &Services,
    tool: &str,
    arguments: Value,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let inference = &state.inference;
    let out = match tool {
        "inference.single_query" => {
            let query: SingleQuery = parse(arguments)?;
            progress(&format!("asking {} on the mesh", query.model));
            serde_json::to_value(inference.single_query(&query).await.map_err(message)?)
        }
        "inference.moe_query" => {
            let query: MoeQuery = parse(arguments)?;
            progress("asking the policy's models in parallel");
            serde_json::to_value(inference.moe_query(&query, "mcp").await.map_err(message)?)
        }
        "inference.load_model" => {
            let request: LoadModel = parse(arguments)?;
            serde_json::to_value(inference.load_model(&request, "mcp", progress).await.map_err(message)?)
        }
        "inference.unload_model" => {
            let request: UnloadModel = parse(arguments)?;
            serde_json::to_value(inference.unload_model(&request, "mcp").await.map_err(message)?)
        }
        other => return Err(format!("unknown tool {other}")),
    };
    out.map_err(|e| e.to_string())
}

/// No consensus also names who said what, so an agent can look the answers up.
fn message(e: InferenceError) -> String {
    match &e {
        InferenceError::NoConsensus { answer, .. } => {
            let votes: Vec<String> = answer
                .model_votes
                .iter()
                .map(|v| format!("{} ({:.2}) {}", v.model, v.weight, &v.response_hash[..12]))
                .collect();
            format!("{e}; votes: {}", votes.join(", "))
        }
        _ => e.to_string(),
    }
}
