//! Capacity and the grant ledger.
//!
//! A provider's grants form a chain on its own source chain: every grant names the previous grant
//! and carries the *holdings* — every grant still holding capacity at its timestamp, itself
//! included. A validator checks one grant against its predecessor alone:
//! `holdings = (previous holdings − expired − released by the provider) + this grant`, and the
//! holdings fit in the offer. So the check is bounded (one predecessor, the releases in between),
//! and two grants racing for the last slot cannot both be valid: the second must name the first as
//! its predecessor, whose holdings already use the slot.
use serde::{Deserialize, Serialize};

/// Amounts of each resource a provider offers or a grant holds, in whole units.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    pub cpu_cores: u32,
    pub memory_gb: u32,
    pub gpu_slots: u32,
    pub vram_gb: u32,
    pub storage_gb: u64,
    /// Models the provider can serve at once (inference allocations).
    pub model_slots: u32,
}

impl Capacity {
    pub fn is_zero(&self) -> bool {
        *self == Capacity::default()
    }

    /// `None` when a sum does not fit the field (an overflow is never "within capacity").
    pub fn checked_add(&self, other: &Capacity) -> Option<Capacity> {
        Some(Capacity {
            cpu_cores: self.cpu_cores.checked_add(other.cpu_cores)?,
            memory_gb: self.memory_gb.checked_add(other.memory_gb)?,
            gpu_slots: self.gpu_slots.checked_add(other.gpu_slots)?,
            vram_gb: self.vram_gb.checked_add(other.vram_gb)?,
            storage_gb: self.storage_gb.checked_add(other.storage_gb)?,
            model_slots: self.model_slots.checked_add(other.model_slots)?,
        })
    }

    /// Every amount at most `limit`'s; the names of those that are over.
    pub fn over(&self, limit: &Capacity) -> Vec<&'static str> {
        let mut over = vec![];
        let mut check = |name, used: u64, offered: u64| {
            if used > offered {
                over.push(name);
            }
        };
        check("cpu_cores", self.cpu_cores.into(), limit.cpu_cores.into());
        check("memory_gb", self.memory_gb.into(), limit.memory_gb.into());
        check("gpu_slots", self.gpu_slots.into(), limit.gpu_slots.into());
        check("vram_gb", self.vram_gb.into(), limit.vram_gb.into());
        check("storage_gb", self.storage_gb, limit.storage_gb);
        check("model_slots", self.model_slots.into(), limit.model_slots.into());
        over
    }
}

/// A grant on the provider's ledger: which request it answered, how much, until when (µs since the
/// epoch). `R` is the request's identity (an `ActionHash` on the DHT).
///
/// A holding *counts* against the offer until it expires or is released, and is *remembered*
/// (counting nothing) until the request's answer window closes too, so a request can never be
/// granted a second time — not even after its first grant expired or was released.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Holding<R> {
    pub request: R,
    pub amounts: Capacity,
    pub expires_at_micros: i64,
    /// The end of the request's answer window (request time + its `answer_within_secs`).
    pub answer_by_micros: i64,
    pub released: bool,
}

impl<R> Holding<R> {
    pub fn counts_at(&self, now_micros: i64) -> bool {
        !self.released && self.expires_at_micros > now_micros
    }

    pub fn remembered_at(&self, now_micros: i64) -> bool {
        self.expires_at_micros.max(self.answer_by_micros) > now_micros
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// The holdings a grant carries are not the ones its predecessor implies.
    WrongHoldings { expected: usize, carried: usize },
    /// A release the grant accounts for is not of a live, unreleased holding of its predecessor.
    UnknownRelease,
    /// The request was granted before (it is still remembered).
    DuplicateRequest,
    /// The request's answer window closed before this grant.
    AnswerWindowPassed,
    /// The holdings exceed the offer in these resources.
    OverCapacity(Vec<&'static str>),
    /// A grant that holds nothing, or is already expired or released when written.
    EmptyOrExpired,
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::WrongHoldings { expected, carried } => write!(
                f,
                "the grant carries {carried} holding(s) but its predecessor's remembered holdings plus itself are {expected}"
            ),
            LedgerError::UnknownRelease => {
                write!(f, "a release the grant accounts for does not release a live holding of the previous grant")
            }
            LedgerError::DuplicateRequest => write!(f, "the request was already granted"),
            LedgerError::AnswerWindowPassed => write!(f, "the request's answer window has closed"),
            LedgerError::OverCapacity(over) => write!(f, "grants would exceed the offer in {}", over.join(", ")),
            LedgerError::EmptyOrExpired => {
                write!(f, "a grant must hold something and be neither expired nor released when written")
            }
        }
    }
}

