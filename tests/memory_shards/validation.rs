//! Every rule of docs/integrity/memory_shards.md, broken on purpose, and the honest path.
//!
//! 1. On one conductor with self-validation on, the honest coordinators create a map, claim,
//!    checkpoint and release; then an adversary zome commits data breaking each rule in turn, and
//!    the commit must fail citing exactly that rule.
//! 2. Over the network, for a claim made on behalf of another node (SC1) and a claim beyond the
//!    map's shard count (SC2): `WarrantRounds` publishes each from an adversary conductor with
//!    self-validation off, and `crate::warrants` waits for the honest node's warrant citing it.
use std::time::Duration;

use holochain::prelude::*;
use holochain::sweettest::*;
use memory_shards_types::*;
use serde::Serialize;

use crate::support::*;

// Mirrors of the adversary zome's inputs (tests/adversary/memory_shards_adversary).
#[derive(Serialize, Debug, Clone)]
enum Forged {
    Map(ShardMap),
    Claim(ShardClaim),
    Checkpoint(SyncCheckpoint),
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

const ADV: &str = "memory_shards_adversary";
const RULES: [&str; 11] = ["SM1", "SC1", "SC2", "SC3", "SC4", "CP1", "CP2", "CP3", "LK1", "LK2", "DL1"];
const CID: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

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
            Ok(out) => panic!("{zome}.{f} succeeded ({out}); it must be refused"),
            Err(e) => e.to_string(),
        }
    }

    async fn refused<I: Serialize + std::fmt::Debug>(&self, f: &str, input: I) -> String {
        match self.conductor.call_fallible::<_, ActionHash>(&self.cell.zome(ADV), f, input).await {
            Ok(hash) => panic!("{f} was accepted ({hash}); it must break a rule"),
            Err(e) => e.to_string(),
        }
    }

    async fn anchor(&self, kind: &str, value: &str) -> AnyLinkableHash {
        let hash: EntryHash = self.call(ADV, "anchor_hash", vec![kind.to_string(), value.to_string()]).await;
        hash.into()
    }

    async fn claim(&self, map: &MapRecord, shard: u32, replica: u32) -> ClaimRecord {
        let input = ClaimInput { map_id: map.map_id.clone(), shard, replica, vector_capacity: 4 };
        self.call("routing", "claim_shard", input).await
    }
}

fn create_input() -> CreateMapInput {
    CreateMapInput {
        collection: "docs".into(),
        shard_count: 16,
        replication_factor: 2,
        hash_function: HASH_SHA256_JUMP.into(),
    }
}

fn forged_claim(map: &MapRecord, holder: AgentPubKey, shard: u32, replica: u32) -> ShardClaim {
    ShardClaim { map: map.map_id.clone(), shard, replica, epoch: 1, holder, vector_capacity: 4 }
}

