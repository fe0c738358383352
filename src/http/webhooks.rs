//! `/tenant/webhooks`: what was delivered to the tenant's webhook endpoints (every attempt),
//! retrying a delivery, re-enabling a disabled endpoint, and a test send.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::TenantCommand;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ManageTenantConfig, ReadTenantConfig};
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::AppState;
use crate::webhooks::store::{self, AttemptView, DeliveryFilter, DeliveryView, EndpointView};

/// Delivery states.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Given up (the retry window ended, or its endpoint was disabled); can be retried.
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Which deliveries.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only this endpoint (`whe_…`).
    pub endpoint_id: Option<String>,
    /// Only this status.
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
    /// Only this event type, e.g. `api_key.revoked`.
    pub event_type: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Deliveries.
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<i64>,
}

fn short(field: &str, value: &Option<String>) -> ApiResult<()> {
    if value.as_ref().is_some_and(|v| v.is_empty() || v.len() > 128) {
        return Err(ApiError::new(Code::InvalidQuery, format!("{field} must be 1 to 128 characters")));
    }
    Ok(())
}

/// The tenant's webhook deliveries, newest first.
#[utoipa::path(get, path = "/tenant/webhooks/deliveries", tag = "tenant-webhooks",
    params(DeliveryQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<axum::Json<DeliveryPage>> {
    let limit = crate::paging::page_size(q.limit, 50, 200)?;
    short("endpoint_id", &q.endpoint_id)?;
    short("event_type", &q.event_type)?;
    let filter = DeliveryFilter {
        endpoint_id: q.endpoint_id,
        status: q.status.map(|s| s.as_str().to_string()),
        event_type: q.event_type,
    };
    let data = store::list(&state.pool, auth.tenant(), &filter, q.cursor, limit).await?;
    let next_cursor = (data.len() as i64 == limit).then(|| data.last().map(|d| d.seq)).flatten();
    Ok(axum::Json(DeliveryPage { data, next_cursor }))
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// Its attempts, oldest first.
    pub attempts_made: Vec<AttemptView>,
}

fn not_found() -> ApiError {
    ApiError::new(Code::WebhookDeliveryNotFound, "webhook delivery not found")
}

fn checked_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(not_found());
    }
    Ok(())
}

/// One delivery and every attempt (status, latency, answer code, first 1 KiB of the body).
#[utoipa::path(get, path = "/tenant/webhooks/deliveries/{id}", tag = "tenant-webhooks",
    params(("id" = String, Path, description = "The delivery id (`msg_…`, its `webhook-id`)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = DeliveryDetail),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`webhook_delivery_not_found` (also another tenant's)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_delivery(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeliveryDetail>> {
    checked_id(&id)?;
    let delivery = store::get(&state.pool, auth.tenant(), &id).await?.ok_or_else(not_found)?;
    let attempts_made = store::attempts(&state.pool, &id).await?;
    Ok(axum::Json(DeliveryDetail { delivery, attempts_made }))
}

/// Makes a delivery due now with a fresh retry window (a `failed` one too), in its place in
/// the endpoint's order; it is sent once its endpoint is enabled.
#[utoipa::path(post, path = "/tenant/webhooks/deliveries/{id}/retry", tag = "tenant-webhooks",
    params(("id" = String, Path, description = "The delivery id (`msg_…`)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, body = DeliveryView, description = "Due now"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`webhook_delivery_not_found`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<DeliveryView>)> {
    checked_id(&id)?;
    if !store::retry(&state.pool, auth.tenant(), &id, state.webhooks.settings().retry_for).await? {
        return Err(not_found());
    }
    let delivery = store::get(&state.pool, auth.tenant(), &id).await?.ok_or_else(not_found)?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery)))
}

/// The tenant's webhook endpoints: failing since when, disabled or not, deliveries waiting.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Every URL a delivery was made for.
    pub data: Vec<EndpointView>,
}

/// The tenant's webhook endpoints and their state.
#[utoipa::path(get, path = "/tenant/webhooks/endpoints", tag = "tenant-webhooks",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = EndpointList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
) -> ApiResult<axum::Json<EndpointList>> {
    Ok(axum::Json(EndpointList { data: store::endpoints(&state.pool, auth.tenant()).await? }))
}

/// Resumes deliveries to a disabled endpoint (a `tenant.webhook_enabled` event); what failed
/// while it was disabled can then be retried one by one.
#[utoipa::path(post, path = "/tenant/webhooks/endpoints/{id}/enable", tag = "tenant-webhooks",
    params(("id" = String, Path, description = "The endpoint id (`whe_…`)")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Enabled (or it was not disabled)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`webhook_endpoint_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_deleted`, `aggregate_conflict`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn enable_endpoint(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    ctx: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = auth.tenant();
    let endpoint = store::endpoints(&state.pool, tenant)
        .await?
        .into_iter()
        .find(|e| e.endpoint_id == id)
        .ok_or_else(|| ApiError::new(Code::WebhookEndpointNotFound, "webhook endpoint not found"))?;
    if endpoint.disabled_at.is_some() {
        let command = TenantCommand::EnableWebhook { url: endpoint.url, at: OffsetDateTime::now_utc() };
        crate::services::tenants::act(&state, &auth.principal, &ctx, tenant, command).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a test send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// One of the configuration's webhook URLs.
    pub url: String,
}

/// What the test send got.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// The delivery recorded for it (in the delivery list, type `webhook.test`).
    pub delivery_id: String,
    /// True when the endpoint answered 2xx.
    pub delivered: bool,
    /// The attempt.
    #[serde(flatten)]
    pub outcome: crate::webhooks::sender::Outcome,
}

/// Sends a `webhook.test` event to one of the configuration's endpoints now (outside its
/// queue, signed like every delivery, one attempt) and answers what it got.
#[utoipa::path(post, path = "/tenant/webhooks/test", tag = "tenant-webhooks",
    request_body = TestRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TestResult, description = "Sent (see `delivered` for the answer)"),
        (status = 400, body = ErrorBody, description = "`invalid_json`, `invalid_body`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`webhook_not_configured`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn test_send(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    Json(body): Json<TestRequest>,
) -> ApiResult<axum::Json<TestResult>> {
    let tenant = auth.tenant();
    let mut conn = state.pool.acquire().await?;
    let endpoint = store::configured_endpoints(&mut conn, tenant)
        .await?
        .into_iter()
        .find(|e| e.url == body.url)
        .ok_or_else(|| {
            ApiError::new(Code::WebhookNotConfigured, "the URL is not one of the configuration's webhooks")
        })?;
    drop(conn);
    let (delivery_id, outcome) = state.webhooks.test(tenant, &endpoint).await?;
    let delivered = outcome.ok();
    Ok(axum::Json(TestResult { delivery_id, delivered, outcome }))
}
