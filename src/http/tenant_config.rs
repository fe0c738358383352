//! `/tenant/config`: the tenant's gateway configuration (routes, credentials, rateLimit, cache,
//! webhooks). Every save is a `tenant.config_saved` event with a version; history and
//! rollback read those events. Invalid documents get 422 `invalid_config` naming each bad
//! field's JSON path.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::TenantCommand;
use utoipa::ToSchema;

use crate::audit::{fetch_page, AuditFilter};
use crate::auth::requires::{ManageTenantConfig, ReadTenantConfig};
use crate::auth::{Authorized, Principal};
use crate::commands::{execute, CommandMetadata};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, RequestContext};
use crate::state::AppState;

/// The current configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantConfig {
    /// Version (0: never saved).
    pub version: i64,
    /// The document.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
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

/// Every saved version, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigHistory {
    /// Versions.
    pub versions: Vec<ConfigVersion>,
}

/// Body of a rollback.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to restore (saved again as a new version).
    pub version: i64,
}

async fn current(state: &AppState, tenant: &str) -> ApiResult<TenantConfig> {
    let row: Option<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT config_version, config FROM tenants WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&state.pool)
            .await?;
    let (version, config) = row.ok_or_else(|| ApiError::not_found("tenant_not_found", "tenant not found"))?;
    Ok(TenantConfig { version, config })
}

async fn history(state: &AppState, tenant: &str) -> ApiResult<Vec<ConfigVersion>> {
    let filter = AuditFilter {
        aggregate_type: Some("tenant".into()),
        aggregate_id: Some(tenant.to_string()),
        event_type: Some("tenant.config_saved".into()),
        ..Default::default()
    };
    let items = fetch_page(&state.pool, &filter, 0, i64::MAX).await?;
    Ok(items
        .into_iter()
        .map(|i| ConfigVersion {
            version: i.payload["version"].as_i64().unwrap_or_default(),
            saved_at: i.time,
            actor: i.actor,
            request_id: i.request_id,
            config: i.payload["config"].clone(),
        })
        .collect())
}

async fn save(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    tenant: &str,
    config: serde_json::Value,
) -> ApiResult<TenantConfig> {
    let secrets: Vec<String> =
        sqlx::query_scalar("SELECT name FROM secrets WHERE tenant_id = $1 AND NOT deleted")
            .bind(tenant)
            .fetch_all(&state.pool)
            .await?;
    let command = TenantCommand::SaveConfig {
        config,
        secrets,
        allow_private_webhooks: state.limits.webhook_allow_private_targets,
        at: OffsetDateTime::now_utc(),
    };
    let meta = CommandMetadata::new(principal, ctx, Some(tenant));
    execute(&state.commands.tenants, tenant, command, meta).await?;
    state.readmodels.wait_for_head().await;
    current(state, tenant).await
}

/// The tenant's configuration.
#[utoipa::path(get, path = "/tenant/config", tag = "tenant-config",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TenantConfig),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_config(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
) -> ApiResult<axum::Json<TenantConfig>> {
    Ok(axum::Json(current(&state, auth.tenant()).await?))
}

/// Save a new version of the configuration.
#[utoipa::path(post, path = "/tenant/config", tag = "tenant-config",
    request_body(content = Object, description = "`{routes?, credentials?, rateLimit?, cache?, webhooks?}`"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TenantConfig),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`aggregate_conflict`, `tenant_deleted`"),
        (status = 422, body = ErrorBody, description = "`invalid_config`: the message lists each bad field as `$.path: problem`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn save_config(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    ctx: RequestContext,
    Json(config): Json<serde_json::Value>,
) -> ApiResult<axum::Json<TenantConfig>> {
    let tenant = auth.tenant().to_string();
    Ok(axum::Json(save(&state, &auth.principal, &ctx, &tenant, config).await?))
}

/// Every saved version with actor and time.
#[utoipa::path(get, path = "/tenant/config/history", tag = "tenant-config",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = ConfigHistory),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn config_history(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantConfig>,
) -> ApiResult<axum::Json<ConfigHistory>> {
    Ok(axum::Json(ConfigHistory { versions: history(&state, auth.tenant()).await? }))
}

/// Restore an earlier version, saved as a new version (validated again).
#[utoipa::path(post, path = "/tenant/config/rollback", tag = "tenant-config",
    request_body = RollbackRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TenantConfig),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`config_version_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_config` (e.g. a secret it names was deleted since)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn rollback_config(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantConfig>,
    ctx: RequestContext,
    Json(body): Json<RollbackRequest>,
) -> ApiResult<axum::Json<TenantConfig>> {
    let tenant = auth.tenant().to_string();
    let old =
        history(&state, &tenant).await?.into_iter().find(|v| v.version == body.version).ok_or_else(|| {
            ApiError::not_found("config_version_not_found", "no such configuration version")
        })?;
    Ok(axum::Json(save(&state, &auth.principal, &ctx, &tenant, old.config).await?))
}
