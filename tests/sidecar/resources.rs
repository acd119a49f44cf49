//! Allocation end to end through two real sidecars and the `ripple` CLI: both nodes offer what
//! their adverts say, the scheduler prefers this node (nearest), a request too big for it goes to
//! the other node's provider loop over the DHT, releases show up in `ripple allocations`, and a
//! node that stops is filtered out of the plan as offline.
use std::time::Duration;

use ripple::policy::service::{AuditView, DecisionView};
use ripple::resources::scheduler::Plan;
use ripple::resources::{Allocation, AllocationRow, Available};

use super::harness::*;
use crate::support::repo_root;

/// Waits until the node's gate runs `version` of tools.call (`ripple policy show`).
async fn tools_call_in_force(data: &std::path::Path, version: u64) {
    eventually(&format!("tools.call version {version} in force"), Duration::from_secs(90), || async {
        let shown: serde_json::Value = ripple_json(data, &["policy", "show"])?;
        let tools = shown["in_force"].as_array().into_iter().flatten().find(|p| p["package"] == "tools.call");
        match tools.and_then(|p| p["version"].as_u64()) {
            Some(v) if v == version => Ok(()),
            _ => Err(shown.to_string()),
        }
    })
    .await
}

/// `ripple_json` that must succeed.
fn cli<T: serde::de::DeserializeOwned>(node: &Sidecar, data: &std::path::Path, args: &[&str]) -> T {
    ripple_json(data, args).unwrap_or_else(|e| panic!("{e}\nnode log of {}:\n{}", node.name, node.log()))
}

