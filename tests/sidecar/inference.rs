//! Inference over the mesh end to end: two real sidecars, each with a real llama.cpp server
//! (SmolLM2-135M, `tests/clients/llama_server.py`) as its LocalAI, serving models under several
//! names. Single queries reach the node that serves the model and fail over when the serving
//! server dies mid-query; a multi-model query merges a consensus with votes and leaves out a model
//! too slow for the deadline; the audit holds every answer; the OpenAI API on a node routes over
//! the mesh (streaming too); models loaded and unloaded through LocalAI's management API (emulated
//! by the launcher over llama.cpp) appear on and leave the mesh, and a server without that API
//! says it does not support it; a node that crashes right after a query's merge Decision commits
//! the query's journaled audit when it starts again.
use std::time::Duration;

use serde_json::{json, Value};

use ripple::inference::{MeshModel, ModelChange, MoeAnswer, SingleAnswer};
use ripple::policy::journal::AUDIT_JOURNAL_DIR;
use ripple::policy::service::{AuditView, DecisionView, CRASH_AFTER_DECISION_ENV};

use super::harness::*;
use super::mcp::{calls, ok, python_session, refused};

const PROMPT: &str = "What is the capital of France? Answer in one word.";

/// The inference policy the test runs with: four local models, at least four wanted (one too slow
/// for the deadline, one served nowhere), and a "cloud" provider that is node-a's own server behind
/// an API key; plus `quick`, the same without the slow and absent models.
fn policy(cloud_url: &str) -> String {
    // One policy's keys, indented by `pad`.
    let body = |pad: &str, models: &[(&str, f64)], timeout_ms: u32| {
        let models: String =
            models.iter().map(|(name, weight)| format!("      - {{name: {name}, weight: {weight}}}\n")).collect();
        let text = format!(
            "  local_tier:\n    min_parallel: 4\n    max_parallel: 8\n    models:\n{models}    timeout_ms: {timeout_ms}\n\
             \x20 cloud_tier:\n    min_parallel: 1\n    max_parallel: 2\n    providers:\n\
             \x20     - {{name: local-cloud, weight: 1.5, priority: 1, base_url: \"{cloud_url}/v1\", model: smol-a}}\n\
             \x20   timeout_ms: {timeout_ms}\n    fallback_on_timeout: true\n\
             \x20 reducer:\n    strategy: weighted_consensus\n    min_agreement: 0.6\n\
             \x20   policy_gate: opa://inference/merge\n    conflict_resolution: highest_weight_wins\n\
             \x20 audit:\n    log_all_responses: true\n    store_disagreements: true\n    trace_id_propagation: true\n"
        );
        text.lines().map(|l| format!("{pad}{l}\n")).collect::<String>()
    };
    let all = [("smol-a", 1.2), ("smol-b", 0.9), ("smol-slow", 1.0), ("gemma-absent", 1.0)];
    let quick = [("smol-a", 1.2), ("smol-b", 0.9)];
    format!(
        "inference_policy:\n  name: test-moe\n{}more_policies:\n  - name: quick\n{}",
        body("", &all, 15_000),
        body("  ", &quick, 60_000)
    )
}

/// Waits until `node`'s view of the mesh has `model` served by exactly `nodes`.
async fn await_servers(node: &Sidecar, model: &str, nodes: &[&str]) {
    eventually(&format!("{} to see {model} on {nodes:?}", node.name), Duration::from_secs(120), || async {
        let models: Vec<MeshModel> = try_get_json(&node.api("inference/models")).await?;
        let on: Vec<String> =
            models.iter().filter(|m| m.model == model).flat_map(|m| m.servers.iter().map(|s| s.name.clone())).collect();
        if on == nodes {
            Ok(())
        } else {
            Err(format!("{model} on {on:?}"))
        }
    })
    .await;
}

