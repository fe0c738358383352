//! OpenID sign-in over HTTP: `GET /auth/oidc` (the configured providers), `GET
//! /auth/oidc/{provider}/start` (302 to the provider, with the `tokenhub_oidc` cookie that
//! binds the answer to this browser) and `GET /auth/oidc/{provider}/callback` (the provider's
//! answer: a session, or the TOTP challenge when the person has TOTP on).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::Code;
use crate::http::authenticate::cookie;
use crate::http::authenticate::SessionUser;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Path, Query, RequestMeta};
use crate::http::sign_in::{session_response, LoginResponse, MfaChallenge};
use crate::http::AppState;
use crate::services::sign_in::{self, ProviderOutcome, SignIn};
use crate::store::oidc_logins;
use crate::store::oidc_logins::Intent;

/// The cookie that binds a provider's answer to the browser that started the sign-in.
pub const OIDC_COOKIE: &str = "tokenhub_oidc";

/// The configured providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcProviders {
    /// Names for `/auth/oidc/{provider}/start`.
    pub providers: Vec<String>,
}

/// The OpenID providers people may sign in with (`OIDC_PROVIDERS`).
#[utoipa::path(get, path = "/auth/oidc", tag = "people",
    security(()),
    responses((status = 200, body = OidcProviders)))]
pub async fn providers(State(state): State<AppState>) -> axum::Json<OidcProviders> {
    axum::Json(OidcProviders { providers: state.oidc.names() })
}

fn binding_cookie(secure: bool, value: &str, max_age: i64) -> Option<HeaderValue> {
    let mut cookie =
        format!("{OIDC_COOKIE}={value}; Path=/auth/oidc; SameSite=Lax; HttpOnly; Max-Age={max_age}");
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).ok()
}

/// Start signing in at a provider: 302 to its authorization page.
#[utoipa::path(get, path = "/auth/oidc/{provider}/start", tag = "people",
    params(("provider" = String, Path, description = "A name of `OIDC_PROVIDERS`", pattern = "^[a-z0-9]{1,32}$"), StartQuery),
    security(()),
    responses(
        (status = 302, description = "To the provider (authorization code flow with PKCE S256, `state`, `nonce`); sets the `tokenhub_oidc` cookie (10 minutes)"),
        (status = 404, body = ErrorBody, description = "`oidc_provider_unknown`"),
        (status = 422, body = ErrorBody, description = "`invite_invalid` (`invite` names no live invite)"),
        (status = 429, body = ErrorBody, description = "`rate_limited` (`OIDC_STARTS_PER_MINUTE` from this address)"),
        (status = 503, body = ErrorBody, description = "`oidc_provider_unavailable`"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<StartQuery>,
    ctx: RequestMeta,
) -> ApiResult<Response> {
    // Each start stores a login attempt: counted per address before anything else.
    count_start(&state, &ctx).await?;
    state.oidc.get(&provider)?;
    let intent = match query.invite.as_deref() {
        None => Intent::SignIn,
        Some(token) => {
            // Only a live invite can be accepted with a provider.
            let hash = crate::services::users::hash_of_invite(token);
            if token.len() > 64 || crate::services::users::by_invite(&state.pool, &hash).await?.is_none() {
                return Err(ApiError::new(
                    Code::InviteInvalid,
                    "the invite is not valid (wrong, expired or used)",
                ));
            }
            Intent::Invite { invite_token_hash: hash }
        }
    };
    let (location, cookie) = begin(&state, &provider, intent).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, location);
    headers.append(header::SET_COOKIE, cookie);
    Ok((StatusCode::FOUND, headers).into_response())
}

/// `?invite=` of a start.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// Accept this invite with the provider (the token of the invite link): the provider's
    /// verified e-mail must be the invited one; the identity is linked to the account.
    #[param(pattern = "^[A-Za-z0-9]{1,64}$")]
    pub invite: Option<String>,
}

/// Records a round trip to the provider for `intent`: the provider's URL and the cookie that
/// binds its answer to this browser.
async fn begin(state: &AppState, provider: &str, intent: Intent) -> ApiResult<(HeaderValue, HeaderValue)> {
    let provider = state.oidc.get(provider)?;
    let started = state.oidc.start(provider).await?;
    let binding = crate::crypto::random_alphanumeric(43);
    let login = oidc_logins::NewLogin {
        state: &started.state,
        provider: provider.name(),
        binding: &binding,
        nonce: &started.nonce,
        verifier: &started.verifier,
        intent: &intent,
    };
    oidc_logins::create(&state.pool, &state.keks.current, login).await?;
    let location = HeaderValue::from_str(&started.url).map_err(|e| ApiError::internal(&e))?;
    let cookie = binding_cookie(state.limits.cookie_secure, &binding, oidc_logins::LIFETIME_SECONDS)
        .ok_or_else(|| ApiError::internal(&"binding cookie"))?;
    Ok((location, cookie))
}

/// Counts a start (each stores a login attempt) against `OIDC_STARTS_PER_MINUTE` of the
/// client's address: 429 beyond.
async fn count_start(state: &AppState, ctx: &RequestMeta) -> ApiResult<()> {
    state.throttles.sign_in_start(ctx.source_ip.parse().ok()).await.map_err(|retry| {
        ApiError::new(
            Code::RateLimited,
            format!("too many sign-in starts from this address; retry in {retry} s"),
        )
        .retry_after(retry)
    })
}

