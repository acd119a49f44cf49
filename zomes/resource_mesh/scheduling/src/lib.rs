//! Coordinator `scheduling`: requesters ask a provider for resources and release them; the provider
//! answers each request in its inbox with a grant (capacity held on its ledger) or a rejection with
//! a reason. Choosing the provider is the sidecar's scheduler; offers live in `resources`, receipts
//! in `accounting`.
use hdk::prelude::*;
use peer_reads::{from_peers, links, links_from_peers};
use resource_mesh_integrity::capacity::{check_within, next_holdings, used_at, LedgerError};
use resource_mesh_integrity::{EntryTypes, LinkTypes};
use resource_mesh_types::*;

#[derive(Debug, thiserror::Error)]
enum SchedulingError {
    #[error("request rejected before publishing: {0}")]
    InvalidRequest(resource_mesh_integrity::RuleViolation),
    #[error("no allocation request {0} is visible on the DHT (yet)")]
    NoSuchRequest(ActionHash),
    #[error("request {0} is addressed to another provider")]
    NotMine(ActionHash),
    #[error("no allocation grant {0} is visible on the DHT (yet)")]
    NoSuchGrant(ActionHash),
    #[error("only the provider or the requester of allocation {0} may release it")]
    NotAParty(ActionHash),
}

impl From<SchedulingError> for WasmError {
    fn from(e: SchedulingError) -> Self {
        wasm_error!(WasmErrorInner::Guest(e.to_string()))
    }
}

const MICROS: i64 = 1_000_000;
/// How much of a request's answer window a decision leaves for its commit (validators check the
/// grant's action timestamp against the window).
const COMMIT_MARGIN_MICROS: i64 = MICROS;

/// A requester: writes the request. Its sidecar hands it to the provider directly; a request that
/// is to wait in the provider's DHT inbox instead goes there with `post_to_inbox`.
#[hdk_extern]
pub fn request_allocation(request: AllocationRequest) -> ExternResult<RequestRecord> {
    request.check().map_err(SchedulingError::InvalidRequest)?;
    let hash = create_entry(EntryTypes::AllocationRequest(request))?;
    own_request(&hash)
}

/// A requester: puts one of its requests into its provider's inbox, where the provider's loop
/// answers it (the path for a provider that does not take requests directly).
#[hdk_extern]
pub fn post_to_inbox(request_id: ActionHash) -> ExternResult<()> {
    let request = own_request(&request_id)?;
    create_link(request.request.provider, request_id, LinkTypes::ProviderInbox, ())?;
    Ok(())
}

fn own_request(hash: &ActionHash) -> ExternResult<RequestRecord> {
    let record = get(hash.clone(), GetOptions::local())?.ok_or_else(|| SchedulingError::NoSuchRequest(hash.clone()))?;
    RequestRecord::from_record(&record).ok_or_else(|| SchedulingError::NoSuchRequest(hash.clone()).into())
}

/// The provider (its sidecar's loop): the requests and releases waiting in its inbox, and the inbox
/// links of requests it has already answered (handed to it directly as well).
#[hdk_extern]
pub fn get_inbox(_: ()) -> ExternResult<Inbox> {
    let me = agent_info()?.agent_initial_pubkey;
    let mut requests = vec![];
    let mut inbox = Inbox::default();
    for link in links_from_peers(LinkQuery::try_new(me, LinkTypes::ProviderInbox)?)? {
        let Some(target) = link.target.into_action_hash() else { continue };
        let Some(record) = get(target.clone(), from_peers())? else { continue };
        if let Some(request) = RequestRecord::from_record(&record) {
            if answer_of(&target, GetOptions::local())?.is_some() {
                inbox.answered.push(link.create_link_hash);
            } else {
                requests.push((request.made_at, target));
            }
        } else if entry_of::<AllocationRelease>(&record, UnitEntryTypes::AllocationRelease).is_some() {
            inbox.releases.push(target);
        }
    }
    requests.sort();
    inbox.requests = requests.into_iter().map(|(_, hash)| hash).collect();
    Ok(inbox)
}

