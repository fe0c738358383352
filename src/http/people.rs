//! People over HTTP: `POST /admin/users` (invite), `POST /auth/invites/{token}/accept`,
//! `POST /auth/login`, `GET /auth/me`, `POST /auth/logout`. Sessions are cookies:
//! `tokenhub_session` (`HttpOnly`, `SameSite=Lax`, `Secure` unless `COOKIE_SECURE=false`) and
//! `tokenhub_csrf` (readable, to send back in `X-CSRF-Token` on changes).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::user::Membership;
use utoipa::ToSchema;

use crate::auth::requires::ManageTenants;
use crate::http::authenticate::{SessionUser, CSRF_COOKIE, SESSION_COOKIE};
use crate::http::authorized::Authorized;
use crate::http::code::Code;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, RequestMeta};
use crate::services::users;
use crate::state::AppState;

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
    let membership = match (body.role.is_platform(), body.tenant_id) {
        (true, None) => Membership::Platform { role: body.role.name().into() },
        (false, Some(tenant_id)) => Membership::Tenant { tenant_id, role: body.role.name().into() },
        (true, Some(_)) => {
            return Err(ApiError::new(Code::InvalidRequest, "tenant_id: platform roles take none"))
        }
        (false, None) => {
            return Err(ApiError::new(Code::InvalidRequest, "tenant_id: a tenant role needs one"))
        }
    };
    let invite = users::invite(&state, &auth.principal, &ctx, &body.email, membership).await?;
    let answer = InviteResponse {
        user_id: invite.user_id,
        invite_url: invite.invite_url,
        invite_expires_at: invite.invite_expires_at,
    };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

/// Body of an invite's acceptance.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The new password: 12 to 256 characters, not one of the 10,000 most common, not the
    /// e-mail.
    pub password: String,
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

/// Body of `POST /auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail, at most 254 characters.
    pub email: String,
    /// Password, at most 256 characters.
    pub password: String,
}

/// A signed-in person and the session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The person.
    #[serde(flatten)]
    pub person: PersonView,
    /// When the session ends at the latest (it also ends after the idle timeout).
    #[serde(with = "time::serde::rfc3339")]
    pub session_expires_at: OffsetDateTime,
    /// The CSRF token (also the `tokenhub_csrf` cookie): send it in `X-CSRF-Token` on changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

fn set_cookie(headers: &mut HeaderMap, secure: bool, name: &str, value: &str, http_only: bool, max_age: i64) {
    let mut cookie = format!("{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age}");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Sign in with e-mail and password; sets the session cookies.
#[utoipa::path(post, path = "/auth/login", tag = "people",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, body = SessionView, description = "Signed in; `Set-Cookie: tokenhub_session`, `tokenhub_csrf`"),
        (status = 401, body = ErrorBody, description = "`invalid_credentials` (the same for an unknown e-mail and a wrong password), `second_factor_required`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many failed sign-ins from this address"),
        (status = 503, body = ErrorBody, description = "`authentication_busy`"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ctx: RequestMeta,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Response> {
    let ip = ctx.source_ip.parse().ok();
    if body.email.len() > 254 || body.password.chars().count() > 256 {
        return Err(ApiError::new(Code::InvalidCredentials, "the e-mail or the password is wrong"));
    }
    let (user, session) = users::login(&state, &ctx, ip, &body.email, &body.password).await?;
    let max_age = state.limits.session_absolute.as_secs() as i64;
    let mut headers = HeaderMap::new();
    let secure = state.limits.cookie_secure;
    set_cookie(&mut headers, secure, SESSION_COOKIE, &session.token, true, max_age);
    set_cookie(&mut headers, secure, CSRF_COOKIE, &session.csrf, false, max_age);
    let view = SessionView {
        person: user.into(),
        session_expires_at: session.absolute_expires,
        csrf_token: Some(session.csrf),
    };
    Ok((headers, axum::Json(view)).into_response())
}

/// The signed-in person and the session's end.
#[utoipa::path(get, path = "/auth/me", tag = "people",
    security(("session" = [])),
    responses(
        (status = 200, body = SessionView, description = "The person"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
    ))]
pub async fn me(session: SessionUser) -> axum::Json<SessionView> {
    axum::Json(SessionView {
        person: session.user.into(),
        session_expires_at: session.absolute_expires,
        csrf_token: None,
    })
}

/// End the session; clears the cookies.
#[utoipa::path(post, path = "/auth/logout", tag = "people",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
    ))]
pub async fn logout(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    crate::store::sessions::end(&state.pool, &session.session_id).await?;
    let mut headers = HeaderMap::new();
    set_cookie(&mut headers, state.limits.cookie_secure, SESSION_COOKIE, "", true, 0);
    set_cookie(&mut headers, state.limits.cookie_secure, CSRF_COOKIE, "", false, 0);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
