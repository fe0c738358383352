//! `/tenant/config`: the tenant's gateway configuration (routes, credentials, rateLimit, cache,
//! webhooks, providers). Every save is a `tenant.config_saved` event with a version; history and
//! rollback read those events. Invalid documents get 422 `invalid_config` naming each bad
//! field's JSON path.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::TenantCommand;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{fetch_page, AuditFilter};
use crate::auth::requires::{ManageTenantConfig, ReadTenantConfig};
use crate::auth::Principal;
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Query, RequestMeta};
use crate::http::AppState;
use crate::paging;

/// The current configuration (internal: the GET answer is the document itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantConfig {
    /// Version (0: never saved).
    pub version: i64,
    /// The document.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// The answer of a save or rollback, as the published tenant API gives it, plus the version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigSaved {
    /// Always true.
    pub success: bool,
    /// `Configuration saved`.
    #[schema(example = "Configuration saved")]
    pub message: &'static str,
    /// The version this request saved.
    pub version: i64,
}

impl From<TenantConfig> for ConfigSaved {
    fn from(c: TenantConfig) -> Self {
        Self { success: true, message: "Configuration saved", version: c.version }
    }
}

/// One saved version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigVersion {
    /// Version.
    pub version: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub saved_at: OffsetDateTime,
    /// Who: actor kind and id.
    pub actor: crate::audit::query::Actor,
    /// Request id of the save.
    pub request_id: Option<String>,
    /// The document.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// A page of saved versions, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigHistory {
    /// Versions.
    pub versions: Vec<ConfigVersion>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Paging of the configuration history, oldest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Versions per page, 1 to 50 (default 20): each holds a whole document.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Body of a rollback.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to restore (saved again as a new version).
    pub version: i64,
}

async fn current(state: &AppState, tenant: &str) -> ApiResult<TenantConfig> {
    let row = tokenhub_projections::read::tenants::config(&state.pool, tenant).await?;
    let (version, config) = row.ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    Ok(TenantConfig { version, config })
}

fn config_filter(tenant: &str) -> AuditFilter {
    AuditFilter {
        aggregate_type: Some("tenant".into()),
        aggregate_id: Some(tenant.to_string()),
        event_type: Some("tenant.config_saved".into()),
        ..Default::default()
    }
}

fn version_of(i: crate::audit::query::AuditItem) -> ConfigVersion {
    ConfigVersion {
        version: i.payload["version"].as_i64().unwrap_or_default(),
        saved_at: i.time,
        actor: i.actor,
        request_id: i.request_id,
        config: i.payload["config"].clone(),
    }
}

async fn history(state: &AppState, tenant: &str, query: HistoryQuery) -> ApiResult<ConfigHistory> {
    let limit = paging::page_size(query.limit, 20, 50)?;
    let after = paging::after(query.cursor.as_deref())?;
    let items = fetch_page(&state.pool, &config_filter(tenant), after, limit).await?;
    let next_cursor = paging::next_cursor(items.len(), limit, items.last().map(|i| i.position));
    Ok(ConfigHistory { versions: items.into_iter().map(version_of).collect(), next_cursor })
}

/// One saved version (by the events index of the tenant, not by reading all of them).
async fn saved_version(state: &AppState, tenant: &str, version: i64) -> ApiResult<Option<ConfigVersion>> {
    let position: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_type = 'tenant' AND aggregate_id = $1 \
         AND event_type = 'tenant.config_saved' AND (payload->>'version')::bigint = $2 LIMIT 1",
    )
    .bind(tenant)
    .bind(version)
    .fetch_optional(&state.pool)
    .await?;
    let Some(position) = position else { return Ok(None) };
    let items = fetch_page(&state.pool, &config_filter(tenant), position - 1, 1).await?;
    Ok(items.into_iter().next().map(version_of))
}

