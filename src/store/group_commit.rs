//! Group commit: one writer per process appends the commands that are ready together and
//! answers each on its own. Under load a batch is every command that arrived while the
//! previous one was being flushed, so the head lock and the disk flush are paid once per batch
//! and commits approach the database's own rate.
//!
//! The common case is one statement on the writer's own connection, outside any explicit
//! transaction: the events of every command in one multi-row INSERT, their snapshots and
//! idempotency marks — one round trip, one commit. The writer runs on a thread of its own
//! ([`crate::dedicated`]). What it committed is handed, as stored (positions, ids, times), to
//! the projection runner of this process ([`Committed`]), which applies it without reading it
//! back.
//!
//! Why readers never skip an event: positions (and the hash chain) are assigned by the insert
//! trigger under the `event_log_head` row lock, which the first row of every append on every
//! instance takes and holds to commit. So positions are given in commit order, without gaps,
//! and a reader that sees position N sees everything below N. The chain covers every event as
//! soon as it commits.
//!
//! Optimistic concurrency: an event continues its aggregate's sequence, and the
//! `(aggregate_type, aggregate_id, sequence)` unique key refuses a stale one. When the batch
//! statement fails on that (or on a value PostgreSQL refuses), the batch is appended again
//! the careful way: the head row locked first, every command's sequences checked in one query,
//! only the commands that pass inserted; a stale command gets `OptimisticLockError`. If that
//! fails on a value, each command is appended alone, so only the bad one fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::PgPool;
use tokenhub_projections::StoredEvent;
use tokio::sync::{mpsc, oneshot};

use super::repository::{append, persist_one, tenant_of, Appended, SnapshotRow};

/// Commands appended in one transaction at most.
pub const MAX_BATCH: usize = 512;

/// How long an append waits for the head row before it fails (another appender holds it).
const LOCK_TIMEOUT: &str = "5s";

/// Where the writer hands every batch it appended in one statement, in position order, once
/// committed: the projection runner of this process applies them without reading them back.
/// A batch that does not fit is dropped (the runner reads the log instead).
#[derive(Clone, Debug)]
pub struct Committed {
    batches: mpsc::Sender<Vec<StoredEvent>>,
    appending: Arc<AtomicBool>,
}

/// The runner's end of [`Committed`].
#[derive(Debug)]
pub struct Handed {
    /// The batches, in position order.
    pub batches: mpsc::Receiver<Vec<StoredEvent>>,
    appending: Arc<AtomicBool>,
}

impl Handed {
    /// True while the writer is between starting an append and handing its batch over: only
    /// then can an announced commit be this process's own and not handed over yet. When false,
    /// what it committed is already in [`Self::batches`].
    pub fn writer_appending(&self) -> bool {
        self.appending.load(Ordering::Acquire)
    }
}

/// The writer's and the runner's ends of the hand-over.
pub fn hand_over() -> (Committed, Handed) {
    let (tx, rx) = mpsc::channel(COMMITTED_BATCHES);
    let appending = Arc::new(AtomicBool::new(false));
    (Committed { batches: tx, appending: Arc::clone(&appending) }, Handed { batches: rx, appending })
}

/// Batches kept for the runner before the writer drops them.
pub const COMMITTED_BATCHES: usize = 256;

/// One command's append.
#[derive(Debug)]
pub struct Append {
    /// Its events, in order (one or more aggregates).
    pub events: Vec<SerializedEvent>,
    /// The snapshot to keep with them.
    pub snapshot: Option<SnapshotRow>,
    /// The idempotency claim to mark committed with them.
    pub claim: Option<[u8; 32]>,
    /// Where the outcome goes: the position of its last event.
    pub answer: oneshot::Sender<Result<i64, PersistenceError>>,
}

/// Handle on the writer task.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    tx: mpsc::Sender<Append>,
}

impl GroupCommit {
    /// Starts the writer on a connection of its own to `pool`'s database (needs a Tokio
    /// runtime); what it commits goes to `committed` too, when given.
    pub fn spawn(pool: &PgPool, committed: Option<Committed>) -> Self {
        // Its own thread and connection (see `crate::dedicated`); the lock timeout is set once
        // for the session, as a single-statement append has no transaction to `SET LOCAL` it in.
        let options = (*pool.connect_options()).clone().options([("lock_timeout", LOCK_TIMEOUT)]);
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        crate::dedicated::spawn("event-writer", move || {
            run(super::connection_of_its_own(options), rx, committed)
        });
        Self { tx }
    }