/// Where to send the browser to link an identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStart {
    /// The provider's authorization page: navigate there; its answer comes back to
    /// `/auth/oidc/{provider}/callback`, which links the identity to this person.
    pub url: String,
}

/// Start linking an identity at a provider to the signed-in person (from then on it signs
/// in to this account).
#[utoipa::path(post, path = "/auth/oidc/{provider}/link", tag = "people",
    params(("provider" = String, Path, description = "A name of `OIDC_PROVIDERS`", pattern = "^[a-z0-9]{1,32}$")),
    security(("session" = [])),
    responses(
        (status = 200, body = LinkStart, description = "Go to `url`; sets the `tokenhub_oidc` cookie (10 minutes)"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 404, body = ErrorBody, description = "`oidc_provider_unknown`"),
        (status = 429, body = ErrorBody, description = "`rate_limited` (`OIDC_STARTS_PER_MINUTE` from this address)"),
        (status = 503, body = ErrorBody, description = "`oidc_provider_unavailable`"),
    ))]
pub async fn link(
    State(state): State<AppState>,
    session: SessionUser,
    Path(provider): Path<String>,
    ctx: RequestMeta,
) -> ApiResult<Response> {
    count_start(&state, &ctx).await?;
    let intent = Intent::Link { user_id: session.user.user_id.clone() };
    let (location, cookie) = begin(&state, &provider, intent).await?;
    let url = location.to_str().map_err(|e| ApiError::internal(&e))?.to_string();
    let mut response = axum::Json(LinkStart { url }).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The provider's answer (its own parameters such as `iss` or `scope` are ignored).
#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` sent at the start.
    pub state: Option<String>,
    /// The provider's error, when it refused.
    pub error: Option<String>,
}

/// The provider's answer: signs the person in (or asks for their TOTP code).
#[utoipa::path(get, path = "/auth/oidc/{provider}/callback", tag = "people",
    params(("provider" = String, Path, description = "A name of `OIDC_PROVIDERS`", pattern = "^[a-z0-9]{1,32}$"), CallbackQuery),
    security(()),
    responses(
        (status = 200, body = LoginResponse, description = "Signed in (`Set-Cookie: tokenhub_session`, `tokenhub_csrf`), or `{\"mfa_required\": true, \"mfa_token\"}` when TOTP is on"),
        (status = 303, description = "The same for a browser (`Accept: text/html`): on to `/console/` (or its TOTP step)"),
        (status = 401, body = ErrorBody, description = "`oidc_state_invalid`, `oidc_id_token_invalid`, `oidc_email_unverified`, `oidc_no_account` (no account is linked to the identity), `oidc_email_mismatch` (an invite accepted with another e-mail), `oidc_failed`"),
        (status = 403, body = ErrorBody, description = "`tenant_suspended`, `ip_not_allowed`"),
        (status = 404, body = ErrorBody, description = "`oidc_provider_unknown`"),
        (status = 409, body = ErrorBody, description = "`user_disabled`, `oidc_identity_in_use` (linked to an account already)"),
        (status = 422, body = ErrorBody, description = "`invite_invalid`, `invite_expired`"),
        (status = 503, body = ErrorBody, description = "`oidc_provider_unavailable`"),
    ))]
pub async fn callback(
    State(state): State<AppState>,
    ctx: RequestMeta,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let provider = state.oidc.get(&name)?;
    let bad_state =
        || ApiError::new(Code::OidcStateInvalid, "this answer belongs to no sign-in this browser started");
    let binding = cookie(&headers, OIDC_COOKIE).ok_or_else(bad_state)?;
    let pending = match &query.state {
        Some(s) if s.len() <= 128 => {
            oidc_logins::take(&state.pool, &state.keks.current, s, &name, binding).await?
        }
        _ => None,
    };
    let pending = pending.ok_or_else(bad_state)?;
    if let Some(error) = &query.error {
        let error: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
        return Err(ApiError::new(Code::OidcFailed, format!("the provider refused the sign-in: {error}")));
    }
    let code = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| ApiError::new(Code::OidcFailed, "the provider sent no authorization code"))?;
    let identity = state.oidc.finish(provider, code, &pending.nonce, &pending.verifier).await?;
    // A browser (it asks for HTML) goes on to the console; an API client reads the answer.
    let browser =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let outcome = match sign_in::with_provider(&state, &ctx, &name, &identity, pending.intent).await? {
        ProviderOutcome::SignIn(outcome) => outcome,
        ProviderOutcome::Linked => {
            let mut response = if browser {
                (StatusCode::SEE_OTHER, [(header::LOCATION, "/console/#/security")]).into_response()
            } else {
                axum::Json(serde_json::json!({"linked": name})).into_response()
            };
            if let Some(clear) = binding_cookie(state.limits.cookie_secure, "", 0) {
                response.headers_mut().append(header::SET_COOKIE, clear);
            }
            return Ok(response);
        }
    };
    let mut response = match outcome {
        SignIn::Session(user, session) => {
            let mut response = session_response(&state, *user, session);
            if browser {
                *response.status_mut() = StatusCode::SEE_OTHER;
                response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/console/"));
            }
            response
        }
        SignIn::SecondFactor { mfa_token } if browser => {
            let to = format!("/console/#/signin/mfa/{mfa_token}");
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
        }
        SignIn::SecondFactor { mfa_token } => {
            axum::Json(LoginResponse::Mfa(MfaChallenge { mfa_required: true, mfa_token })).into_response()
        }
    };
    if let Some(clear) = binding_cookie(state.limits.cookie_secure, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}
