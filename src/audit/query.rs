//! Audit queries: the events of the log with their who/where/when, secrets and hashes left
//! out, filtered and paged by global position.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::redact::redact_payload;
use tokenhub_projections::StoredEvent;
use utoipa::{IntoParams, ToSchema};

/// Filters of the audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only this tenant (forced to the caller's on `/tenant/audit/events`).
    pub tenant_id: Option<String>,
    /// Only this aggregate type (`tenant`, `api_key`, `sub_account`, `role`).
    pub aggregate_type: Option<String>,
    /// Only this aggregate id.
    pub aggregate_id: Option<String>,
    /// Only this event type, e.g. `api_key.revoked`.
    pub event_type: Option<String>,
    /// Only events by this actor id (a key's public id, or `master`).
    pub actor_id: Option<String>,
    /// Only events by the person with this e-mail (as it was at the time; any case).
    pub actor_email: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<OffsetDateTime>,
    /// Only events before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<OffsetDateTime>,
    /// Page size, 1 to 1000 (default 100; ignored by export).
    pub limit: Option<i64>,
    /// Position after which to start (`order=asc`), or before which (`order=desc`): the
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// `asc` (default: oldest first) or `desc` (newest first); lists only (export and streams
    /// run in log order).
    #[param(inline)]
    pub order: Option<AuditOrder>,
}

/// The order of an audit listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOrder {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// Who did it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Actor {
    /// `super_admin`, `api_key`, `platform_key`, `user` or `system`.
    pub kind: String,
    /// `master`, the key's public id, or the person's user id.
    pub id: String,
    /// The person's e-mail at the time, for `kind: user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// One audit record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditItem {
    /// Global position.
    pub position: i64,
    /// Event id (also the NATS message id).
    pub event_id: String,
    /// When it was committed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: OffsetDateTime,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence within the aggregate.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Event schema version.
    pub event_version: String,
    /// Who.
    pub actor: Actor,
    /// Request id.
    pub request_id: Option<String>,
    /// Client address.
    pub source_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// The event, with key hashes and ciphertext removed: its `type` is `event_type`, and
    /// its fields are those of that event type.
    #[schema(value_type = AuditPayload)]
    pub payload: serde_json::Value,
}

/// The payload of an audit record, per event type (the schema of [`AuditItem::payload`]; the
/// aggregates' event types are the contract, so this cannot drift from what is stored).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum AuditPayload {
    /// `tenant.*`
    Tenant(tokenhub_aggregates::tenant::TenantEvent),
    /// `api_key.*`
    ApiKey(tokenhub_aggregates::api_key::ApiKeyEvent),
    /// `sub_account.*`
    SubAccount(tokenhub_aggregates::sub_account::SubAccountEvent),
    /// `role.*`
    Role(tokenhub_aggregates::role::RoleEvent),
    /// `secret.*`
    Secret(tokenhub_aggregates::secret::SecretEvent),
    /// `user.*`
    User(tokenhub_aggregates::user::UserEvent),
}

impl From<StoredEvent> for AuditItem {
    fn from(e: StoredEvent) -> Self {
        let meta = |k: &str| e.meta(k).filter(|v| !v.is_empty()).map(str::to_string);
        let actor = Actor {
            kind: meta("actor_kind").unwrap_or_default(),
            id: meta("actor_id").unwrap_or_default(),
            email: meta("actor_email"),
        };
        let (request_id, source_ip, user_agent) = (meta("request_id"), meta("source_ip"), meta("user_agent"));
        let mut payload = e.payload;
        redact_payload(&mut payload);
        AuditItem {
            position: e.position,
            event_id: e.event_id.to_string(),
            time: e.recorded_at,
            tenant_id: e.tenant_id,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            actor,
            request_id,
            source_ip,
            user_agent,
            payload,
        }
    }
}

/// The filters of [`AuditFilter`] on `events`, parameters `$2`–`$8` and `$10` (`$1` bounds
/// the position, `$9` is the page size).
macro_rules! filtered_events {
    ($bound:literal, $order:literal) => {
        concat!(
            "SELECT position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, tenant_id, \
             payload, metadata, recorded_at FROM events WHERE ",
            $bound,
            " AND ($2::text IS NULL OR tenant_id = $2) \
             AND ($3::text IS NULL OR aggregate_type = $3) \
             AND ($4::text IS NULL OR aggregate_id = $4) \
             AND ($5::text IS NULL OR event_type = $5) \
             AND ($6::text IS NULL OR metadata->>'actor_id' = $6) \
             AND ($10::text IS NULL OR lower(metadata->>'actor_email') = lower($10)) \
             AND ($7::timestamptz IS NULL OR recorded_at >= $7) \
             AND ($8::timestamptz IS NULL OR recorded_at < $8) \
             ORDER BY position ",
            $order,
            " LIMIT $9"
        )
    };
}

async fn fetch(
    pool: &PgPool,
    sql: &'static str,
    filter: &AuditFilter,
    bound: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditItem>, sqlx::Error> {
    let rows: Vec<StoredEvent> = sqlx::query_as(sql)
        .bind(bound)
        .bind(&filter.tenant_id)
        .bind(&filter.aggregate_type)
        .bind(&filter.aggregate_id)
        .bind(&filter.event_type)
        .bind(&filter.actor_id)
        .bind(filter.from)
        .bind(filter.to)
        .bind(limit)
        .bind(&filter.actor_email)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(AuditItem::from).collect())
}

/// Up to `limit` events matching `filter` before position `before` (the newest when `None`),
/// newest first.
pub async fn fetch_page_before(
    pool: &PgPool,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditItem>, sqlx::Error> {
    let sql = filtered_events!("($1::bigint IS NULL OR position < $1)", "DESC");
    fetch(pool, sql, filter, before, limit).await
}

/// Up to `limit` events matching `filter` after position `after`, in order.
pub async fn fetch_page(
    pool: &PgPool,
    filter: &AuditFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditItem>, sqlx::Error> {
    fetch(pool, filtered_events!("position > $1", "ASC"), filter, Some(after), limit).await
}
