//! Rate limits counted once for the fleet. Each instance admits a window's requests from a
//! lease: a share of the window's budget granted by the database ([`crate::store::rate_windows`]),
//! which never grants more than is left. Admitting from a held lease is an in-memory step;
//! only an instance whose lease ran out asks the database again (one call for all the
//! requests waiting on that limit), for an eighth of what the fleet has left (at least one),
//! so the shares shrink as the window fills.
//!
//! Bound: the fleet admits at most the limit per window — exactly, not N × it. It may admit
//! fewer: what other instances hold leased and unused when the window is spent (at most an
//! eighth of the remainder each, down to one request). While the database cannot be reached,
//! an instance counts the limit on its own (as one instance always did) and logs it.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;

/// How long a lease request may take before the instance counts on its own for the window.
pub const LEASE_TIMEOUT: Duration = Duration::from_millis(500);

/// The outcome of taking one request from a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admitted; about this many are left in the fleet's window.
    Admitted {
        /// The fleet's remaining budget as this instance knows it.
        remaining: u64,
    },
    /// The window's budget is spent.
    Refused,
    /// This instance's lease is used up: ask for more ([`Leaser::fill`]), then take again.
    NeedsLease,
}

#[derive(Debug, Default)]
struct State {
    window: i64,
    limit: u64,
    granted: u64,
    taken: u64,
    /// What the fleet had leased in this window at the last grant.
    fleet_leased: u64,
    /// The fleet's budget is spent (a grant of 0).
    spent: bool,
}

/// One limit's lease on this instance (one per key, per tenant rate).
#[derive(Debug, Default)]
pub struct Lease {
    state: Mutex<State>,
    filling: tokio::sync::Mutex<()>,
}

impl Lease {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one request of `limit` in the window starting at Unix second `window`.
    pub fn try_take(&self, limit: u64, window: i64) -> Take {
        let mut s = self.state();
        if s.window != window || s.limit != limit {
            *s = State { window, limit, ..State::default() };
        }
        if s.taken < s.granted {
            s.taken += 1;
            let unleased = limit.saturating_sub(s.fleet_leased);
            return Take::Admitted { remaining: unleased + (s.granted - s.taken) };
        }
        if s.spent {
            Take::Refused
        } else {
            Take::NeedsLease
        }
    }

    /// Returns a request taken in `window` (another limit refused it).
    pub fn give_back(&self, window: i64) {
        let mut s = self.state();
        if s.window == window && s.taken > 0 {
            s.taken -= 1;
        }
    }

    /// Whether the window of `limit` starting at `window` is spent as far as this instance
    /// knows (its lease used up, and the fleet's budget with it).
    pub fn spent(&self, limit: u64, window: i64) -> bool {
        let s = self.state();
        s.window == window && s.limit == limit && s.spent && s.taken >= s.granted
    }

    /// Whether this lease still counts the window starting at `window` or later.
    pub fn current(&self, window: i64) -> bool {
        self.state().window >= window
    }
}

/// Asks the database for leases (or, with no database, grants each instance the whole
/// budget: the per-instance counting of `FLEET_RATE_LIMITS=false`).
#[derive(Debug, Clone, Default)]
pub struct Leaser {
    pool: Option<PgPool>,
}

impl Leaser {
    /// Leases from `pool`'s `rate_windows` (`None`: every instance counts on its own).
    pub fn new(pool: Option<PgPool>) -> Self {
        Self { pool }
    }

    /// Whether limits are counted for the fleet.
    pub fn fleet(&self) -> bool {
        self.pool.is_some()
    }

    /// Tops up `lease` of limit `scope` (`limit` per window starting at `window`); concurrent
    /// callers for one lease make one request between them.
    pub async fn fill(&self, lease: &Lease, scope: &str, limit: u64, window: i64) {
        let _one = lease.filling.lock().await;
        let want = {
            let s = lease.state();
            if s.window == window && s.limit == limit && (s.taken < s.granted || s.spent) {
                return; // topped up by another caller meanwhile
            }
            if s.window != window || s.limit != limit {
                limit.div_ceil(8).max(1)
            } else {
                limit.saturating_sub(s.fleet_leased).div_ceil(8).max(1)
            }
        };
        let granted = match &self.pool {
            None => Err(None),
            Some(pool) => {
                match tokio::time::timeout(
                    LEASE_TIMEOUT,
                    crate::store::rate_windows::lease(pool, scope, window, want, limit),
                )
                .await
                {
                    Ok(Ok(granted)) => Ok(granted),
                    Ok(Err(e)) => Err(Some(e.to_string())),
                    Err(_) => Err(Some("no answer within 500 ms".to_string())),
                }
            }
        };
        let mut s = lease.state();
        if s.window != window || s.limit != limit {
            *s = State { window, limit, ..State::default() };
        }
        match granted {
            Ok(g) => {
                metrics::counter!("tokenhub_rate_leases_total").increment(1);
                s.granted += g.granted;
                s.fleet_leased = s.fleet_leased.max(g.leased);
                // Nothing is left to lease once the fleet has leased the whole limit.
                s.spent = g.granted == 0 || g.leased >= limit;
            }
            Err(failure) => {
                // The instance counts the (rest of the) window on its own: without a database
                // by configuration; after a failure, so that it stays available — the fleet
                // may then admit up to N × the limit until the database answers.
                if let Some(e) = failure {
                    metrics::counter!("tokenhub_rate_lease_failures_total").increment(1);
                    tracing::warn!(error = %e, scope, "cannot lease a rate window; counting this instance alone for the window");
                }
                s.granted = s.granted.max(limit);
                s.fleet_leased = limit;
                s.spent = true;
            }
        }
    }

    /// Takes one request of `lease` (see [`Lease::try_take`]), asking for a lease when this
    /// instance's is used up.
    pub async fn take(&self, lease: &Lease, scope: impl Fn() -> String, limit: u64, window: i64) -> Take {
        for _ in 0..4 {
            match lease.try_take(limit, window) {
                Take::NeedsLease => self.fill(lease, &scope(), limit, window).await,
                taken => return taken,
            }
        }
        Take::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_database_each_instance_counts_the_whole_limit() {
        let (leaser, lease) = (Leaser::new(None), Lease::default());
        for n in 0..5 {
            let taken = leaser.take(&lease, || "k".into(), 5, 60).await;
            assert_eq!(taken, Take::Admitted { remaining: 4 - n });
        }
        assert_eq!(leaser.take(&lease, || "k".into(), 5, 60).await, Take::Refused);
        assert!(matches!(leaser.take(&lease, || "k".into(), 5, 120).await, Take::Admitted { .. }));
        lease.give_back(120);
        assert_eq!(lease.try_take(5, 120), Take::Admitted { remaining: 4 });
    }
}
