//! Quota reservations: a request reserves its bound — the most tokens it can be counted for —
//! against every quota that binds its key before it is forwarded, and is admitted only if
//! each quota's use plus what is already reserved plus its bound fits. The reservation is
//! settled when the request ends: what was produced is counted at once (in the key cache's
//! totals) and the reservation released, in that order, so the tokens are never in neither.
//! Concurrent requests on one gateway therefore never overshoot a quota; across gateways the
//! fleet's rooms ([`crate::fleet::quota_rooms`]) hold the same promise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cache::verify::QuotaStatus;

/// A request's reservations: in this gateway's view, and in the fleet's rooms
/// ([`crate::fleet::quota_rooms`]) when limits are counted for the fleet.
pub struct Held {
    /// In this gateway's view.
    pub local: Reservation,
    /// In the fleet's rooms.
    pub fleet: Option<crate::fleet::quota_rooms::RoomHold>,
}

impl Held {
    /// Releases both, `spent` tokens staying spent in the fleet's rooms.
    pub fn settle(mut self, spent: i64) {
        if let Some(fleet) = self.fleet.as_mut() {
            fleet.settle(spent);
        }
    }
}

/// The fleet's rooms of `quotas` at `now` (each in the period it counts in).
pub fn in_rooms(
    quotas: &[(String, QuotaStatus)],
    now: time::OffsetDateTime,
) -> Vec<crate::fleet::quota_rooms::Quota> {
    use tokenhub_aggregates::api_key::QuotaPeriod;
    quotas
        .iter()
        .map(|(owner, q)| crate::fleet::quota_rooms::Quota {
            owner: owner.clone(),
            period_start: match q.period {
                None => 0,
                Some(QuotaPeriod::Day) => crate::cache::usage::day_index(now),
                Some(QuotaPeriod::Month) => crate::cache::usage::month_index(now),
            },
            limit: q.limit,
            used: q.used,
        })
        .collect()
}

/// Reserved tokens per quota owner (key public id, sub-account id or tenant id).
#[derive(Default)]
pub struct Reservations {
    reserved: Mutex<HashMap<String, i64>>,
}

/// A reservation held by one request: released when dropped.
pub struct Reservation {
    book: Arc<Reservations>,
    held: Vec<(String, i64)>,
}

impl Reservations {
    /// Reserves `bound` tokens against each of `quotas`, all or none; `None` when one of them
    /// cannot hold it (the request is refused with `QUOTA_EXCEEDED`).
    pub fn reserve(self: &Arc<Self>, quotas: &[(String, QuotaStatus)], bound: i64) -> Option<Reservation> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let fits = quotas
            .iter()
            .all(|(owner, q)| q.used + reserved.get(owner).copied().unwrap_or(0) + bound <= q.limit);
        if !fits {
            return None;
        }
        let mut held = Vec::with_capacity(quotas.len());
        for (owner, _) in quotas {
            *reserved.entry(owner.clone()).or_default() += bound;
            held.push((owner.clone(), bound));
        }
        Some(Reservation { book: self.clone(), held })
    }

    /// Tokens reserved against `owner` now (0 when none).
    pub fn reserved(&self, owner: &str) -> i64 {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner()).get(owner).copied().unwrap_or(0)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.book.reserved.lock().unwrap_or_else(|e| e.into_inner());
        for (owner, amount) in self.held.drain(..) {
            if let Some(r) = reserved.get_mut(&owner) {
                *r -= amount;
                if *r <= 0 {
                    reserved.remove(&owner);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::verify::QuotaScope;

    fn quota(used: i64, limit: i64) -> QuotaStatus {
        QuotaStatus { scope: QuotaScope::Key, limit, used, remaining: limit - used, period: None }
    }

    #[test]
    fn reservations_fit_under_every_quota_and_are_released_on_drop() {
        let book = Arc::new(Reservations::default());
        let quotas = [("k".to_string(), quota(100, 1000)), ("t".to_string(), quota(0, 500))];
        let a = book.reserve(&quotas, 300).expect("fits");
        assert!(book.reserve(&quotas, 300).is_none(), "the tenant's 500 cannot hold 600");
        let b = book.reserve(&quotas, 200).expect("fits exactly");
        assert_eq!((book.reserved("k"), book.reserved("t")), (500, 500));
        drop(a);
        drop(b);
        assert_eq!((book.reserved("k"), book.reserved("t")), (0, 0));
    }
}
