//! Keeping the query tables fresh while the server runs.
//!
//! - [`spawn_log_watcher`]: `LISTEN tokenhub_events` (sent by the insert trigger at commit)
//!   turned into a watch channel, the wake-up signal of every catch-up reader.
//! - [`spawn_projections`]: catches every projection up on each wake-up, and at least once a
//!   second in case a notification was missed.
//! - [`ReadModels::wait_for_head`]: read-your-writes for command handlers, which answer after
//!   the query tables include their own events (bounded by a timeout).
//! - [`ReadModels::handed_over`]: the batches the runner committed, so that the key cache
//!   follows the log without reading each event a second time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokenhub_projections::log::head_position;
use tokenhub_projections::StoredEvent;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Fallback poll interval of catch-up readers.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The PostgreSQL notification channel raised by the events insert trigger.
pub const EVENTS_CHANNEL: &str = "tokenhub_events";

/// Spawns the listener; the channel carries the highest position announced so far.
pub fn spawn_log_watcher(pool: PgPool, shutdown: CancellationToken) -> watch::Receiver<i64> {
    let (tx, rx) = watch::channel(0i64);
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "event listener cannot connect; retrying");
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(EVENTS_CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.recv() => n,
                };
                match received {
                    Ok(n) => {
                        let position = n.payload().parse::<i64>().unwrap_or(0);
                        tx.send_if_modified(|current| {
                            let newer = position > *current;
                            if newer {
                                *current = position;
                            }
                            // Wake readers even when a payload could not be parsed.
                            newer || position == 0
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Waits for a wake-up, the poll interval or shutdown; false on shutdown.
pub async fn wait_for_wakeup(hint: &mut watch::Receiver<i64>, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = hint.changed() => true,
        _ = tokio::time::sleep(POLL_INTERVAL) => true,
    }
}

/// How long a reader off the commands' path (the relay, webhooks) lets commits gather after a
/// wake-up before it reads, so that under load one read (and one checkpoint write) serves
/// many commits: at 2,000 commands/s, 5 ms gave about 100 reads a second per reader.
pub const GATHER: Duration = Duration::from_millis(20);

/// [`wait_for_wakeup`], then [`GATHER`].
pub async fn wait_and_gather(hint: &mut watch::Receiver<i64>, shutdown: &CancellationToken) -> bool {
    if !wait_for_wakeup(hint, shutdown).await {
        return false;
    }
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(GATHER) => true,
    }
}

/// Handle on the live projections, for read-your-writes.
#[derive(Clone)]
pub struct ReadModels {
    pool: PgPool,
    positions: Vec<watch::Receiver<i64>>,
    timeout: Duration,
    /// Set when a wait timed out, cleared when one succeeds: while set, commands wait only
    /// briefly (a stuck projection must not make every command take the timeout) and
    /// `/readyz` fails.
    stalled: Arc<AtomicBool>,
    /// Every batch the runner committed, for in-process followers of the log (the key cache).
    hand_over: broadcast::Sender<Arc<Vec<StoredEvent>>>,
    /// The runner's position (also in `positions`).
    runner: watch::Receiver<i64>,
}

/// How long a command waits for its own events while the projections are stalled.
pub const STALLED_WAIT: Duration = Duration::from_millis(50);

impl ReadModels {
    /// True while the query tables are stalled behind the log (a read-your-writes wait timed
    /// out and none has succeeded since).
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Like [`Self::stalled`], but first checks whether the tables have caught up with the
    /// head since (then the flag is cleared): what `/readyz` reports.
    pub async fn stalled_now(&self) -> bool {
        if !self.stalled() {
            return false;
        }
        let Ok(head) = head_position(&self.pool).await else { return true };
        if self.positions.iter().all(|p| *p.borrow() >= head) {
            self.stalled.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The batches the projection runner commits from now on, in order (a receiver that lags
    /// is told so and must read the log), with the position the runner reaches.
    pub fn handed_over(&self) -> crate::cache::HandOver {
        crate::cache::HandOver { batches: self.hand_over.subscribe(), runner: self.runner.clone() }
    }

    /// Also waits for `position` (e.g. the key cache's) in [`Self::wait_for_head`].
    pub fn with(mut self, position: watch::Receiver<i64>) -> Self {
        self.positions.push(position);
        self
    }

    /// Waits until every projection includes the caller's own last event (the request's, see
    /// [`crate::store::repository::tracking_writes`]) or, outside a request or before any
    /// append, every event committed before this call; or until the timeout passes (then the
    /// caller answers anyway: its command is durable).
    pub async fn wait_for_head(&self) {
        let head = match crate::store::repository::last_written() {
            Some(position) => position,
            None => match head_position(&self.pool).await {
                Ok(head) => head,
                Err(_) => return,
            },
        };
        let all = async {
            for position in &self.positions {
                let mut position = position.clone();
                let _ = position.wait_for(|p| *p >= head).await;
            }
        };
        let stalled = self.stalled();
        let limit = if stalled { STALLED_WAIT } else { self.timeout };
        if tokio::time::timeout(limit, all).await.is_err() {
            if !stalled {
                tracing::warn!(head, "query tables lag behind the log; answering before they caught up");
                metrics::counter!("tokenhub_read_your_writes_timeouts_total").increment(1);
            }
            self.stalled.store(true, Ordering::Relaxed);
        } else if stalled {
            tracing::info!(head, "query tables caught up again");
            self.stalled.store(false, Ordering::Relaxed);
        }
    }
}

/// Catches every projection up: all in one transaction per batch, or, if that fails, one at a
/// time, so that a failing projection does not hold the others back. The position all of them
/// reached (`known` for one that failed).
async fn catch_up(
    pool: &PgPool,
    projections: &[Box<dyn tokenhub_projections::Projection>],
    known: i64,
    hand_over: &broadcast::Sender<Arc<Vec<StoredEvent>>>,
) -> i64 {
    let gauge = |name: &'static str, position: i64| {
        metrics::gauge!("tokenhub_projection_position", "projection" => name).set(position as f64);
    };
    let committed = |events: Vec<StoredEvent>| {
        // No follower subscribed is fine: they read the log themselves.
        let _ = hand_over.send(Arc::new(events));
    };
    match tokenhub_projections::catch_up_all(pool, projections, &committed).await {
        Ok(position) => {
            projections.iter().for_each(|p| gauge(p.name(), position));
            return position;
        }
        Err(e) => tracing::warn!(error = %e, "catching up all projections together failed; one by one"),
    }
    let mut reached = i64::MAX;
    for projection in projections {
        match tokenhub_projections::catch_up(pool, projection.as_ref()).await {
            Ok(position) => {
                gauge(projection.name(), position);
                reached = reached.min(position);
            }
            Err(e) => {
                tracing::error!(projection = projection.name(), error = %e, "projection failed; retrying");
                reached = reached.min(known);
            }
        }
    }
    reached
}

/// Spawns the live projection runner.
pub fn spawn_projections(
    pool: PgPool,
    mut hint: watch::Receiver<i64>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> ReadModels {
    let (tx, rx) = watch::channel(0i64);
    let (hand_over, _) = broadcast::channel(HAND_OVER_BATCHES);
    let runner_pool = pool.clone();
    let runner_hand_over = hand_over.clone();
    tokio::spawn(async move {
        let projections = tokenhub_projections::all();
        loop {
            let known = *tx.borrow();
            let reached = catch_up(&runner_pool, &projections, known, &runner_hand_over).await;
            tx.send_if_modified(|p| {
                let newer = reached > *p;
                if newer {
                    *p = reached;
                }
                newer
            });
            if !wait_for_wakeup(&mut hint, &shutdown).await {
                return;
            }
        }
    });
    ReadModels {
        pool,
        positions: vec![rx.clone()],
        timeout,
        stalled: Arc::new(AtomicBool::new(false)),
        hand_over,
        runner: rx,
    }
}

/// Committed batches kept for a follower that has not taken them yet; one that falls further
/// behind reads the log.
const HAND_OVER_BATCHES: usize = 64;
