//! `/tenant/rbac`: the tenant's RBAC settings and custom roles for its end-users and
//! sub-accounts. A new tenant starts with `viewer` (`read`) and `admin` (`read`, `write`,
//! `delete`), RBAC off and `viewer` as default role.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokenhub_aggregates::sub_account::is_sub_account_id;
use utoipa::ToSchema;

use tokenhub_projections::read;

use crate::auth::requires::{CheckRbac, ManageRbac, ReadRbac};
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, RequestMeta};
use crate::http::idempotency::{plan_answer, planned_response};
use crate::http::AppState;
use crate::services::roles::{self as service, NewRole};

/// A role.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct RoleView {
    /// Name, unique in the tenant.
    pub name: String,
    /// Description.
    pub description: String,
    /// Permissions.
    #[schema(value_type = Vec<String>)]
    pub permissions: sqlx::types::Json<Vec<String>>,
}

impl From<read::roles::RoleRow> for RoleView {
    fn from(r: read::roles::RoleRow) -> Self {
        Self { name: r.name, description: r.description, permissions: r.permissions }
    }
}

/// The tenant's RBAC settings and roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RbacView {
    /// RBAC on or off.
    pub enabled: bool,
    /// Default role of new sub-accounts and end-users.
    #[serde(rename = "defaultRole")]
    pub default_role: String,
    /// Roles, by name.
    pub roles: Vec<RoleView>,
}

/// Body of `PUT /tenant/rbac`; at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRbacRequest {
    /// RBAC on or off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default role; must exist.
    #[serde(default, rename = "defaultRole")]
    pub default_role: Option<String>,
}

/// Body of `POST /tenant/rbac/roles`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// Name, `[a-z][a-z0-9_-]{0,31}`.
    #[schema(example = "editor")]
    pub name: String,
    /// Description (at most 500 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// Body of `PUT /tenant/rbac/roles/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    /// New description (unchanged when absent).
    #[serde(default)]
    pub description: Option<String>,
    /// New permissions.
    pub permissions: Vec<String>,
}

/// Body of `POST /tenant/rbac/check`: a role or a sub-account, and a permission.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// A role name.
    #[serde(default)]
    pub role: Option<String>,
    /// A sub-account id (its role's permissions and its own count).
    #[serde(default)]
    pub sub_account_id: Option<String>,
    /// The permission asked about.
    pub permission: String,
}

/// The answer of a check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    /// True when the role or the sub-account holds the permission (a disabled or deleted
    /// sub-account holds none).
    pub allowed: bool,
}

/// Loads the RBAC view of `tenant_id`.
async fn load(pool: &PgPool, tenant_id: &str) -> ApiResult<RbacView> {
    let settings = read::tenants::rbac(pool, tenant_id).await?;
    let (enabled, default_role) =
        settings.ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    let roles = read::roles::list(pool, tenant_id).await?.into_iter().map(RoleView::from).collect();
    Ok(RbacView { enabled, default_role, roles })
}

pub use crate::services::roles::{require_role, role_permissions};

/// The tenant's RBAC settings and roles.
#[utoipa::path(get, path = "/tenant/rbac", tag = "tenant-rbac",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = RbacView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_rbac(
    State(state): State<AppState>,
    auth: Authorized<ReadRbac>,
) -> ApiResult<axum::Json<RbacView>> {
    Ok(axum::Json(load(&state.pool, auth.tenant()).await?))
}

/// Turn RBAC on or off, or change the default role.
#[utoipa::path(put, path = "/tenant/rbac", tag = "tenant-rbac",
    request_body = UpdateRbacRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = RbacView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`empty_update`, `unknown_role`, `invalid_role`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn update_rbac(
    State(state): State<AppState>,
    auth: Authorized<ManageRbac>,
    ctx: RequestMeta,
    Json(body): Json<UpdateRbacRequest>,
) -> ApiResult<axum::Json<RbacView>> {
    service::configure(&state, &auth.principal, &ctx, auth.tenant(), body.enabled, body.default_role).await?;
    Ok(axum::Json(load(&state.pool, auth.tenant()).await?))
}

async fn load_role(pool: &PgPool, tenant_id: &str, name: &str) -> ApiResult<RoleView> {
    read::roles::get(pool, tenant_id, name)
        .await?
        .map(RoleView::from)
        .ok_or_else(|| ApiError::new(Code::RoleNotFound, "role not found"))
}

