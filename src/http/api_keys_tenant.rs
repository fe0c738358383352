//! `/tenant/api-keys`: a tenant admin manages its own tenant's keys. Another tenant's key is
//! 404, exactly like a key that does not exist.

use axum::extract::State;
use axum::http::StatusCode;
use tokenhub_aggregates::api_key::KeyOwner;

use crate::auth::requires::{ManageTenantKeys, ReadTenantKeys};
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, OptionalJson, Path, Query, RequestMeta};
use crate::http::keys::{
    self, IssueKeyRequest, IssuedKey, KeyAction, KeyPage, KeyView, ListKeysQuery, RotateKeyRequest,
    RotatedKey, Scope, UpdateKeyRequest,
};
use crate::http::AppState;

/// Issue a key in the caller's tenant.
#[utoipa::path(post, path = "/tenant/api-keys", tag = "tenant-api-keys",
    request_body = IssueKeyRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = IssuedKey, description = "Issued; `api_key` is shown only here"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`forbidden` (not a tenant admin or `keys:manage` sub-account key, or a sub-account key asking for another sub-account or role), `permissions_exceed_issuer`, `tenant_suspended`"),
        (status = 409, body = ErrorBody, description = "`api_key_limit_reached`"),
        (status = 422, body = ErrorBody, description = "Validation codes, as for the admin route"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_issue_key(
    State(state): State<AppState>,
    caller: Authorized<ManageTenantKeys>,
    ctx: RequestMeta,
    Json(body): Json<IssueKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<IssuedKey>)> {
    if body.tenant_id.as_ref().is_some_and(|t| t != caller.tenant()) {
        return Err(ApiError::new(Code::InvalidRequest, "tenant_id is taken from the caller; omit it"));
    }
    // What a sub-account manager may issue is decided by the ApiKey aggregate (its issuer
    // rule); a manager naming no sub-account issues under its own.
    let owner = KeyOwner::Tenant {
        tenant_id: caller.tenant().to_string(),
        sub_account_id: body.sub_account_id.clone(),
    };
    let role = body.role.unwrap_or_default().into();
    let issued = keys::issue_key(&state, &caller.principal, &ctx, owner, role, body).await?;
    Ok((StatusCode::CREATED, axum::Json(issued)))
}

/// List the caller's tenant's keys.
#[utoipa::path(get, path = "/tenant/api-keys", tag = "tenant-api-keys",
    params(ListKeysQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = KeyPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_list_keys(
    State(state): State<AppState>,
    caller: Authorized<ReadTenantKeys>,
    Query(query): Query<ListKeysQuery>,
) -> ApiResult<axum::Json<KeyPage>> {
    Ok(axum::Json(
        keys::list_keys(&state.pool, Scope::of_caller(&caller.principal, caller.tenant()), query).await?,
    ))
}

/// Get one of the caller's keys.
#[utoipa::path(get, path = "/tenant/api-keys/{public_id}", tag = "tenant-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = KeyView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found` (also for another tenant's key)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_get_key(
    State(state): State<AppState>,
    caller: Authorized<ReadTenantKeys>,
    Path(public_id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    Ok(axum::Json(
        keys::load_key(&state.pool, &public_id, Scope::of_caller(&caller.principal, caller.tenant())).await?,
    ))
}

async fn run(
    state: &AppState,
    caller: &Authorized<ManageTenantKeys>,
    ctx: &RequestMeta,
    public_id: &str,
    action: KeyAction,
) -> ApiResult<axum::Json<KeyView>> {
    let scope = Scope::of_caller(&caller.principal, caller.tenant());
    Ok(axum::Json(keys::act_on_key(state, &caller.principal, ctx, public_id, scope, action).await?))
}

/// Update one of the caller's keys.
#[utoipa::path(patch, path = "/tenant/api-keys/{public_id}", tag = "tenant-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    request_body = UpdateKeyRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = KeyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_revoked`"),
        (status = 422, body = ErrorBody, description = "`empty_update` and validation codes"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_update_key(
    State(state): State<AppState>,
    caller: Authorized<ManageTenantKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
    Json(body): Json<UpdateKeyRequest>,
) -> ApiResult<axum::Json<KeyView>> {
    run(&state, &caller, &ctx, &public_id, KeyAction::Update(body.into())).await
}

/// Revoke one of the caller's keys.
#[utoipa::path(delete, path = "/tenant/api-keys/{public_id}", tag = "tenant-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = KeyView, description = "The key, now `revoked`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_revoked`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_revoke_key(
    State(state): State<AppState>,
    caller: Authorized<ManageTenantKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    run(&state, &caller, &ctx, &public_id, KeyAction::Revoke).await
}

/// Disable one of the caller's keys (verification answers `DISABLED`).
#[utoipa::path(post, path = "/tenant/api-keys/{public_id}/disable", tag = "tenant-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = KeyView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_already_disabled`, `api_key_revoked`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_disable_key(
    State(state): State<AppState>,
    caller: Authorized<ManageTenantKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    run(&state, &caller, &ctx, &public_id, KeyAction::Disable).await
}

/// Enable a disabled key.
#[utoipa::path(post, path = "/tenant/api-keys/{public_id}/enable", tag = "tenant-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = KeyView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_not_disabled`, `api_key_revoked`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_enable_key(
    State(state): State<AppState>,
    caller: Authorized<ManageTenantKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    run(&state, &caller, &ctx, &public_id, KeyAction::Enable).await
}

/// Rotate a key: a new secret under the same public id; the old one works until the grace
/// period ends (default: stops at once).
#[utoipa::path(post, path = "/tenant/api-keys/{public_id}/rotate", tag = "tenant-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    request_body(content = Option<RotateKeyRequest>, description = "Optional grace period"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = RotatedKey, description = "The new key, shown only here"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_revoked`"),
        (status = 422, body = ErrorBody, description = "`invalid_grace_period`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_rotate_key(
    State(state): State<AppState>,
    caller: Authorized<ManageTenantKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
    OptionalJson(body): OptionalJson<RotateKeyRequest>,
) -> ApiResult<axum::Json<RotatedKey>> {
    let scope = Scope::of_caller(&caller.principal, caller.tenant());
    let rotated =
        keys::rotate_key(&state, &caller.principal, &ctx, &public_id, scope, body.unwrap_or_default())
            .await?;
    Ok(axum::Json(rotated))
}