/// Refuses a document over `TENANT_MAX_CONFIG_BYTES` (422 `config_too_large`) and a save over
/// `TENANT_MAX_CONFIG_VERSIONS_PER_DAY` for the tenant this UTC day (429
/// `config_version_limit_reached`, `Retry-After` to midnight): the log is shared and
/// append-only, so one tenant may not fill it.
async fn check_caps(state: &AppState, tenant: &str, config: &serde_json::Value) -> ApiResult<()> {
    let size = serde_json::to_vec(config).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > state.limits.max_config_bytes {
        return Err(ApiError::new(
            Code::ConfigTooLarge,
            format!(
                "the configuration is {size} bytes; at most {} (TENANT_MAX_CONFIG_BYTES)",
                state.limits.max_config_bytes
            ),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let midnight = now.replace_time(time::Time::MIDNIGHT);
    // recorded_at grows with position, so today's events start at one position.
    let saved_today: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE tenant_id = $1 AND event_type = 'tenant.config_saved' \
         AND position >= coalesce((SELECT min(position) FROM events WHERE recorded_at >= $2), 9223372036854775807)",
    )
    .bind(tenant)
    .bind(midnight)
    .fetch_one(&state.pool)
    .await?;
    if saved_today >= state.limits.max_config_versions_per_day {
        let e = ApiError::new(
            Code::ConfigVersionLimitReached,
            format!(
                "{saved_today} configuration versions saved today; at most {} per UTC day (TENANT_MAX_CONFIG_VERSIONS_PER_DAY)",
                state.limits.max_config_versions_per_day
            ),
        );
        return Err(e.retry_after(((midnight + time::Duration::DAY) - now).whole_seconds().max(1) as u64));
    }
    Ok(())
}

async fn save(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestMeta,
    tenant: &str,
    config: serde_json::Value,
) -> ApiResult<TenantConfig> {
    check_caps(state, tenant, &config).await?;
    // Host names are resolved now too (and again at every attempt).
    let refused =
        crate::webhooks::target::check_config(&config, state.limits.webhook_allow_private_targets).await;
    if !refused.is_empty() {
        let text: Vec<String> =
            refused.iter().map(|(i, why)| format!("$.webhooks[{i}].url: {why}")).collect();
        return Err(ApiError::new(Code::InvalidConfig, text.join("; ")));
    }
    let secrets = tokenhub_projections::read::secrets::names(&state.pool, tenant).await?;
    let command = || TenantCommand::SaveConfig {
        config: config.clone(),
        secrets: secrets.clone(),
        // One flag for the aggregate's address rule: webhooks are checked again above (and at
        // delivery) under their own setting; providers are checked again by the gateway.
        allow_private_webhooks: state.limits.webhook_allow_private_targets
            || state.limits.gateway_allow_private_upstreams,
        at: OffsetDateTime::now_utc(),
    };
    // A save replaces the whole document: concurrent saves each become a version.
    crate::services::tenants::set(state, principal, ctx, tenant, command).await?;
    // The version this request saved (a concurrent save may already be newer).
    let version: Option<i64> = sqlx::query_scalar(
        "SELECT (payload->>'version')::bigint FROM events WHERE aggregate_type = 'tenant' AND aggregate_id = $1 \
         AND event_type = 'tenant.config_saved' AND metadata->>'request_id' = $2 ORDER BY position DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(&ctx.request_id)
    .fetch_optional(&state.pool)
    .await?
    .flatten();
    match version {
        Some(version) if !ctx.request_id.is_empty() => Ok(TenantConfig { version, config }),
        _ => current(state, tenant).await,
    }
}

/// The tenant's configuration document itself (`{}` before the first save); its version is
/// the `ETag` (`"<version>"`) and the `X-Config-Version` header.
#[utoipa::path(get, path = "/tenant/config", tag = "tenant-config",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Object, description = "The document",
            headers(("ETag" = String, description = "`\"<version>\"`"), ("X-Config-Version" = i64, description = "The version (0: never saved)"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_config(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let TenantConfig { version, config } = current(&state, auth.tenant()).await?;
    let headers = [
        (axum::http::header::ETAG, format!("\"{version}\"")),
        (axum::http::HeaderName::from_static("x-config-version"), version.to_string()),
    ];
    Ok((headers, axum::Json(config)))
}

/// Save a new version of the configuration.
#[utoipa::path(post, path = "/tenant/config", tag = "tenant-config",
    request_body(content = Object, description = "`{routes?, credentials?, rateLimit?, cache?, webhooks?, providers?}`; route methods in any case (stored upper-case)"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = ConfigSaved),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`aggregate_conflict`, `tenant_deleted`"),
        (status = 422, body = ErrorBody, description = "`invalid_config`: the message lists each bad field as `$.path: problem`; `config_too_large`"),
        (status = 429, body = ErrorBody, description = "`config_version_limit_reached`: the tenant's saves this UTC day"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn save_config(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    ctx: RequestMeta,
    Json(config): Json<serde_json::Value>,
) -> ApiResult<axum::Json<ConfigSaved>> {
    let tenant = auth.tenant().to_string();
    Ok(axum::Json(save(&state, &auth.principal, &ctx, &tenant, config).await?.into()))
}

/// Every saved version with actor and time.
#[utoipa::path(get, path = "/tenant/config/history", tag = "tenant-config",
    params(HistoryQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = ConfigHistory),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn config_history(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<axum::Json<ConfigHistory>> {
    Ok(axum::Json(history(&state, auth.tenant(), query).await?))
}

/// Restore an earlier version, saved as a new version (validated again).
#[utoipa::path(post, path = "/tenant/config/rollback", tag = "tenant-config",
    request_body = RollbackRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = ConfigSaved),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`config_version_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_config` (e.g. a secret it names was deleted since)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn rollback_config(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    ctx: RequestMeta,
    Json(body): Json<RollbackRequest>,
) -> ApiResult<axum::Json<ConfigSaved>> {
    let tenant = auth.tenant().to_string();
    let old = saved_version(&state, &tenant, body.version)
        .await?
        .ok_or_else(|| ApiError::new(Code::ConfigVersionNotFound, "no such configuration version"))?;
    Ok(axum::Json(save(&state, &auth.principal, &ctx, &tenant, old.config).await?.into()))
}
