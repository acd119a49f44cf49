//! Every rule of docs/integrity/policy_store.md, broken on purpose, and the honest path.
//!
//! On one conductor with self-validation on, alice (the network's only admin, named in the DNA
//! properties) and bob (a member) first use the honest coordinators: publish, version, read, decide
//! and audit. Then an adversary zome commits data breaking each rule in turn; the commit must fail
//! citing exactly that rule. The cases include the three the issue names: a non-admin publishing
//! (PB1), a version going backwards (PB3) and a decision authored for someone else (DC1). Over the
//! network, `WarrantRounds` publishes a non-admin publish and a decision for another node from an
//! adversary conductor, and `crate::warrants` waits for the honest node's warrants.
use std::collections::BTreeSet;
use std::time::Duration;

use holochain::prelude::*;
use holochain::sweettest::*;
use policy_store_types::*;
use serde::Serialize;

use crate::support::*;

// Mirrors of the adversary zome's inputs (tests/adversary/policy_store_adversary).
#[derive(Serialize, Debug, Clone)]
enum Forged {
    Bundle(PolicyBundle),
    Decision(Decision),
    Audit(AuditEvent),
}

#[derive(Serialize, Debug)]
struct UpdateInput {
    original: ActionHash,
    entry: Forged,
}

#[derive(Serialize, Debug)]
struct LinkInput {
    base: AnyLinkableHash,
    target: AnyLinkableHash,
    link_type: String,
}

const ADV: &str = "policy_store_adversary";
const RULES: [&str; 9] = ["PB1", "PB2", "PB3", "DC1", "DC2", "DC3", "AU1", "LK1", "DL1"];
const V1: &str = "package tools.call\n\ndefault allow := true\n";
const V2: &str = "package tools.call\n\ndefault allow := true\n\ndeny contains \"no installs\" if input.action == \"holochain.install_dna\"\n";

#[derive(Clone, Copy)]
struct Node<'a> {
    conductor: &'a SweetConductor,
    cell: &'a SweetCell,
}

impl Node<'_> {
    fn key(&self) -> AgentPubKey {
        self.cell.agent_pubkey().clone()
    }

    async fn call<I, O>(&self, zome: &str, f: &str, input: I) -> O
    where
        I: Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.conductor.call(&self.cell.zome(zome), f, input).await
    }

    async fn call_err<I: Serialize + std::fmt::Debug>(&self, zome: &str, f: &str, input: I) -> String {
        match self.conductor.call_fallible::<_, serde_json::Value>(&self.cell.zome(zome), f, input).await {
            Ok(out) => panic!("{zome}.{f} was accepted ({out}); it must fail"),
            Err(e) => e.to_string(),
        }
    }

    async fn refused<I: Serialize + std::fmt::Debug>(&self, f: &str, input: I) -> String {
        self.call_err(ADV, f, input).await
    }

    async fn anchor(&self, kind: &str, value: &str) -> AnyLinkableHash {
        let hash: EntryHash = self.call(ADV, "anchor_hash", vec![kind.to_string(), value.to_string()]).await;
        hash.into()
    }
}

fn publish(package: &str, rego: &str) -> PublishInput {
    PublishInput { package: package.into(), rego: rego.into(), data: None, description: "test".into() }
}

fn bundle(package: &str, version: u64, rego: &str) -> PolicyBundle {
    PolicyBundle { package: package.into(), version, rego: rego.into(), data: None, description: String::new() }
}

fn decision_on(decider: &AgentPubKey, current: &BundleRecord) -> Decision {
    Decision {
        decider: decider.clone(),
        action: "holochain.install_dna".into(),
        package: current.bundle.package.clone(),
        version: current.bundle.version,
        bundle: Some(current.bundle_id.clone()),
        policy_sha256: current.bundle.digest(),
        input_sha256: "0".repeat(64),
        allowed: false,
        reasons: vec!["no installs".into()],
    }
}

fn decision_input(d: &Decision) -> DecisionInput {
    DecisionInput {
        action: d.action.clone(),
        package: d.package.clone(),
        version: d.version,
        bundle: d.bundle.clone(),
        policy_sha256: d.policy_sha256.clone(),
        input_sha256: d.input_sha256.clone(),
        allowed: d.allowed,
        reasons: d.reasons.clone(),
    }
}

fn audit(subject: &str) -> AuditEvent {
    AuditEvent {
        category: "policy.decision".into(),
        subject: subject.into(),
        outcome: "denied".into(),
        detail: "no installs".into(),
        references: vec![],
    }
}

