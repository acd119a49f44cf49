//! Reads from peers with a bounded wait, for every coordinator zome.
//!
//! Holochain asks up to three authorities at once and, while the live ones answer "nothing here",
//! waits for the rest. A peer that died stays in the peer table until its agent info expires
//! (20 minutes), and each request to it waits the conductor's request timeout (60 s) — as long as
//! the client's own zome-call timeout, so a mesh view would fail outright whenever a node is gone.
//! Every network read in our coordinators therefore carries a shorter per-peer timeout: a peer
//! that cannot answer in time is skipped and the read returns what the others and the local
//! store hold. A node that is merely slow shows up on the next read.

use hdk::prelude::*;

/// How long one read waits for any single peer. Loopback and LAN peers answer in milliseconds and a
/// relayed WAN peer in about a second; a call that makes three rounds of reads still answers well
/// inside the sidecar's 60 s zome-call timeout.
pub const PEER_READ_TIMEOUT_MS: u64 = 10_000;

/// `from_peers()` with the bounded per-peer wait.
pub fn from_peers() -> GetOptions {
    GetOptions::network().with_timeout_ms(PEER_READ_TIMEOUT_MS)
}

/// `get_links` with explicit options (the HDK's `get_links` only takes a strategy, hence no timeout).
pub fn links(query: LinkQuery, options: GetOptions) -> ExternResult<Vec<Link>> {
    let mut batches = HDK.with(|h| h.borrow().get_links(vec![GetLinksInput::from_query(query, options)]))?;
    Ok(batches.pop().unwrap_or_default())
}

/// `get_links` from peers with the bounded wait.
pub fn links_from_peers(query: LinkQuery) -> ExternResult<Vec<Link>> {
    links(query, from_peers())
}

/// The links of every query, read from peers in one host call: the host runs up to ten reads at
/// once, so a peer that does not answer costs one per-peer timeout per ten queries rather than
/// one per query (a 16-anchor scan read one at a time could outlast the caller's 60 s).
pub fn links_from_peers_each(queries: Vec<LinkQuery>) -> ExternResult<Vec<Vec<Link>>> {
    links_each(queries, &from_peers())
}

/// The links of every query with the same options, in one host call.
pub fn links_each(queries: Vec<LinkQuery>, options: &GetOptions) -> ExternResult<Vec<Vec<Link>>> {
    let inputs = queries.into_iter().map(|query| GetLinksInput::from_query(query, options.clone())).collect();
    HDK.with(|h| h.borrow().get_links(inputs))
}

/// The records at `hashes`, fetched in one batch (the host runs the gets concurrently), in order.
pub fn records_from_peers(hashes: Vec<ActionHash>) -> ExternResult<Vec<Option<Record>>> {
    records(hashes, &from_peers())
}

/// The records at `hashes` with the same options, in one host call, in order.
pub fn records(hashes: Vec<ActionHash>, options: &GetOptions) -> ExternResult<Vec<Option<Record>>> {
    let inputs = hashes.into_iter().map(|hash| GetInput::new(hash.into(), options.clone())).collect();
    HDK.with(|h| h.borrow().get(inputs))
}

/// The action hashes links point at, skipping targets of any other kind.
pub fn link_targets(links: Vec<Link>) -> Vec<ActionHash> {
    links.into_iter().filter_map(|link| link.target.into_action_hash()).collect()
}