/// Slow (minutes): two nodes' first starts, a remote allocation through the other node's provider
/// loop, two policy versions reaching the other node, and a stopped node aging out as offline.
#[tokio::test(flavor = "multi_thread")]
async fn two_sidecars_allocate_locally_then_remotely_and_skip_a_stopped_provider() {
    let tmp = TempDir::new("resources");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let a = Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", "node-a", &["--region", "us-west"]));
    let b_data = tmp.path().join("node-b");
    let mut extra = vec!["--region".to_string(), "us-west".into()];
    extra.extend(a.join_args());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let b = Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", "node-b", &extra));

    // Both offers reach B: everything each advert says (this machine's cores and RAM).
    let cores = b.status().await.node.probe.expect("probe").cpu_cores;
    let available: Vec<Available> =
        eventually("node-b to see both offers online", Duration::from_secs(180), || async {
            let rows: Vec<Available> = ripple_json(&b_data, &["available"])?;
            let online = rows.iter().filter(|r| r.state == "online").count();
            if online == 2 {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
    assert!(available.iter().all(|r| r.offered.cpu_cores == cores && r.free.cpu_cores == cores), "{available:?}");

    // node-a answers a peer's request directly only once it holds that peer's advert (its proof
    // of membership); until then node-b's requests take the inbox, as for any node just joined.
    let a_data = tmp.path().join("node-a");
    let b_key = b.agent();
    eventually("node-a to hold node-b's advert", Duration::from_secs(180), || async {
        let rows: Vec<serde_json::Value> = ripple_json(&a_data, &["peers"])?;
        match rows.iter().any(|r| r["agent_pubkey"] == b_key) {
            true => Ok(()),
            false => Err(format!("{rows:?}")),
        }
    })
    .await;

    // Nearest: this node first, then the other node of its region.
    let plan: Plan = cli(&b, &b_data, &["allocate", "compute", "--cpu", "1", "--memory-gb", "1", "--dry-run"]);
    let order: Vec<&str> = plan.candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order, ["node-b", "node-a"], "{plan:?}");
    assert_eq!(plan.candidates[0].locality, 1.0);
    assert_eq!(plan.candidates[1].locality, 0.6);

    let local: Allocation =
        cli(&b, &b_data, &["allocate", "compute", "--cpu", "1", "--memory-gb", "1", "--duration", "600"]);
    assert_eq!(local.node_name, "node-b", "{local:?}");
    assert_eq!(local.amounts.cpu_cores, 1);
    let path = |a: &Allocation| a.attempts.last().map(|t| t.path.clone()).unwrap_or_default();
    assert_eq!(path(&local), "direct", "this node answered its own request in-process: {local:?}");

    // All of a node's cores: node-b has one in use now, so node-a's provider loop grants it.
    let all = cores.to_string();
    let asked = std::time::Instant::now();
    let remote: Allocation = cli(&b, &b_data, &["allocate", "compute", "--cpu", &all, "--duration", "600"]);
    eprintln!("`ripple allocate` answered by node-a in {:.0?} (CLI process included)", asked.elapsed());
    assert_eq!(remote.node_name, "node-a", "{remote:?}");
    assert_eq!(path(&remote), "direct", "node-a answered on its peer route: {remote:?}");
    // A second one fits nowhere: the plan says why for each node.
    let full: Plan = eventually("node-a's new load to reach node-b", Duration::from_secs(60), || async {
        let plan: Plan = ripple_json(&b_data, &["allocate", "compute", "--cpu", &all, "--dry-run"])?;
        if plan.candidates.is_empty() {
            Ok(plan)
        } else {
            Err(format!("{plan:?}"))
        }
    })
    .await;
    assert!(full.filtered.iter().all(|f| f.reason.starts_with("not enough free cpu_cores")), "{full:?}");
    let (code, _, err) = ripple(&["--data", b_data.to_str().unwrap_or_default(), "allocate", "compute", "--cpu", &all]);
    assert_ne!(code, 0);
    assert!(err.contains("no node can take this allocation") && err.contains("node-a"), "{err}");

    // Release the remote allocation (node-a writes it when told); both show up in this node's list.
    let _: serde_json::Value = cli(&b, &b_data, &["release", &remote.allocation_id]);
    // The released cores are free at once on node-b, the node that told node-a to release them
    // (not at node-a's next grant, at the expiry, or once the release reaches node-b's DHT).
    eventually("node-a's released cores to be free again on node-b", Duration::from_secs(30), || async {
        let rows: Vec<Available> = ripple_json(&b_data, &["available"])?;
        match rows.iter().find(|r| r.node_name == "node-a") {
            Some(a) if a.free.cpu_cores == cores && a.active_allocations == 0 => Ok(()),
            _ => Err(format!("{rows:?}")),
        }
    })
    .await;
    let status_in = |rows: &[AllocationRow], id: &str| {
        rows.iter().find(|r| r.allocation_id.as_deref() == Some(id)).map(|r| r.status.clone())
    };
    let rows = eventually("node-a's release to reach node-b", Duration::from_secs(60), || async {
        let rows: Vec<AllocationRow> = ripple_json(&b_data, &["allocations"])?;
        match status_in(&rows, &remote.allocation_id).as_deref() {
            Some("released") => Ok(rows),
            _ => Err(format!("{rows:?}")),
        }
    })
    .await;
    let status = |id: &str| status_in(&rows, id);
    assert_eq!(status(&local.allocation_id).as_deref(), Some("granted"), "{rows:?}");
    assert!(rows
        .iter()
        .any(|r| r.side == "provider" && r.allocation_id.as_deref() == Some(local.allocation_id.as_str())));
    // Bad input is refused with the reason, before anything is written.
    let (code, _, err) = ripple(&["--data", b_data.to_str().unwrap_or_default(), "release", "not-a-hash"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not an action hash"), "{err}");
    let (code, _, err) = ripple(&["--data", b_data.to_str().unwrap_or_default(), "allocate", "inference"]);
    assert_ne!(code, 0);
    assert!(err.contains("needs model_name"), "{err}");

    // Policy: node-a created the network, so it is the admin and published the defaults as
    // version 1; node-b's gate takes them from the DHT.
    tools_call_in_force(&b_data, 1).await;
    let shown: serde_json::Value = cli(&b, &b_data, &["policy", "show"]);
    assert_eq!(shown["admins"], serde_json::json!([a.agent()]), "{shown}");
    // Version 2 of tools.call disables allocations. Only the admin may publish it, and broken Rego
    // is refused with its line and column before anything is written.
    let rego = repo_root().join("manifests/policies/tools.call.rego");
    let disable = tmp.path().join("disable.json");
    std::fs::write(&disable, r#"{"disabled_actions": ["resources.allocate"]}"#).unwrap();
    let publish = |data: &std::path::Path, file: &std::path::Path| {
        ripple(&[
            "--data",
            data.to_str().unwrap_or_default(),
            "policy",
            "publish",
            file.to_str().unwrap_or_default(),
            "--data-json",
            disable.to_str().unwrap_or_default(),
        ])
    };
    let (code, _, err) = publish(&b_data, &rego);
    assert!(code != 0 && err.contains("only this network's policy admins publish policy"), "{code} {err}");
    let broken = tmp.path().join("broken.rego");
    std::fs::write(&broken, "package tools.call\n\ndefault allow := (\n").unwrap();
    let (code, _, err) = publish(&a_data, &broken);
    assert!(code != 0 && err.contains("invalid Rego at line"), "{code} {err}");
    let published: serde_json::Value = cli(
        &a,
        &a_data,
        &["policy", "publish", rego.to_str().unwrap_or_default(), "--data-json", disable.to_str().unwrap_or_default()],
    );
    assert_eq!(published["version"], 2, "{published}");

    // Once node-b's refresh has installed version 2, an allocation is refused naming the policy
    // and its reason, nothing is allocated, and the Decision and an audit event remain.
    tools_call_in_force(&b_data, 2).await;
    let before: Vec<AllocationRow> = cli(&b, &b_data, &["allocations"]);
    let b_dir = b_data.to_str().unwrap_or_default();
    let (code, _, denial) = ripple(&["--data", b_dir, "allocate", "compute", "--cpu", "1", "--duration", "60"]);
    assert!(code != 0 && denial.contains("denied by policy tools.call version 2"), "{code} {denial}");
    assert!(denial.contains("resources.allocate is disabled on this network"), "{denial}");
    let after: Vec<AllocationRow> = cli(&b, &b_data, &["allocations"]);
    assert_eq!(after.len(), before.len(), "a denied allocation allocates nothing");
    let decisions: Vec<DecisionView> = cli(&b, &b_data, &["policy", "decisions", "--node", b.agent()]);
    let denied = decisions.iter().find(|d| !d.verdict.allowed && d.action == "resources.allocate");
    let denied = denied.unwrap_or_else(|| panic!("no recorded denial among {decisions:?}"));
    assert_eq!((denied.verdict.package.as_str(), denied.verdict.version), ("tools.call", 2));
    assert!(decisions.iter().any(|d| d.verdict.allowed && d.action == "resources.release"), "{decisions:?}");
    let audit: Vec<AuditView> = cli(&b, &b_data, &["policy", "audit", "--subject", "resources.allocate"]);
    assert!(audit.iter().any(|e| e.outcome == "denied" && e.author == b.agent()), "{audit:?}");

    // node-a stops: it goes offline in its advert and the scheduler filters it out.
    assert!(a.terminate().success());
    let plan: Plan = eventually("node-a to be filtered as offline", Duration::from_secs(120), || async {
        let plan: Plan = ripple_json(&b_data, &["allocate", "compute", "--cpu", "1", "--dry-run"])?;
        if plan.filtered.iter().any(|f| f.name == "node-a" && f.reason.starts_with("offline")) {
            Ok(plan)
        } else {
            Err(format!("{plan:?}"))
        }
    })
    .await;
    assert_eq!(plan.candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["node-b"]);
}
