//! Signing in over HTTP: `POST /auth/login` (password; answers a session or, with TOTP on, an
//! `mfa_token`), `POST /auth/login/mfa`, `GET /auth/me`, `POST /auth/logout`, the person's
//! sessions (`GET /auth/sessions`, `DELETE /auth/sessions/{id}`) and `POST /auth/password`.
//! Sessions are cookies: `tokenhub_session` (`HttpOnly`, `SameSite=Lax`, `Secure` unless
//! `COOKIE_SECURE=false`) and `tokenhub_csrf` (readable, to send back in `X-CSRF-Token`).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::Code;
use crate::http::authenticate::{EndingSession, SessionUser, CSRF_COOKIE, SESSION_COOKIE};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, RequestMeta};
use crate::http::people::PersonView;
use crate::http::AppState;
use crate::services::sign_in::{self, SignIn};
use crate::services::{accounts, users};
use crate::store::sessions::{self, NewSession};

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
    /// TOTP is on for this person.
    pub totp_enrolled: bool,
    /// The person must enrol TOTP (`POST /auth/totp/enroll`) before anything else: their role
    /// is a platform role, or their tenant has `require_2fa` on.
    pub totp_enrolment_required: bool,
    /// The CSRF token (also the `tokenhub_csrf` cookie): send it in `X-CSRF-Token` on changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

impl SessionView {
    fn of(user: users::UserRow, expires: OffsetDateTime, csrf_token: Option<String>) -> Self {
        let (totp_enrolled, required) = (user.totp_enrolled, user.requires_totp() && !user.totp_enrolled);
        Self {
            person: user.into(),
            session_expires_at: expires,
            totp_enrolled,
            totp_enrolment_required: required,
            csrf_token,
        }
    }
}

/// The second step of a sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallenge {
    /// Always `true`.
    pub mfa_required: bool,
    /// Send it with a code to `POST /auth/login/mfa` (5 minutes, 5 tries).
    pub mfa_token: String,
}

/// What `POST /auth/login` answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// Signed in.
    Session(SessionView),
    /// TOTP is on: finish with `POST /auth/login/mfa`.
    Mfa(MfaChallenge),
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

/// The answer that starts a session: its cookies and the person.
pub fn session_response(state: &AppState, user: users::UserRow, session: NewSession) -> Response {
    let max_age = state.limits.session_absolute.as_secs() as i64;
    let mut headers = HeaderMap::new();
    let secure = state.limits.cookie_secure;
    set_cookie(&mut headers, secure, SESSION_COOKIE, &session.token, true, max_age);
    set_cookie(&mut headers, secure, CSRF_COOKIE, &session.csrf, false, max_age);
    let view = SessionView::of(user, session.absolute_expires, Some(session.csrf));
    (headers, axum::Json(LoginResponse::Session(view))).into_response()
}

/// Sign in with e-mail and password.
#[utoipa::path(post, path = "/auth/login", tag = "people",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, body = LoginResponse, description = "Signed in (`Set-Cookie: tokenhub_session`, `tokenhub_csrf`), or `{\"mfa_required\": true, \"mfa_token\"}` when TOTP is on"),
        (status = 401, body = ErrorBody, description = "`invalid_credentials` (the same for an unknown e-mail and a wrong password)"),
        (status = 429, body = ErrorBody, description = "`sign_in_locked` (this account failed too often: back-off from the fifth failure), `rate_limited` (this address)"),
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
    match sign_in::with_password(&state, &ctx, ip, &body.email, &body.password).await? {
        SignIn::Session(user, session) => Ok(session_response(&state, *user, session)),
        SignIn::SecondFactor { mfa_token } => {
            Ok(axum::Json(LoginResponse::Mfa(MfaChallenge { mfa_required: true, mfa_token })).into_response())
        }
    }
}

/// Body of `POST /auth/login/mfa`: the challenge and either a TOTP code or a recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaRequest {
    /// From `POST /auth/login`.
    #[schema(pattern = "^thm_[A-Za-z0-9]{43}$")]
    pub mfa_token: String,
    /// Six digits from the authenticator app.
    #[serde(default)]
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: Option<String>,
    /// One of the recovery codes (each works once), `xxxx-xxxx-xxxx`.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9 -]{1,64}$")]
    pub recovery_code: Option<String>,
}

