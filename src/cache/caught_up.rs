//! "Unknown" answered only once this instance holds the log as of the request: a key issued
//! on another instance a moment ago is not `NOT_FOUND` here for the few milliseconds the
//! cache needs to follow. On a miss, [`KeyCache::caught_up`] reads the log's head once and
//! waits (bounded) for the cache to reach it. Head reads are few at a time
//! ([`HEAD_READS`]): beyond that a miss is answered as it stands, so unknown keys sprayed at
//! the server cannot turn into a query each.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Semaphore;

use super::KeyCache;

/// Head reads in flight at once.
pub const HEAD_READS: usize = 8;
/// How long a miss waits for the cache at most.
pub const WAIT: Duration = Duration::from_millis(500);

static SLOTS: Semaphore = Semaphore::const_new(HEAD_READS);

/// Whether the cache reached the log as of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaughtUp {
    /// It holds every event committed before the call: a miss now is a real miss.
    Yes,
    /// It did not get there within the bound (or the head could not be read): a miss may
    /// still be a key this instance has not seen yet.
    NotYet,
}

impl KeyCache {
    /// Waits until the cache holds every event committed before this call (at most
    /// [`WAIT`]).
    pub async fn caught_up(&self, pool: &PgPool) -> CaughtUp {
        let Ok(_slot) = SLOTS.try_acquire() else { return CaughtUp::NotYet };
        let head: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT position FROM event_log_head").fetch_one(pool).await;
        let Ok(head) = head else { return CaughtUp::NotYet };
        self.want(head);
        let mut position = self.position();
        let reached = tokio::time::timeout(WAIT, position.wait_for(|p| *p >= head)).await;
        if matches!(reached, Ok(Ok(_))) {
            CaughtUp::Yes
        } else {
            CaughtUp::NotYet
        }
    }
}