/// Slow (several minutes): two nodes and real llama.cpp servers answer real queries on two cores,
/// one query is delayed past the 15 s MoE deadline on purpose, and a server is killed mid-query.
#[tokio::test(flavor = "multi_thread")]
async fn single_and_moe_queries_route_fail_over_merge_and_audit_across_two_nodes() {
    let tmp = TempDir::new("inference");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    // node-a's server answers greedily; smol-twin waits 3 s first (time to kill it mid-query),
    // smol-slow a minute. node-b's answers with temperature 1.8 (seeded), so smol-b disagrees, and
    // has LocalAI's model management with one gallery model.
    let mut server_a = LlamaServer::start(&[
        "--alias",
        "smol-a",
        "--alias",
        "smol-twin",
        "--alias",
        "smol-slow",
        "--delay",
        "smol-twin=3000",
        "--delay",
        "smol-slow=60000",
    ]);
    let mut server_b = LlamaServer::start(&[
        "--gallery",
        "localai@smollm2-135m",
        "--alias",
        "smol-b",
        "--alias",
        "smol-twin",
        "--temp",
        "1.8",
        "--seed",
        "7",
        "--delay",
        "smol-twin=3000",
    ]);
    std::fs::write(manifests.root.join("distributed/inference_policy.yaml"), policy(&server_a.url)).unwrap();

    let mut launch_a = Launch::node(
        tmp.path(),
        &manifests,
        "e2e",
        "node-a",
        &["--localai-url", &server_a.url, "--mcp-http", "127.0.0.1:0"],
    );
    launch_a.env.push(("RIPPLE_CLOUD_LOCAL_CLOUD_API_KEY".into(), "sk-test-key".into()));
    let a = Sidecar::start(launch_a);
    let mut extra = vec!["--localai-url".to_string(), server_b.url.clone()];
    extra.extend(a.join_args());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let b = Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", "node-b", &extra));
    let (a_data, b_data) = (tmp.path().join("node-a"), tmp.path().join("node-b"));
    let http = reqwest::Client::new();

    // Each node advertises what its server lists; both see every model on the mesh.
    for node in [&a, &b] {
        eventually(&format!("{} to see both nodes' models", node.name), Duration::from_secs(180), || async {
            let models: Vec<MeshModel> = try_get_json(&node.api("inference/models")).await?;
            let twin = models.iter().find(|m| m.model == "smol-twin").map_or(0, |m| m.servers.len());
            let names: Vec<&str> = models.iter().map(|m| m.model.as_str()).collect();
            if names == ["smol-a", "smol-b", "smol-slow", "smol-twin"] && twin == 2 {
                Ok(())
            } else {
                Err(format!("{names:?}, smol-twin on {twin} node(s)"))
            }
        })
        .await;
    }

    // single_query reaches the node that serves the model (CLI on node-b, model only on node-a).
    let single: SingleAnswer =
        ripple_json(&b_data, &["infer", "--model", "smol-a", "--max-tokens", "32", PROMPT]).unwrap();
    assert_eq!(single.answered_by.node, "node-a", "{single:?}");
    assert!(single.response.contains("Paris"), "{single:?}");
    assert!(single.failed_attempts.is_empty());

    // The serving server dies mid-query: the next node serving the model answers.
    let models: Vec<MeshModel> = get_json(&a.api("inference/models")).await;
    let order: Vec<String> =
        models.iter().find(|m| m.model == "smol-twin").unwrap().servers.iter().map(|s| s.name.clone()).collect();
    let query = json!({"model": "smol-twin", "prompt": PROMPT, "max_tokens": 32});
    let asked = tokio::spawn(http.post(a.api("inference/query")).json(&query).send());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = if order[0] == "node-a" { &mut server_a } else { &mut server_b };
    first.kill();
    let failed_over: SingleAnswer =
        read_json("the query whose server died", asked.await.unwrap().unwrap()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failed_over.answered_by.node, order[1], "{failed_over:?}");
    assert_eq!(failed_over.failed_attempts.len(), 1, "{failed_over:?}");
    assert_eq!(failed_over.failed_attempts[0].node, order[0]);
    first.restart();
    let refreshed = if order[0] == "node-a" { &a } else { &b };
    let _: Value = http.post(refreshed.api("advert/refresh")).send().await.unwrap().json().await.unwrap();

    // moe_query on node-a: smol-a and the cloud provider agree, smol-b does not, smol-slow misses
    // the 15 s deadline and gemma-absent is served nowhere.
    let moe: MoeAnswer = ripple_json(&a_data, &["infer", "--moe", "--max-tokens", "64", PROMPT]).unwrap();
    assert!(moe.response.contains("Paris"), "{moe:?}");
    assert_eq!(moe.consensus_score, 0.75, "(1.2 + 1.5) / (1.2 + 1.5 + 0.9): {moe:?}");
    assert!(moe.consensus_reached);
    assert_eq!(moe.answer_groups, 2);
    let votes: Vec<(&str, &str, bool)> =
        moe.model_votes.iter().map(|v| (v.model.as_str(), v.tier.as_str(), v.agrees)).collect();
    assert_eq!(votes, [("smol-a", "local", true), ("smol-b", "local", false), ("local-cloud", "cloud", true)]);
    assert_eq!(moe.model_votes[0].response_hash, moe.model_votes[2].response_hash, "the same greedy answer");
    let missing: Vec<(&str, bool)> =
        moe.unanswered.iter().map(|u| (u.model.as_str(), u.reason.contains("timed out after 15000 ms"))).collect();
    assert_eq!(missing, [("gemma-absent", false), ("smol-slow", true)], "{:?}", moe.unanswered);
    assert_eq!(moe.cloud_configured, ["local-cloud"]);
    assert!(
        moe.warnings
            .iter()
            .any(|w| w.contains("only 3 local model(s) are served on the mesh; the policy asks for at least 4")),
        "{:?}",
        moe.warnings
    );
    assert!(moe.wall_ms < 40_000, "the slow model is cut at the deadline: {} ms", moe.wall_ms);

    // The audit holds every answer and the disagreement, under the trace id; the merge's decision.
    let audit: Vec<AuditView> = get_json(&a.api("policy/audit?hours=1")).await;
    let answers: Vec<&str> = audit
        .iter()
        .filter(|e| e.category == "inference.response" && e.references.first() == Some(&moe.trace_id))
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(answers.len(), 3, "{audit:?}");
    for model in ["smol-a", "smol-b", "local-cloud"] {
        assert!(answers.contains(&model), "{model} audited: {answers:?}");
    }
    let disagreement: Vec<AuditView> = get_json(&a.api(&format!("policy/audit?subject={}", moe.trace_id))).await;
    assert!(
        disagreement.iter().any(|e| e.category == "inference.disagreement" && e.outcome == "resolved"),
        "{disagreement:?}"
    );
    let decisions: Vec<DecisionView> = get_json(&a.api("policy/decisions?hours=1")).await;
    assert!(
        decisions.iter().any(|d| d.decision_id == moe.decision_id && d.action == "inference.merge"),
        "{decisions:?}"
    );

    // On node-b no cloud provider is configured: the response says so, and without the cloud vote
    // smol-a (1.2) against smol-b (0.9) is no consensus: refused with the votes, or the heaviest
    // answer when consensus is not required.
    let no_consensus = http
        .post(b.api("inference/moe"))
        .json(&json!({"prompt": PROMPT, "task_type": "general", "policy_override": "quick", "max_tokens": 64}))
        .send()
        .await
        .unwrap();
    let status = no_consensus.status();
    let body: Value = no_consensus.json().await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no consensus: 57% of the weighted votes agree, 60% required"),
        "{body}"
    );
    assert_eq!(body["answer"]["model_votes"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["answer"]["cloud_not_configured"][0].as_str().unwrap().contains("RIPPLE_CLOUD_LOCAL_CLOUD_API_KEY"));
    let heaviest: MoeAnswer = ripple_json(
        &b_data,
        &["infer", "--moe", "--policy", "quick", "--no-consensus-required", "--max-tokens", "64", PROMPT],
    )
    .unwrap();
    assert!(!heaviest.consensus_reached);
    assert_eq!(heaviest.response, moe.response, "highest_weight_wins: smol-a's answer");
    assert!(heaviest.warnings.iter().any(|w| w.contains("no cloud provider is configured")), "{:?}", heaviest.warnings);

    // The OpenAI API on node-b routes over the mesh, streaming included.
    let listed: Value = get_json(&b.api("v1/models")).await;
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["smol-a", "smol-b", "smol-slow", "smol-twin"]);
    let streamed = http
        .post(b.api("v1/chat/completions"))
        .json(&json!({"model": "smol-a", "stream": true, "max_tokens": 32,
            "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    let served_by = streamed.headers()["x-ripple-served-by"].to_str().unwrap().to_string();
    assert!(served_by.starts_with("node-a "), "{served_by}");
    let events = streamed.text().await.unwrap();
    assert!(events.lines().filter(|l| l.starts_with("data: {")).count() >= 2, "{events}");
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");
    let unknown =
        http.post(b.api("v1/chat/completions")).json(&json!({"model": "nope", "messages": []})).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("no online node serves model `nope`"), "{error}");

    // Model management where the server has it (node-b): a model loaded by gallery id, under the
    // name the server picks and under one of ours, is on the mesh and answers; unloaded, it is gone.
    let failed = ripple_json::<Value>(&b_data, &["models", "load", "localai@absent"]).unwrap_err();
    assert!(failed.contains("could not load localai@absent: no model found with name"), "{failed}");
    let default_name: ModelChange = ripple_json(&b_data, &["models", "load", "localai@smollm2-135m"]).unwrap();
    assert_eq!((default_name.model.as_str(), default_name.action.as_str()), ("smollm2-135m", "loaded"));
    let named: ModelChange =
        ripple_json(&b_data, &["models", "load", "localai@smollm2-135m", "--name", "smol-new"]).unwrap();
    assert_eq!(named.model, "smol-new");
    assert_eq!(named.models_loaded, ["smol-b", "smol-new", "smol-twin", "smollm2-135m"], "{named:?}");
    await_servers(&a, "smol-new", &["node-b"]).await;
    let answer: SingleAnswer =
        ripple_json(&a_data, &["infer", "--model", "smol-new", "--max-tokens", "32", PROMPT]).unwrap();
    assert_eq!(answer.answered_by.node, "node-b", "{answer:?}");
    let mut changes = vec![default_name, named];
    for (model, left) in
        [("smol-new", &["smol-b", "smol-twin", "smollm2-135m"][..]), ("smollm2-135m", &["smol-b", "smol-twin"])]
    {
        let unloaded: ModelChange = ripple_json(&b_data, &["models", "unload", model]).unwrap();
        assert_eq!(unloaded.models_loaded, left, "{unloaded:?}");
        changes.push(unloaded);
    }
    await_servers(&a, "smol-new", &[]).await;
    await_servers(&a, "smol-b", &["node-b"]).await; // node-b stayed in view while its advert changed
    let decisions: Vec<DecisionView> = get_json(&b.api("policy/decisions?hours=1")).await;
    for change in &changes {
        let action = if change.action == "loaded" { "inference.load_model" } else { "inference.unload_model" };
        assert!(
            decisions.iter().any(|d| d.decision_id == change.decision_id && d.action == action),
            "{change:?} passed the gate first: {decisions:?}"
        );
    }

    // Model management: llama.cpp's server has none, and says so; the gate decided first.
    let refused_load = ripple_json::<Value>(&a_data, &["models", "load", "localai@phi-2"]).unwrap_err();
    assert!(refused_load.contains("not supported by this backend"), "{refused_load}");
    let decisions: Vec<DecisionView> = get_json(&a.api("policy/decisions?hours=1")).await;
    assert!(decisions.iter().any(|d| d.action == "inference.load_model"), "{decisions:?}");
    let refused_unload = ripple_json::<Value>(&a_data, &["models", "unload", "smol-b"]).unwrap_err();
    assert!(refused_unload.contains("this node does not serve `smol-b`"), "{refused_unload}");

    // The same through MCP (Python SDK over HTTP on node-a).
    let url = a.ready.mcp_url.clone().expect("node-a serves MCP");
    let session = python_session(json!({"server": {"url": url}, "mode": "auto", "calls": [
        {"tool": "inference.single_query", "arguments": {"model": "smol-b", "prompt": PROMPT, "max_tokens": 32}},
        {"tool": "inference.moe_query", "arguments": {"prompt": PROMPT, "task_type": "general",
            "policy_override": "quick", "max_tokens": 64}},
        {"tool": "inference.single_query", "arguments": {"model": "smol-a", "prompt": PROMPT, "max_tokens": 0}},
        {"tool": "inference.moe_query", "arguments": {"prompt": PROMPT, "task_type": "poetry"}},
        {"tool": "inference.unload_model", "arguments": {"model": "smol-b"}},
    ]}));
    let c = calls(&session);
    assert_eq!(ok(&c[0])["answered_by"]["node"], json!("node-b"));
    let merged = ok(&c[1]);
    assert_eq!(merged["consensus_score"], json!(0.75), "{merged}");
    assert_eq!(merged["model_votes"].as_array().unwrap().len(), 3);
    refused(&c[2], &["max_tokens"]);
    refused(&c[3], &["task_type"]);
    refused(&c[4], &["this node does not serve `smol-b`"]);

    // A crash right after the merge's Decision loses none of the query's audit: the answers and the
    // disagreement were journaled on the node's disk before the gate, and its restart commits them.
    // (node-c, which serves nothing: its query goes to node-a's and node-b's models.)
    let join = a.join_args();
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    let mut crashing = Launch::node(tmp.path(), &manifests, "e2e", "node-c", &join);
    crashing.env.push((CRASH_AFTER_DECISION_ENV.into(), "inference.merge".into()));
    let c = Sidecar::start(crashing);
    let c_agent = c.agent().to_string();
    await_servers(&c, "smol-a", &["node-a"]).await;
    await_servers(&c, "smol-b", &["node-b"]).await;
    let c_data = tmp.path().join("node-c");
    // The merge's Decision is validated against the policy version it names, which node-c must
    // get from its peers; a node that just joined is heard in some DNAs before others (issue 26,
    // holochain#5962). Seen in CI: the Decision's commit waited 60 s and the query failed instead
    // of reaching the crash. So wait until node-c reads the policy DNA's data from its peers.
    let a_agent = a.agent().to_string();
    eventually("node-c to read node-a's decisions", Duration::from_secs(180), || async {
        let rows: Vec<DecisionView> = ripple_json(&c_data, &["policy", "decisions", "--node", &a_agent])?;
        if rows.iter().any(|d| d.action == "inference.merge") {
            Ok(())
        } else {
            Err(format!("{} decisions", rows.len()))
        }
    })
    .await;
    let quick = ["infer", "--moe", "--policy", "quick", "--no-consensus-required", "--max-tokens", "64", PROMPT];
    let lost = ripple_json::<Value>(&c_data, &quick).unwrap_err();
    assert!(
        !lost.contains("the node answered"),
        "node-c answered instead of dying after the decision: {lost}\n{}",
        c.log()
    );
    assert!(!c.wait_exit(Duration::from_secs(60)).success(), "node-c aborted after the decision ({lost})");
    let journal = c_data.join(AUDIT_JOURNAL_DIR);
    assert!(std::fs::read_dir(&journal).unwrap().count() >= 1, "the query's audit waits in {}", journal.display());
    let c = Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", "node-c", &join));
    eventually("node-c to commit what it journaled before the crash", Duration::from_secs(300), || async {
        let audit: Vec<AuditView> = try_get_json(&c.api("policy/audit?hours=2")).await?;
        let decisions: Vec<DecisionView> = try_get_json(&c.api("policy/decisions?hours=2")).await?;
        let by_c = |category: &str| audit.iter().filter(|e| e.category == category && e.author == c_agent).count();
        let merges = decisions.iter().filter(|d| d.action == "inference.merge" && d.decider == c_agent).count();
        match (by_c("inference.response"), by_c("inference.disagreement"), merges) {
            (2, 1, 1) => Ok(()),
            counts => Err(format!("(answers, disagreements, merge decisions) = {counts:?}")),
        }
    })
    .await;
    assert_eq!(std::fs::read_dir(&journal).unwrap().count(), 0, "the journal is empty once committed");
    drop(c);
    drop(server_b);
}

/// The bridge against a real llama.cpp server, no mesh: models with aliases, a chat answer,
/// embeddings that let the reducer join paraphrases, and LocalAI's model management refused as
/// not supported rather than as a failure.
#[tokio::test(flavor = "multi_thread")]
async fn the_bridge_reads_models_chats_embeds_and_names_what_the_backend_lacks() {
    use ripple::bridges::localai::{Backend, BackendError, ChatOptions};
    use ripple::inference::consensus::{weighted_consensus, Answer};
    let server = LlamaServer::start(&["--alias", "smol-embed", "--alias", "smol-alias", "--embedding"]);
    let backend = Backend::local(reqwest::Client::new(), &server.url).unwrap();
    let timeout = Duration::from_secs(60);
    assert_eq!(backend.models(timeout).await.unwrap(), ["smol-alias", "smol-embed"]);

    let options = ChatOptions { max_tokens: 16, temperature: Some(0.0) };
    let answer = backend.chat("smol-alias", PROMPT, &options, timeout, Some("trace-1")).await.unwrap();
    assert!(answer.text.contains("Paris"), "{answer:?}");
    assert!(answer.usage.is_some());

    let texts =
        ["The capital of France is Paris.", "Paris is the capital of France.", "Bananas are rich in potassium."];
    let vectors = backend.embeddings("smol-embed", &texts, timeout).await.unwrap();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].len(), 576);
    let answers: Vec<Answer> = texts
        .iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (text, v))| Answer {
            source: format!("m{i}"),
            weight: 1.0,
            text: text.to_string(),
            embedding: Some(v),
        })
        .collect();
    let merge = weighted_consensus(&answers, 0.6, 0.92).unwrap();
    assert_eq!(merge.groups.len(), 2, "the paraphrases join, bananas stay apart: {merge:?}");
    assert_eq!(merge.consensus_score, 0.6667);

    for refused in [
        backend.apply_model("localai@phi-2", None).await.map(|_| ()),
        backend.shutdown_backend("smol-embed").await,
        backend.delete_model("smol-embed").await,
    ] {
        let err = refused.unwrap_err();
        assert!(matches!(err, BackendError::NotSupported { status: 404, .. }), "{err:?}");
        assert!(err.to_string().contains("is not supported by this backend"), "{err}");
    }
    let unreachable = Backend::local(reqwest::Client::new(), "http://127.0.0.1:9").unwrap();
    let err = unreachable.models(timeout).await.unwrap_err();
    assert!(err.is_retryable() && err.to_string().contains("is unreachable"), "{err}");
}
