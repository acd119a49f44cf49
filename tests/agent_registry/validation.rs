//! Every rule of docs/integrity/agent_registry.md, broken on purpose.
//!
//! 1. On one conductor with self-validation on, a fresh adversary agent breaks each rule in turn;
//!    the commit must fail citing that rule (the validators run on the author's own conductor
//!    before anything is published).
//! 2. Over the network, for one rule per kind of data a peer validates (someone else's advert, a
//!    forged index link, heartbeats too fast): `WarrantRounds` publishes each break from an
//!    adversary conductor with self-validation off, and `crate::warrants` waits for the honest
//!    node's warrant citing exactly that rule.
use agent_registry_types::{AdvertRecord, HeartbeatSample, NodeAdvert};
use holochain::prelude::*;
use holochain::sweettest::*;
use serde::Serialize;

use crate::support::*;

// Mirrors of the adversary zome's inputs (tests/adversary/agent_registry_adversary).
#[derive(Serialize, Debug)]
struct UpdateAdvertInput {
    original: ActionHash,
    advert: NodeAdvert,
}

#[derive(Serialize, Debug)]
enum ForgedBase {
    ModelIndex(String),
    OwnAllNodesShard,
    HeartbeatBucket { buckets_ago: i64 },
}

#[derive(Serialize, Debug)]
enum ForgedTag {
    Advert(ActionHash),
    Heartbeat(HeartbeatSample),
    Raw(Vec<u8>),
}

#[derive(Serialize, Debug)]
struct ForgedLink {
    base: ForgedBase,
    target: Option<AgentPubKey>,
    heartbeat: bool,
    tag: ForgedTag,
}

const ADV: &str = "agent_registry_adversary";

struct Adversary<'a> {
    conductor: &'a SweetConductor,
    cell: SweetCell,
}

impl Adversary<'_> {
    /// The call that breaks the rule: refused at commit with self-validation on, accepted without.
    async fn attempt<I: Serialize + std::fmt::Debug>(&self, zome: &str, f: &str, input: I) -> Result<(), String> {
        self.conductor
            .call_fallible::<_, ActionHash>(&self.cell.zome(zome), f, input)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn call<I: Serialize + std::fmt::Debug, O: serde::de::DeserializeOwned + std::fmt::Debug>(
        &self,
        zome: &str,
        f: &str,
        input: I,
    ) -> O {
        self.conductor.call(&self.cell.zome(zome), f, input).await
    }

    async fn publish(&self, advert: NodeAdvert) -> AdvertRecord {
        self.call("capabilities", "publish_node_advert", advert).await
    }

    async fn forge(&self, link: ForgedLink) -> Result<(), String> {
        self.attempt(ADV, "create_forged_link", link).await
    }
}