/// Define a role.
#[utoipa::path(post, path = "/tenant/rbac/roles", tag = "tenant-rbac",
    request_body = CreateRoleRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = RoleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`role_already_exists`, `role_limit_reached`"),
        (status = 422, body = ErrorBody, description = "`invalid_role`, `invalid_list_item`, `invalid_request`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn create_role(
    State(state): State<AppState>,
    auth: Authorized<ManageRbac>,
    ctx: RequestMeta,
    Json(body): Json<CreateRoleRequest>,
) -> ApiResult<Response> {
    let role = NewRole {
        name: body.name,
        description: body.description.unwrap_or_default(),
        permissions: body.permissions,
    };
    // The answer is what the role's event will say: kept with an idempotency claim before the
    // command is stored, so a retry after a crash at any moment gets exactly it.
    let mut planned = None;
    service::create(&state, &auth.principal, &ctx, auth.tenant(), role, async |role| {
        let answer = RoleView {
            name: role.name.clone(),
            description: role.description.clone(),
            permissions: sqlx::types::Json(role.permissions.clone()),
        };
        planned = Some(plan_answer(&state, StatusCode::CREATED, &answer).await?);
        Ok(())
    })
    .await?;
    let planned = planned.ok_or_else(|| ApiError::internal(&"no answer planned"))?;
    Ok(planned_response(StatusCode::CREATED, planned))
}

/// Replace a role's description and permissions.
#[utoipa::path(put, path = "/tenant/rbac/roles/{name}", tag = "tenant-rbac",
    params(("name" = String, Path, description = "Role name")),
    request_body = UpdateRoleRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = RoleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`role_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_list_item`, `invalid_request`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn update_role(
    State(state): State<AppState>,
    auth: Authorized<ManageRbac>,
    ctx: RequestMeta,
    Path(name): Path<String>,
    Json(body): Json<UpdateRoleRequest>,
) -> ApiResult<axum::Json<RoleView>> {
    service::update(&state, &auth.principal, &ctx, auth.tenant(), &name, body.description, body.permissions)
        .await?;
    Ok(axum::Json(load_role(&state.pool, auth.tenant(), &name).await?))
}

/// Delete a role; refused while it is the default role or a sub-account has it.
#[utoipa::path(delete, path = "/tenant/rbac/roles/{name}", tag = "tenant-rbac",
    params(("name" = String, Path, description = "Role name")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`role_not_found`"),
        (status = 409, body = ErrorBody, description = "`role_is_default`, `role_in_use` (a sub-account has it)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn delete_role(
    State(state): State<AppState>,
    auth: Authorized<ManageRbac>,
    ctx: RequestMeta,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    service::delete(&state, &auth.principal, &ctx, auth.tenant(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Does a role or a sub-account hold a permission?
#[utoipa::path(post, path = "/tenant/rbac/check", tag = "tenant-rbac",
    request_body = CheckRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = CheckResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`role_not_found`, `sub_account_not_found`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`: exactly one of `role` and `sub_account_id`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn check_permission(
    State(state): State<AppState>,
    auth: Authorized<CheckRbac>,
    Json(body): Json<CheckRequest>,
) -> ApiResult<axum::Json<CheckResponse>> {
    let tenant = auth.tenant();
    let allowed = match (body.role.as_deref(), body.sub_account_id.as_deref()) {
        (Some(role), None) => role_permissions(&state.pool, tenant, role)
            .await?
            .ok_or_else(|| ApiError::new(Code::RoleNotFound, "role not found"))?
            .contains(&body.permission),
        (None, Some(sub)) => {
            let row = if is_sub_account_id(sub) {
                read::sub_accounts::get(&state.pool, tenant, sub).await?
            } else {
                None
            };
            let row = row.ok_or_else(|| ApiError::new(Code::SubAccountNotFound, "sub-account not found"))?;
            let (status, role, own) = (row.status, row.role, row.permissions);
            let from_role = role_permissions(&state.pool, tenant, &role).await?.unwrap_or_default();
            status == "active" && (own.0.contains(&body.permission) || from_role.contains(&body.permission))
        }
        _ => return Err(ApiError::new(Code::InvalidRequest, "give exactly one of role and sub_account_id")),
    };
    Ok(axum::Json(CheckResponse { allowed }))
}
