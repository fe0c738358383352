//! The delivery tables: endpoints, deliveries (one per event or notice and endpoint) and
//! their attempts.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::{delivery_id, endpoint_id, Endpoint};

/// A delivery to create.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// Its tenant.
    pub tenant_id: &'a str,
    /// The endpoint.
    pub endpoint: &'a Endpoint,
    /// `api_key.revoked`, `quota.threshold`, …
    pub event_type: &'a str,
    /// The event id or the notice id.
    pub source_id: &'a str,
    /// The event's position (events only).
    pub position: Option<i64>,
    /// The body to send.
    pub body: &'a str,
}

/// Records a delivery (and its endpoint) unless it exists; true when it is new.
pub async fn insert_delivery(
    conn: &mut PgConnection,
    d: &NewDelivery<'_>,
    now: OffsetDateTime,
    retry_for: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let endpoint = endpoint_id(d.tenant_id, &d.endpoint.url);
    sqlx::query(
        "INSERT INTO webhook_endpoints (endpoint_id, tenant_id, url) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&endpoint)
    .bind(d.tenant_id)
    .bind(&d.endpoint.url)
    .execute(&mut *conn)
    .await?;
    let deadline = now + time::Duration::try_from(retry_for).unwrap_or(time::Duration::DAY);
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, tenant_id, endpoint_id, url, secret_ref, event_type, \
         source_id, position, body, status, next_attempt_at, deadline, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $10) ON CONFLICT DO NOTHING",
    )
    .bind(delivery_id(d.source_id, &endpoint))
    .bind(d.tenant_id)
    .bind(&endpoint)
    .bind(&d.endpoint.url)
    .bind(&d.endpoint.secret_ref)
    .bind(d.event_type)
    .bind(d.source_id)
    .bind(d.position)
    .bind(d.body)
    .bind(now)
    .bind(deadline)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The endpoints of the tenant's current configuration (none for a deleted tenant).
pub async fn configured_endpoints(
    conn: &mut PgConnection,
    tenant_id: &str,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    let config = tokenhub_projections::read::tenants::live_config(conn, tenant_id).await?;
    Ok(config.map(|c| super::endpoints_of(&c)).unwrap_or_default())
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The delivery id, sent as `webhook-id` on every attempt.
    pub delivery_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// The event type.
    pub event_type: String,
    /// The event's id (or the notice's).
    pub source_id: String,
    /// The event's log position (absent for derived notices).
    pub position: Option<i64>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries).
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// Retries stop at this time.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// The last attempt's HTTP status.
    pub last_status: Option<i32>,
    /// The last attempt's error (timeout, connection, refused target, non-2xx).
    pub last_error: Option<String>,
    /// Position in the tenant's delivery list (the `cursor` of paging).
    #[serde(skip)]
    pub seq: i64,
}

const DELIVERY_COLUMNS: &str =
    "delivery_id, endpoint_id, url, event_type, source_id, position, status, attempts, \
    next_attempt_at, deadline, created_at, delivered_at, last_status, last_error, seq";

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this endpoint.
    pub endpoint_id: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
}

/// A tenant's deliveries, newest first, `limit` after (older than) `before`.
pub async fn list(
    pool: &PgPool,
    tenant_id: &str,
    filter: &DeliveryFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR endpoint_id = $2) AND ($3::text IS NULL OR status = $3) \
         AND ($4::text IS NULL OR event_type = $4) AND ($5::bigint IS NULL OR seq < $5) \
         ORDER BY seq DESC LIMIT $6"
    ))
    .bind(tenant_id)
    .bind(&filter.endpoint_id)
    .bind(&filter.status)
    .bind(&filter.event_type)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One of a tenant's deliveries.
pub async fn get(pool: &PgPool, tenant_id: &str, id: &str) -> Result<Option<DeliveryView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND delivery_id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// One attempt.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1, 2, …
    pub attempt: i32,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// How long it took, in milliseconds.
    pub latency_ms: i32,
    /// The HTTP status, if an answer came.
    pub status_code: Option<i32>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The first 1 KiB of the answer's body.
    pub response_body: Option<String>,
}

/// A delivery's attempts, oldest first.
pub async fn attempts(pool: &PgPool, delivery_id: &str) -> Result<Vec<AttemptView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempt, started_at, latency_ms, status_code, error, response_body FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery_id)
    .fetch_all(pool)
    .await
}

/// Makes a delivery due again now, with a new retry window; false if it is not the tenant's.
pub async fn retry(
    pool: &PgPool,
    tenant_id: &str,
    id: &str,
    retry_for: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let deadline = now + time::Duration::try_from(retry_for).unwrap_or(time::Duration::DAY);
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, deadline = $4 \
         WHERE tenant_id = $1 AND delivery_id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(now)
    .bind(deadline)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An endpoint as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EndpointView {
    /// The endpoint id.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Every attempt failed since this time (absent: the last one succeeded, or none yet).
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Disabled since this time: nothing is sent until it is enabled again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Deliveries waiting.
    pub pending: i64,
}

/// A tenant's endpoints (every URL a delivery was ever made for).
pub async fn endpoints(pool: &PgPool, tenant_id: &str) -> Result<Vec<EndpointView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.endpoint_id, e.url, e.failing_since, e.disabled_at, e.disabled_reason, \
         (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.endpoint_id AND d.status = 'pending') AS pending \
         FROM webhook_endpoints e WHERE e.tenant_id = $1 ORDER BY e.url",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}
