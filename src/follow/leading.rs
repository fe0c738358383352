//! Followers that only one instance runs at a time (the relay, the webhook sender): the
//! leader holds a PostgreSQL advisory lock on a dedicated connection
//! ([`crate::store::leader`]); the others wait and take over when its connection goes away.
//! [`run`] is the loop they share: compete for the lock, work while holding it, and after a
//! failure let go, wait (200 ms, doubling to 5 s) and compete again, saying in the log when
//! the follower is stuck (three failures in a row without progress). [`hold`] is that loop
//! for a leadership that is only a flag (the projection runner's).

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why leading stopped.
pub type LeadError = Box<dyn std::error::Error + Send + Sync>;

/// A follower that works only while it holds its lock; it keeps only its own step.
pub trait Leading: Send {
    /// The name of its lock (one leader per name across the fleet).
    fn lock_key(&self) -> String;

    /// What it is, in the log (`relay`, `webhook worker`).
    fn name(&self) -> &'static str;

    /// What an operator should check when it is stuck.
    fn remedy(&self) -> &'static str;

    /// How far it has got (progress since the last failure starts the count again).
    fn progress(&self) -> i64;

    /// Works as the leader on `leader` (the connection holding the lock) until `shutdown`
    /// (`Ok`) or a failure.
    fn lead(
        &mut self,
        leader: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Result<(), LeadError>> + Send;
}

/// Runs `follower` until `shutdown`: leads whenever it holds the lock, retries after failures.
pub async fn run<L: Leading>(mut follower: L, pool: PgPool, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    let mut failures = 0u32;
    let mut reached = follower.progress();
    while !shutdown.is_cancelled() {
        let outcome = match crate::store::leader::acquire(&pool, &follower.lock_key(), &shutdown).await {
            Ok(None) => return,
            Ok(Some(mut leader)) => {
                let outcome = follower.lead(&mut leader, &shutdown).await;
                let _ = leader.close().await;
                outcome
            }
            Err(e) => Err(e.into()),
        };
        let Err(e) = outcome else { return };
        // Consecutive failures: progress since the last one starts the count again.
        let now_at = follower.progress();
        failures = if now_at > reached { 1 } else { failures + 1 };
        reached = now_at;
        let retry_in_ms = backoff.as_millis() as u64;
        let name = follower.name();
        if failures < 3 {
            tracing::warn!(error = %e, retry_in_ms, "{name} interrupted");
        } else {
            tracing::error!(error = %e, failures, retry_in_ms, remedy = follower.remedy(), "{name} stuck");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// How often a [`hold`]er checks that the connection holding its lock still answers.
const HOLD_CHECK: Duration = Duration::from_secs(1);

/// Competes for the lock `lock` until `shutdown`; the receiver says whether this process
/// holds it (logged as "this instance `doing`"). A killed holder's lock goes with its connection, and another instance takes it
/// within [`crate::store::leader::RETRY`].
pub fn hold(
    pool: PgPool,
    lock: &'static str,
    doing: &'static str,
    shutdown: CancellationToken,
) -> watch::Receiver<bool> {
    let (held, rx) = watch::channel(false);
    tokio::spawn(run(Holding { lock, doing, held }, pool, shutdown));
    rx
}

/// A leadership whose work is done elsewhere: while it lasts, the flag is set.
struct Holding {
    lock: &'static str,
    doing: &'static str,
    held: watch::Sender<bool>,
}

impl Leading for Holding {
    fn lock_key(&self) -> String {
        self.lock.to_string()
    }

    fn name(&self) -> &'static str {
        self.lock
    }

    fn remedy(&self) -> &'static str {
        "check that PostgreSQL answers"
    }

    fn progress(&self) -> i64 {
        0
    }

    async fn lead(
        &mut self,
        leader: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), LeadError> {
        tracing::info!(lock = self.lock, "this instance {}", self.doing);
        self.held.send_replace(true);
        let outcome = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = tokio::time::sleep(HOLD_CHECK) => {}
            }
            // The lock lives on this connection: if it is gone, so is the lead.
            if let Err(e) = sqlx::query("SELECT 1").execute(&mut *leader).await {
                break Err(format!("the connection holding the lead failed: {e}").into());
            }
        };
        self.held.send_replace(false);
        outcome
    }
}
