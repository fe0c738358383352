//! TOTP over HTTP, for the signed-in person: `POST /auth/totp/enroll`, `POST
//! /auth/totp/confirm`, `DELETE /auth/totp`, `POST /auth/recovery-codes`; and the tenant's
//! policy `GET`/`PUT /tenant/security/two-factor` (`require_2fa`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::TenantCommand;
use utoipa::ToSchema;

use crate::auth::requires::ManageTenantSecurity;
use crate::error::Code;
use crate::http::authenticate::SessionUser;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, RequestMeta};
use crate::http::AppState;
use crate::services::two_factor;

/// What an authenticator app needs (shown once per enrolment).
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// The secret, base32 without padding, to type in.
    pub secret: String,
    /// `otpauth://totp/TokenHub:<e-mail>?secret=…&issuer=TokenHub` (SHA-1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// Start enrolling an authenticator: a new secret (confirm it with a code to turn TOTP on).
#[utoipa::path(post, path = "/auth/totp/enroll", tag = "people",
    security(("session" = [])),
    responses(
        (status = 200, body = TotpEnrolmentView),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 409, body = ErrorBody, description = "`totp_already_enrolled`"),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    session: SessionUser,
) -> ApiResult<axum::Json<TotpEnrolmentView>> {
    let e = two_factor::enroll(&state, &session.user).await?;
    Ok(axum::Json(TotpEnrolmentView {
        secret: e.secret_base32,
        otpauth_uri: e.otpauth_uri,
        qr_svg: e.qr_svg,
    }))
}

/// A TOTP code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// Six digits from the authenticator app.
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// Recovery codes, shown once: each signs in once in place of a TOTP code.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten codes, `xxxx-xxxx-xxxx`.
    pub recovery_codes: Vec<String>,
}

/// Turn TOTP on with a code of the pending enrolment; answers ten recovery codes (once).
#[utoipa::path(post, path = "/auth/totp/confirm", tag = "people",
    request_body = CodeRequest,
    security(("session" = [])),
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 409, body = ErrorBody, description = "`totp_already_enrolled`, `totp_enrolment_not_started`"),
        (status = 422, body = ErrorBody, description = "`invalid_totp_code`"),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    session: SessionUser,
    ctx: RequestMeta,
    Json(body): Json<CodeRequest>,
) -> ApiResult<axum::Json<RecoveryCodes>> {
    let recovery_codes = two_factor::confirm(&state, &ctx, &session.user, &body.code).await?;
    Ok(axum::Json(RecoveryCodes { recovery_codes }))
}

/// Body of `DELETE /auth/totp`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveTotpRequest {
    /// The person's password.
    pub password: String,
    /// Six digits from the authenticator app.
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// Turn TOTP off (password and a code). Platform roles, and tenants with `require_2fa`, must
/// enrol again before acting.
#[utoipa::path(delete, path = "/auth/totp", tag = "people",
    request_body = RemoveTotpRequest,
    security(("session" = [])),
    responses(
        (status = 204, description = "TOTP is off; the recovery codes are void"),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 409, body = ErrorBody, description = "`totp_not_enrolled`"),
        (status = 422, body = ErrorBody, description = "`wrong_password`, `invalid_totp_code`, `totp_replayed`"),
        (status = 429, body = ErrorBody, description = "`sign_in_locked` (this account failed sign-ins or step-up checks too often), `rate_limited` (this address)"),
        (status = 503, body = ErrorBody, description = "`authentication_busy`"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    session: SessionUser,
    ctx: RequestMeta,
    Json(body): Json<RemoveTotpRequest>,
) -> ApiResult<axum::http::StatusCode> {
    two_factor::remove(&state, &ctx, &session.user, &body.password, &body.code).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Replace the recovery codes (needs a fresh TOTP code); answers the new ones (once).
#[utoipa::path(post, path = "/auth/recovery-codes", tag = "people",
    request_body = CodeRequest,
    security(("session" = [])),
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 401, body = ErrorBody, description = "`invalid_session`"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`"),
        (status = 409, body = ErrorBody, description = "`totp_not_enrolled`"),
        (status = 422, body = ErrorBody, description = "`invalid_totp_code`, `totp_replayed`"),
        (status = 429, body = ErrorBody, description = "`sign_in_locked` (this account failed sign-ins or step-up checks too often), `rate_limited` (this address)"),
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    session: SessionUser,
    ctx: RequestMeta,
    Json(body): Json<CodeRequest>,
) -> ApiResult<axum::Json<RecoveryCodes>> {
    let recovery_codes = two_factor::regenerate(&state, &ctx, &session.user, &body.code).await?;
    Ok(axum::Json(RecoveryCodes { recovery_codes }))
}

/// The tenant's two-factor policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorPolicy {
    /// The tenant's people must enrol TOTP before acting (platform roles always must).
    pub require_2fa: bool,
}

/// The tenant's two-factor policy.
#[utoipa::path(get, path = "/tenant/security/two-factor", tag = "tenant-security",
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, body = TwoFactorPolicy),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn get_policy(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantSecurity>,
) -> ApiResult<axum::Json<TwoFactorPolicy>> {
    let require_2fa = tokenhub_projections::read::tenants::require_2fa(&state.pool, auth.tenant()).await?;
    let require_2fa = require_2fa.ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    Ok(axum::Json(TwoFactorPolicy { require_2fa }))
}

/// Set the tenant's two-factor policy.
#[utoipa::path(put, path = "/tenant/security/two-factor", tag = "tenant-security",
    request_body = TwoFactorPolicy,
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, body = TwoFactorPolicy),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`tenant_deleted`"),
    ))]
pub async fn put_policy(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantSecurity>,
    ctx: RequestMeta,
    Json(body): Json<TwoFactorPolicy>,
) -> ApiResult<axum::Json<TwoFactorPolicy>> {
    let tenant = auth.tenant();
    let command =
        TenantCommand::SetTwoFactorPolicy { require_2fa: body.require_2fa, at: OffsetDateTime::now_utc() };
    crate::services::tenants::act(&state, &auth.principal, &ctx, tenant, command).await?;
    Ok(axum::Json(body))
}