/// Finish a sign-in with a TOTP code or a recovery code.
#[utoipa::path(post, path = "/auth/login/mfa", tag = "people",
    request_body = MfaRequest,
    security(()),
    responses(
        (status = 200, body = SessionView, description = "Signed in; `Set-Cookie: tokenhub_session`, `tokenhub_csrf`"),
        (status = 401, body = ErrorBody, description = "`invalid_second_factor`, `invalid_mfa_token`"),
        (status = 422, body = ErrorBody, description = "`invalid_request` (neither or both of `code` and `recovery_code`), `totp_replayed`"),
        (status = 429, body = ErrorBody, description = "`sign_in_locked`, `rate_limited`"),
        (status = 503, body = ErrorBody, description = "`authentication_busy`"),
    ))]
pub async fn login_mfa(
    State(state): State<AppState>,
    ctx: RequestMeta,
    Json(body): Json<MfaRequest>,
) -> ApiResult<Response> {
    let ip = ctx.source_ip.parse().ok();
    let (user, session) = sign_in::with_second_factor(
        &state,
        &ctx,
        ip,
        &body.mfa_token,
        body.code.as_deref(),
        body.recovery_code.as_deref(),
    )
    .await?;
    Ok(session_response(&state, user, session))
}

/// The signed-in person and the session's end.
#[utoipa::path(get, path = "/auth/me", tag = "people",
    security(("session" = [])),
    responses(
        (status = 200, body = SessionView, description = "The person"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
    ))]
pub async fn me(session: SessionUser) -> axum::Json<SessionView> {
    axum::Json(SessionView::of(session.user, session.absolute_expires, None))
}

/// End the session; clears the cookies.
#[utoipa::path(post, path = "/auth/logout", tag = "people",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    EndingSession(session): EndingSession,
) -> ApiResult<Response> {
    sessions::end(&state.pool, &session.session_id).await?;
    let mut headers = HeaderMap::new();
    set_cookie(&mut headers, state.limits.cookie_secure, SESSION_COOKIE, "", true, 0);
    set_cookie(&mut headers, state.limits.cookie_secure, CSRF_COOKIE, "", false, 0);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// One of the person's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionListingView {
    /// Its id (for `DELETE /auth/sessions/{id}`; not the cookie).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// This request's session.
    pub current: bool,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its last request.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// When it ends at the latest.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The browser that started it.
    pub user_agent: String,
    /// The address that started it.
    pub source_ip: String,
}

/// The person's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first (at most 100).
    pub data: Vec<SessionListingView>,
}

/// The signed-in person's live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "people",
    security(("session" = [])),
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    session: SessionUser,
) -> ApiResult<axum::Json<SessionList>> {
    let rows = sessions::list(&state.pool, &session.user.user_id, state.limits.session_idle).await?;
    let data = rows
        .into_iter()
        .map(|s| SessionListingView {
            id: crate::crypto::hex(&s.id_hash),
            current: s.id_hash == session.session_id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.absolute_expires,
            user_agent: s.user_agent,
            source_ip: s.source_ip,
        })
        .collect();
    Ok(axum::Json(SessionList { data }))
}

fn session_not_found() -> ApiError {
    ApiError::new(Code::SessionNotFound, "no such session of yours")
}

/// End one of the signed-in person's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "people",
    params(("id" = String, Path, description = "Session id from `GET /auth/sessions`", pattern = "^[0-9a-f]{64}$")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 404, body = ErrorBody, description = "`session_not_found` (also another person's)"),
    ))]
pub async fn end_session(
    State(state): State<AppState>,
    session: SessionUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let bytes = (id.len() == 64)
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten()
        .ok_or_else(session_not_found)?;
    if !sessions::end_own(&state.pool, &session.user.user_id, &bytes).await? {
        return Err(session_not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /auth/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new one: 12 to 256 characters, not one of the 10,000 most common, not the e-mail.
    pub new_password: String,
}

/// How many other sessions a password change ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// The person's other sessions, now ended.
    pub sessions_ended: u64,
}

/// Change the signed-in person's password; their other sessions end.
#[utoipa::path(post, path = "/auth/password", tag = "people",
    request_body = ChangePasswordRequest,
    security(("session" = [])),
    responses(
        (status = 200, body = PasswordChanged),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 422, body = ErrorBody, description = "`wrong_password`, `weak_password`"),
        (status = 429, body = ErrorBody, description = "`sign_in_locked` (this account failed sign-ins or step-up checks too often), `rate_limited` (this address)"),
        (status = 503, body = ErrorBody, description = "`authentication_busy`"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    session: SessionUser,
    ctx: RequestMeta,
    Json(body): Json<ChangePasswordRequest>,
) -> ApiResult<axum::Json<PasswordChanged>> {
    let ended = accounts::change_password(
        &state,
        &ctx,
        &session.user,
        &session.session_id,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(axum::Json(PasswordChanged { sessions_ended: ended }))
}
