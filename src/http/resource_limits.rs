//! `/tenant/limits/resources`: per end-user resource limits (calendar windows in UTC, a tier
//! per plan, a gate action), their use, and the gateway's `check` and `track` calls.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::{GateAction, Plan, ResourceLimit, TenantCommand};
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ManageResourceLimits, ReadResourceLimits, TrackResources};
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, JsonList, Query, RequestMeta};
use crate::http::AppState;
use crate::usage::resource_limits::{self as limits, Decision};

/// Largest amount one call may check or track.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// One limit as it travels (documentation of the wire shape; the body is read straight into
/// the aggregate's type, which has the same fields).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimitDoc {
    /// What is limited, e.g. `images` (1 to 64 of `[A-Za-z0-9_.:-]`).
    #[schema(example = "images")]
    pub resource: String,
    /// How it is counted, e.g. `count` (1 to 64 of `[A-Za-z0-9_.:-]`).
    #[schema(example = "count")]
    pub metric: String,
    /// `minute`, `hour`, `day` or `month`: calendar windows in UTC.
    #[schema(example = "day")]
    pub period: String,
    /// The flat limit.
    pub limit: u64,
    /// Per-plan limits (`free`, `pro`, `enterprise`); the tenant's plan's tier overrides `limit`.
    #[schema(value_type = Object, example = json!({"free": 10, "pro": 100}))]
    pub tiers: Option<serde_json::Value>,
    /// `block` (default), `warn` or `notify`.
    #[schema(example = "block")]
    pub gate_action: String,
}

/// Where one limit stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitUsageView {
    /// Resource.
    pub resource: String,
    /// Metric.
    pub metric: String,
    /// Window.
    #[schema(example = "day")]
    pub period: &'static str,
    /// Used in the current window.
    pub current: u64,
    /// The limit in force on the tenant's plan.
    pub limit: u64,
    /// `current / limit` in percent (100 when the limit is 0 and something was used).
    pub percentage: f64,
    /// `user` (one end-user's use) or `tenant` (summed over the tenant's end-users).
    #[schema(example = "user")]
    pub scope: &'static str,
    /// `block`, `warn` or `notify`.
    #[serde(rename = "gateAction")]
    pub gate_action: &'static str,
    /// When the window ends and the count resets (RFC 3339).
    #[serde(rename = "resetsAt", with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub resets_at: OffsetDateTime,
}

/// Whose use.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// One end-user; the whole tenant when absent.
    #[serde(rename = "userId")]
    #[param(rename = "userId")]
    pub user_id: Option<String>,
}

/// A `check` or `track` call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseRequest {
    /// The end-user, 1 to 128 characters.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Resource.
    pub resource: String,
    /// Metric.
    pub metric: String,
    /// How much (1 when absent).
    #[serde(default = "one")]
    pub amount: u64,
}

fn one() -> u64 {
    1
}

/// Use against the deciding limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct UseCount {
    /// Used in the window (after the amount, for `track`).
    pub current: u64,
    /// The limit in force.
    pub limit: u64,
}

/// The answer of `check` and `track`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UseDecision {
    /// False when a `block` limit would be passed.
    pub allowed: bool,
    /// The deciding limit's gate action.
    #[serde(rename = "gateAction")]
    #[schema(example = "block")]
    pub gate_action: &'static str,
    /// The deciding limit's use.
    pub usage: UseCount,
    /// True when a limit is passed (a `warn` or `notify` limit lets the use through anyway).
    pub exceeded: bool,
    /// When the deciding limit's window ends (RFC 3339).
    #[serde(rename = "resetsAt", with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub resets_at: OffsetDateTime,
}

impl From<Decision> for UseDecision {
    fn from(d: Decision) -> Self {
        UseDecision {
            allowed: d.allowed,
            gate_action: d.gate_action.as_str(),
            usage: UseCount { current: d.current, limit: d.limit },
            exceeded: d.exceeded,
            resets_at: d.resets_at,
        }
    }
}

