//! `/admin/tenants`: the super admin's tenant lifecycle API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::ids::is_tenant_id;
use tokenhub_aggregates::tenant::TenantCommand;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::ManageTenants;
use crate::error::Code;
use crate::http::authorized::Authorized;

use crate::audit::as_of::{self, AsOf};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, OptionalJson, Path, Query, RequestMeta};
use crate::http::idempotency::{plan_answer, planned_response};
use crate::http::views::{LimitsDto, PlanDto, TenantView};
use crate::http::AppState;
use crate::paging;
use crate::services::tenants::{self as service, NewTenant};

/// Body of `POST /admin/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Display name, 1 to 128 characters.
    #[schema(example = "MyCompany")]
    pub name: String,
    /// Plan; `free` when omitted.
    #[serde(default)]
    pub plan: Option<PlanDto>,
    /// Region, `[a-z0-9-]{1,32}`; `default` when omitted.
    #[serde(default)]
    pub region: Option<String>,
    /// Limit overrides on top of the plan's defaults.
    #[serde(default)]
    pub limits: Option<LimitsDto>,
}

/// Answer of `POST /admin/tenants`. `api_key` is shown only here, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateTenantResponse {
    /// The new tenant's id.
    pub tenant_id: String,
    /// The tenant-admin key. Store it now: only its hash is kept.
    pub api_key: String,
    /// Public id of that key.
    pub api_key_public_id: String,
    /// Name.
    pub name: String,
    /// Plan.
    pub plan: PlanDto,
    /// Region.
    pub region: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Create a tenant and its tenant-admin key.
#[utoipa::path(post, path = "/admin/tenants", tag = "admin-tenants",
    request_body = CreateTenantRequest,
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 201, body = CreateTenantResponse, description = "Created; the key is shown once"),
        (status = 400, body = ErrorBody, description = "Malformed JSON (`invalid_json`)"),
        (status = 401, body = ErrorBody, description = "Missing or wrong master key"),
        (status = 403, body = ErrorBody, description = "Not the super admin (`forbidden`)"),
        (status = 422, body = ErrorBody, description = "Invalid field (`invalid_request`, `invalid_tenant_name`, `invalid_region`, `invalid_limits`)"),
        (status = 503, body = ErrorBody, description = "Database unavailable"),
    ))]
pub async fn create_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Json(body): Json<CreateTenantRequest>,
) -> ApiResult<Response> {
    let plan = body.plan.unwrap_or_default();
    let new = NewTenant {
        name: body.name,
        plan: plan.into(),
        region: body.region,
        limits: body.limits.unwrap_or_default().into(),
    };
    // The answer (with its key shown once) is known before the command runs: kept with the
    // idempotency claim first, so a retry after a crash at any moment gets exactly it.
    let mut planned = None;
    service::create(&state, &auth.principal, &ctx, new, async |created| {
        let answer = CreateTenantResponse {
            tenant_id: created.tenant_id.clone(),
            api_key: created.key.full.clone(),
            api_key_public_id: created.key.public_id.clone(),
            name: created.name.clone(),
            plan,
            region: created.region.clone(),
            created_at: created.created_at,
        };
        planned = Some(plan_answer(&state, StatusCode::CREATED, &answer).await?);
        Ok(())
    })
    .await?;
    let planned = planned.ok_or_else(|| ApiError::internal(&"no answer planned"))?;
    Ok(planned_response(StatusCode::CREATED, planned))
}

/// Query of `GET /admin/tenants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListTenantsQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only tenants in this status (`active`, `suspended`, `deleted`).
    pub status: Option<String>,
    /// Only tenants on this plan (`free`, `pro`, `enterprise`).
    pub plan: Option<String>,
    /// Only tenants whose id is this or whose name contains it (case-insensitive), 1 to 128
    /// characters.
    pub q: Option<String>,
}

/// A page of tenants, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    /// The tenants.
    pub data: Vec<TenantView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// List tenants (cursor pagination).
#[utoipa::path(get, path = "/admin/tenants", tag = "admin-tenants",
    params(ListTenantsQuery),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TenantPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Bad `limit`, `cursor`, `status`, `plan` or `q` (`invalid_query`)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_tenants(
    State(state): State<AppState>,
    _auth: Authorized<ManageTenants>,
    Query(query): Query<ListTenantsQuery>,
) -> ApiResult<axum::Json<TenantPage>> {
    let limit = paging::page_size(query.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let after = paging::after(query.cursor.as_deref())?;
    if let Some(status) = query.status.as_deref() {
        if !["active", "suspended", "deleted"].contains(&status) {
            return Err(ApiError::new(Code::InvalidQuery, "status must be active, suspended or deleted"));
        }
    }
    if let Some(plan) = query.plan.as_deref() {
        if !["free", "pro", "enterprise"].contains(&plan) {
            return Err(ApiError::new(Code::InvalidQuery, "plan must be free, pro or enterprise"));
        }
    }
    if query.q.as_deref().is_some_and(|q| q.chars().count() > 128) {
        return Err(ApiError::new(Code::InvalidQuery, "q is 1 to 128 characters"));
    }
    let filter = crate::http::views::TenantFilter {
        status: query.status.as_deref(),
        plan: query.plan.as_deref(),
        search: query.q.as_deref(),
    };
    let (data, last) = TenantView::page(&state.pool, after, limit, &filter).await?;
    let next_cursor = paging::next_cursor(data.len(), limit, Some(last));
    Ok(axum::Json(TenantPage { data, next_cursor }))
}

fn checked_id(id: &str) -> ApiResult<()> {
    if is_tenant_id(id) {
        Ok(())
    } else {
        Err(ApiError::new(Code::TenantNotFound, "tenant not found"))
    }
}

async fn view_or_404(state: &AppState, id: &str) -> ApiResult<axum::Json<TenantView>> {
    TenantView::load(&state.pool, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))
}