/// The provider: removes the inbox links `get_inbox` reported as answered.
#[hdk_extern]
pub fn clear_answered(links: Vec<ActionHash>) -> ExternResult<()> {
    for link in links {
        delete_link(link, from_peers())?;
    }
    Ok(())
}

/// The provider: answers one request in its inbox with a grant, if its offer has room after what
/// its latest grant holds (less expiries and the releases in its inbox), or a rejection saying why.
/// Answering an answered request returns the existing answer.
#[hdk_extern]
pub fn answer_request(input: AnswerInput) -> ExternResult<Answer> {
    let me = agent_info()?.agent_initial_pubkey;
    if let Some(answer) = answer_of(&input.request_id, GetOptions::local())? {
        return Ok(answer);
    }
    let record = get(input.request_id.clone(), from_peers())?
        .ok_or_else(|| SchedulingError::NoSuchRequest(input.request_id.clone()))?;
    let request =
        RequestRecord::from_record(&record).ok_or_else(|| SchedulingError::NoSuchRequest(input.request_id.clone()))?;
    if request.request.provider != me {
        return Err(SchedulingError::NotMine(input.request_id).into());
    }
    let mut ledger = Ledger::read(&me)?;
    let answer = ledger.answer(&me, request.signed, input.endpoint, &from_peers())?;
    ledger.write_link(&me)?;
    clear_inbox(&me)?;
    Ok(answer)
}

/// The provider: answers requests their requesters handed to it directly (its sidecar queues them
/// while the previous write is under way), in order, all in one chain write. Each grant names the
/// one before it, so the holdings stay one chain; a request answered before gets its answer again.
/// Releases count only once this node holds them: those from its inbox it has not received yet
/// wait for a later grant, which frees capacity late, never early.
#[hdk_extern]
pub fn answer_signed(input: SignedAnswerInput) -> ExternResult<Vec<Answer>> {
    let me = agent_info()?.agent_initial_pubkey;
    let mut ledger = Ledger::read(&me)?;
    let mut answers = Vec::with_capacity(input.requests.len());
    for signed in input.requests {
        let request_id = hash_action(signed.action.clone())?;
        if signed.request.provider != me {
            return Err(SchedulingError::NotMine(request_id).into());
        }
        let answer = match answer_of(&request_id, GetOptions::local())? {
            Some(answer) => answer,
            None => ledger.answer(&me, signed, input.endpoint.clone(), &GetOptions::local())?,
        };
        answers.push(answer);
    }
    ledger.write_link(&me)?;
    ledger.clear_spent()?;
    Ok(answers)
}

/// The provider's ledger as this call goes: its latest offer and grant, whether a grant was
/// written (whose ledger link then replaces the old one, once per call), and the inbox links of
/// releases the ledger has accounted for.
struct Ledger {
    offer: Option<(ActionHash, ResourceOffer)>,
    latest: Option<(ActionHash, AllocationGrant)>,
    granted: bool,
    spent: Vec<ActionHash>,
}

impl Ledger {
    fn read(me: &AgentPubKey) -> ExternResult<Self> {
        Ok(Self { offer: latest_offer(me)?, latest: latest_grant(me)?, granted: false, spent: vec![] })
    }