fn assert_cites(error: &str, rule: &str) {
    assert!(error.contains(&format!("{rule}: ")), "expected a {rule} violation, got: {error}");
    for other in RULES.iter().filter(|r| **r != rule) {
        assert!(!error.contains(&format!("{other}: ")), "a {rule} break also cited {other}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_refuses_a_commit_that_breaks_it() {
    let dna = shards_dna(&unique_seed("shards-rules"), true).await;
    let mut conductor = SweetConductor::standard().await;
    seed_compiled_zomes([&conductor], &[&dna]).await;
    let apps = conductor.setup_apps("ripple", 2, [&shards_role(&dna)]).await.unwrap();
    let cells = apps.cells_flattened();
    let (alice, bob) =
        (Node { conductor: &conductor, cell: &cells[0] }, Node { conductor: &conductor, cell: &cells[1] });

    // The honest path: create a map, read it by name and in the list, claim, checkpoint, release.
    let map: MapRecord = alice.call("shards", "create_map", create_input()).await;
    assert_eq!((map.map.epoch, map.owner.clone()), (1, alice.key()));
    let again = alice.call_err("shards", "create_map", create_input()).await;
    assert!(again.contains("`docs` already has a shard map"), "{again}");
    let seen: MapRecord = eventually("bob sees the map", Duration::from_secs(30), || async {
        bob.call::<_, Option<MapRecord>>("shards", "get_map", "docs".to_string()).await
    })
    .await;
    assert_eq!(seen, map);
    let listed: Vec<MapRecord> = bob.call("shards", "list_maps", ()).await;
    assert_eq!(listed, vec![map.clone()]);

    let alice_claim = alice.claim(&map, 3, 0).await;
    assert_eq!(alice.claim(&map, 3, 0).await, alice_claim, "claiming the same slot twice is one claim");
    let bob_claim = bob.claim(&map, 3, 1).await;
    eventually("both claims are visible", Duration::from_secs(30), || async {
        let claims: Vec<ClaimRecord> = alice.call("routing", "get_claims", map.map_id.clone()).await;
        (claims.len() == 2).then_some(())
    })
    .await;
    let beyond = ClaimInput { map_id: map.map_id.clone(), shard: 16, replica: 0, vector_capacity: 4 };
    assert!(alice.call_err("routing", "claim_shard", beyond).await.contains("SC2: shard 16 is beyond"));

    let checkpoint = |sequence, vector_count| CheckpointInput {
        claim_id: alice_claim.claim_id.clone(),
        sequence,
        vector_count,
        snapshot_cid: Some(CID.into()),
    };
    let first: CheckpointRecord = alice.call("sync", "checkpoint", checkpoint(None, 100)).await;
    let second: CheckpointRecord = alice.call("sync", "checkpoint", checkpoint(None, 120)).await;
    assert_eq!((first.checkpoint.sequence, second.checkpoint.sequence), (1, 2));
    assert!(alice.call_err("sync", "checkpoint", checkpoint(Some(2), 130)).await.contains("not after"));
    assert!(bob.call_err("sync", "checkpoint", checkpoint(None, 1)).await.contains("not this node"));
    let latest: Vec<CheckpointRecord> =
        eventually("bob sees the latest checkpoint", Duration::from_secs(30), || async {
            let c: Vec<CheckpointRecord> = bob
                .call("sync", "get_checkpoints", vec![alice_claim.claim_id.clone(), bob_claim.claim_id.clone()])
                .await;
            (c.len() == 1 && c[0].checkpoint.sequence == 2).then_some(c)
        })
        .await;
    assert_eq!((latest[0].holder.clone(), latest[0].checkpoint.vector_count), (alice.key(), 120));

    let spare = alice.claim(&map, 5, 0).await;
    assert!(alice.call::<_, bool>("routing", "release_claim", spare.claim_id.clone()).await);
    let mine: Vec<ClaimRecord> = alice.call("routing", "get_my_claims", ()).await;
    assert_eq!(mine, vec![alice_claim.clone()], "a released claim is no longer this node's");
    eventually("the released claim leaves the map", Duration::from_secs(30), || async {
        let claims: Vec<ClaimRecord> = bob.call("routing", "get_claims", map.map_id.clone()).await;
        (claims.len() == 2 && claims.iter().all(|c| c.claim_id != spare.claim_id)).then_some(())
    })
    .await;
    await_consistency_s(60, [alice.cell, bob.cell]).await.expect("the two agents sync");

    // SM1: the map's own fields.
    let bad_map = |m: ShardMap| Forged::Map(m);
    let good = ShardMap {
        collection: "other".into(),
        shard_count: 16,
        replication_factor: 2,
        hash_function: HASH_SHA256_JUMP.into(),
        epoch: 1,
    };
    assert_cites(
        &alice.refused("create_unchecked", bad_map(ShardMap { collection: "Not Valid".into(), ..good.clone() })).await,
        "SM1",
    );
    assert_cites(&alice.refused("create_unchecked", bad_map(ShardMap { shard_count: 0, ..good.clone() })).await, "SM1");

    // SC1-SC4: claims.
    let on_behalf = Forged::Claim(forged_claim(&map, bob.key(), 7, 0));
    assert_cites(&alice.refused("create_unchecked", on_behalf).await, "SC1");
    for (shard, replica, epoch) in [(16, 0, 1), (7, 2, 1), (7, 0, 2)] {
        let claim = ShardClaim { epoch, ..forged_claim(&map, alice.key(), shard, replica) };
        assert_cites(&alice.refused("create_unchecked", Forged::Claim(claim)).await, "SC2");
    }
    let not_a_map = ShardClaim { map: bob_claim.claim_id.clone(), ..forged_claim(&map, alice.key(), 7, 0) };
    assert_cites(&alice.refused("create_unchecked", Forged::Claim(not_a_map)).await, "SC2");
    let no_capacity = ShardClaim { vector_capacity: 0, ..forged_claim(&map, alice.key(), 7, 0) };
    assert_cites(&alice.refused("create_unchecked", Forged::Claim(no_capacity)).await, "SC3");
    let moved =
        UpdateInput { original: bob_claim.claim_id.clone(), entry: Forged::Claim(forged_claim(&map, bob.key(), 4, 1)) };
    assert_cites(&bob.refused("update_unchecked", moved).await, "SC4");
    assert_cites(&alice.refused("delete_unchecked", bob_claim.claim_id.clone()).await, "SC4");

    // CP1-CP3: checkpoints.
    let cp = |claim: &ClaimRecord, sequence| SyncCheckpoint {
        claim: claim.claim_id.clone(),
        shard: claim.claim.shard,
        replica: claim.claim.replica,
        sequence,
        vector_count: 10,
        snapshot_cid: None,
    };
    assert_cites(&alice.refused("create_unchecked", Forged::Checkpoint(cp(&bob_claim, 1))).await, "CP1");
    let wrong_shard = SyncCheckpoint { shard: 4, ..cp(&alice_claim, 1) };
    assert_cites(&alice.refused("create_unchecked", Forged::Checkpoint(wrong_shard)).await, "CP1");
    let on_a_map = SyncCheckpoint { claim: map.map_id.clone(), ..cp(&alice_claim, 1) };
    assert_cites(&alice.refused("create_unchecked", Forged::Checkpoint(on_a_map)).await, "CP1");
    let bad_cid = SyncCheckpoint { snapshot_cid: Some("ipfs://snapshot".into()), ..cp(&alice_claim, 9) };
    assert_cites(&alice.refused("create_unchecked", Forged::Checkpoint(bad_cid)).await, "CP2");
    let backwards =
        UpdateInput { original: second.checkpoint_id.clone(), entry: Forged::Checkpoint(cp(&alice_claim, 1)) };
    assert_cites(&alice.refused("update_unchecked", backwards).await, "CP3");
    let takeover = UpdateInput { original: second.checkpoint_id.clone(), entry: Forged::Checkpoint(cp(&bob_claim, 9)) };
    assert_cites(&bob.refused("update_unchecked", takeover).await, "CP3");

    // LK1-LK2: links.
    let misfiled = LinkInput {
        base: alice.anchor("collection", "elsewhere").await,
        target: map.map_id.clone().into(),
        link_type: "CollectionToMaps".into(),
    };
    assert_cites(&alice.refused("create_link_unchecked", misfiled).await, "LK1");
    let foreign = LinkInput {
        base: map.map_id.clone().into(),
        target: alice_claim.claim_id.clone().into(),
        link_type: "MapToClaims".into(),
    };
    assert_cites(&bob.refused("create_link_unchecked", foreign).await, "LK1");
    let links_of = |base: AnyLinkableHash, link_type: &str| LinksInput { base, link_type: link_type.into() };
    let map_links: Vec<Link> =
        alice.call(ADV, "get_links_of", links_of(alice.anchor("collection", "docs").await, "CollectionToMaps")).await;
    assert_cites(&alice.refused("delete_link_unchecked", map_links[0].create_link_hash.clone()).await, "LK2");
    let claim_links: Vec<Link> =
        bob.call(ADV, "get_links_of", links_of(map.map_id.clone().into(), "MapToClaims")).await;
    let alices = claim_links.iter().find(|l| l.author == alice.key()).expect("alice's claim link");
    assert_cites(&bob.refused("delete_link_unchecked", alices.create_link_hash.clone()).await, "LK2");

    // DL1: maps immutable; maps and checkpoints never deleted.
    let reshard =
        UpdateInput { original: map.map_id.clone(), entry: Forged::Map(ShardMap { epoch: 2, ..map.map.clone() }) };
    assert_cites(&alice.refused("update_unchecked", reshard).await, "DL1");
    assert_cites(&alice.refused("delete_unchecked", map.map_id.clone()).await, "DL1");
    assert_cites(&alice.refused("delete_unchecked", second.checkpoint_id.clone()).await, "DL1");
}

/// This DNA's part of `crate::warrants`: a claim made on behalf of another node (SC1) and one
/// beyond the shard count (SC2), on a map Alice created.
pub struct WarrantRounds {
    alice: AgentPubKey,
    map: MapRecord,
}

impl WarrantRounds {
    pub const RULES: &[&str] = &["SC1", "SC2"];

    pub async fn setup(conductor: &SweetConductor, cell: &SweetCell) -> Self {
        let alice = Node { conductor, cell };
        let map = alice.call("shards", "create_map", create_input()).await;
        Self { alice: alice.key(), map }
    }

    /// Publishes, from the adversary's `cell`, data breaking `rule`.
    pub async fn break_rule(&self, rule: &str, conductor: &SweetConductor, cell: &SweetCell) {
        let mallory = Node { conductor, cell };
        let claim = match rule {
            // Makes alice look like she holds shard 7, so routing would send its keys to her.
            "SC1" => forged_claim(&self.map, self.alice.clone(), 7, 0),
            "SC2" => forged_claim(&self.map, mallory.key(), 16, 0),
            other => unreachable!("no case for {other}"),
        };
        let _: ActionHash = mallory.call(ADV, "create_unchecked", Forged::Claim(claim)).await;
    }
}