/// The holdings after granting `new` at `now_micros`: the predecessor's holdings that are still
/// remembered, with `released` (by request) marked released, plus `new`, in that order.
pub fn next_holdings<R: PartialEq + Clone>(
    previous: &[Holding<R>],
    released: &[R],
    now_micros: i64,
    new: Holding<R>,
) -> Result<Vec<Holding<R>>, LedgerError> {
    if new.amounts.is_zero() || !new.counts_at(now_micros) {
        return Err(LedgerError::EmptyOrExpired);
    }
    if new.answer_by_micros < now_micros {
        return Err(LedgerError::AnswerWindowPassed);
    }
    for (i, r) in released.iter().enumerate() {
        let live = previous.iter().any(|h| &h.request == r && h.remembered_at(now_micros) && !h.released);
        if !live || released[..i].contains(r) {
            return Err(LedgerError::UnknownRelease);
        }
    }
    let mut holdings: Vec<Holding<R>> = previous
        .iter()
        .filter(|h| h.remembered_at(now_micros))
        .map(|h| Holding { released: h.released || released.contains(&h.request), ..h.clone() })
        .collect();
    if holdings.iter().any(|h| h.request == new.request) {
        return Err(LedgerError::DuplicateRequest);
    }
    holdings.push(new);
    Ok(holdings)
}

/// What `holdings` use at `now_micros`; `None` if the sum overflows.
pub fn used_at<R>(holdings: &[Holding<R>], now_micros: i64) -> Option<Capacity> {
    holdings
        .iter()
        .filter(|h| h.counts_at(now_micros))
        .try_fold(Capacity::default(), |sum, h| sum.checked_add(&h.amounts))
}

/// What `holdings` use at `now_micros`, refused if it does not fit `offer`.
pub fn check_within<R>(holdings: &[Holding<R>], now_micros: i64, offer: &Capacity) -> Result<Capacity, LedgerError> {
    let used = used_at(holdings, now_micros).ok_or(LedgerError::OverCapacity(vec!["overflow"]))?;
    let over = used.over(offer);
    if over.is_empty() {
        Ok(used)
    } else {
        Err(LedgerError::OverCapacity(over))
    }
}

