//! Authentication: the `Principal` extractor, the only way a handler obtains a principal
//! (every protected handler takes one, through `Authorized`), so no protected route runs
//! unauthenticated. Keys are checked in the in-memory cache; the master key by its hash,
//! throttled per address.
//!
//! Headers: `X-Master-Key` or `Authorization: Bearer <master key>` for the super admin;
//! `Authorization: Bearer <key>` or `X-API-Key: <key>` for tenant and platform keys.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{self, AsHeaderName, HeaderName};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::KeyRole;

use crate::auth::key_format;
use crate::auth::master::MasterCheck;
use crate::auth::Principal;
use crate::cache::{VerifyCode, VerifyInput};
use crate::error::Code;
use crate::http::client_ip::client_ip;
use crate::http::error::ApiError;
use crate::http::AppState;

/// `X-Master-Key` (a constant name: looking up a `&str` parses it on every request).
const X_MASTER_KEY: HeaderName = HeaderName::from_static("x-master-key");
/// `X-API-Key`.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

pub(crate) fn header_str(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION)?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn invalid_key() -> ApiError {
    invalid_key_because("not a key of this server")
}

/// 401 `invalid_api_key`, logged with the published line (`"msg":"Invalid API key"` and an
/// `error` reason; never the key).
fn invalid_key_because(reason: &str) -> ApiError {
    tracing::info!(msg = "Invalid API key", error = reason, "invalid api key");
    ApiError::new(Code::InvalidApiKey, "the API key is invalid")
}

/// Authenticates a key through the in-memory cache (no database round trip); a tenant key's
/// own per-minute limits hold on the control API as well (429).
async fn authenticate_key(state: &AppState, key: &str, ip: Option<IpAddr>) -> Result<Principal, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (principal, cached) = key_principal(state, key, ip, now)?;
    if matches!(principal, Principal::TenantKey { .. }) && !state.keys.take_request(&cached, now).await {
        let retry = 60 - u64::from(now.second());
        return Err(
            ApiError::new(Code::RateLimited, "this key is over its own rate limit").retry_after(retry)
        );
    }
    Ok(principal)
}