    /// Decides `signed` against the ledger and commits the grant or rejection with its answer link.
    /// `options` is where to look for releases.
    fn answer(
        &mut self,
        me: &AgentPubKey,
        signed: SignedRequest,
        endpoint: String,
        options: &GetOptions,
    ) -> ExternResult<Answer> {
        let request_id = hash_action(signed.action.clone())?;
        let (hash, kind) = match self.decide(me, &request_id, &signed, endpoint, options)? {
            Ok(grant) => {
                let hash = create_entry(EntryTypes::AllocationGrant(grant.clone()))?;
                self.latest = Some((hash.clone(), grant));
                self.granted = true;
                (hash, UnitEntryTypes::AllocationGrant)
            }
            Err(reason) => {
                let rejection = AllocationRejection { request: request_id.clone(), signed_request: signed, reason };
                (create_entry(EntryTypes::AllocationRejection(rejection))?, UnitEntryTypes::AllocationRejection)
            }
        };
        create_link(request_id, hash.clone(), LinkTypes::RequestToAnswer, ())?;
        let record = get(hash.clone(), GetOptions::local())?.ok_or(SchedulingError::NoSuchRequest(hash))?;
        Answer::from_record(&record)
            .ok_or_else(|| wasm_error!(WasmErrorInner::Guest(format!("own {kind:?} does not decode"))))
    }

