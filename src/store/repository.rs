//! The cqrs-es event repository on sqlx.
//!
//! Why not postgres-es: the global order, the hash chain and the tenant column are assigned by
//! the insert trigger of `migrations/0001_event_store.sql`, which needs our own column list;
//! writing the repository (about a hundred lines) keeps every write in one transaction we
//! control. Optimistic concurrency comes from the `(aggregate_type, aggregate_id, sequence)`
//! unique key: a stale write fails as `OptimisticLockError`, never merged.
//!
//! Snapshots (cost independent of history): every [`SNAPSHOT_EVERY`]th event of an aggregate
//! also writes the aggregate's state to `aggregate_snapshots`, in the same transaction; a
//! load reads that snapshot and only the events after it. A snapshot is used only when its
//! [`SNAPSHOT_SCHEMA`] matches (bump it when an aggregate's state changes shape) and when it
//! covers every event of the commit that wrote it. When the tenant aggregate is loaded, the
//! configuration documents are left out of `tenant.config_saved` payloads (its state keeps
//! only the version), so a save does not read earlier documents.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use serde_json::Value;
use sqlx::{PgPool, Row};

/// Events between snapshots of one aggregate.
pub const SNAPSHOT_EVERY: usize = 20;

/// Version of the aggregates' state shapes; snapshots of another version are ignored.
pub const SNAPSHOT_SCHEMA: i32 = 1;

/// Metadata key copied into the `tenant_id` column.
pub const TENANT_META_KEY: &str = "tenant_id";

/// Event repository over the `events` table.
#[derive(Clone)]
pub struct PgEventRepository {
    pool: PgPool,
    writer: Option<super::group_commit::GroupCommit>,
}

impl PgEventRepository {
    /// A repository on `pool` appending each command in its own transaction.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, writer: None }
    }

    /// A repository on `pool` whose appends go through one group-commit writer
    /// ([`super::group_commit`]), which hands what it commits to `committed` when given;
    /// needs a Tokio runtime.
    pub fn with_group_commit(pool: PgPool, committed: Option<super::group_commit::Committed>) -> Self {
        let writer = Some(super::group_commit::GroupCommit::spawn(&pool, committed));
        Self { pool, writer }
    }
}

tokio::task_local! {
    static WRITTEN: std::cell::Cell<i64>;
}

/// Runs `work` noting the position of the last event it appends ([`last_written`]), for
/// read-your-writes by position.
pub async fn tracking_writes<F: std::future::Future>(work: F) -> F::Output {
    WRITTEN.scope(std::cell::Cell::new(0), work).await
}

/// The position of the last event appended inside [`tracking_writes`] (none outside it, or
/// before the first append).
pub fn last_written() -> Option<i64> {
    WRITTEN.try_with(|w| w.get()).ok().filter(|p| *p > 0)
}

fn note_written(position: i64) {
    let _ = WRITTEN.try_with(|w| w.set(w.get().max(position)));
}

/// A snapshot to store with a command's events.
#[derive(Debug, Clone)]
pub struct SnapshotRow {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// The sequence of the last event it covers.
    pub last_sequence: i64,
    /// cqrs-es's snapshot version.
    pub version: i64,
    /// The aggregate's state.
    pub state: Value,
}

/// What the log gave an appended event.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Appended {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub position: i64,
    pub event_id: uuid::Uuid,
    pub recorded_at: time::OffsetDateTime,
}

/// Appends `events` in order (one multi-row INSERT: the trigger gives each its position, time
/// and hash), stores `snapshots` (newer ones only; at most one per aggregate) and marks the
/// idempotency `claims` committed, in one statement: outside a transaction it is a single
/// round trip and a transaction of its own. A unique violation means an aggregate moved on.
pub(crate) async fn append<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    events: &[&SerializedEvent],
    snapshots: &[&SnapshotRow],
    claims: &[&[u8]],
) -> Result<Vec<Appended>, sqlx::Error> {
    sqlx::query_as(
        "WITH appended AS ( \
             INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, tenant_id, payload, metadata) \
             SELECT t, i, s, et, ev, tn, p, m FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
             $6::text[], $7::jsonb[], $8::jsonb[]) WITH ORDINALITY AS x(t, i, s, et, ev, tn, p, m, n) ORDER BY n \
             RETURNING aggregate_type, aggregate_id, sequence, position, event_id, recorded_at), \
         snapshots AS ( \
             INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, schema_version, last_sequence, snapshot_version, state) \
             SELECT t, i, $9, s, v, st FROM unnest($10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::jsonb[]) AS x(t, i, s, v, st) \
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET \
             schema_version = excluded.schema_version, last_sequence = excluded.last_sequence, \
             snapshot_version = excluded.snapshot_version, state = excluded.state, taken_at = now() \
             WHERE aggregate_snapshots.last_sequence < excluded.last_sequence), \
         claims AS (UPDATE idempotency_requests SET committed = true WHERE scope = ANY($15)) \
         SELECT * FROM appended",
    )
    .bind(events.iter().map(|e| e.aggregate_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.aggregate_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.sequence as i64).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_version.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| tenant_of(e)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.metadata).collect::<Vec<_>>())
    .bind(SNAPSHOT_SCHEMA)
    .bind(snapshots.iter().map(|s| s.aggregate_type.as_str()).collect::<Vec<_>>())
    .bind(snapshots.iter().map(|s| s.aggregate_id.as_str()).collect::<Vec<_>>())
    .bind(snapshots.iter().map(|s| s.last_sequence).collect::<Vec<_>>())
    .bind(snapshots.iter().map(|s| s.version).collect::<Vec<_>>())
    .bind(snapshots.iter().map(|s| &s.state).collect::<Vec<_>>())
    .bind(claims)
    .fetch_all(executor)
    .await
}

