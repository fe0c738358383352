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
}

impl PgEventRepository {
    /// A repository on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
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
        let mut tx = self.pool.begin().await.map_err(connection_error)?;
        // Appends are serialised by the head row; never wait on it forever.
        sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await.map_err(connection_error)?;
        for event in events {
            let tenant = event.metadata.get(TENANT_META_KEY).and_then(Value::as_str);
            let sequence =
                i64::try_from(event.sequence).map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
            let inserted = sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                 tenant_id, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&event.aggregate_type)
            .bind(&event.aggregate_id)
            .bind(sequence)
            .bind(&event.event_type)
            .bind(&event.event_version)
            .bind(tenant)
            .bind(&event.payload)
            .bind(&event.metadata)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(PersistenceError::OptimisticLockError);
                }
                Err(e) => return Err(connection_error(e)),
            }
        }
        // A snapshot is stored only when it covers the whole commit (cqrs-es may cut a
        // multi-event commit short of its last event); ours commit one event at a time.
        if let (Some((aggregate_id, state, version)), [only]) = (snapshot_update, events) {
            let sequence =
                i64::try_from(only.sequence).map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
            let version = i64::try_from(version).map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, schema_version, last_sequence, snapshot_version, state) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET \
                 schema_version = excluded.schema_version, last_sequence = excluded.last_sequence, \
                 snapshot_version = excluded.snapshot_version, state = excluded.state, taken_at = now() \
                 WHERE aggregate_snapshots.last_sequence < excluded.last_sequence",
            )
            .bind(A::TYPE)
            .bind(&aggregate_id)
            .bind(SNAPSHOT_SCHEMA)
            .bind(sequence)
            .bind(version)
            .bind(&state)
            .execute(&mut *tx)
            .await
            .map_err(connection_error)?;
        }
        super::idempotency::mark_committed(&mut tx).await.map_err(connection_error)?;
        tx.commit().await.map_err(connection_error)
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
