//! A tenant's or a key's state as it was at a chosen moment, rebuilt from the event log:
//! `/audit/state` (super admin, `auditor`) and `/tenant/audit/state` (tenant admins, their
//! own tenant and its keys only; anything else is 404, as if it did not exist).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ReadAudit, ReadTenantAudit};
use crate::error::Code;
use crate::http::api_keys_admin::key_as_of;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::http::keys::KeyView;
use crate::http::tenants_admin::tenant_as_of;
use crate::http::views::TenantView;
use crate::http::AppState;

/// Aggregates whose past state can be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateAggregate {
    /// A tenant (`ten_…`).
    Tenant,
    /// An API key (its public id).
    ApiKey,
}

/// Which aggregate, and when.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// `tenant` or `api_key`.
    #[param(inline)]
    pub aggregate_type: StateAggregate,
    /// The tenant id or the key's public id, 1 to 128 characters.
    pub aggregate_id: String,
    /// The moment (RFC 3339): the state after the last event recorded at or before it.
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    pub as_of: OffsetDateTime,
}

/// The state of one aggregate at a past moment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "aggregate_type", content = "state", rename_all = "snake_case")]
pub enum PastState {
    /// A tenant, as `GET /admin/tenants/{id}` would have shown it.
    Tenant(Box<TenantView>),
    /// A key, as `GET /admin/api-keys/{public_id}` would have shown it (no secret, no hash).
    ApiKey(Box<KeyView>),
}

async fn state_of(state: &AppState, q: &StateQuery, tenant: Option<&str>) -> ApiResult<PastState> {
    if q.aggregate_id.is_empty() || q.aggregate_id.len() > 128 {
        return Err(ApiError::new(Code::InvalidQuery, "aggregate_id must be 1 to 128 characters"));
    }
    match q.aggregate_type {
        StateAggregate::Tenant => {
            if tenant.is_some_and(|t| t != q.aggregate_id) {
                return Err(ApiError::new(Code::TenantNotFound, "tenant not found"));
            }
            Ok(PastState::Tenant(Box::new(tenant_as_of(state, &q.aggregate_id, q.as_of).await?)))
        }
        StateAggregate::ApiKey => {
            let key = key_as_of(state, &q.aggregate_id, q.as_of).await?;
            if tenant.is_some_and(|t| key.tenant_id.as_deref() != Some(t)) {
                return Err(ApiError::new(Code::ApiKeyNotFound, "api key not found"));
            }
            Ok(PastState::ApiKey(Box::new(key)))
        }
    }
}

/// A tenant's or key's state as it was at `as_of`, rebuilt from the event log (any tenant).
#[utoipa::path(get, path = "/audit/state", tag = "audit",
    params(StateQuery),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = PastState),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`, `api_key_not_found` (also: not yet created at `as_of`)"),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn audit_state(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
    Query(q): Query<StateQuery>,
) -> ApiResult<axum::Json<PastState>> {
    Ok(axum::Json(state_of(&state, &q, None).await?))
}

/// The caller's tenant, or one of its keys, as it was at `as_of`.
#[utoipa::path(get, path = "/tenant/audit/state", tag = "audit",
    params(StateQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = PastState),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`, `api_key_not_found` (also another tenant's, or not yet created at `as_of`)"),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_audit_state(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantAudit>,
    Query(q): Query<StateQuery>,
) -> ApiResult<axum::Json<PastState>> {
    Ok(axum::Json(state_of(&state, &q, Some(auth.tenant())).await?))
}
