//! Every rule of docs/integrity/resource_mesh.md, broken on purpose.
//!
//! 1. On one conductor with self-validation on, an adversary zome commits data breaking each rule in
//!    turn; the commit must fail citing exactly that rule (the validators run on the author's own
//!    conductor before anything is published).
//! 2. Over the network, for the rules the issue names (a grant by someone other than the provider,
//!    a grant beyond capacity, a release of someone else's allocation, an expired grant reused):
//!    `WarrantRounds` publishes each break from an adversary conductor with self-validation off,
//!    and `crate::warrants` waits for the honest node's warrant citing that rule.
use std::time::Duration;

use holochain::prelude::*;
use holochain::sweettest::*;
use resource_mesh_types::*;
use serde::Serialize;

use crate::support::*;

// Mirrors of the adversary zome's inputs (tests/adversary/resource_mesh_adversary).
#[derive(Serialize, Debug, Clone)]
enum Forged {
    Offer(ResourceOffer),
    Request(AllocationRequest),
    Grant(AllocationGrant),
    Rejection(AllocationRejection),
    Release(AllocationRelease),
    Receipt(UsageReceipt),
    Ack(UsageAck),
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

const ADV: &str = "resource_mesh_adversary";

/// One agent of the mesh DNA on some conductor.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub conductor: &'a SweetConductor,
    pub cell: &'a SweetCell,
}

impl Node<'_> {
    pub fn key(&self) -> AgentPubKey {
        self.cell.agent_pubkey().clone()
    }

    pub async fn call<I, O>(&self, zome: &str, f: &str, input: I) -> O
    where
        I: Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.conductor.call(&self.cell.zome(zome), f, input).await
    }

    /// A call that must fail; its error text.
    async fn refused<I: Serialize + std::fmt::Debug>(&self, f: &str, input: I) -> String {
        match self.conductor.call_fallible::<_, ActionHash>(&self.cell.zome(ADV), f, input).await {
            Ok(hash) => panic!("{f} was accepted ({hash}); it must break a rule"),
            Err(e) => e.to_string(),
        }
    }

    async fn forge(&self, entry: Forged) -> ActionHash {
        self.call(ADV, "create_unchecked", entry).await
    }

    pub async fn offer(&self, capacity: Capacity, models: &[&str]) -> OfferRecord {
        let models = models.iter().map(|m| m.to_string()).collect();
        let offer = ResourceOffer { capacity, models, peer_endpoint: None };
        self.call("resources", "publish_offer", offer).await
    }

    /// A request left in the provider's DHT inbox (the longest answer window).
    pub async fn request(&self, provider: &AgentPubKey, requirements: Capacity, secs: u32) -> RequestRecord {
        let request = self.request_within(provider, requirements, secs, ANSWER_WINDOW_MAX_SECS).await;
        let () = self.call("scheduling", "post_to_inbox", request.request_id.clone()).await;
        request
    }

    /// A request only written, to be handed to the provider directly, answerable for `window` s.
    pub async fn request_within(
        &self,
        provider: &AgentPubKey,
        requirements: Capacity,
        secs: u32,
        window: u32,
    ) -> RequestRecord {
        let request = AllocationRequest { answer_within_secs: window, ..request_to(provider, requirements, secs) };
        self.call("scheduling", "request_allocation", request).await
    }

    pub async fn answer(&self, request: &ActionHash) -> Answer {
        self.call("scheduling", "answer_request", AnswerInput { request_id: request.clone(), endpoint: String::new() })
            .await
    }

    async fn grant_entry(&self, hash: &ActionHash) -> AllocationGrant {
        let grant: Option<AllocationGrant> = self.call(ADV, "get_grant", hash.clone()).await;
        grant.expect("the grant is visible")
    }
}

pub fn request_to(provider: &AgentPubKey, requirements: Capacity, duration_secs: u32) -> AllocationRequest {
    AllocationRequest {
        provider: provider.clone(),
        resource_type: ResourceType::Compute,
        requirements,
        model_name: None,
        locality_preference: LocalityPreference::Nearest,
        duration_secs,
        answer_within_secs: ANSWER_WINDOW_MAX_SECS,
    }
}

pub fn gpus(n: u32) -> Capacity {
    Capacity { gpu_slots: n, ..Capacity::default() }
}

fn cpus(n: u32) -> Capacity {
    Capacity { cpu_cores: n, ..Capacity::default() }
}

