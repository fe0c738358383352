//! Keeping the query tables fresh while the server runs (the wake-up signal and the pacing
//! every follower of the log shares are in [`crate::follow`]).
//!
//! - [`spawn_projections`]: on the one instance of a fleet that leads them, applies the
//!   batches this process's writer hands over as they commit (no read of the log), and
//!   catches every projection up from the log on a wake-up for events it was not handed
//!   (another instance's), on a gap, and at least once a second in case a notification was
//!   missed; on the others, follows the position the leader announces. It runs on a thread
//!   of its own ([`crate::dedicated`]).
//! - [`ReadModels::wait_for_head`]: read-your-writes for command handlers, which answer after
//!   the query tables include their own events (bounded by a timeout).
//! - [`ReadModels::handed_over`]: the batches the runner committed, so that the key cache
//!   follows the log without reading each event a second time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokenhub_projections::log::head_position;
use tokenhub_projections::StoredEvent;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::follow::POLL_INTERVAL;

/// Handle on the live projections, for read-your-writes.
#[derive(Clone)]
pub struct ReadModels {
    pool: PgPool,
    timeout: Duration,
    /// Set when a wait timed out, cleared when one succeeds: while set, commands wait only
    /// briefly (a stuck projection must not make every command take the timeout) and
    /// `/readyz` fails.
    stalled: Arc<AtomicBool>,
    /// Every batch the runner committed, for in-process followers of the log (the key cache).
    hand_over: Handing,
    /// The runner's position.
    runner: watch::Receiver<i64>,
    /// Batches the runner applied as this process's writer handed them over (not read back).
    handed_batches: Arc<AtomicU64>,
    /// Whether this process applies the projections for the fleet.
    leading: watch::Receiver<bool>,
    /// Other followers a command waits for too (the key cache).
    followers: Vec<Follower>,
}

/// A follower of the log that read-your-writes waits for, besides the projection runner.
#[derive(Clone)]
struct Follower {
    position: watch::Receiver<i64>,
    /// Told the position a wait is for (a follower that lets commits gather otherwise).
    want: Arc<dyn Fn(i64) + Send + Sync>,
}

/// How long a command waits for its own events while the projections are stalled.
pub const STALLED_WAIT: Duration = Duration::from_millis(50);

