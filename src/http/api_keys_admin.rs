//! `/admin/api-keys`: the super admin manages tenant keys of any tenant.

use axum::extract::State;
use axum::http::StatusCode;
use tokenhub_aggregates::api_key::KeyOwner;

use crate::audit::as_of::{self, AsOf};
use crate::audit::{fetch_page, AuditFilter};
use crate::auth::requires::ManageApiKeys;
use crate::error::Code;
use crate::http::audit::AuditPage;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::keys::{
    self, IssueKeyRequest, IssuedKey, KeyPage, KeyView, ListKeysQuery, Scope, UpdateKeyRequest,
};
use crate::http::paging::PageQuery;
use crate::http::AppState;
use crate::paging;

/// Issue a key for a tenant.
#[utoipa::path(post, path = "/admin/api-keys", tag = "admin-api-keys",
    request_body = IssueKeyRequest,
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 201, body = IssuedKey, description = "Issued; `api_key` is shown only here"),
        (status = 400, body = ErrorBody, description = "`invalid_json`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_deleted`, `api_key_limit_reached`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_cidr`, `expiry_in_past`, `invalid_quota`, `reserved_tag_key`, `invalid_tag`, `invalid_list_item`, `too_many_entries`, `invalid_rate_limit`, `invalid_key_name`, `unknown_sub_account`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_issue_key(
    State(state): State<AppState>,
    auth: Authorized<ManageApiKeys>,
    ctx: RequestMeta,
    Json(body): Json<IssueKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<IssuedKey>)> {
    let Some(tenant_id) = body.tenant_id.clone() else {
        return Err(ApiError::new(Code::InvalidRequest, "tenant_id is required"));
    };
    let owner = KeyOwner::Tenant { tenant_id, sub_account_id: body.sub_account_id.clone() };
    let role = body.role.unwrap_or_default().into();
    let issued = keys::issue_key(&state, &auth.principal, &ctx, owner, role, body).await?;
    Ok((StatusCode::CREATED, axum::Json(issued)))
}

/// List tenant and platform keys (filters: tenant, status, tag).
#[utoipa::path(get, path = "/admin/api-keys", tag = "admin-api-keys",
    params(ListKeysQuery),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_list_keys(
    State(state): State<AppState>,
    _auth: Authorized<ManageApiKeys>,
    Query(query): Query<ListKeysQuery>,
) -> ApiResult<axum::Json<KeyPage>> {
    Ok(axum::Json(keys::list_keys(&state.pool, Scope::All, query).await?))
}

/// Get one key, now or (`as_of`) as it was at a past moment.
#[utoipa::path(get, path = "/admin/api-keys/{public_id}", tag = "admin-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key"), AsOf),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_get_key(
    State(state): State<AppState>,
    _auth: Authorized<ManageApiKeys>,
    Path(public_id): Path<String>,
    Query(query): Query<AsOf>,
) -> ApiResult<axum::Json<KeyView>> {
    let Some(at) = query.as_of else {
        return Ok(axum::Json(keys::load_key(&state.pool, &public_id, Scope::All).await?));
    };
    Ok(axum::Json(key_as_of(&state, &public_id, at).await?))
}

/// A key as it was at `at`, rebuilt from the log; 404 `api_key_not_found` before it existed.
pub async fn key_as_of(state: &AppState, public_id: &str, at: time::OffsetDateTime) -> ApiResult<KeyView> {
    let events = as_of::events_until(&state.pool, "api_key", public_id, at).await?;
    let record =
        as_of::fold_key(&events).ok_or_else(|| ApiError::new(Code::ApiKeyNotFound, "api key not found"))?;
    Ok(KeyView::from_record(record, None))
}

/// Every change of a key, oldest first, with who made it and when (hashes left out).
#[utoipa::path(get, path = "/admin/api-keys/{public_id}/history", tag = "admin-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key"), PageQuery),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_key_history(
    State(state): State<AppState>,
    _auth: Authorized<ManageApiKeys>,
    Path(public_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    keys::load_key(&state.pool, &public_id, Scope::All).await?;
    let filter = AuditFilter {
        aggregate_type: Some("api_key".into()),
        aggregate_id: Some(public_id),
        ..Default::default()
    };
    let limit = paging::page_size(query.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let data = fetch_page(&state.pool, &filter, paging::after(query.cursor.as_deref())?, limit).await?;
    let next_cursor = paging::next_cursor(data.len(), limit, data.last().map(|i| i.position));
    Ok(axum::Json(AuditPage {
        data,
        next_cursor: next_cursor.and_then(|c| c.parse().ok()),
        names: Default::default(),
    }))
}

/// Update a key's settings.
#[utoipa::path(patch, path = "/admin/api-keys/{public_id}", tag = "admin-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    request_body = UpdateKeyRequest,
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_revoked`, `aggregate_conflict`"),
        (status = 422, body = ErrorBody, description = "`empty_update` and the validation codes of issue"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_update_key(
    State(state): State<AppState>,
    auth: Authorized<ManageApiKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
    Json(body): Json<UpdateKeyRequest>,
) -> ApiResult<axum::Json<KeyView>> {
    Ok(axum::Json(
        keys::act_on_key(
            &state,
            &auth.principal,
            &ctx,
            &public_id,
            Scope::All,
            keys::KeyAction::Update(body.into()),
        )
        .await?,
    ))
}

/// Revoke a key (terminal).
#[utoipa::path(delete, path = "/admin/api-keys/{public_id}", tag = "admin-api-keys",
    params(("public_id" = String, Path, description = "Public id of the key")),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyView, description = "The key, now `revoked`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`api_key_not_found`"),
        (status = 409, body = ErrorBody, description = "`api_key_revoked`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_revoke_key(
    State(state): State<AppState>,
    auth: Authorized<ManageApiKeys>,
    ctx: RequestMeta,
    Path(public_id): Path<String>,
) -> ApiResult<axum::Json<KeyView>> {
    let command = keys::KeyAction::Revoke;
    Ok(axum::Json(keys::act_on_key(&state, &auth.principal, &ctx, &public_id, Scope::All, command).await?))
}
