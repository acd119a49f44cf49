//! Every rule of docs/integrity/artifact_index.md, broken on purpose, and the honest path.
//!
//! 1. On one conductor with self-validation on, an adversary zome commits data breaking each rule in
//!    turn; the commit must fail citing exactly that rule. The honest coordinators' lookups, claims
//!    and provenance checks run on the same conductor first.
//! 2. Over the network, for the rules the issue names (a replica claimed on behalf of another node,
//!    a statement whose subject digest is not the artifact's): `WarrantRounds` publishes each break
//!    from an adversary conductor with self-validation off, and `crate::warrants` waits for the
//!    honest node's warrant citing that rule.
use std::time::Duration;

use artifact_index_types::*;
use holochain::prelude::*;
use holochain::sweettest::*;
use serde::Serialize;

use crate::support::*;

// Mirrors of the adversary zome's inputs (tests/adversary/artifact_index_adversary).
#[derive(Serialize, Debug, Clone)]
enum Forged {
    Artifact(Artifact),
    Provenance(Provenance),
    Claim(ReplicaClaim),
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

#[derive(Serialize, Debug)]
struct LinksInput {
    base: AnyLinkableHash,
    link_type: String,
}

const ADV: &str = "artifact_index_adversary";
const RULES: [&str; 12] = ["AF1", "AF2", "AF3", "PV1", "PV2", "PV3", "PV4", "RC1", "RC2", "LK1", "LK2", "DL1"];
const CID: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

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

    async fn refused<I: Serialize + std::fmt::Debug>(&self, f: &str, input: I) -> String {
        match self.conductor.call_fallible::<_, ActionHash>(&self.cell.zome(ADV), f, input).await {
            Ok(hash) => panic!("{f} was accepted ({hash}); it must break a rule"),
            Err(e) => e.to_string(),
        }
    }

    async fn forge(&self, entry: Forged) -> ActionHash {
        self.call(ADV, "create_unchecked", entry).await
    }

    async fn anchor(&self, kind: &str, value: &str) -> AnyLinkableHash {
        let hash: EntryHash = self.call(ADV, "anchor_hash", vec![kind.to_string(), value.to_string()]).await;
        hash.into()
    }

    fn statement(&self, sha256: &str, materials: &[&str]) -> String {
        let materials: Vec<String> = materials.iter().map(|m| m.to_string()).collect();
        let s = statement_for(&self.key(), "out.bin", sha256, &materials, RIPPLE_BUILD_TYPE, Default::default());
        serde_json::to_string(&s).expect("a statement serialises")
    }
}

fn artifact() -> Artifact {
    Artifact {
        cid: CID.into(),
        sha256: SHA.into(),
        size: 0,
        name: "empty.bin".into(),
        media_type: "application/octet-stream".into(),
        labels: vec!["test".into(), "build:ripple".into()],
    }
}

fn claim(secs: i64) -> ReplicaClaim {
    ReplicaClaim {
        cid: CID.into(),
        until: Timestamp::from_micros(Timestamp::now().as_micros() + secs * 1_000_000),
        endpoint: Some("http://127.0.0.1:7780".into()),
    }
}