/// Get one tenant, now or (`as_of`) as it was at a past moment.
#[utoipa::path(get, path = "/admin/tenants/{id}", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id, `ten_…`"), AsOf),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found` (also: not yet created at `as_of`)"),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_tenant(
    State(state): State<AppState>,
    _auth: Authorized<ManageTenants>,
    Path(id): Path<String>,
    Query(query): Query<AsOf>,
) -> ApiResult<axum::Json<TenantView>> {
    checked_id(&id)?;
    let Some(as_of) = query.as_of else { return view_or_404(&state, &id).await };
    Ok(axum::Json(tenant_as_of(&state, &id, as_of).await?))
}

/// A tenant as it was at `as_of`, rebuilt from the log; 404 `tenant_not_found` before it existed.
pub async fn tenant_as_of(state: &AppState, id: &str, as_of: OffsetDateTime) -> ApiResult<TenantView> {
    let events = as_of::events_until(&state.pool, "tenant", id, as_of).await?;
    let (tenant, version) =
        as_of::fold_tenant(&events).ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    let (limits, limit_overrides) = as_of::tenant_limits_json(&tenant);
    Ok(TenantView {
        tenant_id: tenant.tenant_id.clone(),
        name: tenant.name.clone(),
        plan: tenant.plan.as_str().to_string(),
        region: tenant.region.clone(),
        status: tenant.status.map(|s| s.as_str()).unwrap_or_default().to_string(),
        limits,
        limit_overrides,
        created_at: tenant.created_at.unwrap_or(as_of),
        updated_at: tenant.updated_at.unwrap_or(as_of),
        version,
    })
}

/// Body of `PATCH /admin/tenants/{id}`; at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// New name, 1 to 128 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// New plan (limits follow the plan, with overrides kept).
    #[serde(default)]
    pub plan: Option<PlanDto>,
    /// Limit overrides to set (merged into the current ones).
    #[serde(default)]
    pub limits: Option<LimitsDto>,
}

async fn run(
    state: &AppState,
    auth: &Authorized<ManageTenants>,
    ctx: &RequestMeta,
    id: &str,
    command: TenantCommand,
) -> ApiResult<axum::Json<TenantView>> {
    checked_id(id)?;
    service::act(state, &auth.principal, ctx, id, command).await?;
    view_or_404(state, id).await
}

/// Update name, plan or limits.
#[utoipa::path(patch, path = "/admin/tenants/{id}", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id")),
    request_body = UpdateTenantRequest,
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_deleted`, `aggregate_conflict`"),
        (status = 422, body = ErrorBody, description = "`empty_update`, `invalid_tenant_name`, `invalid_limits`, `invalid_request`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn update_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(id): Path<String>,
    Json(body): Json<UpdateTenantRequest>,
) -> ApiResult<axum::Json<TenantView>> {
    let command = TenantCommand::Update {
        name: body.name,
        plan: body.plan.map(Into::into),
        limits: body.limits.map(Into::into),
        at: OffsetDateTime::now_utc(),
    };
    run(&state, &auth, &ctx, &id, command).await
}

/// Body of `POST /admin/tenants/{id}/suspend` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendTenantRequest {
    /// Why, for the audit log (at most 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Suspend a tenant: its keys get 403 `tenant_suspended`.
#[utoipa::path(post, path = "/admin/tenants/{id}/suspend", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<SuspendTenantRequest>, description = "Optional reason"),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_already_suspended`, `tenant_deleted`"),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn suspend_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<SuspendTenantRequest>,
) -> ApiResult<axum::Json<TenantView>> {
    let reason = body.and_then(|b| b.reason);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::new(Code::InvalidRequest, "reason is longer than 500 characters"));
    }
    run(&state, &auth, &ctx, &id, TenantCommand::Suspend { reason, at: OffsetDateTime::now_utc() }).await
}

/// Reactivate a suspended tenant.
#[utoipa::path(post, path = "/admin/tenants/{id}/reactivate", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id")),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_not_suspended`, `tenant_deleted`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn reactivate_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TenantView>> {
    run(&state, &auth, &ctx, &id, TenantCommand::Reactivate { at: OffsetDateTime::now_utc() }).await
}

/// Delete a tenant (terminal; its events stay in the log).
#[utoipa::path(delete, path = "/admin/tenants/{id}", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id")),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TenantView, description = "The tenant, now `deleted`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_deleted`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TenantView>> {
    run(&state, &auth, &ctx, &id, TenantCommand::Delete { at: OffsetDateTime::now_utc() }).await
}
