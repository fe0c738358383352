//! Server-wide settings shared by every instance through the `settings` table.

use sqlx::PgPool;

/// Setting name of the generated master key's argon2id hash.
pub const MASTER_KEY_HASH: &str = "master_key_hash";
/// Setting name of the generated key-hash pepper.
pub const KEY_PEPPER: &str = "key_pepper";

/// The value of `name`, if set.
pub async fn get(pool: &PgPool, name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_optional(pool).await
}

/// Stores `value` unless `name` is already set; returns true when this call stored it.
pub async fn insert_if_absent(pool: &PgPool, name: &str, value: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets `name` to `value`.
pub async fn put(pool: &PgPool, name: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now()",
    )
    .bind(name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}
