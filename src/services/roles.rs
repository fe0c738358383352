//! Role rules below HTTP: whether a role exists in a tenant, and the per-tenant cap on roles
//! (`TENANT_MAX_ROLES`).

use sqlx::PgPool;
use tokenhub_aggregates::sub_account::is_role_name;

use crate::http::code::Code;
use crate::http::error::{ApiError, ApiResult};
use crate::services::caps;

/// The permissions of role `name` in `tenant_id`, if it exists.
pub async fn role_permissions(pool: &PgPool, tenant_id: &str, name: &str) -> ApiResult<Option<Vec<String>>> {
    let row: Option<sqlx::types::Json<Vec<String>>> =
        sqlx::query_scalar("SELECT permissions FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|p| p.0))
}

/// 422 `role_not_found` unless role `name` exists in `tenant_id`.
pub async fn require_role(pool: &PgPool, tenant_id: &str, name: &str) -> ApiResult<()> {
    if !is_role_name(name) || role_permissions(pool, tenant_id, name).await?.is_none() {
        return Err(ApiError::new(Code::UnknownRole, format!("role '{name}' does not exist in this tenant")));
    }
    Ok(())
}

/// 409 `role_limit_reached` when `tenant_id` already has `max` roles.
pub async fn check_role_cap(pool: &PgPool, tenant_id: &str, max: i64) -> ApiResult<()> {
    caps::ensure_below(
        pool,
        tenant_id,
        "SELECT count(*) FROM roles WHERE tenant_id = $1",
        max,
        Code::RoleLimitReached,
        |n| format!("the tenant has {n} roles, the most allowed (TENANT_MAX_ROLES); delete one first"),
    )
    .await
}
