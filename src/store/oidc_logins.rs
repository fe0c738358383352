//! Sign-ins waiting for an OpenID provider's answer (`oidc_logins`): keyed by the SHA-256 of
//! `state`, bound to the starting browser (SHA-256 of the `tokenhub_oidc` cookie), with the
//! nonce and the PKCE verifier (sealed under the KEK). Ten minutes; taken once.

use sqlx::PgPool;

use crate::crypto::SecretKey;
use crate::store::sessions::digest;

/// Lifetime, in seconds.
pub const LIFETIME_SECONDS: i64 = 600;

/// A pending sign-in, as the callback needs it.
pub struct Pending {
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
}

fn aad(state: &str) -> Vec<u8> {
    format!("tokenhub:oidc:{state}").into_bytes()
}

/// Records a sign-in started at `provider`.
pub async fn create(
    pool: &PgPool,
    kek: &SecretKey,
    state: &str,
    provider: &str,
    binding: &str,
    nonce: &str,
    verifier: &str,
) -> Result<(), sqlx::Error> {
    let (verifier_nonce, verifier_sealed) =
        kek.seal(&aad(state), verifier.as_bytes()).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(
        "INSERT INTO oidc_logins (state_hash, provider, binding_hash, nonce, verifier_nonce, verifier_sealed, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
    )
    .bind(digest(state))
    .bind(provider)
    .bind(digest(binding))
    .bind(nonce)
    .bind(verifier_nonce)
    .bind(verifier_sealed)
    .bind(LIFETIME_SECONDS as f64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes (once) the live sign-in of `state` at `provider` started by the browser holding
/// `binding`.
pub async fn take(
    pool: &PgPool,
    kek: &SecretKey,
    state: &str,
    provider: &str,
    binding: &str,
) -> Result<Option<Pending>, sqlx::Error> {
    let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "DELETE FROM oidc_logins WHERE state_hash = $1 AND provider = $2 AND binding_hash = $3 AND expires_at > now() \
         RETURNING nonce, verifier_nonce, verifier_sealed",
    )
    .bind(digest(state))
    .bind(provider)
    .bind(digest(binding))
    .fetch_optional(pool)
    .await?;
    let Some((nonce, verifier_nonce, sealed)) = row else { return Ok(None) };
    let Ok(verifier) = kek.open(&aad(state), &verifier_nonce, &sealed) else { return Ok(None) };
    Ok(String::from_utf8(verifier).ok().map(|verifier| Pending { nonce, verifier }))
}
