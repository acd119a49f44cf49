//! Allocation end to end through two real sidecars and the `ripple` CLI: both nodes offer what
//! their adverts say, the scheduler prefers this node (nearest), a request too big for it goes to
//! the other node's provider loop over the DHT, releases show up in `ripple allocations`, and a
//! node that stops is filtered out of the plan as offline.
use std::time::Duration;

use ripple::resources::scheduler::Plan;
use ripple::resources::{Allocation, AllocationRow, Available};

use super::harness::*;

/// `ripple_json` that must succeed.
fn cli<T: serde::de::DeserializeOwned>(node: &Sidecar, data: &std::path::Path, args: &[&str]) -> T {
    ripple_json(data, args).unwrap_or_else(|e| panic!("{e}\nnode log of {}:\n{}", node.name, node.log()))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sidecars_allocate_locally_then_remotely_and_skip_a_stopped_provider() {
    let tmp = TempDir::new("resources");
    let manifests = test_manifests(&tmp.path().join("manifests")).await;
    let a = Sidecar::start(Launch::node(tmp.path(), &manifests, "e2e", "node-a", &["--region", "us-west"]));
    let bootstrap = a.ready.status.diagnostics.bootstrap_url.clone().expect("bootstrap url");
    let b_data = tmp.path().join("node-b");
    let b = Sidecar::start(Launch::node(
        tmp.path(),
        &manifests,
        "e2e",
        "node-b",
        &["--region", "us-west", "--bootstrap", &bootstrap],
    ));

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

    // All of a node's cores: node-b has one in use now, so node-a's provider loop grants it.
    let all = cores.to_string();
    let remote: Allocation = cli(&b, &b_data, &["allocate", "compute", "--cpu", &all, "--duration", "600"]);
    assert_eq!(remote.node_name, "node-a", "{remote:?}");
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

    // Release the remote allocation; both show up in this node's list.
    let _: serde_json::Value = cli(&b, &b_data, &["release", &remote.allocation_id]);
    let rows: Vec<AllocationRow> = cli(&b, &b_data, &["allocations"]);
    let status = |id: &str| rows.iter().find(|r| r.allocation_id.as_deref() == Some(id)).map(|r| r.status.clone());
    assert_eq!(status(&remote.allocation_id).as_deref(), Some("released"), "{rows:?}");
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
