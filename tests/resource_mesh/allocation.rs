//! Allocation across conductors without a coordinator: eight requesters on two conductors race for
//! four GPU slots of a provider on a third; the provider's own chain serialises its grants, so
//! exactly four are granted and four rejected, every round. Releases and expiry free capacity, and
//! usage receipts are written by the provider and acknowledged by the requesters.
use std::time::Duration;

use futures::future::join_all;
use holochain::prelude::*;
use holochain::sweettest::*;
use resource_mesh_types::*;

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

    // Every peer accepted every grant: nobody warranted the provider.
    await_consistency_s(120, all.iter().copied()).await.expect("sync after the races");
    for cell in &all[1..] {
        assert!(warrant_reasons(cell, provider_cell.agent_pubkey()).await.is_empty(), "an honest grant was warranted");
    }
}