impl ReadModels {
    /// How many batches the runner applied as this process's writer handed them over, without
    /// reading them back from the log.
    pub fn handed_batches(&self) -> u64 {
        self.handed_batches.load(Ordering::Relaxed)
    }

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
        if self.positions().all(|p| *p.borrow() >= head) {
            self.stalled.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The batches the projection runner commits from now on, in order (a receiver that lags
    /// is told so and must read the log), with the position the runner reaches.
    pub fn handed_over(&self) -> crate::follow::HandOver {
        crate::follow::HandOver {
            batches: self.hand_over.batches.subscribe(),
            runner: self.runner.clone(),
            handed: self.hand_over.handed.subscribe(),
            leading: self.leading.clone(),
        }
    }

    /// Also waits for `position` (e.g. the key cache's) in [`Self::wait_for_head`], telling
    /// `want` the position waited for first.
    pub fn with(
        mut self,
        position: watch::Receiver<i64>,
        want: impl Fn(i64) + Send + Sync + 'static,
    ) -> Self {
        self.followers.push(Follower { position, want: Arc::new(want) });
        self
    }

    /// The runner's position and every follower's.
    fn positions(&self) -> impl Iterator<Item = &watch::Receiver<i64>> {
        std::iter::once(&self.runner).chain(self.followers.iter().map(|f| &f.position))
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
        for follower in &self.followers {
            (follower.want)(head);
        }
        let all = async {
            for position in self.positions() {
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
    hand_over: &Handing,
) -> i64 {
    let committed = |events: Vec<StoredEvent>| {
        metrics::counter!("tokenhub_projection_batches_total", "source" => "log").increment(1);
        hand_over.send(events)
    };
    match tokenhub_projections::catch_up_all(pool, projections, &committed).await {
        Ok(position) => {
            projections.iter().for_each(|p| report_position(p.name(), position));
            return position;
        }
        Err(e) => tracing::warn!(error = %e, "catching up all projections together failed; one by one"),
    }
    let mut reached = i64::MAX;
    for projection in projections {
        match tokenhub_projections::catch_up(pool, projection.as_ref()).await {
            Ok(position) => {
                report_position(projection.name(), position);
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

/// Spawns the live projection runner. One instance of a fleet applies the projections (the
/// one holding the [`LEAD_LOCK`]): it applies the batches this process's writer hands it
/// (`committed`) as they come, and catches up from the log on a wake-up that announces more
/// than it has, on a gap, and at least every [`POLL_INTERVAL`]. The others follow it: their
/// position is what it announces (`projected`, read from the checkpoints every
/// [`POLL_INTERVAL`] in case a notification was missed), so the work is done once for the
/// fleet and no two runners queue on the checkpoint rows. Should two lead at once for a
/// moment, the checkpoint locks still apply every event exactly once.
pub fn spawn_projections(
    pool: PgPool,
    mut hint: watch::Receiver<i64>,
    mut projected: watch::Receiver<i64>,
    mut committed: crate::store::group_commit::Handed,
    timeout: Duration,
    shutdown: CancellationToken,
) -> ReadModels {
    let (tx, rx) = watch::channel(0i64);
    let hand_over =
        Handing { batches: broadcast::channel(HAND_OVER_BATCHES).0, handed: Arc::new(watch::channel(0).0) };
    let options = (*pool.connect_options()).clone();
    let runner_hand_over = hand_over.clone();
    let handed_batches = Arc::new(AtomicU64::new(0));
    let runner_handed = Arc::clone(&handed_batches);
    let lead =
        crate::follow::leading::hold(pool.clone(), LEAD_LOCK, "applies the projections", shutdown.clone());
    let mut leading = lead.clone();
    crate::dedicated::spawn("projections", move || async move {
        let runner_pool = crate::store::connection_of_its_own(options);
        let projections = tokenhub_projections::all();
        let reached = |position: i64| {
            tx.send_if_modified(|p| {
                let newer = position > *p;
                if newer {
                    *p = position;
                }
                newer
            })
        };
        let mut catch_up_now = true;
        loop {
            if !*leading.borrow_and_update() {
                // Another instance applies the projections: take its word for the position.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    // Leading now: catch up from the log first.
                    Ok(()) = leading.changed() => catch_up_now = true,
                    // The leader reads this process's events from the log.
                    Some(_) = committed.batches.recv() => {}
                    Ok(()) = projected.changed() => {
                        reached(*projected.borrow_and_update());
                    }
                    _ = tokio::time::sleep(POLL_INTERVAL) => {
                        match tokenhub_projections::position_of_all(&runner_pool, &projections).await {
                            Ok(position) => {
                                reached(position);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot read the projections' checkpoints"),
                        }
                    }
                }
                continue;
            }
            if catch_up_now {
                let known = *tx.borrow();
                reached(catch_up(&runner_pool, &projections, known, &runner_hand_over).await);
            }
            let known = *tx.borrow();
            let handed = tokio::select! {
                _ = shutdown.cancelled() => return,
                // No longer leading (its lock's connection failed): follow.
                Ok(()) = leading.changed() => {
                    catch_up_now = true;
                    continue;
                }
                Some(batch) = committed.batches.recv() => Some(batch),
                Ok(()) = hint.changed() => {
                    if *hint.borrow_and_update() <= known {
                        // What the handed batches already brought.
                        catch_up_now = false;
                        continue;
                    }
                    // The notification can overtake this process's writer handing the same
                    // batch over: while it is appending, give it a moment before reading the
                    // log (otherwise the events are another instance's, or already handed).
                    if committed.writer_appending() {
                        tokio::time::timeout(HAND_OVER_GRACE, committed.batches.recv()).await.ok().flatten()
                    } else {
                        committed.batches.try_recv().ok()
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => None,
            };
            catch_up_now = match handed {
                Some(batch) => {
                    let (events, gap) = following(known, batch, &mut committed.batches);
                    match apply_handed(
                        &runner_pool,
                        &projections,
                        known,
                        events,
                        &runner_hand_over,
                        &runner_handed,
                    )
                    .await
                    {
                        Some(position) => {
                            reached(position);
                            gap
                        }
                        None => true,
                    }
                }
                None => true,
            };
        }
    });
    ReadModels {
        pool,
        timeout,
        stalled: Arc::new(AtomicBool::new(false)),
        hand_over,
        runner: rx,
        handed_batches,
        leading: lead,
        followers: Vec::new(),
    }
}

/// The handed batches that follow `known` without a gap: `first` and whatever else is
/// already waiting, merged (up to about [`MERGED_EVENTS`]; batches stay whole); true when one
/// did not follow (then the log must be read).
fn following(
    known: i64,
    first: Vec<StoredEvent>,
    waiting: &mut mpsc::Receiver<Vec<StoredEvent>>,
) -> (Vec<StoredEvent>, bool) {
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut next = Some(first);
    while let Some(batch) = next.take() {
        let end = events.last().map_or(known, |e| e.position);
        match (batch.first(), batch.last()) {
            // Already applied (the runner read it from the log).
            (_, Some(last)) if last.position <= end => {}
            (Some(start), _) if start.position == end + 1 => events.extend(batch),
            (None, _) => {}
            _ => return (events, true),
        }
        if events.len() >= MERGED_EVENTS {
            break;
        }
        next = waiting.try_recv().ok();
    }
    (events, false)
}

/// How long the runner, woken for events it has not got, waits for this process's writer to
/// hand them over before it reads the log.
const HAND_OVER_GRACE: Duration = Duration::from_millis(5);

/// Events merged from handed batches into one transaction at most (whole batches).
const MERGED_EVENTS: usize = 5_000;

/// [`tokenhub_projections::apply_committed`], handing the batch over on success; the
/// position reached, or `None` when the log must be read instead.
async fn apply_handed(
    pool: &PgPool,
    projections: &[Box<dyn tokenhub_projections::Projection>],
    known: i64,
    events: Vec<StoredEvent>,
    hand_over: &Handing,
    handed_batches: &AtomicU64,
) -> Option<i64> {
    if events.is_empty() {
        return Some(known);
    }
    match tokenhub_projections::apply_committed(pool, projections, known, &events).await {
        Ok(Some(position)) => {
            projections.iter().for_each(|p| report_position(p.name(), position));
            metrics::counter!("tokenhub_projection_batches_total", "source" => "handed").increment(1);
            handed_batches.fetch_add(1, Ordering::Relaxed);
            hand_over.send(events);
            Some(position)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "applying a committed batch failed; reading the log");
            None
        }
    }
}

/// The advisory lock whose holder applies the projections for the fleet.
pub const LEAD_LOCK: &str = "tokenhub:projections";

/// Exports the position a projection reached.
fn report_position(projection: &'static str, position: i64) {
    metrics::gauge!("tokenhub_projection_position", "projection" => projection).set(position as f64);
}

/// The runner's side of [`crate::follow::HandOver`].
#[derive(Clone)]
struct Handing {
    batches: broadcast::Sender<Arc<Vec<StoredEvent>>>,
    /// The last position handed over.
    handed: Arc<watch::Sender<i64>>,
}

impl Handing {
    fn send(&self, events: Vec<StoredEvent>) {
        if let Some(last) = events.last() {
            self.handed.send_replace(last.position);
        }
        // No follower subscribed is fine: they read the log themselves.
        let _ = self.batches.send(Arc::new(events));
    }
}

/// Committed batches kept for a follower that has not taken them yet; one that falls further
/// behind reads the log.
const HAND_OVER_BATCHES: usize = 64;