const RULES: [&str; 13] = [
    "AR1",
    "AR2",
    "AR3-foreign",
    "AR3-update-of-update",
    "AR4",
    "IX1",
    "IX2",
    "IX3",
    "HB1",
    "HB2",
    "HB3",
    "HB4",
    "HB5",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_refuses_a_commit_that_breaks_it() {
    let dna = registry_dna(&unique_seed("registry-rules"), &fast_props(), true).await;
    let mut conductor = SweetConductor::standard().await;
    seed_compiled_zomes([&conductor], &[&dna]).await;
    let (alice,) = conductor.setup_app("alice", [&role(&dna)]).await.unwrap().into_tuple();
    let alice_advert: AdvertRecord =
        conductor.call(&alice.zome("capabilities"), "publish_node_advert", advert("alice")).await;
    for (i, rule) in RULES.iter().enumerate() {
        // A fresh agent per rule, so no earlier break (or advert) changes what this one tests.
        let (cell,) = conductor.setup_app(&format!("mallory-{i}"), [&role(&dna)]).await.unwrap().into_tuple();
        await_consistency_s(60, [&alice, &cell]).await.expect("alice's records reach the adversary");
        let error = break_rule(rule, &Adversary { conductor: &conductor, cell }, &alice, &alice_advert)
            .await
            .expect_err(&format!("{rule}: the commit was accepted; it must break the rule"));
        let id = rule.split('-').next().unwrap_or(rule);
        assert!(error.contains(&format!("{id}: ")), "{rule}: expected a {id} violation, got: {error}");
    }

    // The honest zomes refuse bad input up front with the rule that would break.
    let mut bad = advert("alice");
    bad.compute.gpus.push(agent_registry_types::Gpu { vendor: "NVIDIA".into(), model: "RTX 4090".into(), vram_gb: 24 });
    let err = conductor
        .call_fallible::<_, AdvertRecord>(&alice.zome("capabilities"), "publish_node_advert", bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AR1: compute.gpus[0].vendor"), "{err}");
    let mut hot = sample(1);
    hot.cpu_percent = 140;
    let err = conductor.call_fallible::<_, ActionHash>(&alice.zome("heartbeat"), "heartbeat", hot).await.unwrap_err();
    assert!(err.to_string().contains("HB2: cpu_percent must be 0-100"), "{err}");
}

/// This DNA's part of `crate::warrants`: one rule per kind of data a peer validates, an advert
/// (someone else's, hijacked), an index link (forged), heartbeats (too fast: judged from the
/// author's chain history). Every rule is refused at commit in the test above.
pub struct WarrantRounds {
    alice: SweetCell,
    alice_advert: AdvertRecord,
}

impl WarrantRounds {
    pub const RULES: &[&str] = &["AR3-foreign", "IX1", "HB4"];

    pub async fn setup(conductor: &SweetConductor, alice: &SweetCell) -> Self {
        let alice_advert = conductor.call(&alice.zome("capabilities"), "publish_node_advert", advert("alice")).await;
        Self { alice: alice.clone(), alice_advert }
    }

    /// Publishes, from the adversary's `cell`, data breaking `rule`.
    pub async fn break_rule(&self, rule: &str, conductor: &SweetConductor, cell: &SweetCell) {
        let adversary = Adversary { conductor, cell: cell.clone() };
        break_rule(rule, &adversary, &self.alice, &self.alice_advert).await.unwrap_or_else(|e| panic!("{rule}: {e}"));
    }
}

/// Commits, as `adv`, data that breaks `rule`: the setup first, then the breaking call, whose result
/// is returned.
async fn break_rule(
    rule: &str,
    adv: &Adversary<'_>,
    alice: &SweetCell,
    alice_advert: &AdvertRecord,
) -> Result<(), String> {
    let heartbeat_link = |buckets_ago, target, tag| ForgedLink {
        base: ForgedBase::HeartbeatBucket { buckets_ago },
        target,
        heartbeat: true,
        tag,
    };
    match rule {
        "AR1" => {
            let mut bad = advert("bad-cores");
            bad.compute.cpu_cores = 0;
            adv.attempt(ADV, "create_advert_unchecked", bad).await
        }
        "AR2" => {
            let _: ActionHash = adv.call(ADV, "create_advert_unchecked", advert("first")).await;
            adv.attempt(ADV, "create_advert_unchecked", advert("second")).await
        }
        "AR3-foreign" => {
            let input = UpdateAdvertInput { original: alice_advert.original.clone(), advert: advert("hijacked") };
            adv.attempt(ADV, "update_advert_unchecked", input).await
        }
        "AR3-update-of-update" => {
            adv.publish(advert("v1")).await;
            let v2 = adv.publish(advert("v2")).await;
            let input = UpdateAdvertInput { original: v2.version, advert: advert("v3") };
            adv.attempt(ADV, "update_advert_unchecked", input).await
        }
        "AR4" => {
            let own = adv.publish(advert("doomed")).await;
            adv.attempt(ADV, "delete_advert", own.original).await
        }
        "IX1" => {
            let own = adv.publish(advert("impostor")).await;
            let target = Some(alice.agent_pubkey().clone());
            adv.forge(ForgedLink {
                base: ForgedBase::OwnAllNodesShard,
                target,
                heartbeat: false,
                tag: ForgedTag::Advert(own.version),
            })
            .await
        }
        "IX2" => {
            let own = adv.publish(advert("no-models")).await;
            let base = ForgedBase::ModelIndex("qwen3-4b".into());
            adv.forge(ForgedLink { base, target: None, heartbeat: false, tag: ForgedTag::Advert(own.version) }).await
        }
        "IX3" => {
            let listing: Vec<ActionHash> = adv.call(ADV, "get_listing_links", alice.agent_pubkey().clone()).await;
            let first = listing.first().expect("the adversary sees Alice's listing").clone();
            adv.attempt(ADV, "delete_any_link", first).await
        }
        "HB1" => {
            adv.forge(heartbeat_link(0, Some(alice.agent_pubkey().clone()), ForgedTag::Heartbeat(sample(1)))).await
        }
        "HB2" => adv.forge(heartbeat_link(0, None, ForgedTag::Raw(vec![0xff; 300]))).await,
        "HB3" => adv.forge(heartbeat_link(10, None, ForgedTag::Heartbeat(sample(1)))).await,
        "HB4" => {
            // The honest zome, but self-validation is off: two beats well inside the 1 s minimum.
            let _: ActionHash = adv.call("heartbeat", "heartbeat", sample(1)).await;
            adv.attempt("heartbeat", "heartbeat", sample(2)).await
        }
        "HB5" => {
            let beat: ActionHash = adv.call("heartbeat", "heartbeat", sample(1)).await;
            adv.attempt(ADV, "delete_any_link", beat).await
        }
        other => unreachable!("no case for {other}"),
    }
}
