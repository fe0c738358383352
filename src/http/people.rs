//! Managing people over HTTP: `/admin/users` (super admin: any role, any tenant) and
//! `/tenant/users` (tenant admins: their tenant's people, tenant roles only) — invite, list,
//! get, change the role, disable — and `POST /auth/invites/{token}/accept`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::user::Membership;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ManageTenantUsers, ManageTenants};
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::AppState;
use crate::paging;
use crate::services::{accounts, users};

/// A user role.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UserRoleDto {
    /// Everything (platform).
    SuperAdmin,
    /// Every tenant's usage (platform).
    FinanceAdmin,
    /// The audit log (platform).
    Auditor,
    /// Everything in one tenant.
    TenantAdmin,
    /// One tenant's usage and limits.
    TenantFinance,
    /// Reads one tenant (like `tenant_finance` today).
    TenantViewer,
}

impl UserRoleDto {
    fn name(self) -> &'static str {
        match self {
            UserRoleDto::SuperAdmin => "super_admin",
            UserRoleDto::FinanceAdmin => "finance_admin",
            UserRoleDto::Auditor => "auditor",
            UserRoleDto::TenantAdmin => "tenant_admin",
            UserRoleDto::TenantFinance => "tenant_finance",
            UserRoleDto::TenantViewer => "tenant_viewer",
        }
    }

    fn is_platform(self) -> bool {
        matches!(self, UserRoleDto::SuperAdmin | UserRoleDto::FinanceAdmin | UserRoleDto::Auditor)
    }
}

/// A tenant role (what a tenant admin may give).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TenantUserRoleDto {
    /// Everything in the tenant.
    TenantAdmin,
    /// The tenant's usage and limits.
    TenantFinance,
    /// Reads the tenant.
    TenantViewer,
}

impl TenantUserRoleDto {
    fn membership(self, tenant_id: &str) -> Membership {
        let role = match self {
            TenantUserRoleDto::TenantAdmin => "tenant_admin",
            TenantUserRoleDto::TenantFinance => "tenant_finance",
            TenantUserRoleDto::TenantViewer => "tenant_viewer",
        };
        Membership::Tenant { tenant_id: tenant_id.to_string(), role: role.into() }
    }
}

/// The membership of `role` (and `tenant_id`, which tenant roles need and platform roles refuse).
fn membership(role: UserRoleDto, tenant_id: Option<String>) -> ApiResult<Membership> {
    match (role.is_platform(), tenant_id) {
        (true, None) => Ok(Membership::Platform { role: role.name().into() }),
        (false, Some(tenant_id)) => Ok(Membership::Tenant { tenant_id, role: role.name().into() }),
        (true, Some(_)) => Err(ApiError::new(Code::InvalidRequest, "tenant_id: platform roles take none")),
        (false, None) => Err(ApiError::new(Code::InvalidRequest, "tenant_id: a tenant role needs one")),
    }
}

/// Body of `POST /admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// E-mail (case-insensitive; one account per address), at most 254 characters.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Role.
    pub role: UserRoleDto,
    /// The tenant, for tenant roles (and only for them).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Body of `POST /tenant/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantInviteRequest {
    /// E-mail (case-insensitive; one account per address), at most 254 characters.
    #[schema(example = "grace@example.com")]
    pub email: String,
    /// A tenant role.
    pub role: TenantUserRoleDto,
}

/// An invite, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteResponse {
    /// The user's id.
    pub user_id: String,
    /// The link to give the person: `POST {invite_url}/accept {"password"}` activates the
    /// account (single use).
    pub invite_url: String,
    /// When the invite stops working (72 h).
    #[serde(with = "time::serde::rfc3339")]
    pub invite_expires_at: OffsetDateTime,
}

impl From<users::Invite> for InviteResponse {
    fn from(invite: users::Invite) -> Self {
        Self {
            user_id: invite.user_id,
            invite_url: invite.invite_url,
            invite_expires_at: invite.invite_expires_at,
        }
    }
}

/// A person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    /// Id.
    pub user_id: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: String,
    /// Its tenant, for tenant roles.
    pub tenant_id: Option<String>,
}

impl From<users::UserRow> for PersonView {
    fn from(u: users::UserRow) -> Self {
        Self { user_id: u.user_id, email: u.email, role: u.role, tenant_id: u.tenant_id }
    }
}

