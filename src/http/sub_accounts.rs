//! `/tenant/sub-accounts`: a tenant admin manages its sub-accounts. Disabling one makes all
//! its keys answer `SUB_ACCOUNT_DISABLED` without touching the keys; shrinking its
//! permissions shrinks its keys' effective permissions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::serde_util::double_option;
use tokenhub_aggregates::sub_account::SubAccountEvent;
use tokenhub_aggregates::sub_account::{is_sub_account_id, SubAccountChanges};
use utoipa::{IntoParams, ToSchema};

use tokenhub_projections::read::sub_accounts as read;

use crate::audit::as_of::{self, AsOf};
use crate::auth::requires::{ManageSubAccounts, ReadSubAccounts};
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::idempotency::{plan_answer, planned_response};
use crate::http::views::QuotaPeriodDto;
use crate::http::AppState;
use crate::paging;
use crate::services::sub_accounts::{self as service, NewSubAccount, SubAccountAction};

/// Body of `POST /tenant/sub-accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubAccountRequest {
    /// Name, e.g. a department, environment, project or customer.
    #[schema(example = "marketing")]
    pub name: String,
    /// Role name (must exist); the tenant's default role when omitted.
    #[serde(default)]
    pub role: Option<String>,
    /// LLM-token quota (prompt + completion) of all its keys together; at most the tenant's
    /// monthly token quota.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1e15)]
    pub quota_limit: Option<i64>,
    /// `day` or `month` (UTC calendar windows); absent = lifetime.
    #[serde(default)]
    pub quota_period: Option<QuotaPeriodDto>,
    /// Permissions, e.g. `["chat", "embeddings"]`; its keys may only hold a subset.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Accepted for the published sub-account object; the server assigns the id (`sub_…`),
    /// so this value is not used.
    #[serde(default)]
    pub id: Option<String>,
}

/// Body of `PATCH /tenant/sub-accounts/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubAccountRequest {
    /// New name, 1 to 128 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// New role.
    #[serde(default)]
    pub role: Option<String>,
    /// New quota, or `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, nullable, minimum = 0, maximum = 1e15)]
    pub quota_limit: Option<Option<i64>>,
    /// New quota period, or `null` for a lifetime quota.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<QuotaPeriodDto>, nullable)]
    pub quota_period: Option<Option<QuotaPeriodDto>>,
    /// New permissions.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// A sub-account.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubAccountView {
    /// Id, `sub_…`.
    pub sub_account_id: String,
    /// The same id, under the published object's name.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// `active`, `disabled` or `deleted`.
    pub status: String,
    /// Quota.
    pub quota_limit: Option<i64>,
    /// The quota's window (`day` or `month`); absent = lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<QuotaPeriodDto>)]
    pub quota_period: Option<String>,
    /// Permissions.
    #[schema(value_type = Vec<String>)]
    pub permissions: sqlx::types::Json<Vec<String>>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Query of the listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListSubAccountsQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of sub-accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubAccountPage {
    /// Sub-accounts, oldest first.
    pub data: Vec<SubAccountView>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::new(Code::SubAccountNotFound, "sub-account not found")
}

async fn load(pool: &PgPool, tenant_id: &str, id: &str) -> ApiResult<SubAccountView> {
    if !is_sub_account_id(id) {
        return Err(not_found());
    }
    read::get(pool, tenant_id, id).await?.map(SubAccountView::from).ok_or_else(not_found)
}