    /// The grant for the request, if the offer has room after what the latest grant holds (less
    /// expiries and releases), or why not.
    fn decide(
        &mut self,
        me: &AgentPubKey,
        request_id: &ActionHash,
        signed: &SignedRequest,
        endpoint: String,
        options: &GetOptions,
    ) -> ExternResult<Result<AllocationGrant, String>> {
        let now = sys_time()?.as_micros();
        let answer_by = signed.answer_by_micros();
        // Leave time for the commit itself: the validators check the action's timestamp.
        if now + COMMIT_MARGIN_MICROS > answer_by {
            let window = signed.request.answer_within_secs;
            return Ok(Err(format!("the request's {window} s answer window has passed")));
        }
        let Some((offer_hash, offer)) = self.offer.clone() else {
            return Ok(Err("this node offers no resources".into()));
        };
        let wanted = &signed.request;
        if let Some(model) = &wanted.model_name {
            if !offer.models.iter().any(|m| m.eq_ignore_ascii_case(model)) {
                return Ok(Err(format!("this node does not serve model {model:?}")));
            }
        }
        let over_offer = wanted.requirements.over(&offer.capacity);
        if !over_offer.is_empty() {
            return Ok(Err(format!("the request exceeds everything this node offers in {}", over_offer.join(", "))));
        }
        let (prev_grant, previous) = match &self.latest {
            Some((hash, grant)) => (Some(hash.clone()), grant.holdings.clone()),
            None => (None, vec![]),
        };
        let Releases { releases, released, accounted, gone } = accountable_releases(me, &previous, now, options)?;
        self.spend(gone);
        let new = Holding {
            request: request_id.clone(),
            amounts: wanted.requirements,
            expires_at_micros: now + i64::from(wanted.duration_secs) * MICROS,
            answer_by_micros: answer_by,
            released: false,
        };
        let holdings = match next_holdings(&previous, &released, now, new) {
            Ok(holdings) => holdings,
            Err(LedgerError::DuplicateRequest) => return Ok(Err("the request was already granted".into())),
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(LedgerError::OverCapacity(over)) = check_within(&holdings, now, &offer.capacity) {
            let in_use = used_at(&holdings[..holdings.len().saturating_sub(1)], now).unwrap_or_default();
            return Ok(Err(format!(
                "no free capacity: {} in use of {} offered, {} requested, in {}",
                describe_capacity(&in_use),
                describe_capacity(&offer.capacity),
                describe_capacity(&wanted.requirements),
                over.join(", ")
            )));
        }
        // Written by the caller right after: these releases are then accounted for.
        self.spend(accounted);
        Ok(Ok(AllocationGrant {
            request: request_id.clone(),
            signed_request: signed.clone(),
            ledger_at_micros: now,
            offer: offer_hash,
            prev_grant,
            releases,
            holdings,
            endpoint,
        }))
    }

    fn spend(&mut self, links: Vec<ActionHash>) {
        for link in links {
            if !self.spent.contains(&link) {
                self.spent.push(link);
            }
        }
    }

    /// Removes the inbox links of the releases this call's decisions saw, all accounted for now:
    /// each decision reads every release in the inbox, so they must not pile up. (On the inbox
    /// path `clear_inbox` does this from what peers hold.)
    fn clear_spent(&self) -> ExternResult<()> {
        for link in &self.spent {
            delete_link(link.clone(), GetOptions::local())?;
        }
        Ok(())
    }

    /// Points the provider's ledger link at its latest grant, if this call wrote one.
    fn write_link(&self, me: &AgentPubKey) -> ExternResult<()> {
        let Some((latest, _)) = self.latest.as_ref().filter(|_| self.granted) else {
            return Ok(());
        };
        for old in get_links(LinkQuery::try_new(me.clone(), LinkTypes::ProviderToLedger)?, GetStrategy::Local)? {
            delete_link(old.create_link_hash, GetOptions::local())?;
        }
        create_link(me.clone(), latest.clone(), LinkTypes::ProviderToLedger, ())?;
        Ok(())
    }
}

/// The releases in this provider's inbox that free a live holding of its latest grant, and the
/// requests they release.
fn accountable_releases(
    me: &AgentPubKey,
    previous: &[Holding<ActionHash>],
    now: i64,
    options: &GetOptions,
) -> ExternResult<Releases> {
    let mut found = Releases::default();
    for link in links(LinkQuery::try_new(me.clone(), LinkTypes::ProviderInbox)?, options.clone())? {
        let Some(target) = link.target.into_action_hash() else { continue };
        let Some(record) = get(target.clone(), options.clone())? else { continue };
        let Some(release) = entry_of::<AllocationRelease>(&record, UnitEntryTypes::AllocationRelease) else { continue };
        let Some(grant) = get(release.grant.clone(), options.clone())?
            .and_then(|r| entry_of::<AllocationGrant>(&r, UnitEntryTypes::AllocationGrant))
        else {
            continue;
        };
        let live = previous.iter().any(|h| h.request == grant.request && !h.released && h.remembered_at(now));
        if live && !found.released.contains(&grant.request) {
            found.releases.push(target);
            found.released.push(grant.request);
            found.accounted.push(link.create_link_hash);
        } else {
            found.gone.push(link.create_link_hash);
        }
    }
    Ok(found)
}

/// What `accountable_releases` found in the inbox.
#[derive(Default)]
struct Releases {
    /// Releases a grant accounts for, the requests they release, and their inbox links.
    releases: Vec<ActionHash>,
    released: Vec<ActionHash>,
    accounted: Vec<ActionHash>,
    /// Inbox links of releases the ledger needs no more (accounted for earlier, or of holdings gone).
    gone: Vec<ActionHash>,
}

/// Removes inbox links for requests this provider has answered and releases its ledger no longer
/// needs (accounted for, or of holdings already gone).
fn clear_inbox(me: &AgentPubKey) -> ExternResult<()> {
    let live: Vec<ActionHash> = match latest_grant(me)? {
        Some((_, grant)) => grant.holdings.into_iter().filter(|h| !h.released).map(|h| h.request).collect(),
        None => vec![],
    };
    for link in links_from_peers(LinkQuery::try_new(me.clone(), LinkTypes::ProviderInbox)?)? {
        let Some(target) = link.target.clone().into_action_hash() else { continue };
        let Some(record) = get(target.clone(), from_peers())? else { continue };
        let done = if RequestRecord::from_record(&record).is_some() {
            answer_of(&target, GetOptions::local())?.is_some()
        } else if let Some(release) = entry_of::<AllocationRelease>(&record, UnitEntryTypes::AllocationRelease) {
            let grant = get(release.grant, from_peers())?
                .and_then(|r| entry_of::<AllocationGrant>(&r, UnitEntryTypes::AllocationGrant));
            grant.is_none_or(|g| !live.contains(&g.request))
        } else {
            true
        };
        if done {
            delete_link(link.create_link_hash, from_peers())?;
        }
    }
    Ok(())
}

/// The provider's latest offer version, via its offer link (replaced on every update): a chain
/// query would read the provider's whole chain, which every grant makes longer.
fn latest_offer(me: &AgentPubKey) -> ExternResult<Option<(ActionHash, ResourceOffer)>> {
    newest_linked(me, LinkTypes::ProviderToOffer, UnitEntryTypes::ResourceOffer)
}

/// The provider's latest grant, via its ledger link (written with every grant).
fn latest_grant(me: &AgentPubKey) -> ExternResult<Option<(ActionHash, AllocationGrant)>> {
    newest_linked(me, LinkTypes::ProviderToLedger, UnitEntryTypes::AllocationGrant)
}

/// The entry of type `unit` that `me`'s newest own `link_type` link from its key points at.
fn newest_linked<T: TryFrom<SerializedBytes, Error = SerializedBytesError>>(
    me: &AgentPubKey,
    link_type: LinkTypes,
    unit: UnitEntryTypes,
) -> ExternResult<Option<(ActionHash, T)>> {
    let links = get_links(LinkQuery::try_new(me.clone(), link_type)?, GetStrategy::Local)?;
    let Some(newest) = links.into_iter().filter(|l| &l.author == me).max_by_key(|l| l.timestamp) else {
        return Ok(None);
    };
    let Some(hash) = newest.target.into_action_hash() else { return Ok(None) };
    Ok(get(hash.clone(), GetOptions::local())?.and_then(|r| entry_of::<T>(&r, unit)).map(|entry| (hash, entry)))
}

/// The answer to a request, if the provider's answer link is visible with `options`.
fn answer_of(request: &ActionHash, options: GetOptions) -> ExternResult<Option<Answer>> {
    for link in links(LinkQuery::try_new(request.clone(), LinkTypes::RequestToAnswer)?, options.clone())? {
        let Some(target) = link.target.into_action_hash() else { continue };
        if let Some(answer) = get(target, options.clone())?.as_ref().and_then(Answer::from_record) {
            return Ok(Some(answer));
        }
    }
    Ok(None)
}

/// Anyone (the requester polls it): the provider's answer to a request, once visible.
#[hdk_extern]
pub fn get_answer(request: ActionHash) -> ExternResult<Option<Answer>> {
    answer_of(&request, from_peers())
}

/// The provider or the requester: ends an allocation before it expires and tells the provider.
/// Releasing twice returns the first release.
#[hdk_extern]
pub fn release_allocation(allocation_id: ActionHash) -> ExternResult<ActionHash> {
    let me = agent_info()?.agent_initial_pubkey;
    let grant = grant_of(&allocation_id, from_peers())?;
    if grant.provider != me && grant.signed_request.requester() != &me {
        return Err(SchedulingError::NotAParty(allocation_id).into());
    }
    release(&me, &allocation_id, &grant.provider, from_peers())
}

/// The provider: releases its grant because the allocation's requester asked it to, directly. The
/// release goes into the provider's own inbox too, so its next grant, on either path, accounts
/// for it at once. Releasing twice returns the first release.
#[hdk_extern]
pub fn release_for(input: ReleaseFor) -> ExternResult<ActionHash> {
    let me = agent_info()?.agent_initial_pubkey;
    let grant = grant_of(&input.allocation_id, GetOptions::local())?;
    if grant.provider != me || grant.signed_request.requester() != &input.requester {
        return Err(SchedulingError::NotAParty(input.allocation_id).into());
    }
    release(&me, &input.allocation_id, &me, GetOptions::local())
}

/// A grant, with the provider that wrote it.
struct GrantOf {
    provider: AgentPubKey,
    signed_request: SignedRequest,
}

fn grant_of(allocation_id: &ActionHash, options: GetOptions) -> ExternResult<GrantOf> {
    let record =
        get(allocation_id.clone(), options)?.ok_or_else(|| SchedulingError::NoSuchGrant(allocation_id.clone()))?;
    let grant = entry_of::<AllocationGrant>(&record, UnitEntryTypes::AllocationGrant)
        .ok_or_else(|| SchedulingError::NoSuchGrant(allocation_id.clone()))?;
    Ok(GrantOf { provider: record.action().author().clone(), signed_request: grant.signed_request })
}

/// `me` releases the allocation (once), linking the release to the grant and into `provider`'s inbox.
fn release(
    me: &AgentPubKey,
    allocation_id: &ActionHash,
    provider: &AgentPubKey,
    options: GetOptions,
) -> ExternResult<ActionHash> {
    if let Some((hash, _)) = releases_of(allocation_id, options)?.into_iter().find(|(_, r)| r.action().author() == me) {
        return Ok(hash);
    }
    let release = create_entry(EntryTypes::AllocationRelease(AllocationRelease { grant: allocation_id.clone() }))?;
    create_link(allocation_id.clone(), release.clone(), LinkTypes::Followups, ())?;
    create_link(provider.clone(), release.clone(), LinkTypes::ProviderInbox, ())?;
    Ok(release)
}

/// The release records that follow a grant.
fn releases_of(grant: &ActionHash, options: GetOptions) -> ExternResult<Vec<(ActionHash, Record)>> {
    let mut releases = vec![];
    for link in links(LinkQuery::try_new(grant.clone(), LinkTypes::Followups)?, options.clone())? {
        let Some(target) = link.target.into_action_hash() else { continue };
        if let Some(record) = get(target.clone(), options.clone())? {
            if entry_of::<AllocationRelease>(&record, UnitEntryTypes::AllocationRelease).is_some() {
                releases.push((target, record));
            }
        }
    }
    Ok(releases)
}

/// This agent's allocations as requester (its requests) and as provider (its grants), newest first,
/// at most `limit` of each, with their answers, releases and receipts.
#[hdk_extern]
pub fn list_allocations(limit: u32) -> ExternResult<AllocationList> {
    let newest = |unit: UnitEntryTypes| -> ExternResult<Vec<Record>> {
        let filter = ChainQueryFilter::new().entry_type(unit.try_into()?).include_entries(true);
        Ok(query(filter)?.into_iter().rev().take(limit as usize).collect())
    };
    let mut list = AllocationList::default();
    for record in newest(UnitEntryTypes::AllocationRequest)? {
        if let Some(request) = RequestRecord::from_record(&record) {
            let answer = answer_of(&request.request_id, from_peers())?;
            list.as_requester.push(view(request, answer)?);
        }
    }
    for record in newest(UnitEntryTypes::AllocationGrant)? {
        let Some(grant) = GrantRecord::from_record(&record) else { continue };
        let Some(request) = get(grant.request_id.clone(), from_peers())?.as_ref().and_then(RequestRecord::from_record)
        else {
            continue;
        };
        list.as_provider.push(view(request, Some(Answer::Granted(grant)))?);
    }
    Ok(list)
}

fn view(request: RequestRecord, answer: Option<Answer>) -> ExternResult<AllocationView> {
    let (mut released_at, mut receipt) = (None, None);
    if let Some(Answer::Granted(grant)) = &answer {
        released_at =
            releases_of(&grant.allocation_id, from_peers())?.iter().map(|(_, r)| r.action().timestamp()).min();
        let call = call(CallTargetCell::Local, "accounting", "get_receipt".into(), None, grant.allocation_id.clone())?;
        receipt = match call {
            ZomeCallResponse::Ok(output) => output.decode::<Option<ReceiptRecord>>().map_err(|e| wasm_error!(e))?,
            other => return Err(wasm_error!(WasmErrorInner::Guest(format!("accounting.get_receipt: {other:?}")))),
        };
    }
    Ok(AllocationView { request, answer, released_at, receipt })
}

/// After each commit of this node through this zome: tell its dashboard (`changes::announce`).
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    changes::announce(&committed);
}