fn assert_cites(error: &str, rule: &str) {
    assert!(error.contains(&format!("{rule}: ")), "expected a {rule} violation, got: {error}");
    for other in RULES.iter().filter(|r| **r != rule) {
        assert!(!error.contains(&format!("{other}: ")), "a {rule} break also cited {other}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_refuses_a_commit_that_breaks_it() {
    let dna = artifact_dna(&unique_seed("artifact-rules"), true).await;
    let mut conductor = SweetConductor::standard().await;
    seed_compiled_zomes([&conductor], &[&dna]).await;
    let apps = conductor.setup_apps("ripple", 2, [&artifact_role(&dna)]).await.unwrap();
    let cells = apps.cells_flattened();
    let (alice, bob) =
        (Node { conductor: &conductor, cell: &cells[0] }, Node { conductor: &conductor, cell: &cells[1] });

    // The honest path: register, look up every way, attest, claim and renew.
    let registered: ArtifactRecord = alice.call("artifacts", "register_artifact", artifact()).await;
    let again: ArtifactRecord = alice.call("artifacts", "register_artifact", artifact()).await;
    assert_eq!(again.artifact_id, registered.artifact_id, "registering the same artifact twice is one registration");
    let shard = u8::from_str_radix(&SHA[..1], 16).unwrap();
    for (f, key) in [
        ("get_artifacts_for_cid", serde_json::json!(CID)),
        ("get_artifacts_for_sha256", serde_json::json!(SHA.to_uppercase())),
        ("get_artifacts_for_name", serde_json::json!("empty.bin")),
        ("get_artifacts_for_label", serde_json::json!("build:ripple")),
        ("get_artifacts_in_shard", serde_json::json!(shard)),
    ] {
        let found: Vec<ArtifactRecord> = eventually(f, Duration::from_secs(30), || async {
            let found: Vec<ArtifactRecord> = bob.call("artifacts", f, key.clone()).await;
            (!found.is_empty()).then_some(found)
        })
        .await;
        assert_eq!(found, vec![registered.clone()], "{f}");
    }
    let provenance_id: ActionHash = alice
        .call(
            "provenance",
            "attest",
            AttestInput { artifact_id: registered.artifact_id.clone(), statement: alice.statement(SHA, &[CID]) },
        )
        .await;
    let statements: Vec<ProvenanceRecord> = eventually("bob sees the statement", Duration::from_secs(30), || async {
        let s: Vec<ProvenanceRecord> =
            bob.call("provenance", "get_provenance_for_artifact", registered.artifact_id.clone()).await;
        s.first().is_some_and(|p| p.chain.on_chain).then_some(s)
    })
    .await;
    assert_eq!(statements[0].provenance_id, provenance_id);
    assert_eq!(statements[0].builder, alice.key());
    assert_eq!((statements[0].chain.status.as_str(), statements[0].chain.warrants), ("valid", 0), "{statements:?}");
    let first: ReplicaRecord = alice
        .call("replication", "claim_replica", ClaimReplicaInput { cid: CID.into(), lease_secs: 60, endpoint: None })
        .await;
    let renewed: ReplicaRecord = alice
        .call("replication", "claim_replica", ClaimReplicaInput { cid: CID.into(), lease_secs: 120, endpoint: None })
        .await;
    assert!(renewed.claim.until > first.claim.until && renewed.claim_id != first.claim_id);
    let replicas: Vec<ReplicaRecord> = eventually("bob sees one live replica", Duration::from_secs(30), || async {
        let r: Vec<ReplicaRecord> = bob.call("replication", "get_replicas_for_cid", CID.to_string()).await;
        (r.len() == 1 && r[0].claim_id == renewed.claim_id).then_some(r)
    })
    .await;
    assert!(replicas[0].live && replicas[0].holder == alice.key());
    await_consistency_s(60, [alice.cell, bob.cell]).await.expect("the two agents sync");

    // AF1-AF3: the artifact's own fields.
    let bad = |a: Artifact| Forged::Artifact(a);
    assert_cites(
        &alice.refused("create_unchecked", bad(Artifact { cid: "ipfs://nope".into(), ..artifact() })).await,
        "AF1",
    );
    assert_cites(&alice.refused("create_unchecked", bad(Artifact { sha256: "abc".into(), ..artifact() })).await, "AF2");
    let loud = Artifact { labels: vec!["LOUD".into()], ..artifact() };
    assert_cites(&alice.refused("create_unchecked", bad(loud)).await, "AF3");

    // PV1-PV4: the statement.
    let prov =
        |statement: String| Forged::Provenance(Provenance { artifact: registered.artifact_id.clone(), statement });
    assert_cites(&alice.refused("create_unchecked", prov("{\"_type\": \"x\"}".into())).await, "PV1");
    let other_digest = "0".repeat(64);
    assert_cites(&alice.refused("create_unchecked", prov(alice.statement(&other_digest, &[]))).await, "PV2");
    assert_cites(
        &alice.refused("create_unchecked", prov(alice.statement(SHA, &["https://example.com/src.tar"]))).await,
        "PV3",
    );
    assert_cites(&alice.refused("create_unchecked", prov(bob.statement(SHA, &[]))).await, "PV4");
    let about_a_claim =
        Forged::Provenance(Provenance { artifact: renewed.claim_id.clone(), statement: alice.statement(SHA, &[]) });
    assert_cites(&alice.refused("create_unchecked", about_a_claim).await, "PV2");

    // RC1-RC2: leases.
    assert_cites(&alice.refused("create_unchecked", Forged::Claim(claim(-5))).await, "RC1");
    assert_cites(&alice.refused("create_unchecked", Forged::Claim(claim(8 * 24 * 3600))).await, "RC1");
    let on_behalf = UpdateInput { original: renewed.claim_id.clone(), entry: Forged::Claim(claim(3600)) };
    assert_cites(&bob.refused("update_unchecked", on_behalf).await, "RC2");
    let shorter = UpdateInput { original: renewed.claim_id.clone(), entry: Forged::Claim(claim(30)) };
    assert_cites(&alice.refused("update_unchecked", shorter).await, "RC2");

    // LK1-LK2: links.
    let cid_anchor = alice.anchor("cid", CID).await;
    let misfiled = LinkInput {
        base: alice.anchor("cid", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdX").await,
        target: registered.artifact_id.clone().into(),
        link_type: "CidToArtifacts".into(),
    };
    assert_cites(&alice.refused("create_link_unchecked", misfiled).await, "LK1");
    let foreign_claim = LinkInput {
        base: cid_anchor.clone(),
        target: renewed.claim_id.clone().into(),
        link_type: "CidToReplicaClaims".into(),
    };
    assert_cites(&bob.refused("create_link_unchecked", foreign_claim).await, "LK1");
    let index_links: Vec<ActionHash> = alice
        .call(ADV, "get_link_hashes", LinksInput { base: cid_anchor.clone(), link_type: "CidToArtifacts".into() })
        .await;
    assert_cites(&alice.refused("delete_link_unchecked", index_links[0].clone()).await, "LK2");
    let replica_links: Vec<ActionHash> =
        bob.call(ADV, "get_link_hashes", LinksInput { base: cid_anchor, link_type: "CidToReplicaClaims".into() }).await;
    assert_cites(&bob.refused("delete_link_unchecked", replica_links[0].clone()).await, "LK2");

    // DL1: immutable artifacts and statements; nothing deleted.
    let rewrite = UpdateInput { original: registered.artifact_id.clone(), entry: Forged::Artifact(artifact()) };
    assert_cites(&alice.refused("update_unchecked", rewrite).await, "DL1");
    assert_cites(&alice.refused("delete_unchecked", renewed.claim_id.clone()).await, "DL1");
}

/// This DNA's part of `crate::warrants`: a replica claim renewed on another node's behalf (RC2)
/// and a statement whose subject digest is not the artifact's (PV2). Alice holds a replica.
pub struct WarrantRounds {
    alice_claim: ReplicaRecord,
}

impl WarrantRounds {
    pub const RULES: &[&str] = &["RC2", "PV2"];

    pub async fn setup(conductor: &SweetConductor, cell: &SweetCell) -> Self {
        let alice = Node { conductor, cell };
        let alice_claim = alice
            .call("replication", "claim_replica", ClaimReplicaInput { cid: CID.into(), lease_secs: 60, endpoint: None })
            .await;
        Self { alice_claim }
    }

    /// Publishes, from the adversary's `cell`, data breaking `rule`.
    pub async fn break_rule(&self, rule: &str, conductor: &SweetConductor, cell: &SweetCell) {
        let mallory = Node { conductor, cell };
        match rule {
            // Keeps alice's replica "alive" after she stopped renewing it.
            "RC2" => {
                let input =
                    UpdateInput { original: self.alice_claim.claim_id.clone(), entry: Forged::Claim(claim(3600)) };
                let _: ActionHash = mallory.call(ADV, "update_unchecked", input).await;
            }
            "PV2" => {
                let registered: ArtifactRecord = mallory.call("artifacts", "register_artifact", artifact()).await;
                let statement = mallory.statement(&"0".repeat(64), &[CID]);
                mallory.forge(Forged::Provenance(Provenance { artifact: registered.artifact_id, statement })).await;
            }
            other => unreachable!("no case for {other}"),
        }
    }
}
