//! Three real sidecars on a local network: they find each other, a node that crashes between a
//! policy decision and its action goes offline after the window, and a restart keeps its agent key,
//! its one advert and the decision, without the action.
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ripple::api::PeerRow;
use ripple::policy::service::DecisionView;

use super::harness::*;

fn names_by_state(peers: &[PeerRow], state: &str) -> BTreeSet<String> {
    peers.iter().filter(|p| p.state == state).map(|p| p.advert.agent_name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_sidecars_find_each_other_survive_a_crash_after_a_decision_and_restart_without_duplicates() {
    let tmp = TempDir::new("mesh");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let data = |n: &str| tmp.path().join(n);
    let launch = |name: &str, extra: Vec<String>| Launch {
        name: name.into(),
        data: data(name),
        manifests: manifests.root.clone(),
        network: "e2e".into(),
        extra,
        env: vec![],
    };

    let a = Sidecar::start(launch("node-a", vec![]));
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
        ..launch("node-c", join())
    };
    let c = Sidecar::start(crashing);
    assert!(!b.ready.status.diagnostics.serving_bootstrap);
    let hashes = |node: &Sidecar| node.ready.status.cell_ids.iter().map(|c| c.dna_hash.clone()).collect::<Vec<_>>();
    assert_eq!(hashes(&a), hashes(&c), "one network, one DNA per role, policy_store with the creator as admin");
    assert_eq!(a.ready.status.policy_admin.as_deref(), Some(a.agent()), "the creator administers policy");
    assert_eq!(c.ready.status.policy_admin, a.ready.status.policy_admin);

    let everyone: BTreeSet<String> = ["node-a", "node-b", "node-c"].map(String::from).into();
    for node in [&a, &b, &c] {
        let peers = eventually(&format!("{} to see all three online", node.name), Duration::from_secs(180), || async {
            let peers = node.peers("").await;
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
        if s.peer_count == 2 && s.mesh_status == ripple::mesh::MeshStatus::Connected {
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
    assert!(out.contains("node-b") && out.contains("node-c") && out.contains("3 node(s)"), "{out}");
    let (code, out, err) = ripple(&["--data", a_data, "--json", "status"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["peer_count"], 2);
    assert_eq!(json["agent_pubkey"], a.agent());

    // Crash between decision and action: `ripple allocate` on node-c passes the gate, the Decision
    // is committed, and the process aborts before it allocates (no goodbye either, so node-c drops
    // out only when its heartbeats leave the window).
    let c_agent = c.agent().to_string();
    let c_original = c.status().await.node.advert.expect("advert").original;
    let c_data = data("node-c");
    let c_dir = c_data.to_str().unwrap();
    let (code, _, err) = ripple(&["--data", c_dir, "allocate", "compute", "--cpu", "1", "--duration", "60"]);
    assert_ne!(code, 0, "the node died under the allocation: {err}");
    let status = c.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "node-c aborted: {status:?}");
    eventually("node-c to show offline on node-a", Duration::from_secs(120), || async {
        let peers = a.peers("").await;
        let c_row = peers.iter().find(|p| p.agent_pubkey == c_agent).ok_or("node-c missing")?;
        if c_row.state == "offline" {
            Ok(())
        } else {
            Err(c_row.state.clone())
        }
    })
    .await;
    let online: Vec<PeerRow> = a.peers("online_only=true").await;
    assert!(online.iter().all(|p| p.agent_pubkey != c_agent), "--online leaves node-c out");

    // Restart with the same data dir: same agent, same advert entry, no reinstall.
    let c = Sidecar::start(launch("node-c", join()));
    assert_eq!(c.agent(), c_agent, "the restart reuses the agent key");
    assert!(!c.ready.installed_now, "the hApp is installed once");
    assert_eq!(
        c.status().await.node.advert.expect("advert").original,
        c_original,
        "the advert is updated, not re-created"
    );
    eventually("node-c online again on node-a, listed once", Duration::from_secs(120), || async {
        let peers = a.peers("").await;
        let rows: Vec<_> = peers.iter().filter(|p| p.agent_pubkey == c_agent).collect();
        match rows.as_slice() {
            [row] if row.state == "online" => Ok(()),
            _ => Err(format!("{:?}", rows.iter().map(|r| &r.state).collect::<Vec<_>>())),
        }
    })
    .await;
    assert_eq!(a.peers("").await.len(), 3, "three nodes, three rows");
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
    eventually("node-b's advert to say offline on node-a", Duration::from_secs(60), || async {
        let peers = a.peers("").await;
        let row = peers.iter().find(|p| p.agent_pubkey == b_agent).ok_or("node-b missing")?;
        if row.advert.availability == agent_registry_types::Availability::Offline {
            Ok(())
        } else {
            Err(format!("{:?}", row.advert.availability))
        }
    })
    .await;

    // The metrics a Prometheus scrape sees.
    let metrics = reqwest::get(a.api("metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "ripple_peers ",
        "ripple_heartbeat_age_seconds ",
        "ripple_conductor_rss_bytes ",
        "ripple_zome_call_duration_seconds_bucket{zome=\"discovery\",fn=\"query_peers\",le=\"+Inf\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
}