/// The principal of a key, from its credential alone (secret, status, expiry, tenant state
/// and networks, sub-account): authenticating never spends the key's quota or rate.
pub(crate) fn key_principal(
    state: &AppState,
    key: &str,
    ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<(Principal, Arc<crate::cache::CachedKey>), ApiError> {
    let input = VerifyInput { key, ip, model: None };
    let verdict = state.keys.admit(&state.hasher, input, now);
    let key = match (verdict.code, &verdict.key) {
        (VerifyCode::Valid, Some(key)) => key,
        (VerifyCode::TenantSuspended, _) => {
            tracing::info!(msg = "Invalid API key", error = "tenant suspended", "invalid api key");
            return Err(ApiError::new(Code::TenantSuspended, "the tenant is suspended"));
        }
        // A deleted tenant's keys are dead: the same answer as any other dead key.
        (VerifyCode::TenantDeleted, _) => return Err(invalid_key_because("tenant deleted")),
        (VerifyCode::IpNotAllowed, _) => {
            return Err(ApiError::new(Code::IpNotAllowed, "this key may not be used from this address"));
        }
        (code, _) => return Err(invalid_key_because(&code.as_str().to_ascii_lowercase().replace('_', " "))),
    };
    if key.sub_account_id.is_some() && key.role != KeyRole::Data {
        // Only data keys belong to sub-accounts; such a key, issued before that rule, is not
        // a tenant admin (or finance) of the whole tenant.
        tracing::warn!(public_id = %key.public_id, "refused: a non-data key under a sub-account");
        return Err(invalid_key());
    }
    let public_id = key.public_id.to_string();
    let principal = match &key.tenant_id {
        Some(tenant_id) => {
            tracing::info!(msg = "Tenant validated", tenant_id = %tenant_id, "tenant validated");
            Principal::TenantKey {
                tenant_id: tenant_id.to_string(),
                public_id,
                role: key.role,
                sub_account_id: key.sub_account_id.as_deref().map(str::to_string),
                // Only tenant keys carry permissions; platform keys (every gateway call) skip this.
                permissions: verdict.effective_permissions(),
            }
        }
        None => Principal::PlatformKey { public_id, role: key.role, tenant_ids: Arc::clone(&key.tenant_ids) },
    };
    Ok((principal, Arc::clone(key)))
}

/// A key whose public id this instance has not seen: wait (bounded) until the cache holds
/// the log as of this request, so a key issued on another instance a moment ago works here.
async fn seen_or_caught_up(state: &AppState, key: &str) {
    if let Ok(public_id) = key_format::parse(key) {
        if state.keys.get(public_id).is_none() {
            state.keys.caught_up(&state.pool).await;
        }
    }
}

/// Checks a presented master key: `Err(None)` when it is wrong, `Err(Some(_))` for 429 (this
/// address failed too often; nothing is hashed) and 503 (argon2 busy).
async fn check_master(state: &AppState, presented: &str, ip: Option<IpAddr>) -> Result<(), Option<ApiError>> {
    if let Some(retry) = state.throttles.auth_blocked(ip) {
        let e = ApiError::new(
            Code::RateLimited,
            format!("too many failed authentications from this address; retry in {retry} s"),
        );
        return Err(Some(e.retry_after(retry)));
    }
    match state.master.check(presented).await {
        MasterCheck::Valid => Ok(()),
        MasterCheck::Busy => {
            let e =
                ApiError::new(Code::AuthenticationBusy, "too many master-key checks at once; retry later");
            Err(Some(e.retry_after(1)))
        }
        MasterCheck::Invalid => {
            tracing::info!("invalid master key");
            state.throttles.record_auth_failure(ip).await;
            Err(None)
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let headers = &parts.headers;
        // One credential per request: with two, which one acts would be a guess.
        let presented = [&X_MASTER_KEY, &X_API_KEY, &header::AUTHORIZATION]
            .into_iter()
            .filter(|name| headers.contains_key(*name))
            .count();
        let session = has_session_cookie(parts);
        if presented + usize::from(session) > 1 {
            return Err(ApiError::new(
                Code::AmbiguousCredentials,
                "send one credential: Authorization, X-API-Key, X-Master-Key or the session cookie, not several",
            ));
        }
        if presented == 0 && session {
            return session_principal(parts, state).await;
        }
        let ip = client_ip(parts, &state.trusted_proxies);
        let principal = if let Some(master) = header_str(headers, &X_MASTER_KEY) {
            check_master(state, master, ip).await.map_err(|e| {
                e.unwrap_or_else(|| ApiError::new(Code::InvalidMasterKey, "the master key is invalid"))
            })?;
            Principal::SuperAdmin
        } else if let Some(key) = header_str(headers, &X_API_KEY) {
            seen_or_caught_up(state, key).await;
            authenticate_key(state, key, ip).await?
        } else if let Some(token) = bearer(headers) {
            if token.starts_with(key_format::KEY_PREFIX) {
                seen_or_caught_up(state, token).await;
                authenticate_key(state, token, ip).await?
            } else {
                check_master(state, token, ip).await.map_err(|e| e.unwrap_or_else(invalid_key))?;
                Principal::SuperAdmin
            }
        } else {
            return Err(ApiError::new(
                Code::MissingCredentials,
                "send a key in Authorization: Bearer, X-API-Key or X-Master-Key",
            ));
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// The session cookie.
pub const SESSION_COOKIE: &str = "tokenhub_session";
/// The CSRF cookie (readable by the page, sent back in `X-CSRF-Token`).
pub const CSRF_COOKIE: &str = "tokenhub_csrf";

/// The person behind a session-authenticated request (in the request's extensions; also an
/// extractor for the routes only a session may call).
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The person, as the session found them.
    pub user: crate::services::users::UserRow,
    /// The session's id (hash of the cookie value).
    pub session_id: Vec<u8>,
    /// When the session ends at the latest.
    pub absolute_expires: time::OffsetDateTime,
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = ApiError;

    /// A live session (and, on changes, its CSRF token) of an active person — whatever their
    /// enrolment: the routes that take a `SessionUser` are the person's own (sign-out, TOTP
    /// enrolment, sessions, password).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<SessionUser>() {
            return Ok(user.clone());
        }
        let user = EndingSession::from_request_parts(parts, state).await?.0;
        // The one policy: a person of a tenant passes the tenant's gate (state, networks)
        // exactly as the tenant's keys do.
        if let Some(tenant_id) = &user.user.tenant_id {
            let ip = client_ip(parts, &state.trusted_proxies);
            let code = state.keys.tenant_admits(tenant_id, ip);
            crate::services::users::tenant_gate(code, invalid_session)?;
        }
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// A live session, whatever its tenant's state or the caller's network: only for ending it
/// (`POST /auth/logout`), which must always work.
#[derive(Debug, Clone)]
pub struct EndingSession(pub SessionUser);

impl FromRequestParts<AppState> for EndingSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string) else {
            return Err(ApiError::new(Code::InvalidSession, "sign in first: no tokenhub_session cookie"));
        };
        Ok(Self(session_user(parts, state, &token).await?))
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// True when the request carries a session cookie — even an empty or unreadable one, which is
/// a (wrong) credential, not the absence of one.
pub fn has_session_cookie(parts: &Parts) -> bool {
    parts.headers.get_all(header::COOKIE).iter().any(|v| {
        v.as_bytes().split(|b| *b == b';').any(|pair| {
            pair.trim_ascii_start()
                .strip_prefix(SESSION_COOKIE.as_bytes())
                .is_some_and(|rest| rest.starts_with(b"="))
        })
    })
}

fn invalid_session() -> ApiError {
    ApiError::new(Code::InvalidSession, "the session is unknown, ended or expired; sign in again")
}

/// Authenticates a session cookie: a live session of an active user, whose changes carry the
/// session's CSRF token (double submit: `X-CSRF-Token` equal to the `tokenhub_csrf` cookie
/// the sign-in set).
async fn session_user(parts: &Parts, state: &AppState, token: &str) -> Result<SessionUser, ApiError> {
    if !token.starts_with(crate::store::sessions::SESSION_PREFIX) || token.len() > 64 {
        return Err(invalid_session());
    }
    let session = crate::store::sessions::touch(&state.pool, token, state.limits.session_idle)
        .await?
        .ok_or_else(invalid_session)?;
    let user = crate::services::users::by_id(&state.pool, &session.user_id).await?;
    let Some(user) = user.filter(|u| u.status == "active") else { return Err(invalid_session()) };
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let sent = header_str(&parts.headers, "x-csrf-token").map(crate::store::sessions::digest);
        let matches = sent.is_some_and(|sent| {
            bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_slice(), session.csrf_hash.as_slice()))
        });
        if !matches {
            return Err(ApiError::new(
                Code::CsrfFailed,
                "send the tokenhub_csrf cookie's value in X-CSRF-Token",
            ));
        }
    }
    Ok(SessionUser { user, session_id: session.id_hash, absolute_expires: session.absolute_expires })
}

/// The principal of a session: the person's role — once they have enrolled TOTP where it is
/// required (platform roles; tenants with `require_2fa`).
async fn session_principal(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    let session = SessionUser::from_request_parts(parts, state).await?;
    if session.user.requires_totp() && !session.user.totp_enrolled {
        return Err(ApiError::new(
            Code::SecondFactorEnrolmentRequired,
            "enrol an authenticator first: POST /auth/totp/enroll, then POST /auth/totp/confirm",
        ));
    }
    let principal = crate::services::users::principal_for(&session.user).ok_or_else(invalid_session)?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}