async fn load(state: &AppState, tenant: &str) -> ApiResult<(Plan, Vec<ResourceLimit>)> {
    limits::load(&state.pool, tenant)
        .await?
        .ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))
}

fn valid_user(user: &str) -> ApiResult<()> {
    if !crate::usage::record::printable(user, 128) {
        return Err(ApiError::new(
            Code::InvalidUserId,
            "userId must be 1 to 128 characters, no control characters",
        ));
    }
    Ok(())
}

impl UseRequest {
    fn validate(&self, least: u64) -> ApiResult<()> {
        valid_user(&self.user_id)?;
        if self.amount < least || self.amount > MAX_AMOUNT {
            return Err(ApiError::new(
                Code::InvalidAmount,
                format!("amount must be {least} to {MAX_AMOUNT}"),
            ));
        }
        Ok(())
    }
}

fn no_limit(body: &UseRequest) -> ApiError {
    ApiError::new(
        Code::ResourceLimitNotFound,
        format!("no resource limit is set for {}/{}", body.resource, body.metric),
    )
}

/// The tenant's resource limits.
#[utoipa::path(get, path = "/tenant/limits/resources", tag = "tenant-limits",
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = [ResourceLimitDoc]),
        (status = 400, body = ErrorBody, description = "`tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_resource_limits(
    State(state): State<AppState>,
    auth: Authorized<ReadResourceLimits>,
) -> ApiResult<axum::Json<Vec<ResourceLimit>>> {
    Ok(axum::Json(load(&state, auth.tenant()).await?.1))
}

/// Replace the tenant's resource limits (at most 100; one per resource, metric and period).
/// Counts already made stay: a new limit applies to the current window's use.
#[utoipa::path(put, path = "/tenant/limits/resources", tag = "tenant-limits",
    request_body = [ResourceLimitDoc],
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = [ResourceLimitDoc]),
        (status = 400, body = ErrorBody, description = "`invalid_json`, `tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`aggregate_conflict`, `tenant_deleted`"),
        (status = 422, body = ErrorBody, description = "`invalid_request` (unknown field or period), `invalid_resource_limits`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn put_resource_limits(
    State(state): State<AppState>,
    auth: Authorized<ManageResourceLimits>,
    ctx: RequestMeta,
    JsonList(body): JsonList<Vec<ResourceLimit>>,
) -> ApiResult<axum::Json<Vec<ResourceLimit>>> {
    let tenant = auth.tenant().to_string();
    let command = TenantCommand::SetResourceLimits { limits: body, at: OffsetDateTime::now_utc() };
    crate::services::tenants::act(&state, &auth.principal, &ctx, &tenant, command).await?;
    Ok(axum::Json(load(&state, &tenant).await?.1))
}

/// Use of every limit in its current window, for one end-user (`scope: user`) or summed over
/// the tenant's end-users (`scope: tenant`).
#[utoipa::path(get, path = "/tenant/limits/resources/usage", tag = "tenant-limits",
    params(UsageParams),
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = [LimitUsageView]),
        (status = 400, body = ErrorBody, description = "`tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_user_id`, `invalid_query`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn resource_usage(
    State(state): State<AppState>,
    auth: Authorized<ReadResourceLimits>,
    Query(q): Query<UsageParams>,
) -> ApiResult<axum::Json<Vec<LimitUsageView>>> {
    if let Some(user) = &q.user_id {
        valid_user(user)?;
    }
    let (plan, set) = load(&state, auth.tenant()).await?;
    let now = OffsetDateTime::now_utc();
    let uses = limits::usage(&state.pool, auth.tenant(), q.user_id.as_deref(), plan, &set, now).await?;
    let scope = if q.user_id.is_some() { "user" } else { "tenant" };
    let views = uses
        .into_iter()
        .map(|u| LimitUsageView {
            percentage: percentage(u.current, u.effective),
            resource: u.limit.resource,
            metric: u.limit.metric,
            period: u.limit.period.as_str(),
            current: u.current,
            limit: u.effective,
            scope,
            gate_action: u.limit.gate_action.as_str(),
            resets_at: u.resets_at,
        })
        .collect();
    Ok(axum::Json(views))
}

