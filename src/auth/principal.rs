//! Who is calling. The extractors here are the only way a handler obtains a principal, and
//! every protected handler takes one, so no protected route runs unauthenticated.
//!
//! Headers: `X-Master-Key` or `Authorization: Bearer <master key>` for the super admin;
//! `Authorization: Bearer <key>` or `X-API-Key: <key>` for tenant keys; `X-Tenant-ID` when the
//! super admin acts on one tenant's `/tenant/...` routes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::auth::key_format;
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
        /// Its role, e.g. `tenant_admin`.
        role: String,
    },
}

impl Principal {
    /// (kind, id) recorded as the actor of events.
    pub fn actor(&self) -> (&'static str, String) {
        match self {
            Principal::SuperAdmin => ("super_admin", "master".to_string()),
            Principal::TenantKey { public_id, .. } => ("api_key", public_id.clone()),
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn invalid_key() -> ApiError {
    tracing::info!("invalid api key");
    ApiError::unauthorized("invalid_api_key", "the API key is invalid")
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    tenant_id: Option<String>,
    role: String,
    secret_hash: String,
    status: String,
    tenant_status: Option<String>,
}

async fn authenticate_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let public_id = key_format::parse(key).map_err(|_| invalid_key())?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT k.tenant_id, k.role, k.secret_hash, k.status, t.status AS tenant_status \
         FROM api_keys k LEFT JOIN tenants t ON t.tenant_id = k.tenant_id WHERE k.public_id = $1",
    )
    .bind(public_id)
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else { return Err(invalid_key()) };
    if !state.hasher.verify(key, &row.secret_hash) || row.status != "active" {
        return Err(invalid_key());
    }
    let Some(tenant_id) = row.tenant_id else { return Err(invalid_key()) };
    match row.tenant_status.as_deref() {
        Some("active") => {}
        Some("suspended") => {
            return Err(ApiError::forbidden("tenant_suspended", "the tenant is suspended"));
        }
        _ => return Err(ApiError::forbidden("tenant_deleted", "the tenant is deleted")),
    }
    tracing::info!(tenant_id = %tenant_id, "tenant validated");
    Ok(Principal::TenantKey { tenant_id, public_id: public_id.to_string(), role: row.role })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let headers = &parts.headers;
        let principal = if let Some(master) = header_str(headers, "x-master-key") {
            if !state.master.verify(master).await {
                tracing::info!("invalid master key");
                return Err(ApiError::unauthorized("invalid_master_key", "the master key is invalid"));
            }
            Principal::SuperAdmin
        } else if let Some(key) = header_str(headers, "x-api-key") {
            authenticate_key(state, key).await?
        } else if let Some(token) = bearer(headers) {
            if token.starts_with(key_format::KEY_PREFIX) {
                authenticate_key(state, token).await?
            } else if state.master.verify(token).await {
                Principal::SuperAdmin
            } else {
                return Err(invalid_key());
            }
        } else {
            return Err(ApiError::unauthorized(
                "missing_credentials",
                "send a key in Authorization: Bearer, X-API-Key or X-Master-Key",
            ));
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// The super admin; any other principal gets 403 `forbidden`.
#[derive(Debug, Clone)]
pub struct SuperAdmin(pub Principal);

impl FromRequestParts<AppState> for SuperAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            p @ Principal::SuperAdmin => Ok(SuperAdmin(p)),
            _ => Err(ApiError::forbidden("forbidden", "this route needs the master key")),
        }
    }
}

/// A principal acting on one tenant: a tenant key, or the super admin naming the tenant in
/// `X-Tenant-ID`.
#[derive(Debug, Clone)]
pub struct TenantPrincipal {
    /// The tenant acted on.
    pub tenant_id: String,
    /// Who acts.
    pub principal: Principal,
}

impl FromRequestParts<AppState> for TenantPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let named = header_str(&parts.headers, "x-tenant-id").map(str::to_string);
        let tenant_id = match (&principal, named) {
            (Principal::TenantKey { tenant_id, .. }, Some(named)) if named != *tenant_id => {
                return Err(ApiError::forbidden("tenant_mismatch", "X-Tenant-ID names another tenant"));
            }
            (Principal::TenantKey { tenant_id, .. }, _) => tenant_id.clone(),
            (Principal::SuperAdmin, Some(named)) => named,
            (Principal::SuperAdmin, None) => {
                return Err(ApiError::bad_request(
                    "tenant_id_required",
                    "the master key must name a tenant in X-Tenant-ID on /tenant routes",
                ));
            }
        };
        Ok(TenantPrincipal { tenant_id, principal })
    }
}
