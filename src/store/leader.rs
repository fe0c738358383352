//! One leader at a time for a background reader (the relay, the webhook worker): a
//! PostgreSQL advisory lock held on a dedicated connection. Others wait and take over when the
//! leader's connection goes away (its process died, or it stopped).

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// How often a follower that does not lead asks for the lock again: a killed leader is
/// replaced within about this (a trivial query; a handful per second across a fleet).
pub const RETRY: Duration = Duration::from_millis(250);

/// Waits until this process holds the lock `name`; the connection that holds it (keep it
/// open while leading), or `None` on shutdown.
pub async fn acquire(
    pool: &PgPool,
    name: &str,
    shutdown: &CancellationToken,
) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut leader = pool.acquire().await?.detach();
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(name)
            .fetch_one(&mut leader)
            .await?;
        if got {
            return Ok(Some(leader));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
