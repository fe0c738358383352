//! A follower's position in the log (`checkpoints`, one row per name).

use sqlx::PgExecutor;

/// The position of checkpoint `name`, created at 0 the first time.
pub async fn load<'e>(executor: impl PgExecutor<'e>, name: &str) -> Result<i64, sqlx::Error> {
    // One statement: the row it inserts, or the one that was there (the outer SELECT does not
    // see the insert of its own statement).
    sqlx::query_scalar(
        "WITH created AS (INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING \
         RETURNING position) \
         SELECT position FROM created UNION ALL SELECT position FROM checkpoints WHERE name = $1 LIMIT 1",
    )
    .bind(name)
    .fetch_one(executor)
    .await
}

/// Stores `position` as checkpoint `name`.
pub async fn store<'e>(executor: impl PgExecutor<'e>, name: &str, position: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE checkpoints SET position = $2, updated_at = now() WHERE name = $1")
        .bind(name)
        .bind(position)
        .execute(executor)
        .await?;
    Ok(())
}
