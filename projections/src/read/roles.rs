//! Reads of `roles` (see [`crate::roles`]).

use sqlx::types::Json;
use sqlx::PgPool;

/// A role.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    /// Name, unique in the tenant.
    pub name: String,
    /// Description.
    pub description: String,
    /// Permissions.
    pub permissions: Json<Vec<String>>,
}

/// The tenant's roles, by name.
pub async fn list(pool: &PgPool, tenant_id: &str) -> Result<Vec<RoleRow>, sqlx::Error> {
    sqlx::query_as("SELECT name, description, permissions FROM roles WHERE tenant_id = $1 ORDER BY name")
        .bind(tenant_id)
        .fetch_all(pool)
        .await
}

/// Role `name` of the tenant.
pub async fn get(pool: &PgPool, tenant_id: &str, name: &str) -> Result<Option<RoleRow>, sqlx::Error> {
    sqlx::query_as("SELECT name, description, permissions FROM roles WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// How many roles the tenant has.
pub async fn count(pool: &PgPool, tenant_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM roles WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(pool)
        .await
}
