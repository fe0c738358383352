//! `/admin/platform-keys`: keys of the platform operator's own services (gateways, finance,
//! audit), issued by the super admin.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokenhub_aggregates::api_key::{KeyOwner, KeyRole};
use utoipa::ToSchema;

use crate::auth::requires::ManagePlatformKeys;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::keys::{self, IssueKeyRequest, IssuedKey, KeyPage, KeyView, ListKeysQuery, Scope};
use crate::http::AppState;

/// Role of a platform key.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformRoleDto {
    /// Verifies keys and reports usage.
    Gateway,
    /// Reads usage and billing of all tenants.
    FinanceAdmin,
    /// Reads the audit log.
    Auditor,
}

/// Body of `POST /admin/platform-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuePlatformKeyRequest {
    /// Display name.
    #[schema(example = "edge gateway eu-west-1")]
    pub name: String,
    /// Role.
    pub role: PlatformRoleDto,
    /// Allowed client networks; empty = any.
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// The tenants this key may act for (verify their keys, report their usage, act with
    /// `X-Tenant-ID`); absent or empty = every tenant. Another tenant gets 403
    /// `tenant_not_allowed`.
    #[serde(default)]
    pub tenant_ids: Option<Vec<String>>,
}

/// Issue a platform key.
#[utoipa::path(post, path = "/admin/platform-keys", tag = "admin-platform-keys",
    request_body = IssuePlatformKeyRequest,
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 201, body = IssuedKey, description = "Issued; `api_key` is shown only here"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_key_name`, `invalid_cidr`, `invalid_list_item` (a `tenant_ids` entry that is not a tenant id)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn issue_platform_key(
    State(state): State<AppState>,
    auth: Authorized<ManagePlatformKeys>,
    ctx: RequestMeta,
    Json(body): Json<IssuePlatformKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<IssuedKey>)> {
    let role = match body.role {
        PlatformRoleDto::Gateway => KeyRole::Gateway,
        PlatformRoleDto::FinanceAdmin => KeyRole::FinanceAdmin,
        PlatformRoleDto::Auditor => KeyRole::Auditor,
    };
    let request = IssueKeyRequest {
        tenant_id: None,
        name: body.name,
        role: None,
        sub_account_id: None,
        tags: None,
        expiration: None,
        quota_limit: None,
        quota_period: None,
        allowed_ips: body.allowed_ips,
        allowed_models: None,
        permissions: None,
        rate_limit: None,
        tenant_ids: body.tenant_ids,
        id: None,
        status: None,
    };
    let issued = keys::issue_key(&state, &auth.principal, &ctx, KeyOwner::Platform, role, request).await?;
    Ok((StatusCode::CREATED, axum::Json(issued)))
}

/// List platform keys.
#[utoipa::path(get, path = "/admin/platform-keys", tag = "admin-platform-keys",
    params(ListKeysQuery),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_platform_keys(
    State(state): State<AppState>,
    _auth: Authorized<ManagePlatformKeys>,
    Query(query): Query<ListKeysQuery>,
) -> ApiResult<axum::Json<KeyPage>> {
    Ok(axum::Json(keys::list_keys(&state.pool, Scope::Platform, query).await?))
}

/// Revoke a platform key.
#[utoipa::path(delete, path = "/admin/platform-keys/{public_id}", tag = "admin-platform-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyView, description = "The key, now `revoked`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_revoked`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn revoke_platform_key(
    State(state): State<AppState>,
    auth: Authorized<ManagePlatformKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    let command = keys::KeyAction::Revoke;
    Ok(axum::Json(
        keys::act_on_key(&state, &auth.principal, &ctx, &public_id, Scope::Platform, command).await?,
    ))
}
