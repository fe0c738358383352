//! Who is calling. The extractors here are the only way a handler obtains a principal, and
//! every protected handler takes one, so no protected route runs unauthenticated.
//!
//! Headers: `X-Master-Key` or `Authorization: Bearer <master key>` for the super admin;
//! `Authorization: Bearer <key>` or `X-API-Key: <key>` for tenant keys; `X-Tenant-ID` when the
//! super admin acts on one tenant's `/tenant/...` routes.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use time::OffsetDateTime;
use tokenhub_aggregates::api_key::KeyRole;

use crate::auth::key_format;
use crate::auth::master::MasterCheck;
use crate::cache::{VerifyCode, VerifyInput};
use crate::http::client_ip::client_ip;
use crate::http::code::Code;
use crate::http::error::ApiError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The master key.
    SuperAdmin,
    /// A tenant key.
    TenantKey {
        /// The key's tenant.
        tenant_id: String,
        /// The key's public id.
        public_id: String,
        /// Its role.
        role: KeyRole,
        /// Its sub-account, for a sub-account key.
        sub_account_id: Option<String>,
        /// Its effective permissions (narrowed to its sub-account's).
        permissions: Vec<String>,
    },
    /// A platform key (gateway, finance admin, auditor).
    PlatformKey {
        /// The key's public id.
        public_id: String,
        /// Its role.
        role: KeyRole,
        /// The tenants it may act for (empty = every tenant), shared with the key cache.
        tenant_ids: Arc<[Box<str>]>,
    },
}

impl Principal {
    /// Checks that this principal may act for `tenant_id`: a platform key bound to tenants
    /// only for those (403 `tenant_not_allowed`).
    pub fn may_act_for(&self, tenant_id: &str) -> Result<(), ApiError> {
        match self {
            Principal::PlatformKey { tenant_ids, .. }
                if !tenant_ids.is_empty() && !tenant_ids.iter().any(|t| &**t == tenant_id) =>
            {
                Err(ApiError::new(Code::TenantNotAllowed, "this platform key is not bound to that tenant"))
            }
            _ => Ok(()),
        }
    }

    /// (kind, id) recorded as the actor of events.
    pub fn actor(&self) -> (&'static str, String) {
        match self {
            Principal::SuperAdmin => ("super_admin", "master".to_string()),
            Principal::TenantKey { public_id, .. } => ("api_key", public_id.clone()),
            Principal::PlatformKey { public_id, .. } => ("platform_key", public_id.clone()),
        }
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
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

/// Authenticates a key through the in-memory cache (no database round trip).
fn authenticate_key(state: &AppState, key: &str, ip: Option<IpAddr>) -> Result<Principal, ApiError> {
    let input = VerifyInput { key, ip, model: None };
    let verdict = state.keys.verify(&state.hasher, input, OffsetDateTime::now_utc());
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
    Ok(match &key.tenant_id {
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
    })
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
            state.throttles.record_auth_failure(ip);
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
        let ip = client_ip(parts, &state.trusted_proxies);
        let principal = if let Some(master) = header_str(headers, "x-master-key") {
            check_master(state, master, ip).await.map_err(|e| {
                e.unwrap_or_else(|| ApiError::new(Code::InvalidMasterKey, "the master key is invalid"))
            })?;
            Principal::SuperAdmin
        } else if let Some(key) = header_str(headers, "x-api-key") {
            authenticate_key(state, key, ip)?
        } else if let Some(token) = bearer(headers) {
            if token.starts_with(key_format::KEY_PREFIX) {
                authenticate_key(state, token, ip)?
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
