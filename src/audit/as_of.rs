//! State at a past moment, rebuilt from the log: the events of one aggregate up to the last
//! position recorded at or before `as_of` (a cut of the global order, not a time filter, so
//! the state is one the log actually passed through), folded with the same logic as the live
//! side.

use cqrs_es::Aggregate;
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::{Tenant, TenantEvent, TenantLimits};
use tokenhub_projections::api_keys::{change_for, decode, KeyLookupChange, KeyRecord};
use tokenhub_projections::StoredEvent;
use utoipa::IntoParams;

/// `?as_of=<RFC 3339>`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// Show the state as it was at this moment, rebuilt from the event log.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<OffsetDateTime>,
}

/// The events of one aggregate committed at or before `as_of`, in order.
pub async fn events_until(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    as_of: OffsetDateTime,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, tenant_id, \
         payload, metadata, recorded_at FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 \
         AND position <= (SELECT coalesce(max(position), 0) FROM events WHERE recorded_at <= $3) \
         ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(as_of)
    .fetch_all(pool)
    .await
}

/// The tenant folded from `events`, with the number of events applied.
pub fn fold_tenant(events: &[StoredEvent]) -> Option<(Tenant, i64)> {
    let mut tenant = Tenant::default();
    for event in events {
        let decoded: TenantEvent = event.decode().ok()?;
        tenant.apply(decoded);
    }
    tenant.status.map(|_| (tenant, events.len() as i64))
}

/// Effective limits of a folded tenant, as JSON.
pub fn tenant_limits_json(tenant: &Tenant) -> (serde_json::Value, serde_json::Value) {
    let effective = TenantLimits::effective(tenant.plan, tenant.limit_overrides);
    (
        serde_json::to_value(effective).unwrap_or_default(),
        serde_json::to_value(tenant.limit_overrides).unwrap_or_default(),
    )
}

/// The key record folded from `events` with the key lookup's own logic.
pub fn fold_key(events: &[StoredEvent]) -> Option<KeyRecord> {
    let mut record = None;
    for event in events {
        let decoded = decode(event).ok()??;
        if let Some(KeyLookupChange::Key(r)) = change_for(&event.aggregate_id, decoded, record.take()) {
            record = Some(*r);
        }
    }
    record
}
