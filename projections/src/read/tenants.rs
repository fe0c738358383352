//! Reads of `tenants` (see [`crate::tenants`]): one tenant's settings, limits and
//! configuration, and the overrides every instance refreshes.

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};
use tokenhub_aggregates::tenant::{Plan, ResourceLimit};

/// A plan limit of the tenant (`limits->>name`), if set.
pub async fn plan_limit(pool: &PgPool, tenant_id: &str, name: &str) -> Result<Option<i64>, sqlx::Error> {
    let limit: Option<Option<i64>> =
        sqlx::query_scalar("SELECT (limits->>$2)::bigint FROM tenants WHERE tenant_id = $1")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(limit.flatten())
}

/// The tenant's default role (`None`: no such tenant).
pub async fn default_role(pool: &PgPool, tenant_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT default_role FROM tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// Whether RBAC is on, and the default role (`None`: no such tenant).
pub async fn rbac(pool: &PgPool, tenant_id: &str) -> Result<Option<(bool, String)>, sqlx::Error> {
    sqlx::query_as("SELECT rbac_enabled, default_role FROM tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// Whether the tenant's people must use TOTP (`None`: no such tenant).
pub async fn require_2fa(pool: &PgPool, tenant_id: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT require_2fa FROM tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// The IP allowlist: on or off, and its networks (`None`: no such tenant).
pub async fn ip_allowlist(
    pool: &PgPool,
    tenant_id: &str,
) -> Result<Option<(bool, Vec<String>)>, sqlx::Error> {
    let row: Option<(bool, Json<Vec<String>>)> =
        sqlx::query_as("SELECT ip_allowlist_enabled, ip_allowlist FROM tenants WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(on, ips)| (on, ips.0)))
}

/// The configuration document and its version (`None`: no such tenant).
pub async fn config(pool: &PgPool, tenant_id: &str) -> Result<Option<(i64, Value)>, sqlx::Error> {
    sqlx::query_as("SELECT config_version, config FROM tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// The configuration document of a tenant that is not deleted.
pub async fn live_config<'e>(
    conn: impl PgExecutor<'e>,
    tenant_id: &str,
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT config FROM tenants WHERE tenant_id = $1 AND status <> 'deleted'")
        .bind(tenant_id)
        .fetch_optional(conn)
        .await
}

/// The plan and the resource limits (`None`: no such tenant).
pub async fn resource_limits(
    pool: &PgPool,
    tenant_id: &str,
) -> Result<Option<(Plan, Vec<ResourceLimit>)>, sqlx::Error> {
    let row: Option<(Json<Plan>, Json<Vec<ResourceLimit>>)> =
        sqlx::query_as("SELECT to_jsonb(plan), resource_limits FROM tenants WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(plan, limits)| (plan.0, limits.0)))
}

/// Every tenant with a rate limit of its own: (tenant, its configuration's `rateLimit`, the
/// operator's `requests_per_minute` override).
pub async fn rate_limit_overrides(
    pool: &PgPool,
) -> Result<Vec<(String, Option<Value>, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, config -> 'rateLimit', (limit_overrides ->> 'requests_per_minute')::bigint \
         FROM tenants WHERE config ? 'rateLimit' OR limit_overrides ? 'requests_per_minute'",
    )
    .fetch_all(pool)
    .await
}