pub fn granted(answer: &Answer) -> &GrantRecord {
    match answer {
        Answer::Granted(grant) => grant,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// A grant by `provider` for `request`, consistent with its ledger as of its latest grant (or a
/// first grant), holding `amounts` for `millis`. Tests then change one thing to break one rule.
async fn forged_grant(
    provider: Node<'_>,
    offer: &OfferRecord,
    prev: Option<&ActionHash>,
    request: &RequestRecord,
    amounts: Capacity,
    millis: i64,
) -> AllocationGrant {
    let now = Timestamp::now().as_micros();
    let previous = match prev {
        Some(hash) => provider.grant_entry(hash).await.holdings,
        None => vec![],
    };
    let mut holdings: Vec<Holding<ActionHash>> = previous.into_iter().filter(|h| h.remembered_at(now)).collect();
    holdings.push(Holding {
        request: request.request_id.clone(),
        amounts,
        expires_at_micros: now + millis * 1000,
        answer_by_micros: request.signed.answer_by_micros(),
        released: false,
    });
    AllocationGrant {
        request: request.request_id.clone(),
        signed_request: request.signed.clone(),
        ledger_at_micros: now,
        offer: offer.version.clone(),
        prev_grant: prev.cloned(),
        releases: vec![],
        holdings,
        endpoint: String::new(),
    }
}

fn assert_cites(error: &str, rule: &str) {
    assert!(error.contains(&format!("{rule}: ")), "expected a {rule} violation, got: {error}");
    for other in [
        "OF1", "OF2", "RQ1", "GR1", "GR2", "GR3", "GR4", "RJ1", "RJ2", "AN1", "RL1", "UR1", "UR2", "UA1", "LK1", "LK2",
        "DL1",
    ] {
        if other != rule {
            assert!(!error.contains(&format!("{other}: ")), "a {rule} break also cited {other}: {error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_refuses_a_commit_that_breaks_it() {
    let dna = mesh_dna(&unique_seed("mesh-rules"), true).await;
    let mut conductor = SweetConductor::standard().await;
    seed_compiled_zomes([&conductor], &[&dna]).await;
    let apps = conductor.setup_apps("ripple", 2, [&mesh_role(&dna)]).await.unwrap();
    let ((alice,), (mallory,)) = apps.into_tuples();
    let alice = Node { conductor: &conductor, cell: &alice };
    let mallory = Node { conductor: &conductor, cell: &mallory };

    // Alice provides to herself; Mallory offers 4 GPU slots and 8 cores.
    let alice_offer = alice.offer(gpus(4), &["m1"]).await;
    let alice_request = alice.request(&alice.key(), gpus(1), 3600).await;
    let alice_grant = granted(&alice.answer(&alice_request.request_id).await).clone();
    let mallory_offer = mallory.offer(Capacity { gpu_slots: 4, cpu_cores: 8, ..Capacity::default() }, &[]).await;

    let zero = Forged::Offer(ResourceOffer { capacity: Capacity::default(), models: vec![], peer_endpoint: None });
    assert_cites(&mallory.refused("create_unchecked", zero).await, "OF1");
    let spaced = ResourceOffer { capacity: gpus(1), models: vec![], peer_endpoint: Some("http://a b".into()) };
    assert_cites(&mallory.refused("create_unchecked", Forged::Offer(spaced)).await, "OF1");

    let hijack = Forged::Offer(ResourceOffer { capacity: gpus(64), models: vec![], peer_endpoint: None });
    let input = UpdateInput { original: alice_offer.version.clone(), entry: hijack };
    assert_cites(&mallory.refused("update_unchecked", input).await, "OF2");

    let forever = Forged::Request(request_to(&alice.key(), gpus(1), 0));
    assert_cites(&mallory.refused("create_unchecked", forever).await, "RQ1");
    let unanswerable =
        AllocationRequest { answer_within_secs: ANSWER_WINDOW_MAX_SECS + 1, ..request_to(&alice.key(), gpus(1), 60) };
    assert_cites(&mallory.refused("create_unchecked", Forged::Request(unanswerable)).await, "RQ1");

    // GR1: Mallory grants Alice's request to Alice, consistently with Mallory's own ledger.
    let foreign = forged_grant(mallory, &mallory_offer, None, &alice_request, gpus(1), 60_000).await;
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(foreign)).await, "GR1");

    // GR2: a grant holding more than its request asked for (still within the offer).
    let own_request = mallory.request(&mallory.key(), gpus(1), 60).await;
    let greedy = forged_grant(mallory, &mallory_offer, None, &own_request, gpus(2), 60_000).await;
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(greedy)).await, "GR2");
    // … and a grant written after its request's answer window closed (granted further down).
    let late = mallory.request_within(&mallory.key(), gpus(1), 60, ANSWER_WINDOW_MIN_SECS).await;

    // AN1: a grant carrying another request's copy, an edited copy, or a copy whose signature is
    // not over its action (each otherwise a valid first grant of Mallory's own request).
    let honest = forged_grant(mallory, &mallory_offer, None, &own_request, gpus(1), 60_000).await;
    let other_copy = AllocationGrant { signed_request: alice_request.signed.clone(), ..honest.clone() };
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(other_copy)).await, "AN1");
    let mut edited = honest.clone();
    edited.signed_request.request.duration_secs = 7200;
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(edited)).await, "AN1");
    let mut resigned = honest;
    resigned.signed_request.signature = alice_request.signed.signature.clone();
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(resigned)).await, "AN1");

    // GR4: a one-second grant, expired, granted again.
    let short = mallory.request(&mallory.key(), cpus(1), 1).await;
    let short_grant = granted(&mallory.answer(&short.request_id).await).clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = forged_grant(mallory, &mallory_offer, Some(&short_grant.allocation_id), &short, cpus(1), 900).await;
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(again)).await, "GR4");
    let closed = late.signed.answer_by_micros() - Timestamp::now().as_micros();
    tokio::time::sleep(Duration::from_micros(u64::try_from(closed).unwrap_or(0) + 100_000)).await;
    let too_late =
        forged_grant(mallory, &mallory_offer, Some(&short_grant.allocation_id), &late, gpus(1), 60_000).await;
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(too_late)).await, "GR2");
    match mallory.answer(&late.request_id).await {
        Answer::Rejected { reason, .. } => assert!(reason.contains("answer window has passed"), "{reason}"),
        other => panic!("a request past its window is rejected, got {other:?}"),
    }

    // GR3: all four slots granted, then a fifth.
    let big = mallory.request(&mallory.key(), gpus(4), 3600).await;
    let big_grant = granted(&mallory.answer(&big.request_id).await).clone();
    let fifth = mallory.request(&mallory.key(), gpus(1), 3600).await;
    let over = forged_grant(mallory, &mallory_offer, Some(&big_grant.allocation_id), &fifth, gpus(1), 3_600_000).await;
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(over.clone())).await, "GR3");
    // … and the same fifth grant forgetting the big holding to make room.
    let mut forgetful = over;
    forgetful.holdings.retain(|h| h.request != big.request_id);
    assert_cites(&mallory.refused("create_unchecked", Forged::Grant(forgetful)).await, "GR3");
    // The honest zome rejects the fifth with a reason instead.
    match mallory.answer(&fifth.request_id).await {
        Answer::Rejected { reason, .. } => assert!(reason.contains("no free capacity"), "{reason}"),
        other => panic!("the fifth request must be rejected, got {other:?}"),
    }

    let rejection = |request: &RequestRecord, copy: &RequestRecord, reason: &str| {
        Forged::Rejection(AllocationRejection {
            request: request.request_id.clone(),
            signed_request: copy.signed.clone(),
            reason: reason.into(),
        })
    };
    assert_cites(&mallory.refused("create_unchecked", rejection(&alice_request, &alice_request, "no")).await, "RJ1");
    assert_cites(&mallory.refused("create_unchecked", rejection(&own_request, &own_request, " ")).await, "RJ2");
    assert_cites(&mallory.refused("create_unchecked", rejection(&own_request, &fifth, "no")).await, "AN1");

    let release = Forged::Release(AllocationRelease { grant: alice_grant.allocation_id.clone() });
    assert_cites(&mallory.refused("create_unchecked", release).await, "RL1");

    let bill = |grant: &GrantRecord, secs: u64| UsageReceipt {
        grant: grant.allocation_id.clone(),
        release: None,
        held_secs: secs,
        resource_seconds: ResourceSeconds::of(&grant.amounts, secs).unwrap_or_default(),
    };
    assert_cites(&mallory.refused("create_unchecked", Forged::Receipt(bill(&alice_grant, 1))).await, "UR1");
    assert_cites(&mallory.refused("create_unchecked", Forged::Receipt(bill(&short_grant, 100))).await, "UR2");
    // The honest receipt (1 s) is accepted; Alice may not acknowledge it for Mallory.
    let report: SettleReport = mallory.call("accounting", "settle", ()).await;
    assert_eq!(report.receipts_written, 1, "{report:?}");
    // A second pass sees the receipt and acknowledges it (Mallory requested from itself).
    let report: SettleReport = mallory.call("accounting", "settle", ()).await;
    assert_eq!(report.receipts_written, 0, "{report:?}");
    let receipt: Option<ReceiptRecord> =
        mallory.call("accounting", "get_receipt", short_grant.allocation_id.clone()).await;
    let receipt = receipt.expect("the short allocation has a receipt");
    assert_eq!(receipt.receipt.held_secs, 1);
    assert!(receipt.acknowledged, "settle acknowledges receipts for the node's own requests");
    assert_cites(
        &alice.refused("create_unchecked", Forged::Ack(UsageAck { receipt: receipt.receipt_id })).await,
        "UA1",
    );

    let inbox = LinkInput {
        base: alice.key().into(),
        target: alice_request.request_id.clone().into(),
        link_type: "ProviderInbox".into(),
    };
    assert_cites(&mallory.refused("create_link_unchecked", inbox).await, "LK1");
    let answers: Vec<ActionHash> = mallory
        .call(
            ADV,
            "get_link_hashes",
            LinksInput { base: alice_request.request_id.clone().into(), link_type: "RequestToAnswer".into() },
        )
        .await;
    let answer_link = answers.first().expect("Alice's answer link").clone();
    assert_cites(&mallory.refused("delete_link_unchecked", answer_link).await, "LK2");

    assert_cites(&mallory.refused("delete_unchecked", own_request.request_id.clone()).await, "DL1");
    let input =
        UpdateInput { original: own_request.request_id, entry: Forged::Request(request_to(&alice.key(), gpus(1), 5)) };
    assert_cites(&mallory.refused("update_unchecked", input).await, "DL1");
}

