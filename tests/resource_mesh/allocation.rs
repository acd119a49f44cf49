//! Allocation across conductors without a coordinator: eight requesters on two conductors race for
//! four GPU slots of a provider on a third; the provider's own chain serialises its grants, so
//! exactly four are granted and four rejected, every round. Releases and expiry free capacity, and
//! usage receipts are written by the provider and acknowledged by the requesters. Then the same
//! requesters hand their requests to the provider directly (`race_direct`), as their sidecars do:
//! answered at once, in batches, released at once, with the same guarantees.
use std::time::{Duration, Instant};

use futures::future::join_all;
use holochain::prelude::*;
use holochain::sweettest::*;
use resource_mesh_types::*;
use ripple::resources::group_commit::GroupCommit;

use super::validation::{gpus, Node};
use crate::support::*;

/// The provider answers every request in its inbox at once (as racing answer calls would), retrying
/// calls the conductor refused because another answer moved the chain head first.
async fn answer_all(provider: Node<'_>, requests: &[ActionHash]) -> Vec<Answer> {
    join_all(requests.iter().map(|request| async move {
        let input = AnswerInput { request_id: request.clone(), endpoint: "http://provider.test:8080".into() };
        for attempt in 1.. {
            match provider
                .conductor
                .call_fallible(&provider.cell.zome("scheduling"), "answer_request", input.clone())
                .await
            {
                Ok(answer) => return answer,
                Err(e) if attempt < 20 => {
                    eprintln!("answer {request} attempt {attempt}: {e}");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => panic!("answering {request} failed {attempt} times: {e}"),
            }
        }
        unreachable!()
    }))
    .await
}

/// One race: every requester asks for one slot for `secs`; returns the answers as each requester
/// sees them through the DHT, in requester order.
async fn race(provider: Node<'_>, requesters: &[Node<'_>], secs: u32) -> Vec<Answer> {
    let provider_key = provider.key();
    let requests: Vec<RequestRecord> =
        join_all(requesters.iter().map(|r| r.request(&provider_key, gpus(1), secs))).await;
    let ids: Vec<ActionHash> = requests.iter().map(|r| r.request_id.clone()).collect();
    let inbox = eventually("all requests reach the provider's inbox", Duration::from_secs(60), || async {
        let inbox: Inbox = provider.call("scheduling", "get_inbox", ()).await;
        ids.iter().all(|id| inbox.requests.contains(id)).then_some(inbox)
    })
    .await;
    let answers = answer_all(provider, &inbox.requests).await;
    let granted = answers.iter().filter(|a| matches!(a, Answer::Granted(_))).count();
    assert_eq!((granted, answers.len() - granted), (4, 4), "4 grants and 4 rejections: {answers:#?}");
    for answer in &answers {
        if let Answer::Rejected { reason, .. } = answer {
            assert!(
                reason.contains("no free capacity") && reason.contains("4 GPU slots in use of 4 GPU slots offered"),
                "{reason}"
            );
        }
    }
    let mut seen = vec![];
    for (requester, request) in requesters.iter().zip(&requests) {
        let answer = eventually("the requester sees its answer", Duration::from_secs(60), || async {
            requester.call::<_, Option<Answer>>("scheduling", "get_answer", request.request_id.clone()).await
        })
        .await;
        seen.push(answer);
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_requesters_race_for_four_slots_across_conductors() {
    let dna = mesh_dna(&unique_seed("mesh-race"), false).await;
    let mut conductors = SweetConductorBatch::standard(3).await;
    seed_compiled_zomes(conductors.iter(), &[&dna]).await;
    let (provider_cell,) = conductors[0].setup_app("ripple", [&mesh_role(&dna)]).await.unwrap().into_tuple();
    let left = conductors[1].setup_apps("ripple", 4, [&mesh_role(&dna)]).await.unwrap().cells_flattened();
    let right = conductors[2].setup_apps("ripple", 4, [&mesh_role(&dna)]).await.unwrap().cells_flattened();
    let mut all: Vec<&SweetCell> = vec![&provider_cell];
    all.extend(left.iter().chain(&right));
    await_consistency_s(120, all.iter().copied()).await.expect("the three conductors sync");

    let provider = Node { conductor: &conductors[0], cell: &provider_cell };
    let requesters: Vec<Node> = left
        .iter()
        .map(|cell| Node { conductor: &conductors[1], cell })
        .chain(right.iter().map(|cell| Node { conductor: &conductors[2], cell }))
        .collect();
    provider.offer(gpus(4), &[]).await;

    // Round 1: long allocations. Then every winner releases its grant.
    let round1 = race(provider, &requesters, 3600).await;
    for (requester, answer) in requesters.iter().zip(&round1) {
        if let Answer::Granted(grant) = answer {
            // The release is validated against the grant, which may not have reached this node yet.
            eventually("the requester releases its grant", Duration::from_secs(60), || async {
                let zome = requester.cell.zome("scheduling");
                let released = requester
                    .conductor
                    .call_fallible::<_, ActionHash>(&zome, "release_allocation", grant.allocation_id.clone())
                    .await;
                released.map_err(|e| eprintln!("release: {e}")).ok()
            })
            .await;
        }
    }
    // Round 2: the releases (in the provider's inbox) free all four slots again. Short allocations.
    eventually("the releases reach the provider's inbox", Duration::from_secs(60), || async {
        let inbox: Inbox = provider.call("scheduling", "get_inbox", ()).await;
        (inbox.releases.len() == 4).then_some(())
    })
    .await;
    // A reader counts the released slots free at once, before the provider's next grant folds them in.
    let status = eventually("a requester reads the slots free", Duration::from_secs(60), || async {
        let status: ProviderStatus = requesters[0].call("resources", "get_provider_status", provider.key()).await;
        (status.active == 0).then_some(status)
    })
    .await;
    assert_eq!(status.in_use, Capacity::default(), "{status:?}");
    // 20 s: long enough that none expires while the provider is still answering this round.
    let round2 = race(provider, &requesters, 20).await;
    // Round 3: nobody releases; expiry frees the slots.
    let last_expiry = round2
        .iter()
        .filter_map(|a| if let Answer::Granted(g) = a { Some(g.expires_at) } else { None })
        .max()
        .expect("round 2 granted");
    while Timestamp::now() <= last_expiry {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    race(provider, &requesters, 3600).await;
    let status: ProviderStatus = requesters[0].call("resources", "get_provider_status", provider.key()).await;
    assert_eq!((status.in_use, status.active), (gpus(4), 4), "a requester reads the provider's load: {status:?}");

    // Accounting: the provider bills the released and the expired allocations; requesters acknowledge.
    let report: SettleReport = provider.call("accounting", "settle", ()).await;
    assert_eq!(report.receipts_written, 8, "{report:?}");
    let ended = requesters.iter().zip(&round1).chain(requesters.iter().zip(&round2));
    for (requester, answer) in ended {
        if let Answer::Granted(grant) = answer {
            eventually("the requester acknowledges its receipt", Duration::from_secs(60), || async {
                // As the sidecar does every 30 s: a settle whose acknowledgement cannot be validated
                // yet (the receipt has not reached this node's DHT view) is simply tried again.
                let settled = requester
                    .conductor
                    .call_fallible::<_, SettleReport>(&requester.cell.zome("accounting"), "settle", ())
                    .await;
                if let Err(e) = settled {
                    eprintln!("settle: {e}");
                    return None;
                }
                let receipt: Option<ReceiptRecord> =
                    requester.call("accounting", "get_receipt", grant.allocation_id.clone()).await;
                receipt.filter(|r| r.acknowledged)
            })
            .await;
        }
    }
    let usage: UsageSummary = provider.call("accounting", "get_usage", ()).await;
    assert_eq!(usage.provided_receipts, 8, "{usage:?}");
    // Round 2's grants were held for their whole 20 s; round 1's only until their release.
    assert!(usage.provided.gpu_slot_seconds >= 80, "{usage:?}");
    let listed: AllocationList = requesters[0].call("scheduling", "list_allocations", 10u32).await;
    assert_eq!(listed.as_requester.len(), 3, "one request per round: {listed:?}");

    // The direct path: four more slots, raced for in batches handed straight to the provider.
    provider.offer(gpus(8), &[]).await;
    let tally = race_direct(provider, &requesters, DIRECT_ROUNDS, RACING_ROUNDS, 4).await;
    let DirectTally { rounds, requests, granted, rejected, head_moved, batches, batched, slowest_round, .. } = &tally;
    eprintln!(
        "direct race: {rounds} rounds, {requests} requests, {granted} granted, {rejected} rejected, \
         {head_moved} head-moved retries, {batched} answered in {batches} group writes, slowest round {slowest_round:.1?}"
    );
    // Each requester reads its last direct answer from the DHT, as the provider wrote it.
    for (requester, (request, answer)) in requesters.iter().zip(&tally.last_round) {
        let seen = eventually("a direct answer reaches the DHT", Duration::from_secs(60), || async {
            requester.call::<_, Option<Answer>>("scheduling", "get_answer", request.clone()).await
        })
        .await;
        assert_eq!(&seen, answer, "the DHT holds the answer the provider gave directly");
    }

    // Every peer accepted every grant: nobody warranted the provider.
    await_consistency_s(120, all.iter().copied()).await.expect("sync after the races");
    for cell in &all[1..] {
        assert!(warrant_reasons(cell, provider_cell.agent_pubkey()).await.is_empty(), "an honest grant was warranted");
    }
}

/// Direct rounds in the suite (`cargo xtask bench mesh` runs 1,000).
const DIRECT_ROUNDS: usize = 8;
/// Of those, the rounds whose batches race as separate calls without a lock.
const RACING_ROUNDS: usize = 3;
/// The answer window of a request handed over directly (the sidecar's is 10 s): a round here writes
/// up to 16 requests before handing any over, and took up to 10 s on an idle machine.
const DIRECT_WINDOW_SECS: u32 = 60;
/// What `race_direct` saw.
#[derive(Debug, Default)]
pub struct DirectTally {
    pub rounds: usize,
    pub requests: usize,
    pub granted: usize,
    pub rejected: usize,
    /// Answer calls refused because another call moved the provider's chain head first (retried).
    pub head_moved: usize,
    /// The last round's first request of each requester, with the answer it got.
    pub last_round: Vec<(ActionHash, Answer)>,
    /// Chain writes that answered requests handed over through the `GroupCommit`, and how many
    /// requests they answered.
    pub batches: usize,
    pub batched: usize,
    pub slowest_round: Duration,
}

/// `rounds` races for the `free` slots left on the provider: every requester writes one to three
/// requests for one slot each, and all hand them to the provider at once. In the first
/// `racing_rounds` each requester's batch is its own `answer_signed` call, without the sidecar's
/// lock (calls that lose the chain head are retried: the chain itself must serialise them); after
/// that every request goes through one `GroupCommit`, as the sidecar's peer route hands them over,
/// so the provider answers whatever queued in one write. Each round exactly `free` are granted and
/// the rest rejected for capacity; asking again returns the same answers; then each winner's
/// requester has the provider release it (`release_for`), which frees the slot for the next round.
pub async fn race_direct(
    provider: Node<'_>,
    requesters: &[Node<'_>],
    rounds: usize,
    racing_rounds: usize,
    free: usize,
) -> DirectTally {
    let provider_key = provider.key();
    let group = GroupCommit::<SignedRequest, Answer>::default();
    let chain = tokio::sync::Mutex::new(());
    // (chain writes, requests answered in them) through the group commit
    let written = std::sync::Mutex::new((0, 0));
    let mut tally = DirectTally { rounds, ..DirectTally::default() };
    for round in 0..rounds {
        let started = Instant::now();
        let made: Vec<Vec<RequestRecord>> = join_all(requesters.iter().enumerate().map(|(i, r)| {
            let provider_key = provider_key.clone();
            async move {
                let mut batch = vec![];
                for _ in 0..1 + (i + round) % 3 {
                    batch.push(r.request_within(&provider_key, gpus(1), 3600, DIRECT_WINDOW_SECS).await);
                }
                batch
            }
        }))
        .await;
        let racing = round < racing_rounds;
        let (group, chain, written) = (&group, &chain, &written);
        let answers: Vec<(Vec<Answer>, usize)> = join_all(made.iter().map(|batch| async move {
            let signed: Vec<SignedRequest> = batch.iter().map(|r| r.signed.clone()).collect();
            if racing {
                return answer_signed(provider, signed).await;
            }
            let handed = join_all(signed.into_iter().map(|one| {
                group.submit(chain, one, |queued| async move {
                    if let Ok(mut w) = written.lock() {
                        *w = (w.0 + 1, w.1 + queued.len());
                    }
                    answer_signed(provider, queued).await.0
                })
            }))
            .await;
            (handed.into_iter().map(|a| a.expect("the provider answered every request it was handed")).collect(), 0)
        }))
        .await;
        let asked: usize = made.iter().map(Vec::len).sum();
        let mut winners = vec![];
        for ((batch, (batch_answers, retries)), requester) in made.iter().zip(&answers).zip(requesters) {
            assert_eq!(batch.len(), batch_answers.len(), "one answer per request");
            tally.head_moved += retries;
            for (request, answer) in batch.iter().zip(batch_answers) {
                match answer {
                    Answer::Granted(grant) => {
                        assert_eq!(grant.request_id, request.request_id);
                        winners.push((grant.allocation_id.clone(), requester.key()));
                    }
                    Answer::Rejected { reason, .. } => {
                        assert!(reason.contains("no free capacity"), "round {round}: {reason}")
                    }
                }
            }
        }
        assert_eq!(winners.len(), free.min(asked), "round {round}: exactly the free slots are granted");
        tally.requests += asked;
        tally.granted += winners.len();
        tally.rejected += asked - winners.len();
        // Asked again (a requester that lost the first answer): the same answers.
        let all: Vec<SignedRequest> = made.iter().flatten().map(|r| r.signed.clone()).collect();
        let (again, _) = answer_signed(provider, all).await;
        let first: Vec<Answer> = answers.into_iter().flat_map(|(a, _)| a).collect();
        assert_eq!(again, first, "round {round}: answering again returns the first answers");
        if round + 1 == rounds {
            let firsts = first_per_batch(&made, &first);
            tally.last_round = made.iter().zip(firsts).map(|(batch, a)| (batch[0].request_id.clone(), a)).collect();
        }
        join_all(winners.into_iter().map(|(allocation_id, requester)| async move {
            let _chain = if racing { None } else { Some(chain.lock().await) };
            release_for(provider, allocation_id, requester).await
        }))
        .await;
        tally.slowest_round = tally.slowest_round.max(started.elapsed());
        if (round + 1) % 100 == 0 {
            eprintln!(
                "==> race: {} of {rounds} rounds, {} granted, {} rejected",
                round + 1,
                tally.granted,
                tally.rejected
            );
        }
    }
    (tally.batches, tally.batched) = *written.lock().unwrap();
    tally
}

/// The first answer of each batch, from the answers of all batches in order.
fn first_per_batch(batches: &[Vec<RequestRecord>], answers: &[Answer]) -> Vec<Answer> {
    let mut at = 0;
    batches
        .iter()
        .map(|batch| {
            let first = answers[at].clone();
            at += batch.len();
            first
        })
        .collect()
}

/// `scheduling.answer_signed` as a racing caller sees it: retried while another call holds the
/// chain head. The answers and how many retries they took.
async fn answer_signed(provider: Node<'_>, requests: Vec<SignedRequest>) -> (Vec<Answer>, usize) {
    let input = SignedAnswerInput { requests, endpoint: "http://provider.test:8080".into() };
    let zome = provider.cell.zome("scheduling");
    for attempt in 0.. {
        match provider.conductor.call_fallible(&zome, "answer_signed", input.clone()).await {
            Ok(answers) => return (answers, attempt),
            Err(e) if attempt < 100 => {
                if attempt > 20 {
                    eprintln!("answer_signed attempt {attempt}: {e}");
                }
                tokio::time::sleep(Duration::from_millis(5 * (1 + attempt as u64 % 7))).await;
            }
            Err(e) => panic!("answer_signed failed {attempt} times: {e}"),
        }
    }
    unreachable!()
}

/// `scheduling.release_for`, retried while another call holds the chain head.
async fn release_for(provider: Node<'_>, allocation_id: ActionHash, requester: AgentPubKey) {
    let input = ReleaseFor { allocation_id, requester };
    let zome = provider.cell.zome("scheduling");
    for attempt in 0.. {
        match provider.conductor.call_fallible::<_, ActionHash>(&zome, "release_for", input.clone()).await {
            Ok(_) => return,
            Err(e) if attempt < 100 => {
                if attempt > 20 {
                    eprintln!("release_for attempt {attempt}: {e}");
                }
                tokio::time::sleep(Duration::from_millis(5 * (1 + attempt as u64 % 7))).await;
            }
            Err(e) => panic!("release_for failed {attempt} times: {e}"),
        }
    }
}
