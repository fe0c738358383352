//! The fleet's shared count of each rate limit's window (`rate_windows`): an instance leases a
//! share of a window's budget, and the database grants no more than is left, so the fleet
//! together never admits more than the limit. See [`crate::fleet::leases`] for the in-memory
//! side.

use sqlx::PgPool;

/// How much of the window's budget was granted now, and how much the fleet has leased in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Granted by this call (0: the window is spent).
    pub granted: u64,
    /// Leased by every instance in this window, this grant included.
    pub leased: u64,
}

/// Leases up to `want` of the `limit` of `scope`'s window starting at Unix second `window`.
pub async fn lease(
    pool: &PgPool,
    scope: &str,
    window: i64,
    want: u64,
    limit: u64,
) -> Result<Granted, sqlx::Error> {
    let (granted, leased): (i64, i64) =
        sqlx::query_as("SELECT granted, leased FROM lease_rate_window($1, $2, $3, $4)")
            .bind(scope)
            .bind(window)
            .bind(want.min(i64::MAX as u64) as i64)
            .bind(limit.min(i64::MAX as u64) as i64)
            .fetch_one(pool)
            .await?;
    Ok(Granted { granted: granted.max(0) as u64, leased: leased.max(0) as u64 })
}

/// Deletes the rows of windows that ended: per-minute windows (every scope but a tenant's
/// control-API limits) started before `minutes_before`, a tenant's (at most a day long)
/// before `days_before`. Unix seconds.
pub async fn prune(pool: &PgPool, minutes_before: i64, days_before: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM rate_windows WHERE window_start < $1 \
         AND (scope NOT LIKE 'tenant:%' OR window_start < $2)",
    )
    .bind(minutes_before)
    .bind(days_before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Prunes ended windows every minute until `shutdown`, so the table holds about the last
/// few minutes of each active limit (and a day of tenants' windows).
pub fn spawn_pruner(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if let Err(e) = prune(&pool, now - 300, now - 2 * 86_400).await {
                tracing::warn!(error = %e, "cannot prune rate windows");
            }
        }
    });
}
