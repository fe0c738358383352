//! People's sessions (`user_sessions`): created at sign-in, found by the SHA-256 of the cookie
//! value (the value itself is never stored), ended by logout, password change, disable, an idle
//! timeout or an absolute lifetime.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

/// Prefix of session cookie values.
pub const SESSION_PREFIX: &str = "ths_";

/// A new session's secrets, shown once (as cookies).
#[derive(Clone)]
pub struct NewSession {
    /// The `tokenhub_session` cookie value.
    pub token: String,
    /// The `tokenhub_csrf` cookie value, to send back in `X-CSRF-Token`.
    pub csrf: String,
    /// When it ends at the latest.
    pub absolute_expires: OffsetDateTime,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession").field("absolute_expires", &self.absolute_expires).finish_non_exhaustive()
    }
}

/// A live session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    /// Its id (the hash; safe to show and to use in `DELETE /auth/sessions/{id}`).
    pub id_hash: Vec<u8>,
    /// Hash of its CSRF token.
    pub csrf_hash: Vec<u8>,
    /// The user.
    pub user_id: String,
    /// When it ends at the latest.
    pub absolute_expires: OffsetDateTime,
    /// Its last request.
    pub last_seen_at: OffsetDateTime,
}

/// SHA-256 of a cookie value or CSRF token.
pub fn digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Starts a session for `user_id`.
pub async fn create(
    pool: &PgPool,
    user_id: &str,
    absolute: Duration,
    user_agent: &str,
    source_ip: &str,
) -> Result<NewSession, sqlx::Error> {
    let token = format!("{SESSION_PREFIX}{}", crate::crypto::random_alphanumeric(43));
    let csrf = crate::crypto::random_alphanumeric(32);
    let absolute_expires = OffsetDateTime::now_utc() + absolute;
    sqlx::query(
        "INSERT INTO user_sessions (id_hash, csrf_hash, user_id, absolute_expires, user_agent, source_ip) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(digest(&token))
    .bind(digest(&csrf))
    .bind(user_id)
    .bind(absolute_expires)
    .bind(user_agent)
    .bind(source_ip)
    .execute(pool)
    .await?;
    Ok(NewSession { token, csrf, absolute_expires })
}

/// The live session of cookie value `token` (not past its idle timeout nor its absolute
/// end), marked as seen now.
pub async fn touch(pool: &PgPool, token: &str, idle: Duration) -> Result<Option<Session>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE user_sessions SET last_seen_at = now() \
         WHERE id_hash = $1 AND absolute_expires > now() AND last_seen_at > now() - make_interval(secs => $2) \
         RETURNING id_hash, csrf_hash, user_id, absolute_expires, last_seen_at",
    )
    .bind(digest(token))
    .bind(idle.as_secs_f64())
    .fetch_optional(pool)
    .await
}

/// Which of the sessions `ids` are live (not past their idle timeout nor their absolute end),
/// with their person: one query for all of them.
pub async fn live_among(
    pool: &PgPool,
    ids: &[Vec<u8>],
    idle: Duration,
) -> Result<Vec<(Vec<u8>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id_hash, user_id FROM user_sessions \
         WHERE id_hash = ANY($1) AND absolute_expires > now() AND last_seen_at > now() - make_interval(secs => $2)",
    )
    .bind(ids)
    .bind(idle.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Ends the session with id (hash) `id_hash`.
pub async fn end(pool: &PgPool, id_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM user_sessions WHERE id_hash = $1").bind(id_hash).execute(pool).await.map(drop)
}

/// A session as its owner sees it in `GET /auth/sessions`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionListing {
    /// Its id (the hash of the cookie value).
    pub id_hash: Vec<u8>,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// Its last request.
    pub last_seen_at: OffsetDateTime,
    /// When it ends at the latest.
    pub absolute_expires: OffsetDateTime,
    /// The browser that started it.
    pub user_agent: String,
    /// The address that started it.
    pub source_ip: String,
}

/// The live sessions of `user_id`, newest first (at most 100).
pub async fn list(pool: &PgPool, user_id: &str, idle: Duration) -> Result<Vec<SessionListing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id_hash, created_at, last_seen_at, absolute_expires, user_agent, source_ip FROM user_sessions \
         WHERE user_id = $1 AND absolute_expires > now() AND last_seen_at > now() - make_interval(secs => $2) \
         ORDER BY created_at DESC LIMIT 100",
    )
    .bind(user_id)
    .bind(idle.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Ends `user_id`'s session `id_hash`; false when it has no such session.
pub async fn end_own(pool: &PgPool, user_id: &str, id_hash: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM user_sessions WHERE id_hash = $1 AND user_id = $2")
        .bind(id_hash)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends every session of `user_id` except `keep` (password changed, user disabled); returns
/// how many ended.
pub async fn end_all_but(pool: &PgPool, user_id: &str, keep: Option<&[u8]>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM user_sessions WHERE user_id = $1 AND id_hash IS DISTINCT FROM $2")
        .bind(user_id)
        .bind(keep)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes what sign-in leaves behind once it is over: sessions past their absolute end or
/// idle timeout, spent or expired TOTP challenges, unanswered OpenID sign-ins, and failure
/// counts of accounts quiet for a day. Returns how many rows went.
pub async fn prune(pool: &PgPool, idle: Duration) -> Result<u64, sqlx::Error> {
    let mut deleted = sqlx::query(
        "DELETE FROM user_sessions WHERE absolute_expires < now() OR last_seen_at < now() - make_interval(secs => $1)",
    )
    .bind(idle.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    for statement in [
        "DELETE FROM mfa_challenges WHERE expires_at < now()",
        "DELETE FROM oidc_logins WHERE expires_at < now()",
        "DELETE FROM sign_in_locks WHERE last_failure_at < now() - interval '1 day' \
         AND (locked_until IS NULL OR locked_until < now())",
    ] {
        deleted += sqlx::query(statement).execute(pool).await?.rows_affected();
    }
    Ok(deleted)
}

/// Runs [`prune`] every 10 minutes until `shutdown`.
pub fn spawn_pruner(pool: PgPool, idle: Duration, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        loop {
            match prune(&pool, idle).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned ended sessions and sign-ins"),
                Err(e) => tracing::warn!(error = %e, "cannot prune ended sessions"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
        }
    });
}
