//! The `holochain.*` tools (spec §11.3) over this node's runtime. Arguments arrive already
//! validated against the catalog's input schema; results are checked against the output schema
//! by the caller.
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use agent_registry_types::DiscoveryQuery;

use crate::node::declared::{capabilities_report, Capabilities, Declared};
use crate::node::NodeSettings;
use crate::runtime::{Joined, NetworkChoice, Runtime};

pub const NAMES: &[&str] = &[
    "holochain.init_conductor",
    "holochain.join_mesh",
    "holochain.register_node",
    "holochain.query_peers",
    "holochain.install_dna",
];

pub async fn call(
    runtime: &Runtime,
    tool: &str,
    arguments: Value,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    match tool {
        "holochain.init_conductor" => init_conductor(runtime, parse(arguments)?, progress).await,
        "holochain.join_mesh" => join_mesh(runtime, parse(arguments)?, progress).await,
        "holochain.register_node" => register_node(runtime, parse(arguments)?, progress).await,
        "holochain.query_peers" => query_peers(runtime, parse(arguments)?, progress).await,
        "holochain.install_dna" => install_dna(runtime, parse(arguments)?, progress).await,
        other => Err(format!("tool `{other}` is in the catalog but not implemented")),
    }
}

/// Absent rather than null: optional outputs are left out, which every schema dialect can say.
pub(super) fn without_nulls(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    value
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, String> {
    serde_json::from_value(arguments).map_err(|e| format!("invalid arguments: {e}"))
}

fn network_choice(
    network: Option<String>,
    bootstrap: Option<String>,
    policy_admin: Option<String>,
) -> Result<NetworkChoice, String> {
    let bootstrap = bootstrap
        .map(|url| crate::config::parse_url("bootstrap_override", &url, &["http", "https"]))
        .transpose()
        .map_err(|e| e.to_string())?;
    let policy_admin = policy_admin
        .map(|key| crate::config::parse_agent_key("policy_admin", &key))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(NetworkChoice { network, bootstrap, policy_admin })
}

/// The node on the mesh; joins the configured network first when no join happened yet, as
/// `ripple up` would (a stdio server is often restarted by its host between calls).
pub(super) async fn joined(runtime: &Runtime, progress: &(dyn Fn(&str) + Sync)) -> Result<Arc<Joined>, String> {
    if let Some(joined) = runtime.joined() {
        return Ok(joined);
    }
    progress(&format!("joining the configured network `{}` first", runtime.base().network.name));
    runtime.join(&NetworkChoice::default(), &|_| {}, progress).await.map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitConductor {
    network: Option<String>,
    bootstrap_override: Option<String>,
}

async fn init_conductor(
    runtime: &Runtime,
    args: InitConductor,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let choice = network_choice(args.network, args.bootstrap_override, None)?;
    let report = runtime.start_conductor(&choice, progress).await.map_err(|e| e.to_string())?;
    serde_json::to_value(report).map_err(|e| e.to_string())
}

/// Keeps `declared` on top of what was declared before, for this and later starts, and
/// returns what was declared before and how to apply the result to the node's settings. Kept
/// before it is applied: a node killed between its advert's commit and a later save would come
/// back with the old declarations and republish over the new advert.
fn declare(runtime: &Runtime, declared: Declared) -> Result<(Declared, impl Fn(&mut NodeSettings) + Sync), String> {
    let data_dir = &runtime.base().data_dir;
    let before = Declared::load(data_dir)?;
    let all = before.merged(&declared);
    all.save(data_dir).map_err(|e| format!("could not keep the declarations: {e}"))?;
    Ok((before, move |settings: &mut NodeSettings| all.apply(settings)))
}

/// Puts back the declarations `declare` replaced, when applying the new ones failed.
fn undeclare(runtime: &Runtime, before: &Declared) {
    if let Err(e) = before.save(&runtime.base().data_dir) {
        tracing::warn!("could not put the previous declarations back: {e}");
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinMesh {
    network: String,
    agent_name: String,
    /// The spec's shape: measured fields are reported back, not applied.
    capabilities: Value,
    bootstrap_override: Option<String>,
    policy_admin: Option<String>,
}

async fn join_mesh(runtime: &Runtime, args: JoinMesh, progress: &(dyn Fn(&str) + Sync)) -> Result<Value, String> {
    let choice = network_choice(Some(args.network), args.bootstrap_override, args.policy_admin)?;
    let (capabilities, claims) = Capabilities::from_spec_shape(args.capabilities)?;
    let declared = Declared { agent_name: Some(args.agent_name), capabilities: Some(capabilities.clone()) };
    let (before, configure) = declare(runtime, declared)?;
    let joined_before = runtime.joined().is_some();
    let joined = runtime.join(&choice, &configure, progress).await.map_err(|e| {
        undeclare(runtime, &before);
        e.to_string()
    })?;
    let state = &joined.services;
    let view = state.mesh.network_view().await.map_err(|e| e.to_string())?;
    let cells = state.mesh.cell_reports();
    let advert = state.node.state().advert;
    let advert_version = advert.as_ref().map(|a| a.version.to_string()).unwrap_or_default();
    let report = advert.map(|a| capabilities_report(&capabilities, &claims, &a.advert));
    Ok(without_nulls(json!({
        "agent_pubkey": state.mesh.agent.to_string(),
        "cell_ids": cells.iter().map(|c| format!("{}:{}", c.dna_hash, c.agent_pubkey)).collect::<Vec<_>>(),
        "peer_count": view.peer_count,
        "mesh_status": view.mesh_status,
        "network": state.info.network,
        "cells": cells,
        "installed_now": state.mesh.installed_now && !joined_before,
        "advert_version": advert_version,
        "api_url": joined.api_url,
        "bootstrap_url": state.info.bootstrap_url.as_ref().map(|u| u.to_string()),
        "policy_admin": state.mesh.policy_admin.as_ref().map(|k| k.to_string()),
        "capabilities": report,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterNode {
    agent_name: Option<String>,
    /// As `join_mesh`'s.
    capabilities: Option<Value>,
}

async fn register_node(
    runtime: &Runtime,
    args: RegisterNode,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let joined = joined(runtime, progress).await?;
    let node = &joined.services.node;
    let (capabilities, claims) = args.capabilities.map(Capabilities::from_spec_shape).transpose()?.unwrap_or_default();
    let (before, configure) =
        declare(runtime, Declared { agent_name: args.agent_name, capabilities: Some(capabilities.clone()) })?;
    let refresh = node.reconfigure(&configure).await.map_err(|e| {
        undeclare(runtime, &before);
        e.to_string()
    })?;
    Ok(json!({
        "changed": refresh.changed,
        "advert_version": refresh.advert.version.to_string(),
        "agent_pubkey": joined.services.mesh.agent.to_string(),
        "capabilities": capabilities_report(&capabilities, &claims, &refresh.advert.advert),
        "advert": refresh.advert.advert,
    }))
}

async fn query_peers(
    runtime: &Runtime,
    query: DiscoveryQuery,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, String> {
    let joined = joined(runtime, progress).await?;
    let view = &joined.services.view;
    let peers: Vec<Value> = view
        .rows(&query)
        .into_iter()
        .map(|row| {
            without_nulls(json!({
                "agent_pubkey": row.agent_pubkey,
                "agent_name": row.advert.agent_name,
                "state": row.state,
                "is_self": row.is_self,
                "liveness": row.liveness,
                "last_heartbeat_ms": row.last_heartbeat_ms,
                "load": row.load,
                "advert": row.advert,
            }))
        })
        .collect();
    // How old the mesh view answering is (none before its first read).
    let age_ms = view.age().map(|age| age.as_millis() as u64);
    Ok(without_nulls(json!({ "count": peers.len(), "peers": peers, "view_age_ms": age_ms })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallDna {
    path: PathBuf,
    expected_dna_hashes: std::collections::BTreeMap<String, String>,
    app_id: Option<String>,
    network_seed: Option<String>,
}

async fn install_dna(runtime: &Runtime, args: InstallDna, progress: &(dyn Fn(&str) + Sync)) -> Result<Value, String> {
    if !args.path.is_file() {
        return Err(format!("`path`: {} is not a file on this node", args.path.display()));
    }
    progress(&format!("computing the DNA hashes of {}", args.path.display()));
    let bundle = crate::manifests::extra_bundle(&args.path, args.network_seed.clone())
        .await
        .map_err(|e| format!("`path`: {e}"))?;
    let mut differences = vec![];
    for (role, hash) in &bundle.role_hashes {
        match args.expected_dna_hashes.get(role) {
            Some(expected) if expected == hash => {}
            Some(expected) => differences.push(format!("role `{role}`: expected {expected}, the bundle has {hash}")),
            None => differences.push(format!("role `{role}` (hash {hash}) is not in expected_dna_hashes")),
        }
    }
    for role in args.expected_dna_hashes.keys().filter(|r| !bundle.role_hashes.contains_key(*r)) {
        differences.push(format!("role `{role}` is expected but the bundle has no such role"));
    }
    if !differences.is_empty() {
        return Err(format!("`expected_dna_hashes`: nothing installed: {}", differences.join("; ")));
    }
    let app_id = args.app_id.unwrap_or(bundle.name);
    if app_id == crate::mesh::APP_ID {
        return Err(format!("`app_id`: `{app_id}` is the mesh's own app; choose another"));
    }
    let joined = joined(runtime, progress).await?;
    let gated = json!({ "app_id": app_id, "dna_hashes": bundle.role_hashes, "network_seed": args.network_seed });
    joined.services.policy.gate("holochain.install_dna", "mcp", &gated, &[]).await.map_err(|e| e.to_string())?;
    progress(&format!("installing `{app_id}` (the conductor compiles its wasm)"));
    let mesh = &joined.services.mesh;
    let (cells, installed_now) = mesh
        .install_extra(&app_id, bundle.bytes, args.network_seed, &bundle.role_hashes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "app_id": app_id,
        "installed_now": installed_now,
        "agent_pubkey": mesh.agent.to_string(),
        "cell_ids": cells.iter().map(|c| format!("{}:{}", c.dna_hash, c.agent_pubkey)).collect::<Vec<_>>(),
        "cells": cells,
    }))
}