fn percentage(current: u64, limit: u64) -> f64 {
    if limit == 0 {
        return if current == 0 { 0.0 } else { 100.0 };
    }
    (current as f64 * 10_000.0 / limit as f64).round() / 100.0
}

/// Would `amount` more be allowed for this end-user? Nothing is counted. The deciding limit is
/// the first `block` limit the amount would pass, else the first passed limit, else the one
/// with least room.
#[utoipa::path(post, path = "/tenant/limits/resources/check", tag = "tenant-limits",
    request_body = UseRequest,
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = UseDecision),
        (status = 400, body = ErrorBody, description = "`invalid_json`, `tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`resource_limit_not_found`, `tenant_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_user_id`, `invalid_amount`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn check_resource(
    State(state): State<AppState>,
    auth: Authorized<TrackResources>,
    Json(body): Json<UseRequest>,
) -> ApiResult<axum::Json<UseDecision>> {
    body.validate(0)?;
    let (plan, set) = load(&state, auth.tenant()).await?;
    let matching: Vec<ResourceLimit> =
        limits::matching(&set, &body.resource, &body.metric).into_iter().cloned().collect();
    let now = OffsetDateTime::now_utc();
    let uses = limits::usage(&state.pool, auth.tenant(), Some(&body.user_id), plan, &matching, now).await?;
    let decision = limits::decide(&uses, body.amount).ok_or_else(|| no_limit(&body))?;
    Ok(axum::Json(decision.into()))
}

/// Count `amount` of use for this end-user against every matching limit, all or nothing. When a
/// `block` limit would be passed nothing is counted and the answer is 429
/// `resource_limit_exceeded` with `Retry-After` (seconds to the window's end); concurrent
/// calls never push a `block` limit past its value.
#[utoipa::path(post, path = "/tenant/limits/resources/track", tag = "tenant-limits",
    request_body = UseRequest,
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = UseDecision, description = "Counted; `exceeded` when a `warn` or `notify` limit is passed"),
        (status = 400, body = ErrorBody, description = "`invalid_json`, `tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`resource_limit_not_found`, `tenant_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_user_id`, `invalid_amount`"),
        (status = 429, body = ErrorBody, description = "`resource_limit_exceeded` (nothing counted), `rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn track_resource(
    State(state): State<AppState>,
    auth: Authorized<TrackResources>,
    Json(body): Json<UseRequest>,
) -> ApiResult<axum::Json<UseDecision>> {
    body.validate(1)?;
    let (plan, set) = load(&state, auth.tenant()).await?;
    let matching = limits::matching(&set, &body.resource, &body.metric);
    if matching.is_empty() {
        return Err(no_limit(&body));
    }
    let now = OffsetDateTime::now_utc();
    let decision =
        limits::track(&state.pool, auth.tenant(), &body.user_id, plan, &matching, body.amount, now).await?;
    if !decision.allowed {
        let error = ApiError::new(
            Code::ResourceLimitExceeded,
            format!(
                "{}/{} for this user is at {} of {}; nothing was counted",
                body.resource, body.metric, decision.current, decision.limit
            ),
        );
        return Err(error.retry_after((decision.resets_at - now).whole_seconds().max(1) as u64));
    }
    if decision.exceeded && decision.gate_action != GateAction::Block {
        tracing::info!(
            tenant_id = auth.tenant(),
            resource = %body.resource,
            metric = %body.metric,
            gate_action = decision.gate_action.as_str(),
            current = decision.current,
            limit = decision.limit,
            "resource limit passed"
        );
    }
    Ok(axum::Json(decision.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentage_is_rounded_to_hundredths() {
        assert_eq!(percentage(1, 3), 33.33);
        assert_eq!(percentage(10, 10), 100.0);
        assert_eq!(percentage(0, 0), 0.0);
        assert_eq!(percentage(1, 0), 100.0);
    }
}