impl From<read::SubAccountRow> for SubAccountView {
    fn from(r: read::SubAccountRow) -> Self {
        Self {
            id: r.sub_account_id.clone(),
            sub_account_id: r.sub_account_id,
            tenant_id: r.tenant_id,
            name: r.name,
            role: r.role,
            status: r.status,
            quota_limit: r.quota_limit,
            quota_period: r.quota_period,
            permissions: r.permissions,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Create a sub-account.
#[utoipa::path(post, path = "/tenant/sub-accounts", tag = "tenant-sub-accounts",
    request_body = CreateSubAccountRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = SubAccountView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`sub_account_limit_reached`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_sub_account_name`, `invalid_role`, `unknown_role`, `invalid_quota`, `quota_exceeds_tenant`, `invalid_list_item`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn create_sub_account(
    State(state): State<AppState>,
    auth: Authorized<ManageSubAccounts>,
    ctx: RequestMeta,
    Json(body): Json<CreateSubAccountRequest>,
) -> ApiResult<Response> {
    let tenant_id = auth.tenant().to_string();
    let new = NewSubAccount {
        name: body.name,
        role: body.role,
        quota_limit: body.quota_limit,
        quota_period: body.quota_period.map(Into::into),
        permissions: body.permissions.unwrap_or_default(),
    };
    // The answer is what the sub-account's event says, kept with an idempotency claim before
    // the command is stored (a retry after a crash at any moment gets exactly it).
    let mut planned = None;
    service::create(&state, &auth.principal, &ctx, &tenant_id, new, async |created| {
        planned = Some(plan_answer(&state, StatusCode::CREATED, &SubAccountView::created(created)?).await?);
        Ok(())
    })
    .await?;
    let planned = planned.ok_or_else(|| ApiError::internal(&"no answer planned"))?;
    Ok(planned_response(StatusCode::CREATED, planned))
}

impl SubAccountView {
    /// The view of a sub-account its `Created` event describes, as the projection stores it.
    fn created(event: &SubAccountEvent) -> ApiResult<Self> {
        let SubAccountEvent::Created {
            sub_account_id,
            tenant_id,
            name,
            role,
            quota_limit,
            quota_period,
            permissions,
            created_at,
        } = event
        else {
            return Err(ApiError::internal(&"a created event"));
        };
        Ok(Self {
            sub_account_id: sub_account_id.clone(),
            id: sub_account_id.clone(),
            tenant_id: tenant_id.clone(),
            name: name.clone(),
            role: role.clone(),
            status: "active".to_string(),
            quota_limit: *quota_limit,
            quota_period: quota_period.map(|p| p.as_str().to_string()),
            permissions: sqlx::types::Json(permissions.clone()),
            created_at: *created_at,
            updated_at: *created_at,
        })
    }
}

/// List sub-accounts.
#[utoipa::path(get, path = "/tenant/sub-accounts", tag = "tenant-sub-accounts",
    params(ListSubAccountsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubAccountPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_sub_accounts(
    State(state): State<AppState>,
    auth: Authorized<ReadSubAccounts>,
    Query(query): Query<ListSubAccountsQuery>,
) -> ApiResult<axum::Json<SubAccountPage>> {
    let limit = paging::page_size(query.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let after = paging::after(query.cursor.as_deref())?;
    let rows = read::page(&state.pool, auth.tenant(), after, query.status.as_deref(), limit).await?;
    let next_cursor = paging::next_cursor(rows.len(), limit, rows.last().map(|r| r.created_position));
    Ok(axum::Json(SubAccountPage { data: rows.into_iter().map(SubAccountView::from).collect(), next_cursor }))
}

/// Get a sub-account, now or (`as_of`) as it was at a past moment.
#[utoipa::path(get, path = "/tenant/sub-accounts/{id}", tag = "tenant-sub-accounts",
    params(("id" = String, Path, description = "Sub-account id"), AsOf),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubAccountView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`sub_account_not_found` (also another tenant's, or not yet created at `as_of`)"),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_sub_account(
    State(state): State<AppState>,
    auth: Authorized<ReadSubAccounts>,
    Path(id): Path<String>,
    Query(query): Query<AsOf>,
) -> ApiResult<axum::Json<SubAccountView>> {
    let current = load(&state.pool, auth.tenant(), &id).await?;
    let Some(at) = query.as_of else { return Ok(axum::Json(current)) };
    let events = as_of::events_until(&state.pool, "sub_account", &id, at).await?;
    Ok(axum::Json(fold_view(&events).ok_or_else(not_found)?))
}

/// The view folded from a sub-account's events.
fn fold_view(events: &[tokenhub_projections::StoredEvent]) -> Option<SubAccountView> {
    let mut view: Option<SubAccountView> = None;
    for event in events {
        let decoded: SubAccountEvent = event.decode().ok()?;
        match (decoded, view.as_mut()) {
            (
                SubAccountEvent::Created {
                    sub_account_id,
                    tenant_id,
                    name,
                    role,
                    quota_limit,
                    quota_period,
                    permissions,
                    created_at,
                },
                _,
            ) => {
                view = Some(SubAccountView {
                    id: sub_account_id.clone(),
                    sub_account_id,
                    tenant_id,
                    name,
                    role,
                    status: "active".into(),
                    quota_limit,
                    quota_period: quota_period.map(|p| p.as_str().to_string()),
                    permissions: sqlx::types::Json(permissions),
                    created_at,
                    updated_at: created_at,
                });
            }
            (SubAccountEvent::Updated { changes, updated_at }, Some(v)) => {
                if let Some(name) = changes.name {
                    v.name = name;
                }
                if let Some(role) = changes.role {
                    v.role = role;
                }
                if let Some(quota) = changes.quota_limit {
                    v.quota_limit = quota;
                }
                if let Some(period) = changes.quota_period {
                    v.quota_period = period.map(|p| p.as_str().to_string());
                }
                if let Some(permissions) = changes.permissions {
                    v.permissions = sqlx::types::Json(permissions);
                }
                v.updated_at = updated_at;
            }
            (SubAccountEvent::Disabled { disabled_at: at }, Some(v)) => {
                (v.status, v.updated_at) = ("disabled".into(), at)
            }
            (SubAccountEvent::Enabled { enabled_at: at }, Some(v)) => {
                (v.status, v.updated_at) = ("active".into(), at)
            }
            (SubAccountEvent::Deleted { deleted_at: at }, Some(v)) => {
                (v.status, v.updated_at) = ("deleted".into(), at)
            }
            _ => {}
        }
    }
    view
}

async fn run(
    state: &AppState,
    auth: &Authorized<ManageSubAccounts>,
    ctx: &RequestMeta,
    id: &str,
    action: SubAccountAction,
) -> ApiResult<axum::Json<SubAccountView>> {
    load(&state.pool, auth.tenant(), id).await?;
    service::act(state, &auth.principal, ctx, auth.tenant(), id, action).await?;
    Ok(axum::Json(load(&state.pool, auth.tenant(), id).await?))
}

/// Update a sub-account.
#[utoipa::path(patch, path = "/tenant/sub-accounts/{id}", tag = "tenant-sub-accounts",
    params(("id" = String, Path, description = "Sub-account id")),
    request_body = UpdateSubAccountRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubAccountView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`sub_account_not_found`"),
        (status = 409, body = ErrorBody, description = "`sub_account_deleted`"),
        (status = 422, body = ErrorBody, description = "`empty_update`, `quota_exceeds_tenant` and the validation codes of create"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn update_sub_account(
    State(state): State<AppState>,
    auth: Authorized<ManageSubAccounts>,
    ctx: RequestMeta,
    Path(id): Path<String>,
    Json(body): Json<UpdateSubAccountRequest>,
) -> ApiResult<axum::Json<SubAccountView>> {
    let changes = SubAccountChanges {
        name: body.name,
        role: body.role,
        quota_limit: body.quota_limit,
        quota_period: body.quota_period.map(|p| p.map(Into::into)),
        permissions: body.permissions,
    };
    run(&state, &auth, &ctx, &id, SubAccountAction::Update(changes)).await
}

/// Disable a sub-account: its keys answer `SUB_ACCOUNT_DISABLED`.
#[utoipa::path(post, path = "/tenant/sub-accounts/{id}/disable", tag = "tenant-sub-accounts",
    params(("id" = String, Path, description = "Sub-account id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubAccountView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`sub_account_not_found`"),
        (status = 409, body = ErrorBody, description = "`sub_account_already_disabled`, `sub_account_deleted`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn disable_sub_account(
    State(state): State<AppState>,
    auth: Authorized<ManageSubAccounts>,
    ctx: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SubAccountView>> {
    run(&state, &auth, &ctx, &id, SubAccountAction::Disable).await
}

/// Enable a disabled sub-account.
#[utoipa::path(post, path = "/tenant/sub-accounts/{id}/enable", tag = "tenant-sub-accounts",
    params(("id" = String, Path, description = "Sub-account id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubAccountView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`sub_account_not_found`"),
        (status = 409, body = ErrorBody, description = "`sub_account_not_disabled`, `sub_account_deleted`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn enable_sub_account(
    State(state): State<AppState>,
    auth: Authorized<ManageSubAccounts>,
    ctx: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SubAccountView>> {
    run(&state, &auth, &ctx, &id, SubAccountAction::Enable).await
}

/// Delete a sub-account (terminal): its keys answer `SUB_ACCOUNT_DELETED`.
#[utoipa::path(delete, path = "/tenant/sub-accounts/{id}", tag = "tenant-sub-accounts",
    params(("id" = String, Path, description = "Sub-account id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubAccountView, description = "The sub-account, now `deleted`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`sub_account_not_found`"),
        (status = 409, body = ErrorBody, description = "`sub_account_deleted`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn delete_sub_account(
    State(state): State<AppState>,
    auth: Authorized<ManageSubAccounts>,
    ctx: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SubAccountView>> {
    run(&state, &auth, &ctx, &id, SubAccountAction::Delete).await
}
