//! `/tenant/...` routes for tenant principals (a tenant key, or the super admin with
//! `X-Tenant-ID`).

use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::requires::ReadTenant;
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::views::{PlanDto, TenantView};
use crate::http::AppState;

/// The caller's tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantInfo {
    /// Tenant id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Plan.
    #[schema(value_type = PlanDto)]
    pub plan: String,
    /// Region.
    pub region: String,
    /// `active` (suspended and deleted tenants get 403).
    pub status: String,
    /// Creation time.
    #[serde(rename = "createdAt", with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Effective limits.
    #[schema(value_type = InfoLimits)]
    pub limits: serde_json::Value,
}

/// The effective limits in `/tenant/info`: ours, and the published tenant API's names.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, reason = "the schema of the JSON answer; the answer is built as JSON")]
pub struct InfoLimits {
    /// Most API keys (absent: unlimited).
    pub max_api_keys: Option<u32>,
    /// Most sub-accounts (absent: unlimited).
    pub max_sub_accounts: Option<u32>,
    /// LLM tokens per calendar month (absent: unlimited).
    pub monthly_token_quota: Option<u64>,
    /// Control-API requests per minute.
    pub requests_per_minute: Option<u32>,
    /// = `monthly_token_quota` (null: unlimited).
    #[serde(rename = "llmTokens")]
    pub llm_tokens: Option<u64>,
    /// = `requests_per_minute`.
    #[serde(rename = "apiCalls")]
    pub api_calls: Option<u32>,
    /// Always null: the control plane does not limit storage.
    pub storage: Option<u64>,
}

/// The caller's tenant.
#[utoipa::path(get, path = "/tenant/info", tag = "tenant",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TenantInfo),
        (status = 400, body = ErrorBody, description = "Master key without `X-Tenant-ID` (`tenant_id_required`)"),
        (status = 401, body = ErrorBody, description = "`missing_credentials`, `invalid_api_key`"),
        (status = 403, body = ErrorBody, description = "`tenant_suspended`, `tenant_mismatch`"),
        (status = 404, body = ErrorBody, description = "`tenant_not_found` (master key naming an unknown tenant)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_info(
    State(state): State<AppState>,
    auth: Authorized<ReadTenant>,
) -> ApiResult<axum::Json<TenantInfo>> {
    let view = TenantView::load(&state.pool, auth.tenant())
        .await?
        .ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    // The published tenant API's names beside ours: `llmTokens` (the monthly LLM-token quota),
    // `apiCalls` (requests per minute), `storage` (not limited by the control plane: null).
    // `requests_per_minute` and `apiCalls` are what the control API enforces (the numbers the
    // `RateLimit-*` headers count), not the plan's nominal figure.
    let mut limits = view.limits;
    if let Some(map) = limits.as_object_mut() {
        let tokens = map.get("monthly_token_quota").cloned().unwrap_or(serde_json::Value::Null);
        let calls = state.rate_limiter.per_minute(auth.tenant()).map_or(serde_json::Value::Null, Into::into);
        map.insert("requests_per_minute".into(), calls.clone());
        map.insert("llmTokens".into(), tokens);
        map.insert("apiCalls".into(), calls);
        map.insert("storage".into(), serde_json::Value::Null);
    }
    Ok(axum::Json(TenantInfo {
        id: view.tenant_id,
        name: view.name,
        plan: view.plan,
        region: view.region,
        status: view.status,
        created_at: view.created_at,
        limits,
    }))
}
