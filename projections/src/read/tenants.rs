//! Reads of `tenants` (see [`crate::tenants`]): one tenant's settings, limits and
//! configuration, and the overrides every instance refreshes.

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
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

/// A tenant as the listings show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    /// Id.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Plan.
    pub plan: String,
    /// Region.
    pub region: String,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    /// Effective limits (plan defaults with overrides).
    pub limits: Value,
    /// Overrides set by an admin.
    pub limit_overrides: Value,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Number of events of the tenant (its aggregate version).
    pub version: i64,
}

const ROW_COLUMNS: &str =
    "tenant_id, name, plan, region, status, limits, limit_overrides, created_at, updated_at, version";

/// The tenant `tenant_id`.
pub async fn get(pool: &PgPool, tenant_id: &str) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {ROW_COLUMNS} FROM tenants WHERE tenant_id = $1"))
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// Which tenants a page holds.
#[derive(Debug, Default)]
pub struct TenantPage<'a> {
    /// Only this status.
    pub status: Option<&'a str>,
    /// Only this plan.
    pub plan: Option<&'a str>,
    /// The tenant with this id, or those whose name holds it (case-insensitive).
    pub search: Option<&'a str>,
    /// Tenants created after this position.
    pub after: i64,
    /// At most this many.
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct PageRow {
    created_position: i64,
    #[sqlx(flatten)]
    row: TenantRow,
}

/// The tenants of `page`, oldest first, and the last position returned (`page.after` when
/// none).
pub async fn page(pool: &PgPool, page: &TenantPage<'_>) -> Result<(Vec<TenantRow>, i64), sqlx::Error> {
    // The search is a substring of the name: LIKE's own characters are taken literally.
    let pattern = page.search.map(|q| {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows: Vec<PageRow> = sqlx::query_as(&format!(
        "SELECT created_position, {ROW_COLUMNS} FROM tenants \
         WHERE created_position > $1 AND ($2::text IS NULL OR status = $2) \
         AND ($4::text IS NULL OR plan = $4) \
         AND ($5::text IS NULL OR tenant_id = $6 OR name ILIKE $5) \
         ORDER BY created_position LIMIT $3"
    ))
    .bind(page.after)
    .bind(page.status)
    .bind(page.limit)
    .bind(page.plan)
    .bind(pattern)
    .bind(page.search)
    .fetch_all(pool)
    .await?;
    let last = rows.last().map(|r| r.created_position).unwrap_or(page.after);
    Ok((rows.into_iter().map(|r| r.row).collect(), last))
}

/// The names and effective monthly LLM-token quotas (`None`: unlimited) of the tenants `ids`
/// that exist: (id, name, quota).
pub async fn names_and_monthly_quotas(
    pool: &PgPool,
    ids: &[String],
) -> Result<Vec<(String, String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, name, (limits->>'monthly_token_quota')::bigint FROM tenants WHERE tenant_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}