/// A person as their managers see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub user_id: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: String,
    /// Its tenant, for tenant roles.
    pub tenant_id: Option<String>,
    /// `invited`, `active` or `disabled`.
    #[schema(pattern = "^(invited|active|disabled)$")]
    pub status: String,
    /// TOTP on.
    pub totp_enrolled: bool,
    /// When invited.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<users::UserRow> for UserView {
    fn from(u: users::UserRow) -> Self {
        Self {
            user_id: u.user_id,
            email: u.email,
            role: u.role,
            tenant_id: u.tenant_id,
            status: u.status,
            totp_enrolled: u.totp_enrolled,
            created_at: u.created_at,
        }
    }
}

/// A page of people.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The people, in invitation order.
    pub data: Vec<UserView>,
    /// The cursor of the next page (absent on the last one).
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=&tenant_id=` of `GET /admin/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AdminUsersQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this tenant's people.
    pub tenant_id: Option<String>,
}

/// Body of a role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// The new role.
    pub role: UserRoleDto,
    /// The tenant, for tenant roles (and only for them).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Body of a tenant's role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChangeRoleRequest {
    /// The new tenant role (the only field; an empty body is 422 `empty_update`).
    #[serde(default)]
    pub role: Option<TenantUserRoleDto>,
}

fn page(rows: Vec<users::UserRow>, limit: i64) -> UserPage {
    let next_cursor = paging::next_cursor(rows.len(), limit, rows.last().map(|r| r.created_position));
    UserPage { data: rows.into_iter().map(UserView::from).collect(), next_cursor }
}

/// Invite a person (super admin).
#[utoipa::path(post, path = "/admin/users", tag = "people",
    request_body = InviteRequest,
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 201, body = InviteResponse, description = "Invited; the link is shown once"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`user_already_exists`"),
        (status = 422, body = ErrorBody, description = "`invalid_request` (e-mail; a tenant role without `tenant_id` or a platform role with one), `invalid_user_role`, `unknown_tenant`"),
    ))]
pub async fn invite_user(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Json(body): Json<InviteRequest>,
) -> ApiResult<(StatusCode, axum::Json<InviteResponse>)> {
    let membership = membership(body.role, body.tenant_id)?;
    let invite = users::invite(&state, &auth.principal, &ctx, &body.email, membership).await?;
    Ok((StatusCode::CREATED, axum::Json(invite.into())))
}

/// List people (super admin), optionally one tenant's.
#[utoipa::path(get, path = "/admin/users", tag = "people",
    params(AdminUsersQuery),
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = UserPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    _auth: Authorized<ManageTenants>,
    Query(query): Query<AdminUsersQuery>,
) -> ApiResult<axum::Json<UserPage>> {
    let limit = paging::page_size(query.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let after = paging::after(query.cursor.as_deref())?;
    let rows = accounts::list(&state, query.tenant_id.as_deref(), after, limit).await?;
    Ok(axum::Json(page(rows, limit)))
}

/// A person (super admin).
#[utoipa::path(get, path = "/admin/users/{user_id}", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found`"),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    _auth: Authorized<ManageTenants>,
    Path(user_id): Path<String>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(accounts::get(&state, None, &user_id).await?.into()))
}

/// Change a person's role and scope (super admin).
#[utoipa::path(patch, path = "/admin/users/{user_id}", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    request_body = ChangeRoleRequest,
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = UserView, description = "The person with the new role"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found`"),
        (status = 409, body = ErrorBody, description = "`user_disabled`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_user_role`, `unknown_tenant`"),
    ))]
pub async fn change_user_role(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(user_id): Path<String>,
    Json(body): Json<ChangeRoleRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let membership = membership(body.role, body.tenant_id)?;
    let user = accounts::change_role(&state, &auth.principal, &ctx, None, &user_id, membership).await?;
    Ok(axum::Json(user.into()))
}

/// Disable a person (super admin): terminal; their sessions end.
#[utoipa::path(delete, path = "/admin/users/{user_id}", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found`"),
        (status = 409, body = ErrorBody, description = "`user_disabled`"),
    ))]
pub async fn disable_user(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    accounts::disable(&state, &auth.principal, &ctx, None, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erase a disabled person (GDPR): their data key is destroyed, so their sealed password
/// hashes and TOTP secret in the immutable log can never be opened again.
#[utoipa::path(post, path = "/admin/users/{user_id}/erase", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found`"),
        (status = 409, body = ErrorBody, description = "`user_not_disabled` (disable first), `user_erased`"),
    ))]
