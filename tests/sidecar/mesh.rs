//! Four real sidecars on a local network: they find each other and shard a vector-memory
//! collection (16 shards, replication factor 2: every shard on exactly two live nodes, every node
//! routing every key the same way); a node that crashes between a policy decision and its action
//! is declared dead by every survivor's probes, nobody else changes state, and its shards are
//! re-claimed by the next nodes on their rings;
//! a plain restart (no flags: it rejoins what its data dir joined) keeps its agent key, its one
//! advert and the decision, without the action, and the shards settle back to where they were
//! without flapping.
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ripple::api::PeerRow;
use ripple::node::swim::MemberState;
use ripple::policy::service::DecisionView;
use ripple::shards::{CheckpointView, ClaimView, MapReport, MapView, RouteView};
use serde_json::json;

use super::harness::*;
use super::mcp::{calls, ok, python_session, refused};

/// Keys every node routes in the agreement checks.
const KEYS: usize = 24;

fn names_by_state(peers: &[PeerRow], state: &str) -> BTreeSet<String> {
    peers.iter().filter(|p| p.state == state).map(|p| p.advert.agent_name.clone()).collect()
}

/// Slow (several minutes): four real nodes each compile the hApp's wasm on their first start, one
/// crashes and must be declared dead by every survivor's liveness protocol before its shards are
/// re-claimed, restarts, and the shards settle back after the settle window; each phase waits for
/// the mesh's own loops, which is what it tests.
#[tokio::test(flavor = "multi_thread")]
async fn four_sidecars_find_each_other_shard_memory_and_survive_a_crash_after_a_decision_and_a_restart() {
    let tmp = TempDir::new("mesh");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    edit_policy(&manifests, "memory_policy.yaml", &[("scan_interval_seconds: 15", "scan_interval_seconds: 3")]);
    let data = |n: &str| tmp.path().join(n);
    let launch = |name: &str, extra: Vec<String>| Launch {
        name: name.into(),
        data: data(name),
        manifests: manifests.root.clone(),
        network: "e2e".into(),
        extra: [extra, vec!["--vector-shards".into(), "16".into()]].concat(),
        env: vec![],
        host: None,
    };

    let a = Sidecar::start(launch("node-a", vec!["--mcp-http".into(), "127.0.0.1:0".into()]));
    let d = &a.ready.status.diagnostics;
    assert!(d.serving_bootstrap, "the first node serves bootstrap+relay");
    assert_eq!(d.bootstrap_reachable, Some(true));
    assert!(a.ready.installed_now);
    assert!(a.ready.passphrase_note.as_deref().is_some_and(|p| p.contains("created a random keystore passphrase")));
    let passphrase = data("node-a").join("passphrase");
    assert_eq!(std::fs::metadata(&passphrase).unwrap().permissions().mode() & 0o777, 0o600);
    let join = || a.join_args();
    let b = Sidecar::start(launch("node-b", join()));
    // node-c will crash right after it records an allowed allocation, before allocating.
    let crashing = Launch {
        env: vec![(ripple::policy::service::CRASH_AFTER_DECISION_ENV.into(), "resources.allocate".into())],
        host: None,
        ..launch("node-c", join())
    };
    let c = Sidecar::start(crashing);
    // node-d ignores registry signals: its mesh view learns everything from its own reads.
    let no_signals = ["--no-view-signals", "--view-catch-up-secs", "3"].map(String::from).to_vec();
    let d = Sidecar::start(launch("node-d", [join(), no_signals].concat()));
    assert!(!d.ready.status.view.signals && d.ready.status.view.catch_up_secs == 3);
    assert!(!b.ready.status.diagnostics.serving_bootstrap);
    let hashes = |node: &Sidecar| node.ready.status.cell_ids.iter().map(|c| c.dna_hash.clone()).collect::<Vec<_>>();
    assert_eq!(hashes(&a), hashes(&c), "one network, one DNA per role, policy_store with the creator as admin");
    assert_eq!(a.ready.status.policy_admin.as_deref(), Some(a.agent()), "the creator administers policy");
    assert_eq!(c.ready.status.policy_admin, a.ready.status.policy_admin);

    let everyone: BTreeSet<String> = ["node-a", "node-b", "node-c", "node-d"].map(String::from).into();
    for node in [&a, &b, &c, &d] {
        let peers = eventually(&format!("{} to see all four online", node.name), Duration::from_secs(180), || async {
            let peers = node.try_peers("").await?;
            if names_by_state(&peers, "online") == everyone {
                Ok(peers)
            } else {
                Err(format!("{:?}", peers.iter().map(|p| (&p.advert.agent_name, &p.state)).collect::<Vec<_>>()))
            }
        })
        .await;
        // The adverts are the probes of this machine, as each node published them.
        let own = node.status().await.node.probe.expect("probe");
        for p in &peers {
            assert_eq!(p.advert.compute.cpu_cores, own.cpu_cores);
            assert_eq!(p.advert.compute.cpu_arch, own.cpu_arch);
            assert_eq!(p.advert.compute.ram_gb, own.ram_gb);
            assert_eq!(p.is_self, p.agent_pubkey == node.agent());
        }
    }
    let status = eventually("node-a's mesh status to reach connected", Duration::from_secs(120), || async {
        let s = a.status().await;
        if s.peer_count == 3 && s.mesh_status == ripple::mesh::MeshStatus::Connected {
            Ok(s)
        } else {
            Err(format!("{} peers, {:?}", s.peer_count, s.mesh_status))
        }
    })
    .await;
    assert!(status.diagnostics.last_gossip_ms.is_some());

    // One node per data dir: a second `ripple up` on node-a's is refused before it touches anything.
    let (code, _, err) = ripple(&[
        "--data",
        data("node-a").to_str().unwrap(),
        "--manifests",
        manifests.root.to_str().unwrap(),
        "up",
        "--network",
        "e2e",
        "--api",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a node is already running on data dir"), "{err}");

    // The CLI reads the same API.
    let a_data = data("node-a");
    let a_data = a_data.to_str().unwrap();
    let (code, out, err) = ripple(&["--data", a_data, "peers", "--online"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("node-b") && out.contains("node-d") && out.contains("4 node(s)"), "{out}");
    let (code, out, err) = ripple(&["--data", a_data, "--json", "status"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["peer_count"], 3);
    assert_eq!(json["agent_pubkey"], a.agent());

    // Only this machine's own clients: a DNS-rebinding page (a foreign Host), a cross-site write (a
    // foreign Origin) and a browser at the conductor's admin websocket are refused; the collection
    // the cross-site write asked for is never created (node-d lists only `docs` below).
    let http = reqwest::Client::new();
    for url in [a.api("advert/refresh"), a.ready.mcp_url.clone().expect("node-a serves MCP")] {
        let rebound = http.post(&url).header("host", "rebind.example:80").json(&json!({})).send().await.unwrap();
        assert_eq!(rebound.status(), 403, "{url}");
        let body: serde_json::Value = rebound.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("`rebind.example:80` is not a loopback name"), "{body}");
    }
    let cross_site =
        http.post(a.api("shards")).header("origin", "http://rebind.example").json(&json!({"collection": "evil"}));
    let cross_site = cross_site.send().await.unwrap();
    assert_eq!(cross_site.status(), 403);
    let admin = a.ready.status.diagnostics.admin_url.trim_start_matches("ws://");
    assert_eq!(websocket_handshake(admin, "http://rebind.example").await, 400, "a browser origin at the admin API");
    assert_eq!(websocket_handshake(admin, "holochain_websocket").await, 101, "the sidecar's own clients");

    // A collection in 16 shards, replication factor 2, created on node-b (any node may own one).
    let b_data = data("node-b");
    let created: MapView = ripple_json(&b_data, &["shards", "create", "docs"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((created.shard_count, created.replication_factor, created.epoch), (16, 2, 1));
    assert_eq!(created.owner, b.agent());
    // Once node-d sees the map, creating it again there is refused. node-d joined last, and a peer
    // may drop its memory_shards requests until it next polls the bootstrap server (at most 60 s:
    // holochain#5962, the first message on a new connection carries the agent info of one DNA
    // only), so one read may time out at the conductor's 60 s before the next one answers.
    let seen: Vec<MapView> = eventually("node-d to see the collection", Duration::from_secs(150), || async {
        let maps: Vec<MapView> = ripple_json(&data("node-d"), &["shards", "list"])?;
        if maps.is_empty() {
            Err("no collections yet".to_string())
        } else {
            Ok(maps)
        }
    })
    .await;
    assert_eq!(seen, vec![created.clone()]);
    let again = ripple_json::<MapView>(&data("node-d"), &["shards", "create", "docs"]).unwrap_err();
    assert!(again.contains("`docs` already has a shard map"), "{again}");
    let placed =
        eventually("every shard on its two placed nodes", Duration::from_secs(120), || fully_placed(&a, 4)).await;
    let all = [&a, &b, &c, &d];
    let routes =
        eventually("every node to route every key the same way", Duration::from_secs(60), || agreed_routes(&all)).await;
    for (shard, holders) in &routes {
        assert_eq!(holders, &placed.shards[*shard as usize].placed, "a key's holders are its shard's");
    }
    let claims: Vec<ClaimView> = ripple_json(&data("node-d"), &["shards", "claims"]).unwrap();
    assert_eq!(
        claims.len(),
        32,
        "one claim per replica, nothing twice; the shard loops wrote:\n{}",
        shard_writes(&all)
    );
    let route: RouteView = ripple_json(&data("node-d"), &["shards", "route", "doc-0"]).unwrap();
    assert_eq!(
        (route.shard, route.primary.as_ref().map(|h| h.agent.clone())),
        (routes[0].0, routes[0].1.first().cloned())
    );

    // Checkpoints: the holder of a replica records its progress; nobody else can.
    let held = placed.shards.iter().find(|s| s.placed.contains(&a.agent().to_string())).expect("node-a holds a shard");
    let not_held = placed.shards.iter().find(|s| !s.placed.contains(&a.agent().to_string())).expect("and not all");
    let shard = held.shard.to_string();
    let written: CheckpointView =
        ripple_json(&data("node-a"), &["shards", "checkpoint", "--shard", &shard, "--vectors", "100"])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((written.sequence, written.vector_count), (1, 100));
    let refused_cp = ripple_json::<CheckpointView>(
        &data("node-a"),
        &["shards", "checkpoint", "--shard", &not_held.shard.to_string(), "--vectors", "1"],
    )
    .unwrap_err();
    assert!(refused_cp.contains("holds no replica of shard"), "{refused_cp}");

    // The MCP tools, through the Python SDK on node-a.
    let url_a = a.ready.mcp_url.clone().expect("node-a serves MCP");
    let session = python_session(json!({"server": {"url": url_a}, "mode": "auto", "calls": [
        {"tool": "memory.route", "arguments": {"key": "doc-0"}},
        {"tool": "memory.shard_map", "arguments": {"collection": "docs"}},
        {"tool": "memory.checkpoint", "arguments": {"shard": held.shard, "vector_count": 150,
            "snapshot_cid": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"}},
        {"tool": "memory.checkpoint", "arguments": {"shard": held.shard, "vector_count": 1, "sequence": 1}},
        {"tool": "memory.route", "arguments": {"key": "doc-0", "collection": "Not A Name"}},
        {"tool": "memory.shard_map", "arguments": {"collection": "nothing-here"}},
    ]}));
    let c0 = calls(&session);
    assert_eq!(ok(&c0[0])["shard"], json!(routes[0].0));
    assert_eq!(ok(&c0[0])["holders"].as_array().unwrap().len(), 2);
    assert_eq!(ok(&c0[1])["live_replicas"], json!(32));
    assert_eq!(ok(&c0[2])["sequence"], json!(2));
    refused(&c0[3], &["sequence 1 is not after this replica's last checkpoint 2"]);
    refused(&c0[4], &["`collection`: must match"]);
    refused(&c0[5], &["no collection `nothing-here`"]);
    let winner = eventually("the checkpoint in node-d's map", Duration::from_secs(60), || async {
        let report: MapReport = try_get_json(&d.api("shards/map")).await?;
        report.shards[held.shard as usize]
            .checkpoint
            .clone()
            .filter(|c| c.sequence == 2)
            .ok_or_else(|| format!("{report:?}"))
    })
    .await;
    assert_eq!((winner.holder.as_str(), winner.vector_count), (a.agent(), 150));

    // Crash between decision and action: `ripple allocate` on node-c passes the gate, the Decision
    // is committed, and the process aborts before it allocates (no goodbye either, so node-c drops
    // out only when its peers' probes go unanswered).
    let c_agent = c.agent().to_string();
    let c_original = c.status().await.node.advert.expect("advert").original;
    let c_policies: serde_json::Value = get_json(&c.api("policy")).await;
    assert!(c_policies["in_force"].as_array().is_some_and(|p| !p.is_empty()), "node-c enforces published policies");
    let c_data = data("node-c");
    let c_dir = c_data.to_str().unwrap();
    let (code, _, err) = ripple(&["--data", c_dir, "allocate", "compute", "--cpu", "1", "--duration", "60"]);
    let crashed = std::time::Instant::now();
    assert_ne!(code, 0, "the node died under the allocation: {err}");
    assert!(
        !err.contains("the node answered"),
        "node-c answered instead of dying after the decision: {err}\n{}",
        c.log()
    );
    let status = c.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "node-c aborted: {status:?}");
    // Every survivor's liveness protocol declares node-c dead (its probes, not the heartbeat
    // window: the row's `liveness` says so), and no survivor sees another change state meanwhile.
    let survivors = [&a, &b, &d];
    let mut detected: Vec<Option<Duration>> = vec![None; survivors.len()];
    let mut flaps = Vec::new();
    while detected.iter().any(Option::is_none) && crashed.elapsed() < Duration::from_secs(120) {
        for (node, seen) in survivors.iter().zip(&mut detected) {
            let Ok(peers) = node.try_peers("").await else { continue };
            for p in &peers {
                if p.agent_pubkey != c_agent && p.state != "online" {
                    flaps.push(format!("{} saw {} {} ({:?})", node.name, p.advert.agent_name, p.state, p.liveness));
                } else if p.agent_pubkey == c_agent && p.state == "offline" && seen.is_none() {
                    assert_eq!(p.liveness, Some(MemberState::Dead), "{} judged node-c by its probes", node.name);
                    *seen = Some(crashed.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(flaps.is_empty(), "only node-c changed state: {flaps:?}");
    let detected: Vec<Duration> = detected.into_iter().map(|d| d.expect("every survivor saw node-c's crash")).collect();
    eprintln!("node-c's crash seen by node-a, node-b, node-d after {detected:?}");
    let online: Vec<PeerRow> = a.peers("online_only=true").await;
    assert!(online.iter().all(|p| p.agent_pubkey != c_agent), "--online leaves node-c out");

    // Its shards are re-claimed by the next nodes on their rings, and routing agrees again.
    let survivors = [&a, &b, &d];
    let interim = eventually("node-c's shards re-claimed", Duration::from_secs(120), || fully_placed(&a, 3)).await;
    assert!(interim.shards.iter().all(|s| s.holders.iter().all(|h| h.agent != c_agent)));
    for (before, after) in placed.shards.iter().zip(&interim.shards) {
        let kept: Vec<&String> = before.placed.iter().filter(|h| **h != c_agent).collect();
        assert!(kept.iter().all(|h| after.placed.contains(h)), "only node-c's shards moved: {before:?} -> {after:?}");
    }
    eventually("the survivors to route every key the same way", Duration::from_secs(60), || agreed_routes(&survivors))
        .await;

    // Restart with the same data dir and a plain `ripple up`: it rejoins node-a's bootstrap from
    // what the data dir joined. Same agent, same advert entry, no reinstall.
    let restarted = std::time::Instant::now();
    let c = Sidecar::start(launch("node-c", vec![]));
    assert_eq!(c.ready.status.diagnostics.bootstrap_url, a.ready.status.diagnostics.bootstrap_url, "rejoined node-a's");
    assert!(!c.ready.status.diagnostics.serving_bootstrap);
    assert_eq!(c.agent(), c_agent, "the restart reuses the agent key");
    assert!(!c.ready.installed_now, "the hApp is installed once");
    // It enforces the versions it held, read from its own store while its peers cannot answer it yet.
    let policies: serde_json::Value = get_json(&c.api("policy")).await;
    assert_eq!(policies["in_force"], c_policies["in_force"], "node-c's policies right after its restart");
    assert_eq!(
        c.status().await.node.advert.expect("advert").original,
        c_original,
        "the advert is updated, not re-created"
    );
    eventually("node-c online again on node-a, listed once", Duration::from_secs(120), || async {
        let peers = a.try_peers("").await?;
        let rows: Vec<_> = peers.iter().filter(|p| p.agent_pubkey == c_agent).collect();
        match rows.as_slice() {
            [row] if row.state == "online" => Ok(()),
            _ => Err(format!("{:?}", rows.iter().map(|r| &r.state).collect::<Vec<_>>())),
        }
    })
    .await;
    eprintln!("node-c online again on node-a {:?} after its restart began", restarted.elapsed());
    // Its advert can reach node-a (sent when node-a first answers it) before its liveness loop's
    // first introduction, a second after the loop starts.
    eventually("node-c introduced its new address", Duration::from_secs(15), || async {
        let liveness = c.status().await.liveness;
        match liveness.introductions_sent {
            0 => Err(format!("{liveness:?}")),
            _ => Ok(()),
        }
    })
    .await;
    eprintln!("node-c's liveness after the restart: {:?}", c.status().await.liveness);
    for node in [&a, &b, &c, &d] {
        let blocked = node.status().await.diagnostics.blocked_messages;
        eprintln!("{}: messages dropped for an unknown peer address so far: {blocked:?}", node.name);
    }
    assert_eq!(a.peers("").await.len(), 4, "four nodes, four rows");
    // Back on the mesh, node-c's old claims count again: the interim holders hand its shards back
    // after the settle window, and the map returns to where it was, then stays there.
    let settled = eventually("the shards to settle back", Duration::from_secs(150), || async {
        let report = fully_placed(&a, 4).await?;
        let claims: Vec<ClaimView> = try_get_json(&a.api("shards/claims")).await?;
        if claims.len() == 32 {
            Ok(report)
        } else {
            Err(format!("{} claims", claims.len()))
        }
    })
    .await;
    for (before, after) in placed.shards.iter().zip(&settled.shards) {
        assert_eq!(after.placed, before.placed, "shard {} is back on its nodes", before.shard);
    }
    tokio::time::sleep(Duration::from_secs(12)).await; // four more passes of every loop
    let claims: Vec<ClaimView> = get_json(&a.api("shards/claims")).await;
    let all = [&a, &b, &c, &d];
    assert_eq!(claims.len(), 32, "no flapping after the hand-back; shard writes:\n{}", shard_writes(&all));
    let again = eventually("all four to agree again", Duration::from_secs(60), || agreed_routes(&all)).await;
    assert_eq!(again, routes, "every key goes where it went before the crash; shard writes:\n{}", shard_writes(&all));
    // The Decision written before the crash survived it and reached the mesh; the allocation it
    // allowed never happened.
    let decided: Vec<DecisionView> =
        eventually("node-c's pre-crash decision on node-a", Duration::from_secs(120), || async {
            let rows: Vec<DecisionView> = ripple_json(&data("node-a"), &["policy", "decisions", "--node", &c_agent])?;
            if rows.iter().any(|d| d.action == "resources.allocate") {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
    assert!(decided.iter().all(|d| d.verdict.allowed && d.verdict.package == "resources.allocate"), "{decided:?}");
    let allocations: Vec<ripple::resources::AllocationRow> =
        ripple_json(&c_data, &["allocations"]).unwrap_or_else(|e| panic!("{e}\n{}", c.log()));
    assert!(allocations.is_empty(), "the crash came before the allocation: {allocations:?}");

    // SIGTERM: the node says offline before it stops, so others need not wait for the window.
    let b_agent = b.agent().to_string();
    let code = b.terminate();
    assert!(code.success(), "clean shutdown exits 0, got {code:?}");
    assert!(!data("node-b").join("ripple.run.json").exists(), "the run file is removed");
    // node-a hears it by signal or its next catch-up; node-d, without signals, by a catch-up.
    let stopped = std::time::Instant::now();
    for node in [&a, &d] {
        eventually(&format!("node-b's advert to say offline on {}", node.name), Duration::from_secs(60), || async {
            let peers = node.try_peers("").await?;
            let row = peers.iter().find(|p| p.agent_pubkey == b_agent).ok_or("node-b missing")?;
            if row.advert.availability == agent_registry_types::Availability::Offline && row.state == "offline" {
                Ok(())
            } else {
                Err(format!("{:?}, {}", row.advert.availability, row.state))
            }
        })
        .await;
        eprintln!("node-b's offline advert reached {}'s view {:?} after node-b stopped", node.name, stopped.elapsed());
    }
    let view = d.status().await.view;
    assert_eq!(view.signals_applied, 0, "node-d applied no signal: {view:?}");
    assert!(view.catch_ups > 0, "{view:?}");

    // The metrics a Prometheus scrape sees.
    let metrics = reqwest::get(a.api("metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "ripple_peers ",
        "ripple_heartbeat_age_seconds ",
        "ripple_conductor_rss_bytes ",
        "ripple_zome_call_duration_seconds_bucket{zome=\"discovery\",fn=\"read_changes\",le=\"+Inf\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
}

/// The map on `node` once every shard has exactly two live holders, the ones placement puts it
/// on, among `eligible` nodes.
pub(crate) async fn fully_placed(node: &Sidecar, eligible: usize) -> Result<MapReport, String> {
    let report: MapReport = try_get_json(&node.api("shards/map?collection=docs")).await?;
    let placed = report
        .shards
        .iter()
        .all(|s| s.holders.len() == 2 && s.holders.iter().map(|h| &h.agent).eq(s.placed.iter()) && !s.under_replicated);
    if report.eligible_nodes == eligible && report.live_replicas == 32 && placed {
        Ok(report)
    } else {
        Err(format!(
            "{} eligible, {} live replicas, {} under-replicated",
            report.eligible_nodes, report.live_replicas, report.under_replicated_shards
        ))
    }
}

/// Every node's shard-loop writes (claims, drops, hand-backs), from its log, for a failure message.
fn shard_writes(nodes: &[&Sidecar]) -> String {
    let mut out = String::new();
    for node in nodes {
        let log = node.log();
        let writes = log.lines().filter(|l| {
            l.contains("shard") && ["claimed", "dropped", "handed", "placement now"].iter().any(|w| l.contains(w))
        });
        for line in writes {
            out += &format!("{}: {line}\n", node.name);
        }
    }
    out
}

/// Routes `KEYS` keys on every node: the same shard and holders everywhere, or which node differs.
pub(crate) async fn agreed_routes(nodes: &[&Sidecar]) -> Result<Vec<(u32, Vec<String>)>, String> {
    let mut agreed: Option<Vec<(u32, Vec<String>)>> = None;
    for node in nodes {
        let mut routes = vec![];
        for i in 0..KEYS {
            let r: RouteView = try_get_json(&node.api(&format!("shards/route?collection=docs&key=doc-{i}"))).await?;
            routes.push((r.shard, r.holders.iter().map(|h| h.agent.clone()).collect()));
        }
        match &agreed {
            None => agreed = Some(routes),
            Some(first) if *first == routes => {}
            Some(first) => return Err(format!("{} routes {routes:?}, {} routes {first:?}", node.name, nodes[0].name)),
        }
    }
    agreed.ok_or_else(|| "no nodes".into())
}

/// The HTTP status a websocket upgrade to `addr` with this `Origin` gets.
async fn websocket_handshake(addr: &str, origin: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to the admin websocket");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = tcp.read(&mut head).await.unwrap();
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {line:?}"))
}