    /// Appends one command's events; the position of its last event.
    pub async fn append(
        &self,
        events: Vec<SerializedEvent>,
        snapshot: Option<SnapshotRow>,
        claim: Option<[u8; 32]>,
    ) -> Result<i64, PersistenceError> {
        let (answer, outcome) = oneshot::channel();
        let lost = || PersistenceError::UnknownError("the event writer stopped".into());
        self.tx.send(Append { events, snapshot, claim, answer }).await.map_err(|_| lost())?;
        outcome.await.map_err(|_| lost())?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Append>, committed: Option<Committed>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        metrics::histogram!("tokenhub_group_commit_batch_size").record(batch.len() as f64);
        let appends: Vec<Append> = std::mem::take(&mut batch);
        let _appending = committed.as_ref().map(|c| Appending::start(&c.appending));
        // The common case: every command continues its aggregates, one statement appends all.
        let everything = vec![true; appends.len()];
        let stored = append(
            &pool,
            &events_of(&appends, &everything),
            &snapshots_of(&appends, &everything),
            &claims_of(&appends, &everything),
        )
        .await;
        let refused = match stored {
            Ok(stored) => {
                answer_and_hand_over(appends, stored, committed.as_ref());
                continue;
            }
            Err(e) if is_data_error(&e) => e,
            Err(e) => {
                // The database is unreachable or the head lock timed out: the same for all.
                fail_all(appends, &e);
                continue;
            }
        };
        // An aggregate moved on (a unique violation) or a value was refused: check every
        // command under the head lock and append those that pass.
        tracing::debug!(error = %refused, size = appends.len(), "group commit refused; checking each command");
        match append_checked(&pool, &appends).await {
            Ok(outcomes) => {
                for (append, outcome) in appends.into_iter().zip(outcomes) {
                    let _ = append.answer.send(outcome);
                }
            }
            Err(e) if !is_data_error(&e) => fail_all(appends, &e),
            Err(e) => {
                // A value the database refused: each command alone, so only the bad one fails.
                tracing::debug!(error = %e, size = appends.len(), "group commit refused a value; appending one by one");
                for append in appends {
                    let outcome =
                        persist_one(&pool, &append.events, append.snapshot.as_ref(), append.claim).await;
                    let _ = append.answer.send(outcome);
                }
            }
        }
    }
}

/// Answers every command of `appends` with the same failure `e` (not one command's fault).
fn fail_all(appends: Vec<Append>, e: &sqlx::Error) {
    tracing::warn!(error = %e, size = appends.len(), "group commit failed");
    for append in appends {
        let _ = append.answer.send(Err(PersistenceError::ConnectionError(Box::new(DbDown(e.to_string())))));
    }
}

/// Answers each command of a batch appended as a whole with its last position, then hands
/// the batch, as stored, to `committed`.
fn answer_and_hand_over(appends: Vec<Append>, mut stored: Vec<Appended>, committed: Option<&Committed>) {
    let position_of: HashMap<(&str, &str, i64), i64> = stored
        .iter()
        .map(|a| ((a.aggregate_type.as_str(), a.aggregate_id.as_str(), a.sequence), a.position))
        .collect();
    let last: Vec<i64> = appends
        .iter()
        .map(|a| {
            a.events
                .iter()
                .filter_map(|e| {
                    position_of.get(&(e.aggregate_type.as_str(), e.aggregate_id.as_str(), e.sequence as i64))
                })
                .copied()
                .max()
                .unwrap_or(0)
        })
        .collect();
    drop(position_of);
    let mut events = Vec::with_capacity(stored.len());
    for (append, position) in appends.into_iter().zip(last) {
        let _ = append.answer.send(Ok(position));
        events.extend(append.events);
    }
    let Some(committed) = committed else { return };
    // Positions follow the batch's order (one INSERT, rows in order under the head lock).
    stored.sort_by_key(|a| a.position);
    let same = |e: &SerializedEvent, a: &Appended| {
        e.aggregate_type == a.aggregate_type
            && e.aggregate_id == a.aggregate_id
            && e.sequence as i64 == a.sequence
    };
    if events.len() != stored.len() || !events.iter().zip(&stored).all(|(e, a)| same(e, a)) {
        tracing::error!("appended rows do not follow the batch's order; the runner reads them from the log");
        return;
    }
    let batch = events
        .into_iter()
        .zip(stored)
        .map(|(e, a)| StoredEvent {
            position: a.position,
            event_id: a.event_id,
            tenant_id: tenant_of(&e).map(str::to_string),
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: a.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: a.recorded_at,
        })
        .collect();
    // Full (the runner is behind or stuck): it reads the log instead.
    let _ = committed.batches.try_send(batch);
}

/// Marks the writer as appending until dropped (after the batch was handed over, or failed).
struct Appending<'a>(&'a AtomicBool);

impl<'a> Appending<'a> {
    fn start(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag)
    }
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The events of the `accepted` commands, in order.
fn events_of<'a>(appends: &'a [Append], accepted: &[bool]) -> Vec<&'a SerializedEvent> {
    appends.iter().zip(accepted).filter(|(_, ok)| **ok).flat_map(|(a, _)| a.events.iter()).collect()
}

