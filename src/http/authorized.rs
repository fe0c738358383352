//! The `Authorized<requires::X>` extractor: authenticates (see [`crate::http::authenticate`]),
//! asks the pure decision [`crate::auth::authorize`], resolves the tenant a tenant-scoped
//! action acts on, and applies the tenant's control-API rate limit to its own keys.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::authorize::Requires;
use crate::auth::{authorize, Action, Principal};
use crate::error::Code;
use crate::http::error::ApiError;
use crate::http::AppState;

/// An authenticated and authorized caller of a route needing `R::ACTION`.
#[derive(Debug, Clone)]
pub struct Authorized<R: Requires> {
    /// Who.
    pub principal: Principal,
    /// The tenant acted on, for tenant-scoped actions.
    pub tenant_id: Option<String>,
    _action: PhantomData<R>,
}

impl<R: Requires> Authorized<R> {
    /// The tenant acted on (empty for platform actions, which never call this).
    pub fn tenant(&self) -> &str {
        self.tenant_id.as_deref().unwrap_or_default()
    }
}

impl<R: Requires> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        authorize(&principal, R::ACTION)?;
        let tenant_id =
            if R::ACTION.tenant_scoped() { Some(acted_on_tenant(&principal, parts, state)?) } else { None };
        // The tenant's own keys are rate limited on its routes; platform principals are not.
        if let (Principal::TenantKey { .. }, Some(tenant)) = (&principal, &tenant_id) {
            let slot = parts.extensions.get::<crate::http::rate_limit::RateSlot>();
            // The tenant's own `rateLimit` never blocks the routes that undo it.
            let own = !matches!(R::ACTION, Action::ReadTenantConfig | Action::ManageTenantConfig);
            crate::http::rate_limit::check(slot, &state.rate_limiter, tenant, own).await?;
        }
        Ok(Self { principal, tenant_id, _action: PhantomData })
    }
}

/// The tenant a tenant-scoped request acts on: the key's own tenant, or the one the super
/// admin names in `X-Tenant-ID`.
fn acted_on_tenant(principal: &Principal, parts: &Parts, state: &AppState) -> Result<String, ApiError> {
    // Present but empty still names a tenant (none): a tenant key gets `tenant_mismatch`,
    // the super admin `tenant_not_found`.
    let named = parts.headers.get("x-tenant-id").map(|v| v.to_str().unwrap_or_default().trim().to_string());
    match (principal, named) {
        (Principal::TenantKey { tenant_id, .. }, Some(named)) if named != *tenant_id => {
            Err(ApiError::new(Code::TenantMismatch, "X-Tenant-ID names another tenant"))
        }
        (Principal::TenantKey { tenant_id, .. }, _) => Ok(tenant_id.clone()),
        (_, Some(named)) => {
            if !tokenhub_aggregates::ids::is_tenant_id(&named) || state.keys.tenant_status(&named).is_none() {
                return Err(ApiError::new(Code::TenantNotFound, "tenant not found"));
            }
            principal.may_act_for(&named)?;
            Ok(named)
        }
        (_, None) => {
            Err(ApiError::new(Code::TenantIdRequired, "name the tenant in X-Tenant-ID on /tenant routes"))
        }
    }
}