/// The tenant an event concerns (its `tenant_id` column): from the metadata.
pub(crate) fn tenant_of(event: &SerializedEvent) -> Option<&str> {
    event.metadata.get(TENANT_META_KEY).and_then(Value::as_str)
}

/// Appends one command's events in a transaction of its own (multi-row INSERT), with its
/// snapshot and idempotency mark; the position of its last event.
pub(crate) async fn persist_one(
    pool: &PgPool,
    events: &[SerializedEvent],
    snapshot: Option<&SnapshotRow>,
    claim: Option<[u8; 32]>,
) -> Result<i64, PersistenceError> {
    // Appends are serialised by the head row; never wait on it forever.
    let mut tx = pool.begin_with(super::BEGIN_APPEND).await.map_err(connection_error)?;
    let refs: Vec<&SerializedEvent> = events.iter().collect();
    let snapshots: Vec<&SnapshotRow> = snapshot.into_iter().collect();
    let claims: Vec<&[u8]> = claim.as_ref().map(|c| &c[..]).into_iter().collect();
    let position = match append(&mut *tx, &refs, &snapshots, &claims).await {
        Ok(rows) => rows.into_iter().map(|r| r.position).max().unwrap_or(0),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(PersistenceError::OptimisticLockError)
        }
        Err(e) => return Err(connection_error(e)),
    };
    tx.commit().await.map_err(connection_error)?;
    Ok(position)
}

fn connection_error(e: sqlx::Error) -> PersistenceError {
    PersistenceError::ConnectionError(Box::new(e))
}

fn to_serialized(row: &sqlx::postgres::PgRow) -> Result<SerializedEvent, PersistenceError> {
    let sequence: i64 = row.try_get("sequence").map_err(connection_error)?;
    Ok(SerializedEvent {
        aggregate_id: row.try_get("aggregate_id").map_err(connection_error)?,
        sequence: usize::try_from(sequence).map_err(|e| PersistenceError::UnknownError(Box::new(e)))?,
        aggregate_type: row.try_get("aggregate_type").map_err(connection_error)?,
        event_type: row.try_get("event_type").map_err(connection_error)?,
        event_version: row.try_get("event_version").map_err(connection_error)?,
        payload: row.try_get("payload").map_err(connection_error)?,
        metadata: row.try_get("metadata").map_err(connection_error)?,
    })
}

const SELECT: &str = "SELECT aggregate_id, sequence, aggregate_type, event_type, event_version, \
     CASE WHEN event_type = 'tenant.config_saved' THEN payload - 'config' ELSE payload END AS payload, metadata \
     FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence";

impl PgEventRepository {
    async fn select(
        &self,
        aggregate_type: &str,
        id: &str,
        after: i64,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let rows = sqlx::query(SELECT)
            .bind(aggregate_type)
            .bind(id)
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(connection_error)?;
        rows.iter().map(to_serialized).collect()
    }

    fn feed(events: Vec<SerializedEvent>) -> ReplayStream {
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        tokio::spawn(async move {
            for event in events {
                if feed.push(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        stream
    }
}

impl PersistedEventRepository for PgEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select(A::TYPE, aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let after = i64::try_from(last_sequence).map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
        self.select(A::TYPE, aggregate_id, after).await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let row: Option<(i64, i64, Value)> = sqlx::query_as(
            "SELECT last_sequence, snapshot_version, state FROM aggregate_snapshots \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND schema_version = $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(SNAPSHOT_SCHEMA)
        .fetch_optional(&self.pool)
        .await
        .map_err(connection_error)?;
        let to_usize = |v: i64| usize::try_from(v).map_err(|e| PersistenceError::UnknownError(Box::new(e)));
        Ok(match row {
            None => None,
            Some((sequence, version, state)) => Some(SerializedSnapshot {
                aggregate_id: aggregate_id.to_string(),
                aggregate: state,
                current_sequence: to_usize(sequence)?,
                current_snapshot: to_usize(version)?,
            }),
        })
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let to_i64 = |v: usize| i64::try_from(v).map_err(|e| PersistenceError::UnknownError(Box::new(e)));
        // A snapshot is stored only when it covers the whole commit (cqrs-es may cut a
        // multi-event commit short of its last event); ours commit one event at a time.
        let snapshot = match (snapshot_update, events) {
            (Some((aggregate_id, state, version)), [only]) => Some(SnapshotRow {
                aggregate_type: A::TYPE.to_string(),
                aggregate_id,
                last_sequence: to_i64(only.sequence)?,
                version: to_i64(version)?,
                state,
            }),
            _ => None,
        };
        let claim = super::idempotency::claim_in_force();
        let position = match &self.writer {
            Some(writer) => writer.append(events.to_vec(), snapshot, claim).await?,
            None => persist_one(&self.pool, events, snapshot.as_ref(), claim).await?,
        };
        note_written(position);
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        Ok(Self::feed(self.select(A::TYPE, aggregate_id, 0).await?))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let rows = sqlx::query(
            "SELECT aggregate_id, sequence, aggregate_type, event_type, event_version, payload, metadata \
             FROM events WHERE aggregate_type = $1 ORDER BY position",
        )
        .bind(A::TYPE)
        .fetch_all(&self.pool)
        .await
        .map_err(connection_error)?;
        let events = rows.iter().map(to_serialized).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::feed(events))
    }
}
