//! The write-ahead gate (`ripple::policy::WriteAheadGate`) on real conductors, its log being the
//! `decisions` zome: a version the admin publishes on node A takes effect in node B's gate once B
//! refreshes from the DHT; B's denial is on B's chain (validated against A's version) before the
//! error returns; a decision committed just before B's conductor goes down is there after it
//! restarts, and A reads B's decisions by hour.
use std::sync::Arc;
use std::time::Duration;

use holochain::sweettest::*;
use policy_store_types::*;
use ripple::policy::{DecisionLog, GateError, Gates, Installed, WriteAheadGate};
use serde_json::json;

use crate::support::*;

/// A node's `decisions` zome as the gate's log.
pub struct ChainLog<'a> {
    pub conductor: &'a SweetConductor,
    pub cell: &'a SweetCell,
}

impl DecisionLog for ChainLog<'_> {
    async fn record(&self, decision: DecisionInput) -> anyhow::Result<DecisionRecord> {
        Ok(self.conductor.call_fallible(&self.cell.zome("decisions"), "record_decision", decision).await?)
    }
}

async fn my_decisions(conductor: &SweetConductor, cell: &SweetCell) -> Vec<DecisionRecord> {
    conductor.call(&cell.zome("decisions"), "get_my_decisions", 10u32).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_published_on_a_gates_b_and_decisions_are_written_ahead() {
    let mut conductors = SweetConductorBatch::standard(2).await;
    let alice_key = SweetAgents::one(conductors[0].keystore()).await;
    let props = PolicyProperties { admins: vec![alice_key.clone().into()], ..Default::default() };
    let dna = policy_dna(&unique_seed("policy-gate"), &props, false).await;
    seed_compiled_zomes(conductors.iter(), &[&dna]).await;
    let role = policy_role(&dna);
    let (alice_cell,) = conductors[0].setup_app_for_agent("ripple", alice_key, [&role]).await.unwrap().into_tuple();
    let (bob_cell,) = conductors[1].setup_app("ripple", [&role]).await.unwrap().into_tuple();

    // B gates with the built-in defaults until a version is published.
    let gates = Arc::new(Gates::with_defaults().unwrap());
    let publish =
        json!({"action": "artifacts.publish", "via": "cli", "args": {"name": "model.gguf"}, "size_bytes": 1024});
    {
        let gate = WriteAheadGate::new(gates.clone(), ChainLog { conductor: &conductors[1], cell: &bob_cell });
        let permit = gate.pass("artifacts.publish", &publish).await.expect("the defaults allow a small publish");
        assert_eq!((permit.verdict.package.as_str(), permit.verdict.version), ("artifacts.publish", 0));
        assert_eq!(my_decisions(&conductors[1], &bob_cell).await, vec![permit.decision.clone()]);
    }

    // A (the admin) disables publishing; B refreshes from the DHT and installs version 1.
    let tools = gates.get("tools.call").unwrap().source().rego.clone();
    let disable = PublishInput {
        package: "tools.call".into(),
        rego: tools,
        data: Some(json!({"disabled_actions": ["artifacts.publish"]}).to_string()),
        description: "no publishing during the freeze".into(),
    };
    let v1: BundleRecord = conductors[0].call(&alice_cell.zome("policies"), "publish_bundle", disable).await;
    let current = eventually("B reads version 1 of tools.call", Duration::from_secs(90), || async {
        let current: Vec<BundleRecord> =
            conductors[1].call(&bob_cell.zome("policies"), "get_current_bundles", ()).await;
        current.iter().any(|b| b.bundle_id == v1.bundle_id).then_some(current)
    })
    .await;
    assert_eq!(gates.refresh(&current), vec![("tools.call".to_string(), Ok(Installed::Now))]);
    assert_eq!(gates.refresh(&current), vec![("tools.call".to_string(), Ok(Installed::Already))]);

    // The denial is committed on B's chain, naming A's version, before the error returns.
    let gate = WriteAheadGate::new(gates.clone(), ChainLog { conductor: &conductors[1], cell: &bob_cell });
    let err = gate.pass("artifacts.publish", &publish).await.expect_err("tools.call version 1 denies publishing");
    let text = err.to_string();
    let GateError::Denied { verdict, decision, .. } = err else { panic!("expected a denial, got: {text}") };
    assert!(text.contains("denied by policy tools.call version 1"), "{text}");
    assert!(text.contains("artifacts.publish is disabled on this network"), "{text}");
    let mine = my_decisions(&conductors[1], &bob_cell).await;
    let denied = &mine[0].decision;
    assert_eq!(mine[0].decision_id, decision);
    assert!(!denied.allowed);
    assert_eq!((denied.version, denied.bundle.as_ref()), (1, Some(&v1.bundle_id)));
    assert_eq!(denied.policy_sha256, v1.bundle.digest(), "B digests the bundle as the integrity rules do (DC3)");
    assert_eq!(denied.reasons, verdict.reasons);

    // A decision committed right before B's conductor goes down survives the restart.
    let allocate = json!({"action": "resources.allocate", "via": "mcp", "args": {"duration_seconds": 60}});
    let permit = gate.pass("resources.allocate", &allocate).await.expect("a one-minute allocation is allowed");
    drop(gate);
    conductors[1].shutdown().await;
    conductors[1].startup().await;
    let after = my_decisions(&conductors[1], &bob_cell).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after[0], permit.decision, "the last decision before the restart is on the chain");

    // Anyone reads B's decisions by hour.
    let hour = anchors::bucket_of(permit.decision.decided_at);
    let hours = HoursInput { from: hour - 1, to: hour };
    let seen = eventually("A reads B's three decisions", Duration::from_secs(90), || async {
        let seen: Vec<DecisionRecord> =
            conductors[0].call(&alice_cell.zome("decisions"), "get_decisions_in_hours", hours.clone()).await;
        (seen.len() == 3).then_some(seen)
    })
    .await;
    assert!(seen.iter().all(|d| d.decision.decider == *bob_cell.agent_pubkey()));
}
