//! The second step of a sign-in (`mfa_challenges`): after the first factor (password or an
//! OpenID provider), a short-lived `mfa_token` that a TOTP or recovery code turns into a
//! session. Stored by its SHA-256 only; five tries, five minutes, used once.

use sqlx::PgPool;

use crate::store::sessions::digest;

/// Prefix of `mfa_token` values.
pub const MFA_TOKEN_PREFIX: &str = "thm_";
/// Tries per challenge.
pub const MAX_ATTEMPTS: i32 = 5;
/// Lifetime, in seconds.
pub const LIFETIME_SECONDS: i64 = 300;

/// Starts a challenge for `user_id` whose first factor was `method` (`password`, `oidc`).
pub async fn create(pool: &PgPool, user_id: &str, method: &str) -> Result<String, sqlx::Error> {
    let token = format!("{MFA_TOKEN_PREFIX}{}", crate::crypto::random_alphanumeric(43));
    sqlx::query(
        "INSERT INTO mfa_challenges (token_hash, user_id, method, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(digest(&token))
    .bind(user_id)
    .bind(method)
    .bind(LIFETIME_SECONDS as f64)
    .execute(pool)
    .await?;
    Ok(token)
}

/// Spends one try of the live challenge of `token`: its (user id, first-factor method).
pub async fn attempt(pool: &PgPool, token: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    if !token.starts_with(MFA_TOKEN_PREFIX) || token.len() > 64 {
        return Ok(None);
    }
    sqlx::query_as(
        "UPDATE mfa_challenges SET attempts = attempts + 1 \
         WHERE token_hash = $1 AND expires_at > now() AND attempts < $2 RETURNING user_id, method",
    )
    .bind(digest(token))
    .bind(MAX_ATTEMPTS)
    .fetch_optional(pool)
    .await
}

/// Ends the challenge of `token` (it was answered); expired ones are pruned with the sessions.
pub async fn finish(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
        .bind(digest(token))
        .execute(pool)
        .await
        .map(drop)
}