/// This DNA's part of `crate::warrants`: a grant by someone other than the provider (GR1), a grant
/// beyond capacity (GR3), a release of someone else's allocation (RL1), an expired grant reused
/// (GR4). Alice offers four GPUs and holds one of them.
pub struct WarrantRounds {
    alice_request: RequestRecord,
    alice_grant: GrantRecord,
}

impl WarrantRounds {
    pub const RULES: &[&str] = &["GR1", "GR3", "RL1", "GR4"];

    pub async fn setup(conductor: &SweetConductor, cell: &SweetCell) -> Self {
        let alice = Node { conductor, cell };
        alice.offer(gpus(4), &[]).await;
        let alice_request = alice.request(&alice.key(), gpus(1), 3600).await;
        let alice_grant = granted(&alice.answer(&alice_request.request_id).await).clone();
        Self { alice_request, alice_grant }
    }

    /// Publishes, from the adversary's `cell`, data breaking `rule`.
    pub async fn break_rule(&self, rule: &str, conductor: &SweetConductor, cell: &SweetCell) {
        let mallory = Node { conductor, cell };
        let offer = mallory.offer(gpus(2), &[]).await;
        match rule {
            "GR1" => {
                let grant = forged_grant(mallory, &offer, None, &self.alice_request, gpus(1), 60_000).await;
                mallory.forge(Forged::Grant(grant)).await;
            }
            "GR3" => {
                let full = mallory.request(&mallory.key(), gpus(2), 3600).await;
                let full_grant = granted(&mallory.answer(&full.request_id).await).clone();
                let more = mallory.request(&mallory.key(), gpus(1), 3600).await;
                let grant =
                    forged_grant(mallory, &offer, Some(&full_grant.allocation_id), &more, gpus(1), 3_600_000).await;
                mallory.forge(Forged::Grant(grant)).await;
            }
            "RL1" => {
                mallory
                    .forge(Forged::Release(AllocationRelease { grant: self.alice_grant.allocation_id.clone() }))
                    .await;
            }
            "GR4" => {
                let short = mallory.request(&mallory.key(), gpus(1), 1).await;
                let first = granted(&mallory.answer(&short.request_id).await).clone();
                // Past the one-second grant's expiry, so reusing it breaks GR4.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let grant = forged_grant(mallory, &offer, Some(&first.allocation_id), &short, gpus(1), 900).await;
                mallory.forge(Forged::Grant(grant)).await;
            }
            other => unreachable!("no case for {other}"),
        }
    }
}
