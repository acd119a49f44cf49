//! Networks operators create: `ripple network create` makes one with this node as admin,
//! `ripple network invite` admits a node by its key, and `ripple up --network FILE --invite FILE`
//! joins. A node without an invitation, or with someone else's, is refused before it installs.
//! Across three hosts: artifact bytes, shard snapshots and inference (a llama.cpp server on the
//! admin's loopback) go through the sidecars' signed peer routes, an allocation is granted by
//! another host's node, every node routes shard keys alike, and the peer listener refuses
//! unsigned, stale, replayed, forged and non-member requests.
//! Each node runs on its own test host (a network namespace with its own IP and loopback) where
//! this machine allows it, else all on this machine's loopback.
use std::time::Duration;

use super::harness::*;
use crate::support::repo_root;
use ripple::shards::{MapReport, RouteView};

fn json(what: &str, (code, out, err): (i32, String, String)) -> serde_json::Value {
    assert_eq!(code, 0, "{what}: exit {code}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
}

/// The first start of a node on an invitation network without an invitation: refused (exit 2)
/// before it installs, with the key it must be invited by. Returns that key.
fn refused_first_start(data: &HostNode, manifests: &std::path::Path, file: &str) -> String {
    let happ = happ();
    let args = ["up", "--network", file, "--api", "127.0.0.1:0", "--happ", happ.to_str().unwrap()];
    let (code, _, err) = data.run(manifests, &args);
    assert_eq!(code, 2, "an uninvited node is bad input: {err}");
    assert!(err.contains("network `lab` admits only invited agents"), "{err}");
    let record = json("network show", data.run(manifests, &["network", "show"]));
    let key = record["agent_key"].as_str().expect("the key it was refused with is kept").to_string();
    assert!(err.contains(&format!("ripple network invite {key}")), "the refusal names the key to invite: {err}");
    assert!(record["invitation"].is_null());
    key
}

/// GET `url` from `node`'s host with `headers`, as another machine would: (status, body).
fn http_get(node: &HostNode, url: &str, headers: &[(&str, String)]) -> (u16, String) {
    const SCRIPT: &str = "import json, sys, urllib.request, urllib.error\n\
req = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))\n\
try:\n    r = urllib.request.urlopen(req, timeout=30); print(r.status); print(len(r.read()))\n\
except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str()))).collect();
    let out = on_host(node.host.as_deref(), "python3")
        .args(["-c", SCRIPT, url, &serde_json::Value::Object(headers).to_string()])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) =
        text.split_once('\n').unwrap_or_else(|| panic!("python3: {}", String::from_utf8_lossy(&out.stderr)));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Peer-request headers signed by a fresh key that has never joined the network, `age_ms` old.
fn stranger_headers(seed: &str, path: &str, nonce: &str, age_ms: i64) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let (mut public, mut secret) = ([0u8; 32], [0u8; 64]);
    sodoken::sign::keypair(&mut public, &mut secret).unwrap();
    let agent = holochain::prelude::AgentPubKey::from_raw_32(public.to_vec());
    let time = ripple::peer::now_ms() - age_ms;
    let mut signature = [0u8; 64];
    let message = ripple::peer::message(seed, "GET", path, time, nonce, b"");
    sodoken::sign::sign_detached(&mut signature, &message, &secret).unwrap();
    vec![
        (ripple::peer::HEADER_AGENT, agent.to_string()),
        (ripple::peer::HEADER_TIME, time.to_string()),
        (ripple::peer::HEADER_NONCE, nonce.to_string()),
        (ripple::peer::HEADER_SIGNATURE, base64::engine::general_purpose::STANDARD.encode(signature)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_network_admits_only_the_nodes_its_admin_invites() {
    let tmp = TempDir::new("networks");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let m = manifests.root.clone();
    edit_policy(&manifests, "memory_policy.yaml", &[("scan_interval_seconds: 15", "scan_interval_seconds: 3")]);
    let file = tmp.path().join("lab.network.json");
    let file_arg = file.to_str().unwrap().to_string();
    let happ = happ();
    let lan = Lan::new(3).map_err(|why| eprintln!("no test hosts ({why}): every node runs on this machine's loopback"));
    let node = |i: usize, name: &str| HostNode {
        data: tmp.path().join(name),
        host: lan.as_ref().ok().map(|lan| lan.hosts[i].name.clone()),
    };
    let listen = match &lan {
        Ok(lan) => format!("{}:7790", lan.hosts[0].ip),
        Err(()) => format!("127.0.0.1:{}", free_port()),
    };

    // The admin creates the network: its key is generated, nothing is installed yet.
    let admin_data = node(0, "admin");
    let created = json(
        "network create",
        admin_data.run(
            &m,
            &[
                "network",
                "create",
                "lab",
                "--listen",
                &listen,
                "--heartbeat-bucket",
                "6",
                "--out",
                &file_arg,
                "--happ",
                happ.to_str().unwrap(),
            ],
        ),
    );
    let admin_key = created["admin"].as_str().unwrap().to_string();
    let network: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(network["network"]["admins"], serde_json::json!([admin_key]));
    assert_eq!(network["network"]["bootstrap_url"], format!("http://{listen}/"));
    assert_eq!(network["network"]["dnas"].as_object().unwrap().len(), 5, "the file pins every role: {network}");
    for role in ["agent_registry", "resource_mesh", "policy_store", "artifact_index", "memory_shards"] {
        assert_eq!(network["network"]["dna_properties"][role]["network_admins"], serde_json::json!([admin_key]));
    }
    let again = admin_data.run(&m, &["network", "create", "lab2", "--listen", &listen, "--out", "/dev/null"]);
    assert_eq!(again.0, 2, "one network per data dir: {}", again.2);
    assert!(again.2.contains("belongs to network `lab`"), "{}", again.2);

    // Each node has its own IPFS daemon on its own host's loopback, offline: the daemons cannot
    // reach each other, so artifact bytes can only cross through the sidecars' peer routes.
    let ipfs: Vec<Ipfs> = [&admin_data, &node(1, "member"), &node(2, "third")]
        .iter()
        .enumerate()
        .map(|(i, n)| Ipfs::start_on(tmp.path(), &format!("ipfs-{i}"), n.host.as_deref()))
        .collect();
    let peer_listen = |i: usize| match &lan {
        Ok(lan) => format!("{}:7781", lan.hosts[i].ip),
        Err(()) => format!("127.0.0.1:{}", free_port()),
    };
    let (admin_peer, member_peer, third_peer) = (peer_listen(0), peer_listen(1), peer_listen(2));
    // Every node has room for shard replicas, more than the collection below needs: placement fills
    // shards one after another, so with no room to spare a shard may find only one holder.
    let shard_room = ["--vector-shards", "6"];

    // The admin's inference server listens on its own host's loopback only: the mesh reaches it
    // through the admin's sidecar.
    let llama = LlamaServer::start_on_host(admin_data.host.as_deref(), &["--alias", "smol-lab", "--temp", "0"]);
    assert!(llama.url.starts_with("http://127.0.0.1:"), "{}", llama.url);

    // It runs with no flags but the shared harness's, serving the network's bootstrap+relay.
    let admin_extra = [
        &["--ipfs-api-url", &ipfs[0].api_url, "--peer-listen", &admin_peer, "--localai-url", &llama.url],
        &shard_room[..],
    ]
    .concat();
    let admin = Sidecar::start(Launch {
        host: admin_data.host.clone(),
        ..Launch::node(tmp.path(), &manifests, &file_arg, "admin", &admin_extra[..])
    });
    assert_eq!(admin.agent(), admin_key);
    assert!(admin.ready.status.diagnostics.serving_bootstrap);
    let exported = tmp.path().join("exported.json");
    admin_data.run(&m, &["network", "show", "--out", exported.to_str().unwrap()]);
    assert_eq!(std::fs::read(&exported).unwrap(), std::fs::read(&file).unwrap(), "show --out writes the same file");

    // A member: refused first and told its key, invited, then joins and is seen.
    let member_data = node(1, "member");
    let member_key = refused_first_start(&member_data, &m, &file_arg);
    let invitation = tmp.path().join("member-invitation.json");
    let invited = json(
        "network invite",
        admin_data.run(&m, &["network", "invite", &member_key, "--out", invitation.to_str().unwrap()]),
    );
    assert_eq!(invited["invitee"], member_key.as_str());

    // A third machine with the member's invitation: refused before it installs.
    let third_data = node(2, "third");
    let third_key = refused_first_start(&third_data, &m, &file_arg);
    let (code, _, err) = third_data.run(
        &m,
        &[
            "up",
            "--network",
            &file_arg,
            "--invite",
            invitation.to_str().unwrap(),
            "--api",
            "127.0.0.1:0",
            "--happ",
            happ.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("it invites {member_key}, not this node ({third_key})")), "{err}");

    let invite_arg = invitation.to_str().unwrap();
    let member_extra =
        [&["--invite", invite_arg, "--ipfs-api-url", &ipfs[1].api_url, "--peer-listen", &member_peer], &shard_room[..]]
            .concat();
    let member = Sidecar::start(Launch {
        host: member_data.host.clone(),
        ..Launch::node(tmp.path(), &manifests, &file_arg, "member", &member_extra[..])
    });
    assert_eq!(member.agent(), member_key);
    let record = json("network show", member_data.run(&m, &["network", "show"]));
    assert_eq!(record["invitation"]["admin"], admin_key.as_str(), "the invitation is kept for restarts");

    // Its own invitation lets the third machine in.
    let third_invitation = tmp.path().join("third-invitation.json");
    admin_data.run(&m, &["network", "invite", &third_key, "--out", third_invitation.to_str().unwrap()]);
    let third_extra = [
        &[
            "--invite",
            third_invitation.to_str().unwrap(),
            "--ipfs-api-url",
            &ipfs[2].api_url,
            "--peer-listen",
            &third_peer,
        ],
        &shard_room[..],
    ]
    .concat();
    let third = Sidecar::start(Launch {
        host: third_data.host.clone(),
        ..Launch::node(tmp.path(), &manifests, &file_arg, "third", &third_extra[..])
    });
    assert_eq!(third.agent(), third_key);

    // Each sees the others, across hosts: the bootstrap+relay on the admin's address carries them.
    let everyone = [(&admin_data, &admin_key), (&member_data, &member_key), (&third_data, &third_key)];
    for (from, _) in everyone {
        eventually("a node sees the others' adverts", Duration::from_secs(240), || async {
            let (code, out, err) = from.run(&m, &["peers"]);
            let peers: Vec<serde_json::Value> = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
            let agents: Vec<&str> = peers.iter().filter_map(|p| p["agent_pubkey"].as_str()).collect();
            let all = everyone.iter().all(|(_, key)| agents.contains(&key.as_str()));
            all.then_some(()).ok_or(format!("{agents:?}"))
        })
        .await;
    }

    // An artifact added on the admin's host is fetched on the third's from the admin's peer
    // listener, signed by the third node and checked by the admin.
    let content = pseudo_random_bytes(2 << 20, 24);
    let file = tmp.path().join("weights.bin");
    std::fs::write(&file, &content).unwrap();
    let added = json("artifact add", admin_data.run(&m, &["artifact", "add", file.to_str().unwrap()]));
    let cid = added["cid"].as_str().unwrap().to_string();
    let out = tmp.path().join("fetched.bin");
    let got = eventually("the third node fetches the artifact", Duration::from_secs(120), || async {
        let (code, out_json, err) = third_data.run(&m, &["artifact", "get", &cid, "-o", out.to_str().unwrap()]);
        if code != 0 {
            return Err(err);
        }
        serde_json::from_str::<serde_json::Value>(&out_json).map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(std::fs::read(&out).unwrap(), content, "the third node wrote the admin's bytes");
    let source = got["source"].as_str().unwrap_or_default();
    assert!(source.contains(&format!("replica of {admin_key} at http://{admin_peer}")), "{got}");
    // Verifying reads the admin's chain from its authorities, which a node that just joined may
    // not reach yet.
    eventually("the third node verifies the artifact", Duration::from_secs(90), || async {
        let (code, out, err) = third_data.run(&m, &["artifact", "verify", &cid]);
        let report: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
        (report["ok"] == true).then_some(()).ok_or(format!("{report}"))
    })
    .await;

    // Inference on the member's host is answered by the admin's loopback-only server, through the
    // admin's peer listener (the advert names the sidecar, not the server).
    let answer = eventually("the member sees the admin's model", Duration::from_secs(120), || async {
        let (code, out, err) = member_data
            .run(&m, &["infer", "--model", "smol-lab", "--max-tokens", "16", "What is the capital of France?"]);
        if code != 0 {
            return Err(err);
        }
        serde_json::from_str::<serde_json::Value>(&out).map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(answer["answered_by"]["agent"], admin_key.as_str(), "{answer}");
    assert_eq!(answer["answered_by"]["endpoint"], format!("http://{admin_peer}"), "{answer}");
    assert!(answer["failed_attempts"].as_array().unwrap().is_empty(), "{answer}");
    assert!(!answer["response"].as_str().unwrap_or_default().is_empty(), "{answer}");

    // A collection sharded over the three hosts: every node routes a key to the same holders.
    let nodes = [
        (&admin_data, &admin_key, &admin_peer),
        (&member_data, &member_key, &member_peer),
        (&third_data, &third_key, &third_peer),
    ];
    json("shards create", member_data.run(&m, &["shards", "create", "notes", "--shards", "6", "--replicas", "2"]));
    let placed = eventually("every shard on its two placed hosts", Duration::from_secs(180), || async {
        let (code, out, err) = third_data.run(&m, &["shards", "map", "notes"]);
        let report: MapReport = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
        let held = report.shards.iter().all(|s| s.holders.iter().map(|h| &h.agent).eq(s.placed.iter()));
        (report.eligible_nodes == 3 && report.live_replicas == 12 && held)
            .then_some(report.clone())
            .ok_or(format!("{report:?}"))
    })
    .await;
    eventually("every host to route keys alike", Duration::from_secs(60), || async {
        let mut seen = std::collections::BTreeSet::new();
        for (data, _, _) in nodes {
            let mut routes = vec![];
            for key in ["alpha", "beta", "gamma", "delta"] {
                let (code, out, err) = data.run(&m, &["shards", "route", key, "--collection", "notes"]);
                let route: RouteView = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
                let holders: Vec<String> = route.holders.iter().map(|h| h.agent.clone()).collect();
                if holders != placed.shards[route.shard as usize].placed {
                    return Err(format!("{key}: {holders:?}, placed {:?}", placed.shards[route.shard as usize].placed));
                }
                routes.push((route.shard, holders));
            }
            seen.insert(routes);
        }
        (seen.len() == 1).then_some(()).ok_or(format!("{seen:?}"))
    })
    .await;

    // A replica's snapshot reaches a host without that shard through the holder's peer route;
    // the holder's next snapshot replaces it.
    // Every shard has two holders among the three hosts: the asker is the host without it.
    let row = &placed.shards[0];
    let (asker_data, _, _) = *nodes.iter().find(|(_, key, _)| !row.placed.contains(*key)).unwrap();
    let (holder_data, holder_key, holder_peer) = *nodes.iter().find(|(_, key, _)| **key == row.placed[0]).unwrap();
    let shard = row.shard.to_string();
    let snapshot = tmp.path().join("snapshot-1.bin");
    std::fs::write(&snapshot, pseudo_random_bytes(1 << 20, 26)).unwrap();
    let checkpoint = ["shards", "checkpoint", "--collection", "notes", "--shard", &shard, "--vectors", "500"];
    let first = json(
        "shards checkpoint",
        holder_data.run(&m, &[&checkpoint[..], &["--snapshot-file", snapshot.to_str().unwrap()]].concat()),
    );
    let first_cid = first["snapshot_cid"].as_str().unwrap().to_string();
    // A node without the replica is refused before it sends a byte; a shard beyond the map is named.
    let (code, _, err) =
        asker_data.run(&m, &[&checkpoint[..], &["--snapshot-file", snapshot.to_str().unwrap()]].concat());
    assert_ne!(code, 0);
    assert!(err.contains(&format!("this node holds no replica of shard {shard} of `notes`")), "{err}");
    let (code, _, err) = asker_data.run(&m, &["shards", "snapshot", "--collection", "notes", "--shard", "6"]);
    assert_ne!(code, 0);
    assert!(err.contains("shard 6 is beyond `notes`'s 6 shards (0-5)"), "{err}");
    let synced = tmp.path().join("synced.bin");
    let fetched = eventually("a host without the shard fetches its snapshot", Duration::from_secs(120), || async {
        let args = ["shards", "snapshot", "--collection", "notes", "--shard", &shard, "-o", synced.to_str().unwrap()];
        let (code, out, err) = asker_data.run(&m, &args);
        let fetched: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
        (fetched["checkpoint"]["snapshot_cid"] == first_cid.as_str())
            .then_some(fetched.clone())
            .ok_or(format!("{fetched}"))
    })
    .await;
    assert_eq!(std::fs::read(&synced).unwrap(), std::fs::read(&snapshot).unwrap(), "the holder's bytes");
    assert_eq!(fetched["checkpoint"]["holder"], holder_key.as_str(), "{fetched}");
    let source = fetched["source"].as_str().unwrap_or_default();
    assert!(source.contains(&format!("replica of {holder_key} at http://{holder_peer}")), "{fetched}");
    std::fs::write(&snapshot, pseudo_random_bytes(1 << 20, 28)).unwrap();
    let second = json(
        "shards checkpoint",
        holder_data.run(&m, &[&checkpoint[..], &["--snapshot-file", snapshot.to_str().unwrap()]].concat()),
    );
    assert_eq!(second["sequence"], 2, "{second}");
    assert_ne!(second["snapshot_cid"], first_cid.as_str());
    eventually("the replaced snapshot withdrawn", Duration::from_secs(60), || async {
        let (code, out, err) = holder_data.run(&m, &["artifact", "replicas", &first_cid]);
        let report: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
        (report["live"] == 0).then_some(()).ok_or(format!("{report}"))
    })
    .await;

    // An allocation across hosts: the member asks twice for all of a machine's cores; its own
    // node takes the first, and another host's provider grants the second through the DHT.
    let cores = eventually("the member sees every offer", Duration::from_secs(120), || async {
        let (code, out, err) = member_data.run(&m, &["available"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).map_err(|e| format!("{code} {e}: {err}"))?;
        let online: Vec<&serde_json::Value> = rows.iter().filter(|r| r["state"] == "online").collect();
        (online.len() == 3).then(|| online[0]["offered"]["cpu_cores"].to_string()).ok_or(format!("{rows:?}"))
    })
    .await;
    let allocate = ["allocate", "compute", "--cpu", &cores, "--duration", "600"];
    let own = json("allocate", member_data.run(&m, &allocate));
    assert_eq!(own["node_name"], "member", "{own}");
    let remote = json("allocate", member_data.run(&m, &allocate));
    let elsewhere = ["admin", "third"].map(serde_json::Value::from);
    assert!(elsewhere.contains(&remote["node_name"]), "granted on another host: {remote}");

    // The admin's peer listener lets no stranger in, and serves nothing but the peer routes.
    let path = format!("/peer/v1/artifacts/{cid}");
    let url = format!("http://{admin_peer}{path}");
    let seed = network["network"]["network_seed"].as_str().unwrap();
    let (status, body) = http_get(&member_data, &url, &[]);
    assert_eq!(status, 401, "unsigned: {body}");
    assert!(body.contains("without the `ripple-agent` header"), "{body}");
    let stranger = stranger_headers(seed, &path, "0123456789abcdef0123456789abcdef", 0);
    let (status, body) = http_get(&member_data, &url, &stranger);
    assert_eq!(status, 403, "signed by a non-member: {body}");
    assert!(body.contains("is not a member of this network"), "{body}");
    let (status, body) = http_get(&member_data, &url, &stranger);
    assert_eq!(status, 401, "the same request again: {body}");
    assert!(body.contains("replay"), "{body}");
    let mut forged = stranger_headers(seed, "/peer/v1/artifacts/another", "fedcba9876543210fedcba9876543210", 0);
    forged[0].1 = member_key.clone();
    let (status, body) = http_get(&member_data, &url, &forged);
    assert_eq!(status, 401, "a member's name on another key's signature: {body}");
    assert!(body.contains("signature does not verify"), "{body}");
    let stale = stranger_headers(seed, &path, "00000000000000000000000000000001", 60_000);
    let (status, body) = http_get(&member_data, &url, &stale);
    assert_eq!(status, 401, "signed a minute ago: {body}");
    assert!(body.contains("is stale"), "{body}");
    let (status, _) = http_get(&member_data, &format!("http://{admin_peer}/status"), &[]);
    assert_eq!(status, 404, "no operator route on the peer listener");
    // The operator API, on the admin's loopback, answers no page that rebinds a foreign name to it.
    let (status, body) = http_get(&admin_data, &admin.api("status"), &[("Host", "rebind.example:80".into())]);
    assert_eq!(status, 403, "a foreign Host: {body}");
    assert!(body.contains("rebind.example"), "{body}");

    // The admin's policy closes the route: the member's next fetch is refused, a recorded Decision.
    let rego = tmp.path().join("peer.request.rego");
    std::fs::copy(repo_root().join("manifests/policies/peer.request.rego"), &rego).unwrap();
    let data = tmp.path().join("closed.json");
    std::fs::write(&data, r#"{"blocked_callers": [], "closed_routes": ["artifacts.content"]}"#).unwrap();
    let publish = ["policy", "publish", rego.to_str().unwrap(), "--data-json", data.to_str().unwrap()];
    json("policy publish", admin_data.run(&m, &publish));
    let second = tmp.path().join("second.bin");
    std::fs::write(&second, pseudo_random_bytes(1 << 16, 25)).unwrap();
    let added = json("artifact add", admin_data.run(&m, &["artifact", "add", second.to_str().unwrap()]));
    let second_cid = added["cid"].as_str().unwrap().to_string();
    let refused = eventually("the closed route refuses the member", Duration::from_secs(60), || async {
        let (code, _, err) = member_data.run(&m, &["artifact", "get", &second_cid, "-o", "/dev/null"]);
        (code != 0 && err.contains("403")).then_some(err.clone()).ok_or(format!("exit {code}: {err}"))
    })
    .await;
    assert!(refused.contains("does not serve artifacts.content to peers"), "{refused}");
    let decisions = json("policy decisions", admin_data.run(&m, &["policy", "decisions", "--node", &admin_key]));
    let denied = decisions.as_array().unwrap().iter().any(|d| d["action"] == "peer.request" && d["allowed"] == false);
    assert!(denied, "the denial is a recorded Decision: {decisions}");

    // Only admins invite.
    let (code, _, err) = member_data.run(&m, &["network", "invite", &third_key]);
    assert_ne!(code, 0);
    assert!(err.contains("is not an admin of network `lab`"), "{err}");

    // A restart needs neither the file nor the invitation: the data dir remembers both.
    assert!(member.terminate().success());
    let member = Sidecar::start(Launch {
        host: member_data.host.clone(),
        ..Launch::node(tmp.path(), &manifests, "lab", "member", &["--peer-listen", &member_peer])
    });
    assert_eq!(member.agent(), member_key, "the same key after a restart");
    assert!(!member.ready.installed_now, "installed once");
    drop((admin, member, third, llama));
}
