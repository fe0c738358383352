//! `/tenant/security/ip-allowlist`: when enabled, the tenant's keys verify only from these
//! networks (in addition to each key's own list), and its principals reach the control API
//! only from them. The client address is resolved as described in [`crate::http::client_ip`].

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::requires::ManageTenantSecurity;
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, RequestMeta};
use crate::http::AppState;

/// The tenant's IP allowlist.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpAllowlist {
    /// On or off.
    pub enabled: bool,
    /// Networks (IPv4/IPv6 CIDR or address), e.g. `["203.0.113.0/24"]`.
    pub allowed_ips: Vec<String>,
}

/// The body of `PUT`: the list itself, or the published security document
/// `{"security": {"ip_whitelist": {...}}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum IpAllowlistBody {
    /// `{"enabled", "allowed_ips"}`.
    List(IpAllowlist),
    /// `{"security": {"ip_whitelist": {"enabled", "allowed_ips"}}}`.
    Document(SecurityDocument),
}

/// `{"security": {"ip_whitelist": …}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityDocument {
    /// The security settings.
    pub security: SecuritySettings,
}

/// The security settings of the published document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// The IP allowlist.
    pub ip_whitelist: IpAllowlist,
}

async fn load(state: &AppState, tenant_id: &str) -> ApiResult<IpAllowlist> {
    let row = tokenhub_projections::read::tenants::ip_allowlist(&state.pool, tenant_id).await?;
    let (enabled, allowed_ips) =
        row.ok_or_else(|| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    Ok(IpAllowlist { enabled, allowed_ips })
}

/// The tenant's IP allowlist.
#[utoipa::path(get, path = "/tenant/security/ip-allowlist", tag = "tenant-security",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = IpAllowlist),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get_ip_allowlist(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantSecurity>,
) -> ApiResult<axum::Json<IpAllowlist>> {
    Ok(axum::Json(load(&state, auth.tenant()).await?))
}

/// Set the tenant's IP allowlist. A tenant key may not enable a list that excludes its own
/// address (it would lock itself out); the super admin may.
#[utoipa::path(put, path = "/tenant/security/ip-allowlist", tag = "tenant-security",
    request_body = IpAllowlistBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = IpAllowlist),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_cidr`, `empty_allowlist`, `allowlist_excludes_caller`, `invalid_request`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn put_ip_allowlist(
    State(state): State<AppState>,
    auth: Authorized<ManageTenantSecurity>,
    ctx: RequestMeta,
    Json(body): Json<IpAllowlistBody>,
) -> ApiResult<axum::Json<IpAllowlist>> {
    let body = match body {
        IpAllowlistBody::List(list) => list,
        IpAllowlistBody::Document(doc) => doc.security.ip_whitelist,
    };
    let tenant = auth.tenant().to_string();
    crate::services::tenants::set_ip_allowlist(
        &state,
        &auth.principal,
        &ctx,
        &tenant,
        body.enabled,
        body.allowed_ips,
    )
    .await?;
    Ok(axum::Json(load(&state, &tenant).await?))
}
