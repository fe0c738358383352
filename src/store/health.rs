//! Whether PostgreSQL answers, known without waiting for a request to find out: a probe asks
//! every [`PROBE_EVERY`] (bounded by [`PROBE_TIMEOUT`]); while it fails, the HTTP layer cuts
//! every request at [`FAIL_FAST`] (503 `service_unavailable` with `Retry-After`) instead of
//! letting it wait the pool's full acquire timeout. Requests that need no database (verify,
//! usage reports: memory and JetStream) still finish in time and are answered as usual.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the probe asks.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long one probe may take before the database counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest a request waits while the database is known down.
pub const FAIL_FAST: Duration = Duration::from_millis(500);

/// The probe's last finding.
#[derive(Debug, Default)]
pub struct DbHealth {
    down: AtomicBool,
}

impl DbHealth {
    /// True while the last probe failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Probes `pool` every [`PROBE_EVERY`] until `shutdown` (a background task).
    pub async fn probe(self: Arc<Self>, pool: PgPool, shutdown: CancellationToken) {
        let probe = self;
        {
            let mut every = tokio::time::interval(PROBE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                let answered = tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&pool))
                    .await
                    .is_ok_and(|r| r.is_ok());
                let was_down = probe.down.swap(!answered, Ordering::Relaxed);
                if was_down == answered {
                    if answered {
                        tracing::warn!("PostgreSQL answers again");
                    } else {
                        tracing::error!(
                            "PostgreSQL does not answer: requests that need it fail fast (503) until it does"
                        );
                    }
                }
                metrics::gauge!("tokenhub_database_up").set(if answered { 1.0 } else { 0.0 });
            }
        }
    }
}
