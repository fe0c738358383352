//! Group commit: one writer task per process appends the commands that are ready together, in
//! one transaction — the head row locked once, one optimistic-concurrency check for all of
//! them, one multi-row INSERT, one commit — and answers each command on its own. Under load a
//! batch is every command that arrived while the previous commit was being flushed, so the
//! head lock is held once per batch instead of once per command and commits approach the
//! database's own rate.
//!
//! Why readers never skip an event: positions (and the hash chain) are still assigned by the
//! insert trigger under the `event_log_head` row lock, which the writer takes first and holds
//! to its commit; every append on every instance takes the same lock. So positions are given
//! in commit order, without gaps, and a reader that sees position N sees everything below N.
//! The chain covers every event as soon as it commits, exactly as before.
//!
//! A command refused by the check (its aggregate moved on) gets `OptimisticLockError`, like a
//! unique-key violation before. If the batch fails as a whole (a value PostgreSQL refuses),
//! each command of it is appended alone, so only the bad one fails.

use std::collections::HashMap;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::repository::{insert_events, persist_one, SnapshotRow};

/// Commands appended in one transaction at most.
pub const MAX_BATCH: usize = 512;

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
    /// Starts the writer on `pool` (needs a Tokio runtime).
    pub fn spawn(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
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

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Append>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        metrics::histogram!("tokenhub_group_commit_batch_size").record(batch.len() as f64);
        let appends: Vec<Append> = std::mem::take(&mut batch);
        match append_batch(&pool, &appends).await {
            Ok(outcomes) => {
                for (append, outcome) in appends.into_iter().zip(outcomes) {
                    let _ = append.answer.send(outcome);
                }
            }
            Err(e) if !is_data_error(&e) => {
                // The database is unreachable or the head lock timed out: the same for all.
                tracing::warn!(error = %e, size = appends.len(), "group commit failed");
                for append in appends {
                    let _ = append
                        .answer
                        .send(Err(PersistenceError::ConnectionError(Box::new(DbDown(e.to_string())))));
                }
            }
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
async fn append_batch(
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

    let events: Vec<&SerializedEvent> =
        appends.iter().zip(&accepted).filter(|(_, ok)| **ok).flat_map(|(a, _)| a.events.iter()).collect();
    let mut positions: HashMap<(String, String, i64), i64> = HashMap::new();
    if !events.is_empty() {
        let returned = insert_events(&mut tx, &events).await?;
        positions = returned.into_iter().map(|(t, i, s, p)| ((t, i, s), p)).collect();
    }

    // One snapshot per aggregate (the newest): an upsert may not touch a row twice.
    let mut newest: HashMap<(&str, &str), &SnapshotRow> = HashMap::new();
    for snapshot in
        appends.iter().zip(&accepted).filter(|(_, ok)| **ok).filter_map(|(a, _)| a.snapshot.as_ref())
    {
        let slot = newest
            .entry((snapshot.aggregate_type.as_str(), snapshot.aggregate_id.as_str()))
            .or_insert(snapshot);
        if snapshot.last_sequence > slot.last_sequence {
            *slot = snapshot;
        }
    }
    let snapshots: Vec<&SnapshotRow> = newest.into_values().collect();
    if !snapshots.is_empty() {
        super::repository::upsert_snapshots(&mut tx, &snapshots).await?;
    }
    let claims: Vec<&[u8]> = appends
        .iter()
        .zip(&accepted)
        .filter(|(_, ok)| **ok)
        .filter_map(|(a, _)| a.claim.as_ref().map(|c| &c[..]))
        .collect();
    if !claims.is_empty() {
        sqlx::query("UPDATE idempotency_requests SET committed = true WHERE scope = ANY($1)")
            .bind(&claims)
            .execute(&mut *tx)
            .await?;
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
