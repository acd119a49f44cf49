//! The `policy.*` tools over this node's policy service. Arguments arrive already validated
//! against the catalog's input schema; results are checked against the output schema by the
//! caller.
use serde::Deserialize;
use serde_json::{json, Value};

use super::holochain_tools::parse;
use crate::policy::service::{HistoryQuery, PublishRequest};
use crate::runtime::services::Services;

pub const NAMES: &[&str] = &["policy.evaluate", "policy.publish", "policy.decisions", "policy.audit"];

pub async fn call(
    state: &Services,
    tool: &str,
    arguments: Value,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let policy = &state.policy;
    match tool {
        "policy.evaluate" => {
            let input: Evaluate = parse(arguments)?;
            let verdict = policy.evaluate(&input.package, &input.input).map_err(|e| e.to_string())?;
            serde_json::to_value(verdict).map_err(|e| e.to_string())
        }
        "policy.publish" => {
            let request: PublishRequest = parse(arguments)?;
            progress("compiling the Rego here, then publishing it to the network");
            let published = policy.publish(request).await.map_err(|e| e.to_string())?;
            serde_json::to_value(published).map_err(|e| e.to_string())
        }
        "policy.decisions" => {
            let input: Decisions = parse(arguments)?;
            let query = HistoryQuery { hours: input.hours, node: input.node, subject: None };
            let decisions = policy.decisions(&query).await.map_err(|e| e.to_string())?;
            Ok(json!({ "count": decisions.len(), "decisions": decisions }))
        }
        "policy.audit" => {
            let input: Audit = parse(arguments)?;
            let query = HistoryQuery { hours: input.hours, node: None, subject: input.subject };
            let events = policy.audit_events(&query).await.map_err(|e| e.to_string())?;
            Ok(json!({ "count": events.len(), "events": events }))
        }
        other => Err(format!("unknown tool {other}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Evaluate {
    package: String,
    input: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decisions {
    hours: Option<u32>,
    node: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Audit {
    hours: Option<u32>,
    subject: Option<String>,
}