pub async fn erase_user(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    ctx: RequestMeta,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    accounts::erase(&state, &auth.principal, &ctx, None, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invite a person to the tenant (tenant admin; tenant roles only).
#[utoipa::path(post, path = "/tenant/users", tag = "people",
    request_body = TenantInviteRequest,
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 201, body = InviteResponse, description = "Invited; the link is shown once"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`user_already_exists`"),
        (status = 422, body = ErrorBody, description = "`invalid_request` (e-mail, or a role that is not a tenant role)"),
    ))]
pub async fn invite_tenant_user(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantUsers>,
    ctx: RequestMeta,
    Json(body): Json<TenantInviteRequest>,
) -> ApiResult<(StatusCode, axum::Json<InviteResponse>)> {
    let membership = body.role.membership(auth.tenant());
    let invite = users::invite(&state, &auth.principal, &ctx, &body.email, membership).await?;
    Ok((StatusCode::CREATED, axum::Json(invite.into())))
}

/// List the tenant's people.
#[utoipa::path(get, path = "/tenant/users", tag = "people",
    params(crate::http::paging::PageQuery),
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, body = UserPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
    ))]
pub async fn list_tenant_users(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantUsers>,
    Query(query): Query<crate::http::paging::PageQuery>,
) -> ApiResult<axum::Json<UserPage>> {
    let limit = paging::page_size(query.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let after = paging::after(query.cursor.as_deref())?;
    let rows = accounts::list(&state, Some(auth.tenant()), after, limit).await?;
    Ok(axum::Json(page(rows, limit)))
}

/// One of the tenant's people.
#[utoipa::path(get, path = "/tenant/users/{user_id}", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found` (also another tenant's)"),
    ))]
pub async fn get_tenant_user(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantUsers>,
    Path(user_id): Path<String>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(accounts::get(&state, Some(auth.tenant()), &user_id).await?.into()))
}

/// Change the tenant role of one of the tenant's people.
#[utoipa::path(patch, path = "/tenant/users/{user_id}", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    request_body = TenantChangeRoleRequest,
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, body = UserView, description = "The person with the new role"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found` (also another tenant's)"),
        (status = 409, body = ErrorBody, description = "`user_disabled`"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `empty_update`"),
    ))]
pub async fn change_tenant_user_role(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantUsers>,
    ctx: RequestMeta,
    Path(user_id): Path<String>,
    Json(body): Json<TenantChangeRoleRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let tenant = auth.tenant();
    let Some(role) = body.role else {
        accounts::get(&state, Some(tenant), &user_id).await?;
        return Err(ApiError::new(Code::EmptyUpdate, "role: the only field to change"));
    };
    let membership = role.membership(tenant);
    let user =
        accounts::change_role(&state, &auth.principal, &ctx, Some(tenant), &user_id, membership).await?;
    Ok(axum::Json(user.into()))
}

/// Disable one of the tenant's people: terminal; their sessions end.
#[utoipa::path(delete, path = "/tenant/users/{user_id}", tag = "people",
    params(("user_id" = String, Path, description = "User id (`usr_…`)")),
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user_not_found` (also another tenant's)"),
        (status = 409, body = ErrorBody, description = "`user_disabled`"),
    ))]
pub async fn disable_tenant_user(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantUsers>,
    ctx: RequestMeta,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    accounts::disable(&state, &auth.principal, &ctx, Some(auth.tenant()), &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of an invite's acceptance.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The new password: 12 to 256 characters, not one of the 10,000 most common, not the
    /// e-mail.
    pub password: String,
}

/// Accept an invite with a first password (no credentials: the token is the proof).
#[utoipa::path(post, path = "/auth/invites/{token}/accept", tag = "people",
    params(("token" = String, Path, description = "The invite token (from the invite link)", pattern = "^[A-Za-z0-9]{43}$")),
    request_body = AcceptRequest,
    security(()),
    responses(
        (status = 200, body = PersonView, description = "The account is active: sign in"),
        (status = 409, body = ErrorBody, description = "`user_disabled`"),
        (status = 422, body = ErrorBody, description = "`invite_invalid`, `invite_expired`, `weak_password`"),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody, description = "`authentication_busy`"),
    ))]
pub async fn accept_invite(
    State(state): State<AppState>,
    ctx: RequestMeta,
    Path(token): Path<String>,
    Json(body): Json<AcceptRequest>,
) -> ApiResult<axum::Json<PersonView>> {
    let user = users::accept(&state, &ctx, &token, &body.password).await?;
    Ok(axum::Json(user.into()))
}
