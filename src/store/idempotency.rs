//! Idempotency records of creates (`idempotency_requests`): claim a key before the command
//! runs, mark it committed in the command's own transaction, keep the (sealed) answer.
//!
//! The commit marker is what makes a retry safe after a crash: the repository writes it in
//! the transaction of the events ([`mark_committed`]), so a claim whose first request died is
//! either uncommitted (nothing happened: the retry runs again) or committed (the retry must
//! not create again). No HTTP types here: the answer is opaque sealed bytes.

use std::future::Future;
use std::time::Duration;

use sqlx::PgPool;

/// How long a record (and so a replayable answer) is kept.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

tokio::task_local! {
    static CLAIMED: [u8; 32];
}

/// Runs `work` with the claim `scope` in force: every event transaction it commits marks
/// the claim committed.
pub async fn with_claim<F: Future>(scope: [u8; 32], work: F) -> F::Output {
    CLAIMED.scope(scope, work).await
}

/// The claim in force (if any): the event writer marks it committed inside the events'
/// transaction.
pub(crate) fn claim_in_force() -> Option<[u8; 32]> {
    CLAIMED.try_with(|s| *s).ok()
}

/// The sealed answer of a finished request.
#[derive(Debug, Clone)]
pub struct SealedAnswer {
    /// Id of the KEK that sealed it.
    pub kek_id: String,
    /// Nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext.
    pub ciphertext: Vec<u8>,
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// The caller owns the key now: run the request, then [`finish`].
    Owned,
    /// The request finished before: its answer.
    Answered(SealedAnswer),
    /// The key was used with another request.
    Mismatch,
    /// The first request is still running.
    InUse,
    /// The first request committed but its server stopped before keeping the answer.
    AnswerLost,
}

#[derive(sqlx::FromRow)]
struct Row {
    fingerprint: Vec<u8>,
    live: bool,
    committed: bool,
    kek_id: Option<String>,
    nonce: Option<Vec<u8>>,
    answer: Option<Vec<u8>>,
}

/// Claims `scope` for a request with `fingerprint`, for `lease` (the longest the request may
/// run). A record past [`KEEP`], or an uncommitted one whose lease ran out (its server died
/// before committing), is taken over.
pub async fn claim(
    pool: &PgPool,
    scope: &[u8; 32],
    fingerprint: &[u8; 32],
    lease: Duration,
) -> Result<Claim, sqlx::Error> {
    let taken: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO idempotency_requests (scope, fingerprint, lease_until) \
         VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) \
         ON CONFLICT (scope) DO UPDATE SET fingerprint = excluded.fingerprint, lease_until = excluded.lease_until, \
           committed = false, kek_id = NULL, nonce = NULL, answer = NULL, created_at = now() \
         WHERE idempotency_requests.created_at < clock_timestamp() - make_interval(secs => $4) \
            OR (NOT idempotency_requests.committed AND idempotency_requests.lease_until < clock_timestamp() \
                AND idempotency_requests.fingerprint = excluded.fingerprint) \
         RETURNING true",
    )
    .bind(&scope[..])
    .bind(&fingerprint[..])
    .bind(lease.as_secs_f64())
    .bind(KEEP.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    if taken.is_some() {
        return Ok(Claim::Owned);
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT fingerprint, lease_until >= clock_timestamp() AS live, committed, kek_id, nonce, answer \
         FROM idempotency_requests WHERE scope = $1",
    )
    .bind(&scope[..])
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        // Finished and released between the two statements: claim again.
        return Box::pin(claim(pool, scope, fingerprint, lease)).await;
    };
    Ok(match row {
        Row { fingerprint: f, .. } if f != fingerprint[..] => Claim::Mismatch,
        // A planned answer counts only once its command committed.
        Row {
            committed: true, kek_id: Some(kek_id), nonce: Some(nonce), answer: Some(ciphertext), ..
        } => Claim::Answered(SealedAnswer { kek_id, nonce, ciphertext }),
        Row { live: true, .. } => Claim::InUse,
        Row { committed: true, .. } => Claim::AnswerLost,
        // Uncommitted, lease over, same request: the insert above takes it over next time.
        Row { .. } => Claim::InUse,
    })
}

/// Ends an owned claim: a committed request keeps `answer`; an uncommitted one (refused,
/// nothing written) releases the key, so that a retry runs again.
pub async fn finish(
    pool: &PgPool,
    scope: &[u8; 32],
    answer: Option<&SealedAnswer>,
) -> Result<(), sqlx::Error> {
    let kept = match answer {
        Some(a) => sqlx::query(
            "UPDATE idempotency_requests SET kek_id = $2, nonce = $3, answer = $4 WHERE scope = $1 AND committed",
        )
        .bind(&scope[..])
        .bind(&a.kek_id)
        .bind(&a.nonce)
        .bind(&a.ciphertext)
        .execute(pool)
        .await?
        .rows_affected(),
        None => 0,
    };
    if kept == 0 {
        sqlx::query("DELETE FROM idempotency_requests WHERE scope = $1 AND NOT committed")
            .bind(&scope[..])
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Keeps the answer a request *will* give once its command commits, before the command runs:
/// the commit marker (written in the events' own statement) then finds it in place, so a
/// retry after a crash at any moment replays it (keys shown once included) instead of
/// answering `idempotency_answer_lost`. A refused command's claim is dropped with it
/// ([`finish`]).
pub async fn plan(pool: &PgPool, scope: &[u8; 32], answer: &SealedAnswer) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_requests SET kek_id = $2, nonce = $3, answer = $4 WHERE scope = $1 AND NOT committed",
    )
    .bind(&scope[..])
    .bind(&answer.kek_id)
    .bind(&answer.nonce)
    .bind(&answer.ciphertext)
    .execute(pool)
    .await
    .map(drop)
}

/// Deletes records older than [`KEEP`]; returns how many.
pub async fn prune(pool: &PgPool) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_requests WHERE created_at < now() - make_interval(secs => $1)")
        .bind(KEEP.as_secs_f64())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// Prunes expired records every hour until `shutdown`.
pub fn spawn_pruner(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        loop {
            match prune(&pool).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned idempotency records older than 24 h"),
                Err(e) => tracing::warn!(error = %e, "cannot prune idempotency records"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    });
}
