//! The follower runtime's read side: a follower of the log is an [`Apply`] step (what it does
//! with events it has not seen, and where it stands); reading the log after its position in
//! batches, up to the head, and waiting for the next commit are done here once for all of
//! them (the relay, the webhook dispatcher, the key cache).
//!
//! The projection runner's reads stay in `tokenhub_projections` (each batch is read inside
//! the transaction that locks the projections' checkpoints); it and the key cache share the
//! wake-up and hand-over of [`crate::follow`].

use std::future::Future;

use sqlx::PgPool;
use tokenhub_projections::log::{read_after, read_payloads_after};
use tokenhub_projections::StoredEvent;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a follower does with the events after its position.
pub trait Apply: Send {
    /// Why applying failed (a read of the log fails as this too).
    type Error: From<sqlx::Error> + Send;

    /// Events read (and applied) at a time.
    const BATCH: i64;

    /// The aggregate types whose payloads it reads, when not all: the other events come with
    /// a `null` payload, and every event without its metadata
    /// ([`tokenhub_projections::log::read_payloads_after`]).
    const PAYLOADS_OF: Option<&'static [&'static str]> = None;

    /// The position applied up to.
    fn position(&self) -> i64;

    /// Applies `events`: those after [`Self::position`], in order, at most [`Self::BATCH`].
    /// On success the position is the last one's.
    fn apply(&mut self, events: Vec<StoredEvent>) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Reads one batch after the follower's position and applies it: how many events it held
/// (fewer than [`Apply::BATCH`]: the head was reached).
pub async fn step<A: Apply>(pool: &PgPool, follower: &mut A) -> Result<usize, A::Error> {
    let events = match A::PAYLOADS_OF {
        None => read_after(pool, follower.position(), A::BATCH).await?,
        Some(types) => read_payloads_after(pool, follower.position(), A::BATCH, types).await?,
    };
    let read = events.len();
    if read > 0 {
        follower.apply(events).await?;
    }
    Ok(read)
}

/// Applies batches until the head of the log: how many events were applied.
pub async fn catch_up<A: Apply>(pool: &PgPool, follower: &mut A) -> Result<usize, A::Error> {
    let mut applied = 0;
    loop {
        let read = step(pool, follower).await?;
        applied += read;
        if (read as i64) < A::BATCH {
            return Ok(applied);
        }
    }
}

/// Follows the log until `shutdown`: catches up, then waits for the next commit to be
/// announced (or the poll interval) and lets commits gather ([`super::wait_and_gather`]).
pub async fn follow<A: Apply>(
    pool: &PgPool,
    follower: &mut A,
    hint: &mut watch::Receiver<i64>,
    shutdown: &CancellationToken,
) -> Result<(), A::Error> {
    loop {
        catch_up(pool, follower).await?;
        if !super::wait_and_gather(hint, shutdown).await {
            return Ok(());
        }
    }
}
