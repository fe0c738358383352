//! Reads of `sub_accounts` (see [`crate::sub_accounts`]).

use sqlx::types::Json;
use sqlx::PgPool;
use time::OffsetDateTime;

/// A sub-account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubAccountRow {
    /// Id, `sub_…`.
    pub sub_account_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// `active`, `disabled` or `deleted`.
    pub status: String,
    /// LLM-token quota of all its keys together.
    pub quota_limit: Option<i64>,
    /// The quota's window (`day`, `month`); none: lifetime.
    pub quota_period: Option<String>,
    /// Permissions.
    pub permissions: Json<Vec<String>>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Position of its creation (the listing's cursor).
    pub created_position: i64,
}

const COLUMNS: &str =
    "sub_account_id, tenant_id, name, role, status, quota_limit, quota_period, permissions, \
                       created_at, updated_at, created_position";

/// Sub-account `id` of the tenant.
pub async fn get(pool: &PgPool, tenant_id: &str, id: &str) -> Result<Option<SubAccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sub_accounts WHERE sub_account_id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}

/// Up to `limit` of the tenant's sub-accounts created after position `after`, oldest first,
/// with status `status` when given.
pub async fn page(
    pool: &PgPool,
    tenant_id: &str,
    after: i64,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<SubAccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sub_accounts WHERE tenant_id = $1 AND created_position > $2 \
         AND ($3::text IS NULL OR status = $3) ORDER BY created_position LIMIT $4"
    ))
    .bind(tenant_id)
    .bind(after)
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many sub-accounts of the tenant are not deleted.
pub async fn count_live(pool: &PgPool, tenant_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM sub_accounts WHERE tenant_id = $1 AND status <> 'deleted'")
        .bind(tenant_id)
        .fetch_one(pool)
        .await
}

/// Whether a sub-account of the tenant that is not deleted has role `role`.
pub async fn role_in_use(pool: &PgPool, tenant_id: &str, role: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sub_accounts WHERE tenant_id = $1 AND role = $2 AND status <> 'deleted')",
    )
    .bind(tenant_id)
    .bind(role)
    .fetch_one(pool)
    .await
}

/// The names of the sub-accounts `ids` (of `tenant_id` only, when given): (id, name).
pub async fn names(
    pool: &PgPool,
    tenant_id: Option<&str>,
    ids: &[String],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sub_account_id, name FROM sub_accounts WHERE sub_account_id = ANY($1) \
         AND ($2::text IS NULL OR tenant_id = $2)",
    )
    .bind(ids)
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}