fn hour_of(at: Timestamp) -> i64 {
    anchors::bucket_of(at)
}

fn assert_cites(error: &str, rule: &str) {
    assert!(error.contains(&format!("{rule}: ")), "expected a {rule} violation, got: {error}");
    for other in RULES.iter().filter(|r| **r != rule) {
        assert!(!error.contains(&format!("{other}: ")), "a {rule} break also cited {other}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_refuses_a_commit_that_breaks_it() {
    let mut conductor = SweetConductor::standard().await;
    let alice_key = SweetAgents::one(conductor.keystore()).await;
    let props = PolicyProperties { admins: vec![alice_key.clone().into()], ..Default::default() };
    let dna = policy_dna(&unique_seed("policy-rules"), &props, true).await;
    seed_compiled_zomes([&conductor], &[&dna]).await;
    let role = policy_role(&dna);
    let (alice_cell,) = conductor.setup_app_for_agent("alice", alice_key.clone(), [&role]).await.unwrap().into_tuple();
    let (bob_cell,) = conductor.setup_app("bob", [&role]).await.unwrap().into_tuple();
    let (alice, bob) =
        (Node { conductor: &conductor, cell: &alice_cell }, Node { conductor: &conductor, cell: &bob_cell });

    // The honest path: the admin publishes and re-versions, everyone reads the current version.
    let admins: Vec<AgentPubKey> = bob.call("policies", "get_policy_admins", ()).await;
    assert_eq!(admins, vec![alice.key()]);
    let v1: BundleRecord = alice.call("policies", "publish_bundle", publish("tools.call", V1)).await;
    assert_eq!(v1.bundle.version, 1);
    let again: BundleRecord = alice.call("policies", "publish_bundle", publish("tools.call", V1)).await;
    assert_eq!(again.bundle_id, v1.bundle_id, "publishing the current version again changes nothing");
    let v2: BundleRecord = alice.call("policies", "publish_bundle", publish("tools.call", V2)).await;
    assert_eq!(v2.bundle.version, 2);
    let current: BundleRecord = eventually("bob sees version 2", Duration::from_secs(30), || async {
        let current: Option<BundleRecord> = bob.call("policies", "get_current_bundle", "tools.call").await;
        current.filter(|c| c.bundle.version == 2)
    })
    .await;
    assert_eq!(current, v2);
    let versions: Vec<BundleRecord> = bob.call("policies", "get_bundle_versions", "tools.call").await;
    assert_eq!(versions, vec![v1.clone(), v2.clone()]);
    let all: Vec<BundleRecord> = bob.call("policies", "get_current_bundles", ()).await;
    assert_eq!(all, vec![v2.clone()]);
    let not_admin = bob.call_err("policies", "publish_bundle", publish("tools.call", V1)).await;
    assert_cites(&not_admin, "PB1");

    // A member decides with version 2 and audits; anyone reads both back by hour and subject.
    let decided: DecisionRecord =
        bob.call("decisions", "record_decision", decision_input(&decision_on(&bob.key(), &v2))).await;
    assert_eq!(decided.decision.decider, bob.key());
    let mine: Vec<DecisionRecord> = bob.call("decisions", "get_my_decisions", 10u32).await;
    assert_eq!(mine, vec![decided.clone()]);
    let hour = hour_of(decided.decided_at);
    let hours = HoursInput { from: hour - 1, to: hour + 1 };
    let seen: Vec<DecisionRecord> = eventually("alice sees bob's decision", Duration::from_secs(30), || async {
        let seen: Vec<DecisionRecord> = alice.call("decisions", "get_decisions_in_hours", hours.clone()).await;
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    assert_eq!(seen, vec![decided.clone()]);
    let event: AuditRecord = bob.call("audit", "record_event", audit("holochain.install_dna")).await;
    let by_subject: Vec<AuditRecord> = eventually("alice sees the audit event", Duration::from_secs(30), || async {
        let found: Vec<AuditRecord> = alice.call("audit", "get_audit_for_subject", "holochain.install_dna").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(by_subject, vec![event.clone()]);
    let by_hour: Vec<AuditRecord> =
        alice.call("audit", "get_audit_in_hours", HoursInput { from: hour_of(event.at), to: hour_of(event.at) }).await;
    assert_eq!(by_hour, vec![event.clone()]);
    let too_wide = alice.call_err("audit", "get_audit_in_hours", HoursInput { from: 0, to: MAX_HOURS }).await;
    assert!(too_wide.contains("span at most"), "{too_wide}");
    Box::pin(audit_batches_commit_whole(&alice, &bob)).await;
    await_consistency_s(60, [alice.cell, bob.cell]).await.expect("the two agents sync");

    // PB1: only admins publish or update.
    let theirs = Forged::Bundle(bundle("tools.other", 1, "package tools.other\ndefault allow := true\n"));
    assert_cites(&bob.refused("create_unchecked", theirs).await, "PB1");
    let takeover = UpdateInput { original: v2.bundle_id.clone(), entry: Forged::Bundle(bundle("tools.call", 3, V1)) };
    assert_cites(&bob.refused("update_unchecked", takeover).await, "PB1");

    // PB2: the bundle's own fields.
    let mislabelled = Forged::Bundle(bundle("tools.other", 1, V1));
    assert_cites(&alice.refused("create_unchecked", mislabelled).await, "PB2");
    let list_data = PolicyBundle { data: Some("[1]".into()), ..bundle("tools.call", 1, V1) };
    assert_cites(&alice.refused("create_unchecked", Forged::Bundle(list_data)).await, "PB2");

    // PB3: versions only go up.
    let skips_ahead = Forged::Bundle(bundle("tools.fresh", 2, "package tools.fresh\ndefault allow := true\n"));
    assert_cites(&alice.refused("create_unchecked", skips_ahead).await, "PB3");
    let backwards = UpdateInput { original: v2.bundle_id.clone(), entry: Forged::Bundle(bundle("tools.call", 1, V1)) };
    assert_cites(&alice.refused("update_unchecked", backwards).await, "PB3");
    let same = UpdateInput { original: v2.bundle_id.clone(), entry: Forged::Bundle(bundle("tools.call", 2, V1)) };
    assert_cites(&alice.refused("update_unchecked", same).await, "PB3");
    let renamed = UpdateInput {
        original: v2.bundle_id.clone(),
        entry: Forged::Bundle(bundle("tools.other", 3, "package tools.other\ndefault allow := true\n")),
    };
    assert_cites(&alice.refused("update_unchecked", renamed).await, "PB3");

    // DC1-DC3: decisions.
    let for_alice = Forged::Decision(decision_on(&alice.key(), &v2));
    assert_cites(&bob.refused("create_unchecked", for_alice).await, "DC1");
    let allowed_with_reasons = Decision { allowed: true, ..decision_on(&bob.key(), &v2) };
    assert_cites(&bob.refused("create_unchecked", Forged::Decision(allowed_with_reasons)).await, "DC2");
    let wrong_version = Decision { version: 1, ..decision_on(&bob.key(), &v2) };
    assert_cites(&bob.refused("create_unchecked", Forged::Decision(wrong_version)).await, "DC3");
    let wrong_digest = Decision { policy_sha256: "1".repeat(64), ..decision_on(&bob.key(), &v2) };
    assert_cites(&bob.refused("create_unchecked", Forged::Decision(wrong_digest)).await, "DC3");
    let builtin_claiming_v2 = Decision { bundle: None, ..decision_on(&bob.key(), &v2) };
    assert_cites(&bob.refused("create_unchecked", Forged::Decision(builtin_claiming_v2)).await, "DC3");
    let not_a_bundle = Decision { bundle: Some(event.event_id.clone()), ..decision_on(&bob.key(), &v2) };
    assert_cites(&bob.refused("create_unchecked", Forged::Decision(not_a_bundle)).await, "DC3");

    // AU1: audit events.
    let shouting = AuditEvent { outcome: "DENIED!".into(), ..audit("x") };
    assert_cites(&bob.refused("create_unchecked", Forged::Audit(shouting)).await, "AU1");

    // LK1: links.
    let foreign = LinkInput {
        base: bob.anchor("policy", "tools.call").await,
        target: v2.bundle_id.clone().into(),
        link_type: "PackageToBundles".into(),
    };
    assert_cites(&bob.refused("create_link_unchecked", foreign).await, "LK1");
    let misfiled = LinkInput {
        base: alice.anchor("policy", "tools.other").await,
        target: v2.bundle_id.clone().into(),
        link_type: "PackageToBundles".into(),
    };
    assert_cites(&alice.refused("create_link_unchecked", misfiled).await, "LK1");
    let wrong_hour = LinkInput {
        base: bob.anchor("decisions", "0").await,
        target: decided.decision_id.clone().into(),
        link_type: "DecisionsByHour".into(),
    };
    assert_cites(&bob.refused("create_link_unchecked", wrong_hour).await, "LK1");
    let not_a_decision = LinkInput {
        base: bob.anchor("decisions", &hour.to_string()).await,
        target: event.event_id.clone().into(),
        link_type: "DecisionsByHour".into(),
    };
    assert_cites(&bob.refused("create_link_unchecked", not_a_decision).await, "LK1");

    // DL1: decisions and audit are immutable, and nothing is deleted.
    let rewrite =
        UpdateInput { original: decided.decision_id.clone(), entry: Forged::Decision(decision_on(&bob.key(), &v2)) };
    assert_cites(&bob.refused("update_unchecked", rewrite).await, "DL1");
    assert_cites(&alice.refused("delete_unchecked", v2.bundle_id.clone()).await, "DL1");
    assert_cites(&bob.refused("delete_unchecked", event.event_id.clone()).await, "DL1");
    let second_link: ActionHash = bob
        .call(
            ADV,
            "create_link_unchecked",
            LinkInput {
                base: bob.anchor("subject", "holochain.install_dna").await,
                target: event.event_id.clone().into(),
                link_type: "AuditBySubject".into(),
            },
        )
        .await;
    assert_cites(&bob.refused("delete_link_unchecked", second_link).await, "DL1");
}

/// A batch of audit events is committed whole, in order, and read like single events; a bad batch
/// commits nothing.
async fn audit_batches_commit_whole(alice: &Node<'_>, bob: &Node<'_>) {
    let batch: Vec<AuditRecord> =
        bob.call("audit", "record_events", vec![audit("inference.merge"), audit("inference.merge")]).await;
    assert_eq!(batch.len(), 2);
    assert!(batch[0].at <= batch[1].at && batch[0].event_id != batch[1].event_id);
    let by_subject: Vec<AuditRecord> = eventually("alice sees the batch", Duration::from_secs(30), || async {
        let found: Vec<AuditRecord> = alice.call("audit", "get_audit_for_subject", "inference.merge").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    let ids = |records: &[AuditRecord]| records.iter().map(|r| r.event_id.clone()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&by_subject), ids(&batch));
    let empty = bob.call_err("audit", "record_events", Vec::<AuditEvent>::new()).await;
    assert!(empty.contains("a batch holds 1 to 32 audit events, not 0"), "{empty}");

    let too_many = bob.call_err("audit", "record_events", vec![audit("x"); AUDIT_BATCH_MAX + 1]).await;
    assert!(too_many.contains("a batch holds 1 to 32 audit events, not 33"), "{too_many}");
    let after: Vec<AuditRecord> = bob.call("audit", "get_audit_for_subject", "x").await;
    assert!(after.is_empty(), "nothing of a refused batch is committed: {after:?}");
}

/// This DNA's part of `crate::warrants`: a member publishes tools.call as version 3 (PB1) and a
/// decision in alice's name (DC1). Alice, the admin named in the DNA properties, has published
/// versions 1 and 2. (PB3 needs an admin as the adversary; it is refused at commit above.)
pub struct WarrantRounds {
    alice: AgentPubKey,
    versions: Vec<BundleRecord>,
}

impl WarrantRounds {
    pub const RULES: &[&str] = &["PB1", "DC1"];

    pub async fn setup(conductor: &SweetConductor, cell: &SweetCell) -> Self {
        let alice = Node { conductor, cell };
        let v1: BundleRecord = alice.call("policies", "publish_bundle", publish("tools.call", V1)).await;
        let v2: BundleRecord = alice.call("policies", "publish_bundle", publish("tools.call", V2)).await;
        Self { alice: alice.key(), versions: vec![v1, v2] }
    }

    /// Publishes, from the adversary's `cell`, data breaking `rule`.
    pub async fn break_rule(&self, rule: &str, conductor: &SweetConductor, cell: &SweetCell) {
        let mallory = Node { conductor, cell };
        let forged = match rule {
            "PB1" => Forged::Bundle(bundle("tools.call", 3, V1)),
            "DC1" => Forged::Decision(decision_on(&self.alice, &self.versions[1])),
            other => unreachable!("no case for {other}"),
        };
        let _: ActionHash = mallory.call(ADV, "create_unchecked", forged).await;
    }

    /// After the rounds: nothing the adversaries wrote became a version of tools.call.
    pub async fn assert_versions_unchanged(&self, conductor: &SweetConductor, cell: &SweetCell) {
        let versions: Vec<BundleRecord> =
            Node { conductor, cell }.call("policies", "get_bundle_versions", "tools.call").await;
        assert_eq!(versions, self.versions, "nothing the adversaries wrote became a version of tools.call");
    }
}
