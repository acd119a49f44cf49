//! The MCP tools through real clients we did not write: the official Python SDK (PyPI `mcp`) and
//! the MCP Inspector CLI (npm `@modelcontextprotocol/inspector`), both pinned in `tests/clients/`
//! and installed by `cargo xtask test`. Over stdio (`ripple mcp`) and streamable HTTP
//! (`ripple up --mcp-http`), every holochain.* tool with valid and with bad input, and the
//! resources.* and policy.* tools across two nodes.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::harness::*;
use crate::support::repo_root;

fn missing_clients(what: &Path) -> String {
    format!(
        "{} is missing: the MCP test clients are installed by `cargo xtask test` (or `cargo xtask clients`)",
        what.display()
    )
}

/// One session of the Python SDK running `plan` (see tests/clients/mcp_session.py).
pub(super) fn python_session(plan: Value) -> Value {
    let python = clients_dir().join(".venv/bin/python");
    assert!(python.is_file(), "{}", missing_clients(&python));
    let plan_file = std::env::temp_dir().join(format!("ripple-mcp-plan-{}.json", std::process::id()));
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    let out = Command::new(python).arg(clients_dir().join("mcp_session.py")).arg(&plan_file).output().unwrap();
    let _ = std::fs::remove_file(&plan_file);
    assert!(out.status.success(), "python mcp client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("client output is not JSON ({e})"))
}

/// One run of the Inspector CLI: its exit code and the first JSON document it printed.
fn inspector(target: &[String], args: &[&str]) -> (i32, Value, String) {
    let cli = clients_dir().join("node_modules/.bin/mcp-inspector");
    assert!(cli.is_file(), "{}", missing_clients(&cli));
    let catalog = std::env::temp_dir().join(format!("ripple-inspector-{}.json", std::process::id()));
    let out = Command::new(cli)
        .arg("--cli")
        .args(target)
        .args(args)
        .env("MCP_CATALOG_PATH", catalog)
        .output()
        .expect("run the inspector");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let first = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>().next();
    let value = first.and_then(Result::ok).unwrap_or_else(|| panic!("no JSON from the inspector:\n{stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), value, stderr)
}

fn inspector_call(target: &[String], tool: &str, args: &[String]) -> (i32, Value, String) {
    let mut argv = vec!["--method", "tools/call", "--tool-name", tool];
    if !args.is_empty() {
        argv.push("--tool-arg");
        argv.extend(args.iter().map(String::as_str));
    }
    inspector(target, &argv)
}

/// The text of a tool result as the inspector prints it.
fn result_text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

pub(super) fn calls(session: &Value) -> &Vec<Value> {
    session["calls"].as_array().expect("calls")
}

/// A call that succeeded: its structured content.
pub(super) fn ok(call: &Value) -> &Value {
    assert!(call.get("exception").is_none(), "{} raised: {}", call["tool"], call["exception"]);
    assert_eq!(call["is_error"], json!(false), "{} failed: {}", call["tool"], call["text"]);
    &call["structured"]
}

/// A call that was refused as a tool error whose message contains every `needle`.
pub(super) fn refused(call: &Value, needles: &[&str]) {
    assert!(call.get("exception").is_none(), "{} raised instead of a tool error: {}", call["tool"], call["exception"]);
    assert_eq!(call["is_error"], json!(true), "{} should have failed: {}", call["tool"], call["structured"]);
    let text = call["text"].as_str().unwrap_or_default();
    for needle in needles {
        assert!(text.contains(needle), "{} error lacks {needle:?}: {text}", call["tool"]);
    }
}

/// The listed tools are the catalog file's, schemas included (the server and file never drift).
fn assert_tools_are_the_catalog(listed: &[Value], names: ripple::mcp::ToolNames) {
    let file = std::fs::read_to_string(repo_root().join("manifests/cloud/mcp_tools.json")).unwrap();
    let catalog = ripple::mcp::schema::load_catalog(&file).expect("catalog loads");
    assert_eq!(listed.len(), catalog.len(), "tools listed vs in manifests/cloud/mcp_tools.json");
    for (tool, spec) in listed.iter().zip(&catalog) {
        let name = match names {
            ripple::mcp::ToolNames::Dotted => spec.name.clone(),
            ripple::mcp::ToolNames::Underscore => spec.name.replace('.', "_"),
        };
        assert_eq!(tool["name"], json!(name));
        assert_eq!(tool["inputSchema"], Value::Object(spec.input_schema.clone()), "{name} input schema");
        assert_eq!(tool["outputSchema"], Value::Object(spec.output_schema.clone()), "{name} output schema");
    }
}

/// An extra DNA for install_dna, on a network seed of its own, and its hash.
async fn extra_dna() -> (PathBuf, String, String) {
    let path = repo_root().join("workdir/agent_registry.dna");
    let seed = format!("mcp-extra-{}", std::process::id());
    let bundle = ripple::manifests::extra_bundle(&path, Some(seed.clone())).await.expect("hash the extra DNA");
    (path, seed, bundle.role_hashes["agent_registry"].clone())
}

/// Valid and bad calls of every tool, as one Python session plan, and their checks.
fn every_tool_plan(agent_name: &str, dna: &(PathBuf, String, String)) -> Vec<Value> {
    let (path, seed, hash) = dna;
    vec![
        json!({"tool": "holochain.init_conductor", "arguments": {"network": "local"}}),
        json!({"tool": "holochain.init_conductor", "arguments": {"network": "moon", "bootstrap_override": "ftp://x"}}),
        // The spec's §10.3 capability example, as an agent that read the spec sends it.
        json!({"tool": "holochain.join_mesh", "arguments": {"network": "local", "agent_name": agent_name,
            "capabilities": {
                "compute": {"cpu_cores": 16, "cpu_arch": "x86_64", "ram_gb": 64,
                    "gpu": {"vendor": "nvidia", "model": "RTX 4090", "vram_gb": 24}},
                "storage": {"local_ssd_gb": 2000, "ipfs_pinned_gb": 500, "s3_available_gb": 10000},
                "inference": {"models_loaded": ["gemma-3n-E2B", "phi-4-mini", "qwen3-4b"],
                    "max_batch_size": 32, "tokens_per_second": 150},
                "memory": {"vector_shards": 2, "redis_memory_gb": 16},
                "network": {"bandwidth_mbps": 1000, "latency_region": "eu-west"}}}}),
        json!({"tool": "holochain.join_mesh", "arguments": {"network": "local", "agent_name": "has space",
            "capabilities": {"compute": {"cpu_cores": "many", "colour": "blue"}}}}),
        json!({"tool": "holochain.register_node", "arguments": {"capabilities": {"compute": {"hardware_class": "mobile"}}}}),
        json!({"tool": "holochain.register_node", "arguments": {"capabilities": {"inference": {"max_batch_size": 0}}}}),
        json!({"tool": "holochain.query_peers", "arguments": {"region": "eu-west"}}),
        json!({"tool": "holochain.query_peers", "arguments": {"limit": 0, "min_vram_gb": "lots"}}),
        json!({"tool": "holochain.install_dna", "arguments": {"path": path, "network_seed": seed,
            "expected_dna_hashes": {"agent_registry": hash}, "app_id": "extra"}}),
        json!({"tool": "holochain.install_dna", "arguments": {"path": path, "app_id": "extra2",
            "expected_dna_hashes": {"agent_registry": hash}}}),
        json!({"tool": "holochain.install_dna", "arguments": {"path": "/nonexistent.happ",
            "expected_dna_hashes": {}}}),
        json!({"tool": "holochain.no_such_tool", "arguments": {}}),
    ]
}

/// The checks for `every_tool_plan`'s results; returns this node's agent key. `fresh_node`: the
/// session's join installs the hApp; `first_session`: nothing of the plan ran on this node before.
fn check_every_tool(
    session: &Value,
    agent_name: &str,
    dna_hash: &str,
    fresh_node: bool,
    first_session: bool,
) -> String {
    let c = calls(session);
    let init = ok(&c[0]);
    assert_eq!(init["network"], json!("local"));
    assert_eq!(init["holochain_version"], json!("0.7.1"));
    refused(&c[1], &["`network`: must be one of", "`bootstrap_override`"]);

    let joined = ok(&c[2]);
    let agent = joined["agent_pubkey"].as_str().expect("agent key").to_string();
    assert!(agent.starts_with("uhCAk"), "{agent}");
    assert_eq!(joined["installed_now"], json!(fresh_node));
    assert!(joined["cell_ids"][0].as_str().unwrap().ends_with(&agent));
    assert!(["connected", "syncing", "isolated"].contains(&joined["mesh_status"].as_str().unwrap()));
    if fresh_node {
        let progress = c[2]["progress"].as_array().unwrap();
        assert!(!progress.is_empty(), "join_mesh reports progress when the client asks");
    }
    let report = &joined["capabilities"];
    let kept: Vec<&str> = report["kept"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(kept.contains(&"memory.vector_shards") && kept.contains(&"network.region"), "{report}");
    let measured = report["measured"].as_array().unwrap();
    let cores = measured.iter().find(|m| m["field"] == json!("compute.cpu_cores")).expect("cpu_cores reported");
    assert_eq!(cores["declared"], json!(16));
    let probed = &ok(&c[4])["advert"]["compute"]["cpu_cores"];
    assert_eq!(&cores["measured"], probed, "the probe's count, not the declared one: {report}");
    let models = measured.iter().find(|m| m["field"] == json!("inference.models_loaded")).expect("models reported");
    assert!(models["measured"].is_array(), "{report}");
    assert_eq!(measured.len(), 7, "{report}");
    refused(
        &c[3],
        &[
            "`agent_name`: must match",
            "`capabilities.compute.cpu_cores`: expected number",
            "`capabilities.compute.colour`: unknown field",
        ],
    );

    let registered = ok(&c[4]);
    assert_eq!(registered["changed"], json!(first_session));
    assert_eq!(registered["advert"]["agent_name"], json!(agent_name));
    assert_eq!(registered["advert"]["hardware_class"], json!("mobile"));
    assert_eq!(registered["advert"]["inference"]["max_batch_size"], json!(32), "join_mesh's capabilities are kept");
    assert_eq!(registered["advert"]["memory"]["vector_shards"], json!(2), "join_mesh's capabilities are kept");
    assert_eq!(registered["advert"]["network"]["region"], json!("eu-west"));
    refused(&c[5], &["`capabilities.inference.max_batch_size`: must be at least 1"]);

    let found = ok(&c[6]);
    assert!(found["peers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["agent_pubkey"] == json!(agent) && p["is_self"] == json!(true)));
    refused(&c[7], &["`limit`: must be at least 1", "`min_vram_gb`: expected integer"]);

    let installed = ok(&c[8]);
    assert_eq!(installed["app_id"], json!("extra"));
    assert_eq!(installed["cells"][0]["dna_hash"], json!(dna_hash));
    assert_eq!(installed["agent_pubkey"], json!(agent), "installed under the node's agent key");
    assert_eq!(installed["installed_now"], json!(first_session));
    refused(&c[9], &["`expected_dna_hashes`: nothing installed", "role `agent_registry`: expected"]);
    assert!(!c[9]["progress"].as_array().unwrap().is_empty(), "install_dna reports progress on every transport");
    refused(&c[10], &["`path`: /nonexistent.happ is not a file"]);
    refused(&c[11], &["unknown tool `holochain.no_such_tool`"]);
    agent
}

/// Slow (minutes): a fresh node starts (first-start wasm compile) under a real MCP session, and the
/// Inspector CLI starts Node.js once per tool call.
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_and_inspector_over_stdio_call_every_tool() {
    let tmp = TempDir::new("mcp-stdio");
    let manifests = test_manifests_as(&tmp.path().join("manifests"), "local").await;
    let data = tmp.path().join("node");
    let server = |names: &str| -> Vec<String> {
        vec![
            ripple_bin().display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--manifests".into(),
            manifests.root.display().to_string(),
            "mcp".into(),
            "--happ".into(),
            happ().display().to_string(),
            "--tool-names".into(),
            names.into(),
        ]
    };
    let dna = extra_dna().await;

    // Python SDK: one session, the node starts with it and stops when it ends.
    let command = server("dotted");
    let session = python_session(json!({
        "server": {"command": command[0], "args": command[1..]},
        "calls": every_tool_plan("stdio-node", &dna),
    }));
    assert_tools_are_the_catalog(session["tools"].as_array().unwrap(), ripple::mcp::ToolNames::Dotted);
    let agent = check_every_tool(&session, "stdio-node", &dna.2, true, true);

    // Inspector CLI: a new server process per call, on the same data dir, underscore names.
    let target = server("underscore");
    let (code, listed, _) = inspector(&target, &["--method", "tools/list", "--strict"]);
    assert_eq!(code, 0, "tools/list --strict (schema portability)");
    assert_tools_are_the_catalog(listed["tools"].as_array().unwrap(), ripple::mcp::ToolNames::Underscore);

    let (code, init, _) = inspector_call(&target, "holochain_init_conductor", &[]);
    assert_eq!(code, 0, "{init}");
    assert_eq!(init["structuredContent"]["started_now"], json!(true));
    let (code, bad, _) = inspector_call(&target, "holochain_init_conductor", &["network=moon".into()]);
    assert_ne!(code, 0);
    assert!(result_text(&bad).contains("`network`: must be one of"), "{bad}");

    // A restarted stdio server keeps the node's identity: the agent key is the same.
    let (code, joined, _) = inspector_call(
        &target,
        "holochain_join_mesh",
        &[
            "network=local".into(),
            "agent_name=inspected".into(),
            r#"capabilities={"memory":{"redis_memory_gb":1}}"#.into(),
        ],
    );
    assert_eq!(code, 0, "{joined}");
    assert_eq!(joined["structuredContent"]["agent_pubkey"], json!(agent));
    assert_eq!(joined["structuredContent"]["installed_now"], json!(false));
    let (code, bad, _) = inspector_call(&target, "holochain_join_mesh", &["network=local".into()]);
    assert_ne!(code, 0);
    assert!(result_text(&bad).contains("`agent_name`: required"), "{bad}");

    // Tools other than init/join join the configured network by themselves.
    let (code, registered, _) = inspector_call(&target, "holochain_register_node", &["agent_name=renamed".into()]);
    assert_eq!(code, 0, "{registered}");
    assert_eq!(registered["structuredContent"]["advert"]["agent_name"], json!("renamed"));
    let (code, bad, _) = inspector_call(&target, "holochain_register_node", &["agent_name=has space".into()]);
    assert_ne!(code, 0);
    assert!(result_text(&bad).contains("`agent_name`: must match"), "{bad}");

    let (code, found, _) = inspector_call(&target, "holochain_query_peers", &["online_only=true".into()]);
    assert_eq!(code, 0, "{found}");
    assert_eq!(found["structuredContent"]["peers"][0]["agent_name"], json!("renamed"));
    let (code, bad, _) = inspector_call(&target, "holochain_query_peers", &["colour=blue".into()]);
    assert_ne!(code, 0);
    assert!(result_text(&bad).contains("`colour`: unknown field"), "{bad}");

    let (path, seed, hash) = &dna;
    let hashes = format!(r#"expected_dna_hashes={{"agent_registry":"{hash}"}}"#);
    let (code, again, _) = inspector_call(
        &target,
        "holochain_install_dna",
        &[format!("path={}", path.display()), format!("network_seed={seed}"), hashes.clone(), "app_id=extra".into()],
    );
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["structuredContent"]["installed_now"], json!(false), "installing twice reports the app");
    let (code, bad, _) = inspector_call(&target, "holochain_install_dna", &[hashes]);
    assert_ne!(code, 0);
    assert!(result_text(&bad).contains("`path`: required"), "{bad}");
}

/// Slow (minutes): two nodes' first starts, both MCP clients over streamable HTTP, and policy
/// versions that must reach the other node before its next call is decided by them.
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_and_inspector_over_http_with_two_nodes() {
    let tmp = TempDir::new("mcp-http");
    let manifests = test_manifests_as(&tmp.path().join("manifests"), "local").await;
    let launch = |name: &str, extra: &[&str]| Launch::node(tmp.path(), &manifests, "local", name, extra);
    let a = Sidecar::start(launch("node-a", &["--mcp-http", "127.0.0.1:0"]));
    let mut extra = vec!["--mcp-http", "127.0.0.1:0", "--tool-names", "underscore"];
    let join = a.join_args();
    extra.extend(join.iter().map(String::as_str));
    let b = Sidecar::start(launch("node-b", &extra));
    let url_a = a.ready.mcp_url.clone().expect("node-a serves MCP");
    let url_b = b.ready.mcp_url.clone().expect("node-b serves MCP");
    let dna = extra_dna().await;

    // Discovery through the DHT first (each way), then the same through MCP.
    for (node, other) in [(&a, &b), (&b, &a)] {
        eventually(&format!("{} to see {} online", node.name, other.name), Duration::from_secs(180), || async {
            let peers = node.try_peers("online_only=true").await?;
            if peers.iter().any(|p| p.agent_pubkey == other.agent()) {
                Ok(())
            } else {
                Err(format!("{} peer(s)", peers.len()))
            }
        })
        .await;
    }

    // Python SDK over streamable HTTP, both protocol generations.
    for mode in ["auto", "legacy"] {
        let mut plan = every_tool_plan("node-a", &dna);
        // Not `online_only`: node-b was seen online above; whether it is still inside the 6 s
        // heartbeat window minutes later on a loaded machine is liveness (issue 26), not MCP.
        plan.push(json!({"tool": "holochain.query_peers", "arguments": {"online_only": false}}));
        plan.push(json!({"tool": "holochain.join_mesh", "arguments": {"network": "testnet", "agent_name": "node-a", "capabilities": {}}}));
        plan.push(json!({"tool": "holochain.query_peers", "arguments": {"model": "x".repeat(300_000)}}));
        let session = python_session(json!({"server": {"url": url_a}, "mode": mode, "calls": plan}));
        assert_tools_are_the_catalog(session["tools"].as_array().unwrap(), ripple::mcp::ToolNames::Dotted);
        let agent = check_every_tool(&session, "node-a", &dna.2, false, mode == "auto");
        assert_eq!(agent, a.agent());
        let c = calls(&session);
        let online = ok(&c[12]);
        let agents: Vec<&str> =
            online["peers"].as_array().unwrap().iter().map(|p| p["agent_pubkey"].as_str().unwrap()).collect();
        assert!(agents.contains(&b.agent()), "query_peers on node-a returns node-b: {agents:?}");
        refused(&c[13], &["one network per data dir"]);
        refused(&c[14], &["arguments are", "the limit is"]);
    }

    // Inspector CLI over HTTP on node-b, underscore names: every tool, valid and bad.
    let target = vec![url_b.clone()];
    let (code, listed, _) = inspector(&target, &["--method", "tools/list", "--strict"]);
    assert_eq!(code, 0);
    assert_tools_are_the_catalog(listed["tools"].as_array().unwrap(), ripple::mcp::ToolNames::Underscore);
    let (code, found, _) = inspector_call(&target, "holochain_query_peers", &[]);
    assert_eq!(code, 0, "{found}");
    let agents: Vec<&str> = found["structuredContent"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["agent_pubkey"].as_str())
        .collect();
    assert!(agents.contains(&a.agent()), "query_peers on node-b returns node-a: {agents:?}");
    let (path, seed, hash) = &dna;
    let good: [(&str, Vec<String>); 5] = [
        ("holochain_init_conductor", vec![]),
        ("holochain_join_mesh", vec!["network=local".into(), "agent_name=node-b".into(), "capabilities={}".into()]),
        ("holochain_register_node", vec![r#"capabilities={"storage":{"s3_available_gb":5}}"#.into()]),
        ("holochain_query_peers", vec!["limit=1".into()]),
        (
            "holochain_install_dna",
            vec![
                format!("path={}", path.display()),
                format!("network_seed={seed}"),
                format!(r#"expected_dna_hashes={{"agent_registry":"{hash}"}}"#),
            ],
        ),
    ];
    for (tool, args) in &good {
        let (code, result, stderr) = inspector_call(&target, tool, args);
        assert_eq!(code, 0, "{tool}: {result} {stderr}");
        assert_eq!(result["isError"], json!(false), "{tool}: {result}");
    }
    let bad: [(&str, &str, &str); 5] = [
        ("holochain_init_conductor", "network=7", "`network`: expected string"),
        ("holochain_join_mesh", "network=mainnet", "`agent_name`: required"),
        ("holochain_register_node", "capabilities=[]", "`capabilities`: expected object"),
        ("holochain_query_peers", "min_ram_gb=-1", "`min_ram_gb`: must be at least 0"),
        ("holochain_install_dna", "expected_dna_hashes=7", "`expected_dna_hashes`: expected object"),
    ];
    for (tool, arg, needle) in bad {
        let (code, result, _) = inspector_call(&target, tool, &[arg.to_string()]);
        assert_ne!(code, 0, "{tool} {arg}");
        assert!(result_text(&result).contains(needle), "{tool} {arg}: {result}");
    }

    // resources.*: both offers visible, a dry run, an allocation on node-a itself (nearest), its
    // release, and bad input; then node-b's Inspector lists what node-a has free.
    eventually("node-a to see both resource offers", Duration::from_secs(120), || async {
        let rows: Vec<Value> = try_get_json(&a.api("resources/available")).await?;
        if rows.iter().filter(|r| r["state"] == json!("online")).count() == 2 {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    let session = python_session(json!({"server": {"url": url_a}, "mode": "auto", "calls": [
        {"tool": "resources.query_available", "arguments": {"resource_type": "compute"}},
        {"tool": "resources.schedule_task", "arguments": {"workload_class": "agent_task", "dry_run": true}},
        {"tool": "resources.allocate", "arguments": {"resource_type": "compute",
            "requirements": {"cpu_cores": 0.5, "memory_gb": 1}, "duration_seconds": 300}},
        {"tool": "resources.allocate", "arguments": {"resource_type": "gpu", "requirements": {}}},
        {"tool": "resources.release", "arguments": {"allocation_id": "not-a-hash"}},
        {"tool": "resources.schedule_task", "arguments": {"workload_class": "nope", "dry_run": true}},
    ]}));
    let c = calls(&session);
    assert_eq!(ok(&c[0])["count"], json!(2));
    let plan = &ok(&c[1])["plan"];
    assert_eq!(plan["algorithm"], json!("locality_aware_binpack"));
    assert_eq!(plan["candidates"][0]["node_id"], json!(a.agent()), "nearest puts node-a first on node-a: {plan}");
    let allocation = ok(&c[2]);
    assert_eq!(allocation["node_id"], json!(a.agent()));
    assert_eq!(allocation["amounts"]["cpu_cores"], json!(1), "0.5 cores round up to one");
    refused(&c[3], &["`resource_type`: must be one of"]);
    refused(&c[4], &["`allocation_id`: must match"]);
    refused(&c[5], &["unknown workload class `nope`"]);
    let allocation_id = allocation["allocation_id"].as_str().unwrap().to_string();
    let session = python_session(json!({"server": {"url": url_a}, "mode": "legacy", "calls": [
        {"tool": "resources.release", "arguments": {"allocation_id": allocation_id}},
    ]}));
    assert_eq!(ok(&calls(&session)[0])["allocation_id"], json!(allocation_id));
    // Both offers, online or not: the heartbeat window is liveness (see above), not MCP.
    let (code, result, stderr) = inspector_call(&target, "resources_query_available", &["online_only=false".into()]);
    assert_eq!(code, 0, "{result} {stderr}");
    assert_eq!(result["structuredContent"]["count"], json!(2), "{result}");

    // policy.*: node-a created the network, so it is the admin. A dry run, a new version of
    // tools.call (publishing it again changes nothing), broken Rego refused with its line, the new
    // version deciding at once, the decisions of the allocation above and the audit of publishes.
    let rego = std::fs::read_to_string(repo_root().join("manifests/policies/tools.call.rego")).unwrap();
    let disable = json!({"disabled_actions": ["artifacts.publish"]});
    let publish_input = json!({"action": "artifacts.publish", "via": "mcp", "args": {}});
    let session = python_session(json!({"server": {"url": url_a}, "mode": "auto", "calls": [
        {"tool": "policy.evaluate", "arguments": {"package": "tools.call", "input": publish_input}},
        {"tool": "policy.evaluate", "arguments": {"package": "Tools Call", "input": {}}},
        {"tool": "policy.publish", "arguments": {"rego": rego, "data": disable, "description": "no publishing"}},
        {"tool": "policy.publish", "arguments": {"rego": rego, "data": disable}},
        {"tool": "policy.publish", "arguments": {"rego": "package tools.call\n\ndefault allow := (\n"}},
        {"tool": "policy.evaluate", "arguments": {"package": "tools.call", "input": publish_input}},
        {"tool": "policy.decisions", "arguments": {"hours": 1, "node": a.agent()}},
        {"tool": "policy.audit", "arguments": {"subject": "tools.call"}},
        {"tool": "policy.decisions", "arguments": {"hours": 0}},
    ]}));
    let c = calls(&session);
    let before = ok(&c[0]);
    assert_eq!((before["allowed"].clone(), before["version"].clone()), (json!(true), json!(1)), "{before}");
    refused(&c[1], &["`package`: must match"]);
    let published = ok(&c[2]);
    assert_eq!((published["version"].clone(), published["new_version"].clone()), (json!(2), json!(true)));
    let again = ok(&c[3]);
    assert_eq!((again["version"].clone(), again["new_version"].clone()), (json!(2), json!(false)));
    refused(&c[4], &["invalid Rego at line"]);
    let after = ok(&c[5]);
    assert_eq!((after["allowed"].clone(), after["version"].clone()), (json!(false), json!(2)), "{after}");
    assert!(after["reasons"][0].as_str().unwrap().contains("artifacts.publish is disabled"), "{after}");
    let decisions = ok(&c[6]);
    let allocate = decisions["decisions"].as_array().unwrap().iter().find(|d| d["action"] == "resources.allocate");
    let allocate = allocate.unwrap_or_else(|| panic!("the MCP allocation's decision: {decisions}"));
    assert_eq!((allocate["allowed"].clone(), allocate["decider"].clone()), (json!(true), json!(a.agent())));
    let audit = ok(&c[7]);
    let versions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "policy.publish")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["version 2", "version 1"], "one event per new version, newest first: {audit}");
    refused(&c[8], &["`hours`: must be at least 1"]);
    // node-b is not an admin: the Inspector's publish is refused and names the admin.
    let (code, result, _) = inspector_call(&target, "policy_publish", &[format!("rego={rego}")]);
    assert_ne!(code, 0);
    let text = result_text(&result);
    assert!(text.contains("only this network's policy admins publish policy") && text.contains(a.agent()), "{text}");

    // Malformed and oversized requests are refused; the server keeps serving.
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(&url_a)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    let garbage = post(b"{not json".to_vec()).await.unwrap();
    assert!(garbage.status().is_client_error(), "{}", garbage.status());
    // Over the body limit: a 413, or the connection closed before the client finished sending.
    if let Ok(huge) = post(vec![b' '; 8 * 1024 * 1024]).await {
        assert!(huge.status().is_client_error(), "{}", huge.status());
    }
    let (code, _, _) = inspector(std::slice::from_ref(&url_a), &["--method", "tools/list"]);
    assert_eq!(code, 0, "node-a still serves MCP after bad requests");

    // Tool calls show in the node's Prometheus metrics, failures counted apart.
    let metrics = http.get(a.api("metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ripple_mcp_call_duration_seconds_count{tool=\"holochain.query_peers\"}"), "{metrics}");
    let errors = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ripple_mcp_call_errors{tool=\"holochain.join_mesh\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(errors.is_some_and(|n| n >= 2), "bad join_mesh calls are counted: {errors:?}");
}

#[test]
fn stdio_server_survives_malformed_and_oversized_lines() {
    use std::io::{BufRead, BufReader, Write};
    let tmp = TempDir::new("mcp-garbage");
    let mut child = Command::new(ripple_bin())
        .arg("--data")
        .arg(tmp.path())
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ripple mcp");
    let mut stdin = child.stdin.take().unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "garbage", "version": "1"}}});
    let lines = [
        "this is not json".to_string(),
        "{\"jsonrpc\": \"2.0\", \"id\": ".to_string(),
        format!("{{\"junk\": \"{}\"}}", "x".repeat(3 * 1024 * 1024)),
        init.to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    ];
    for line in lines {
        // The server may drop the connection on garbage; then the assertion below reports it.
        let _ = writeln!(stdin, "{line}");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["id"] == json!(2) {
                    let _ = tx.send(v);
                }
            }
        }
    });
    let listed = rx.recv_timeout(Duration::from_secs(60));
    drop(stdin);
    let _ = child.wait();
    let listed = listed.expect("tools/list answered after malformed and oversized lines");
    let catalog = std::fs::read_to_string(repo_root().join("manifests/cloud/mcp_tools.json")).unwrap();
    let tools = ripple::mcp::schema::load_catalog(&catalog).expect("catalog loads").len();
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(tools), "{listed}");
}
