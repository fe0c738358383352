//! Reading the event log in global order.
//!
//! Positions are assigned in commit order by the insert trigger (see
//! `migrations/0001_event_store.sql`), so `position > last` never skips a late commit.

use serde_json::Value;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

/// One committed event, as catch-up readers see it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct StoredEvent {
    /// Global, gap-free, commit-ordered position (from 1).
    pub position: i64,
    /// Unique id; the NATS message id.
    pub event_id: Uuid,
    /// e.g. `tenant`.
    pub aggregate_type: String,
    /// e.g. `ten_…`.
    pub aggregate_id: String,
    /// Sequence within the aggregate (from 1).
    pub sequence: i64,
    /// e.g. `tenant.created`.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: String,
    /// The tenant it concerns, when any.
    pub tenant_id: Option<String>,
    /// The event itself.
    pub payload: Value,
    /// Who, from where, which request.
    pub metadata: Value,
    /// Commit-time clock of the database.
    pub recorded_at: OffsetDateTime,
}

impl StoredEvent {
    /// The payload as `T`, read in place (no copy of the JSON).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ProjectionError> {
        T::deserialize(&self.payload).map_err(|source| crate::ProjectionError::Payload {
            position: self.position,
            event_type: self.event_type.clone(),
            source,
        })
    }

    /// A metadata field as a string, when present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// The columns that place an event: all but its payload, its metadata and its time.
const PLACE: &str = "position, event_id, aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, tenant_id";

/// Up to `limit` events after `after`, in order.
pub async fn read_after<'e>(
    executor: impl PgExecutor<'e>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {PLACE}, payload, metadata, recorded_at FROM events WHERE position > $1 ORDER BY position LIMIT $2"
    );
    sqlx::query_as::<_, StoredEvent>(&sql).bind(after).bind(limit).fetch_all(executor).await
}

/// Up to `limit` events after `after`, in order, as a follower that reads only the payloads of
/// `aggregate_types` sees them: every event is there (positions stay gap-free), but the others'
/// payloads and every event's metadata are JSON `null` — never sent, never parsed. The key
/// caches of the instances that do not apply the projections read every command's event this
/// way; parsing what they skip was most of their cost.
pub async fn read_payloads_after<'e>(
    executor: impl PgExecutor<'e>,
    after: i64,
    limit: i64,
    aggregate_types: &[&str],
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {PLACE}, CASE WHEN aggregate_type = ANY($3) THEN payload ELSE 'null'::jsonb END AS payload, \
         'null'::jsonb AS metadata, recorded_at FROM events WHERE position > $1 ORDER BY position LIMIT $2"
    );
    sqlx::query_as::<_, StoredEvent>(&sql)
        .bind(after)
        .bind(limit)
        .bind(aggregate_types)
        .fetch_all(executor)
        .await
}

/// Position of the newest committed event (0 for an empty log).
pub async fn head_position<'e>(executor: impl PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT position FROM event_log_head").fetch_one(executor).await
}