/// The validator's whole check of one grant: the carried holdings are exactly what the predecessor
/// implies, and they fit the offer. Returns what the grant leaves in use.
pub fn check_grant<R: PartialEq + Clone>(
    previous: &[Holding<R>],
    released: &[R],
    now_micros: i64,
    carried: &[Holding<R>],
    offer: &Capacity,
) -> Result<Capacity, LedgerError> {
    let Some(new) = carried.last().cloned() else {
        return Err(LedgerError::EmptyOrExpired);
    };
    let expected = next_holdings(previous, released, now_micros, new)?;
    if expected.as_slice() != carried {
        return Err(LedgerError::WrongHoldings { expected: expected.len(), carried: carried.len() });
    }
    check_within(carried, now_micros, offer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: Capacity =
        Capacity { cpu_cores: 0, memory_gb: 0, gpu_slots: 1, vram_gb: 0, storage_gb: 0, model_slots: 0 };
    const FOUR_SLOTS: Capacity = Capacity { gpu_slots: 4, ..SLOT };

    /// A one-slot holding whose answer window closes when it expires.
    fn hold(request: u32, expires: i64) -> Holding<u32> {
        Holding { request, amounts: SLOT, expires_at_micros: expires, answer_by_micros: expires, released: false }
    }

    fn requests(holdings: &[Holding<u32>]) -> Vec<u32> {
        holdings.iter().map(|h| h.request).collect()
    }

    /// Grants requests in order against a 4-slot offer, each against the previous grant's holdings.
    fn race(requests: &[u32], now: i64) -> (Vec<u32>, Vec<u32>) {
        let (mut granted, mut rejected, mut holdings) = (vec![], vec![], vec![]);
        for &r in requests {
            match next_holdings(&holdings, &[], now, hold(r, now + 60)).and_then(|h| {
                check_within(&h, now, &FOUR_SLOTS)?;
                Ok(h)
            }) {
                Ok(next) => {
                    holdings = next;
                    granted.push(r);
                }
                Err(_) => rejected.push(r),
            }
        }
        (granted, rejected)
    }

    #[test]
    fn eight_requests_for_four_slots_get_four_grants_and_four_rejections() {
        let (granted, rejected) = race(&[1, 2, 3, 4, 5, 6, 7, 8], 1_000);
        assert_eq!(granted, vec![1, 2, 3, 4]);
        assert_eq!(rejected, vec![5, 6, 7, 8]);
    }

    #[test]
    fn expiry_and_release_free_capacity() {
        let full: Vec<Holding<u32>> = (1..=4).map(|r| hold(r, 100)).collect();
        assert!(check_within(&full, 50, &FOUR_SLOTS).is_ok());
        // Still full before expiry, free after it (and forgotten, the answer windows being closed).
        let at_50 = next_holdings(&full, &[], 50, hold(5, 200)).and_then(|h| check_within(&h, 50, &FOUR_SLOTS));
        assert_eq!(at_50, Err(LedgerError::OverCapacity(vec!["gpu_slots"])));
        assert_eq!(next_holdings(&full, &[], 100, hold(5, 200)), Ok(vec![hold(5, 200)]));
        // A release frees its slot early; the released holding is remembered, counting nothing.
        let released = next_holdings(&full, &[2], 50, hold(5, 200));
        assert_eq!(released.as_deref().map(requests), Ok(vec![1, 2, 3, 4, 5]));
        assert_eq!(released.as_ref().map(|h| h[1].released), Ok(true));
        assert!(released.and_then(|h| check_within(&h, 50, &FOUR_SLOTS)).is_ok());
        // Releasing something not held, or twice, is refused.
        assert_eq!(next_holdings(&full, &[9], 50, hold(5, 200)), Err(LedgerError::UnknownRelease));
        assert_eq!(next_holdings(&full, &[2, 2], 50, hold(5, 200)), Err(LedgerError::UnknownRelease));
    }

    #[test]
    fn a_request_is_granted_once_even_after_its_grant_expired() {
        // Granted for 10 µs with an answer window to 1000: expired at 20, still remembered.
        let short = Holding { answer_by_micros: 1_000, ..hold(7, 10) };
        let previous = vec![short];
        assert_eq!(next_holdings(&previous, &[], 20, hold(7, 500)), Err(LedgerError::DuplicateRequest));
        // Once the window closes it is forgotten, and the request cannot be answered any more.
        let late = Holding { answer_by_micros: 1_000, ..hold(7, 2_000) };
        assert_eq!(next_holdings(&previous, &[], 1_001, late), Err(LedgerError::AnswerWindowPassed));
    }

    #[test]
    fn a_grant_that_forgets_a_holding_or_reuses_a_request_is_refused() {
        let previous: Vec<Holding<u32>> = (1..=4).map(|r| hold(r, 100)).collect();
        // Dropping an unexpired holding to squeeze a fifth grant in.
        let forged = vec![hold(2, 100), hold(3, 100), hold(4, 100), hold(5, 100)];
        assert_eq!(
            check_grant(&previous, &[], 50, &forged, &FOUR_SLOTS),
            Err(LedgerError::WrongHoldings { expected: 5, carried: 4 })
        );
        assert_eq!(next_holdings(&previous, &[], 50, hold(3, 100)), Err(LedgerError::DuplicateRequest));
        // An expired grant cannot be written, nor an empty one.
        assert_eq!(next_holdings(&[], &[], 50, hold(9, 50)), Err(LedgerError::EmptyOrExpired));
        let nothing = Holding { amounts: Capacity::default(), ..hold(9, 100) };
        assert_eq!(next_holdings(&[], &[], 50, nothing), Err(LedgerError::EmptyOrExpired));
        // The honest fifth grant after one expiry is accepted.
        let mut mixed = previous.clone();
        mixed[0].expires_at_micros = 40;
        mixed[0].answer_by_micros = 40;
        let honest = vec![hold(2, 100), hold(3, 100), hold(4, 100), hold(5, 100)];
        assert!(check_grant(&mixed, &[], 50, &honest, &FOUR_SLOTS).is_ok());
    }

    #[test]
    fn sums_that_overflow_are_over_capacity() {
        let big = Capacity { storage_gb: u64::MAX, ..Capacity::default() };
        let holdings = vec![Holding { amounts: big, ..hold(1, 10) }, Holding { amounts: big, ..hold(2, 10) }];
        assert!(matches!(check_within(&holdings, 0, &big), Err(LedgerError::OverCapacity(_))));
    }
}