/// The newest snapshot per aggregate of the `accepted` commands (an upsert may not touch a
/// row twice).
fn snapshots_of<'a>(appends: &'a [Append], accepted: &[bool]) -> Vec<&'a SnapshotRow> {
    let mut newest: HashMap<(&str, &str), &SnapshotRow> = HashMap::new();
    for snapshot in
        appends.iter().zip(accepted).filter(|(_, ok)| **ok).filter_map(|(a, _)| a.snapshot.as_ref())
    {
        let slot = newest
            .entry((snapshot.aggregate_type.as_str(), snapshot.aggregate_id.as_str()))
            .or_insert(snapshot);
        if snapshot.last_sequence > slot.last_sequence {
            *slot = snapshot;
        }
    }
    newest.into_values().collect()
}

/// The idempotency claims of the `accepted` commands.
fn claims_of<'a>(appends: &'a [Append], accepted: &[bool]) -> Vec<&'a [u8]> {
    appends
        .iter()
        .zip(accepted)
        .filter(|(_, ok)| **ok)
        .filter_map(|(a, _)| a.claim.as_ref().map(|c| &c[..]))
        .collect()
}

/// A database failure that is the same for every command of a batch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DbDown(String);

/// True when PostgreSQL refused something in the batch itself, which one command alone may
/// have caused.
fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        // Cardinality (21), data exception (22), integrity violation (23).
        sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| ["21", "22", "23"].iter().any(|k| c.starts_with(k)))
        }
        _ => false,
    }
}

type Key = (String, String);

/// Appends every command of `appends` that passes the concurrency check in one transaction;
/// each one's outcome, in order.
async fn append_checked(
    pool: &PgPool,
    appends: &[Append],
) -> Result<Vec<Result<i64, PersistenceError>>, sqlx::Error> {
    // Appends are serialised by the head row; never wait on it forever.
    let mut tx = pool.begin_with(super::BEGIN_APPEND).await?;
    sqlx::query("SELECT 1 FROM event_log_head FOR UPDATE").execute(&mut *tx).await?;
    // The current last sequence of every aggregate the batch touches (exact: nobody else can
    // append while the head row is locked).
    let mut keys: Vec<Key> = appends
        .iter()
        .flat_map(|a| a.events.iter().map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone())))
        .collect();
    keys.sort();
    keys.dedup();
    // One probe of the (aggregate_type, aggregate_id, sequence) index per aggregate: the cost
    // does not grow with the log (a join with GROUP BY was planned as a scan of it).
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT k.t, k.i, s.sequence FROM unnest($1::text[], $2::text[]) AS k(t, i) \
         CROSS JOIN LATERAL (SELECT e.sequence FROM events e \
             WHERE e.aggregate_type = k.t AND e.aggregate_id = k.i \
             ORDER BY e.sequence DESC LIMIT 1) AS s",
    )
    .bind(keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut last: HashMap<Key, i64> = rows.into_iter().map(|(t, i, s)| ((t, i), s)).collect();

    // Which commands go in: each aggregate's events must continue its last sequence (earlier
    // commands of the batch included).
    let mut accepted = vec![false; appends.len()];
    for (n, append) in appends.iter().enumerate() {
        let mut next: HashMap<Key, i64> = HashMap::new();
        let mut ok = true;
        for e in &append.events {
            let key = (e.aggregate_type.clone(), e.aggregate_id.clone());
            let expected =
                next.get(&key).copied().unwrap_or_else(|| last.get(&key).copied().unwrap_or(0) + 1);
            if e.sequence as i64 != expected {
                ok = false;
                break;
            }
            next.insert(key, expected + 1);
        }
        if ok {
            accepted[n] = true;
            for (key, following) in next {
                last.insert(key, following - 1);
            }
        }
    }

    let mut positions: HashMap<(String, String, i64), i64> = HashMap::new();
    if accepted.iter().any(|ok| *ok) {
        let stored = append(
            &mut *tx,
            &events_of(appends, &accepted),
            &snapshots_of(appends, &accepted),
            &claims_of(appends, &accepted),
        )
        .await?;
        positions = stored
            .into_iter()
            .map(|a| ((a.aggregate_type, a.aggregate_id, a.sequence), a.position))
            .collect();
    }
    tx.commit().await?;

    Ok(appends
        .iter()
        .zip(accepted)
        .map(|(a, ok)| {
            if !ok {
                return Err(PersistenceError::OptimisticLockError);
            }
            Ok(a.events
                .iter()
                .filter_map(|e| {
                    positions.get(&(e.aggregate_type.clone(), e.aggregate_id.clone(), e.sequence as i64))
                })
                .copied()
                .max()
                .unwrap_or(0))
        })
        .collect())
}
