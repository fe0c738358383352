//! Reads of `secrets` (see [`crate::secrets`]): listings, the state of one name, the sealed
//! value of the current version.

use sqlx::PgPool;
use time::OffsetDateTime;

/// One live secret's metadata.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretMeta {
    /// Name.
    pub name: String,
    /// Latest version.
    pub version: i64,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// The current version of a live secret, sealed under the tenant's data key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedSecret {
    /// Version (part of the value's associated data).
    pub version: i64,
    /// Nonce, base64.
    pub nonce: String,
    /// Ciphertext, base64.
    pub ciphertext: String,
}

/// The tenant's live secrets, by name.
pub async fn list(pool: &PgPool, tenant_id: &str) -> Result<Vec<SecretMeta>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, version, updated_at FROM secrets WHERE tenant_id = $1 AND NOT deleted ORDER BY name",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// The names of the tenant's live secrets.
pub async fn names(pool: &PgPool, tenant_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM secrets WHERE tenant_id = $1 AND NOT deleted")
        .bind(tenant_id)
        .fetch_all(pool)
        .await
}

/// How many live secrets the tenant has.
pub async fn count_live(pool: &PgPool, tenant_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM secrets WHERE tenant_id = $1 AND NOT deleted")
        .bind(tenant_id)
        .fetch_one(pool)
        .await
}

/// The last version stored under `name` and whether it is deleted (`None`: never stored).
pub async fn last_version(
    pool: &PgPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<(i64, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT version, deleted FROM secrets WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// The sealed current value of live secret `name`.
pub async fn sealed(pool: &PgPool, tenant_id: &str, name: &str) -> Result<Option<SealedSecret>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, nonce, ciphertext FROM secrets WHERE tenant_id = $1 AND name = $2 AND NOT deleted",
    )
    .bind(tenant_id)
    .bind(name)
    .fetch_optional(pool)
    .await
}
