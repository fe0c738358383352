//! `last_used_at`, written in batches: verification only stamps an atomic in the cached key;
//! this task writes the keys whose stamp moved, every few seconds and at shutdown. Several
//! instances write the latest stamp (`GREATEST`). Eventually consistent by design.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::KeyCache;

/// How often stamps are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Writes every stamp that moved since the last flush; returns how many. A stamp counts as
/// written only once the write committed: after a failed one the next flush writes it again.
pub async fn flush(cache: &KeyCache, pool: &PgPool) -> Result<usize, sqlx::Error> {
    // The keys whose stamp moved, with the stamp seen now.
    let mut moved = Vec::new();
    for entry in cache.keys.iter() {
        let used = entry.last_used.load(Ordering::Relaxed);
        if used > entry.flushed.load(Ordering::Relaxed) {
            if let Ok(at) = OffsetDateTime::from_unix_timestamp(used) {
                moved.push((Arc::clone(entry.value()), used, at));
            }
        }
    }
    if moved.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = moved.iter().map(|(key, _, _)| &*key.public_id).collect();
    let stamps: Vec<OffsetDateTime> = moved.iter().map(|(_, _, at)| *at).collect();
    sqlx::query(
        "INSERT INTO api_key_last_used (public_id, last_used_at) SELECT * FROM UNNEST($1::text[], $2::timestamptz[]) \
         ON CONFLICT (public_id) DO UPDATE SET last_used_at = GREATEST(api_key_last_used.last_used_at, excluded.last_used_at)",
    )
    .bind(&ids)
    .bind(&stamps)
    .execute(pool)
    .await?;
    for (key, used, _) in &moved {
        key.flushed.fetch_max(*used, Ordering::Relaxed);
    }
    Ok(moved.len())
}

/// Flushes every [`FLUSH_INTERVAL`] and once more at shutdown; the task ends after that last
/// flush (await it before the process exits).
pub fn spawn_flusher(
    cache: Arc<KeyCache>,
    pool: PgPool,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tokio::time::sleep(FLUSH_INTERVAL) => false,
            };
            if let Err(e) = flush(&cache, &pool).await {
                tracing::warn!(error = %e, "cannot write last_used_at; will retry");
            }
            if stop {
                return;
            }
        }
    })
}
