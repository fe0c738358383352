//! Sign-ins waiting for an OpenID provider's answer (`oidc_logins`): keyed by the SHA-256 of
//! `state`, bound to the starting browser (SHA-256 of the `tokenhub_oidc` cookie), with the
//! nonce and the PKCE verifier (sealed under the KEK), and what it is for ([`Intent`]). Ten
//! minutes; taken once.

use sqlx::PgPool;

use crate::crypto::SecretKey;
use crate::store::sessions::digest;

/// Lifetime, in seconds.
pub const LIFETIME_SECONDS: i64 = 600;

/// What a pending OpenID round trip is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Signing in with an identity linked to an account.
    SignIn,
    /// Linking the identity to this signed-in person.
    Link {
        /// The person.
        user_id: String,
    },
    /// Accepting the invite whose token hashes to this (the identity is linked too).
    Invite {
        /// SHA-256 of the invite token.
        invite_token_hash: String,
    },
}

impl Intent {
    fn columns(&self) -> (&'static str, Option<&str>, Option<&str>) {
        match self {
            Intent::SignIn => ("sign_in", None, None),
            Intent::Link { user_id } => ("link", Some(user_id), None),
            Intent::Invite { invite_token_hash } => ("invite", None, Some(invite_token_hash)),
        }
    }

    fn from_columns(intent: &str, user_id: Option<String>, invite: Option<String>) -> Option<Self> {
        match (intent, user_id, invite) {
            ("sign_in", None, None) => Some(Intent::SignIn),
            ("link", Some(user_id), None) => Some(Intent::Link { user_id }),
            ("invite", None, Some(invite_token_hash)) => Some(Intent::Invite { invite_token_hash }),
            _ => None,
        }
    }
}

/// A pending sign-in, as the callback needs it.
pub struct Pending {
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// What it is for.
    pub intent: Intent,
}

fn aad(state: &str) -> Vec<u8> {
    format!("tokenhub:oidc:{state}").into_bytes()
}

/// A round trip to a provider, as its start records it.
pub struct NewLogin<'a> {
    /// The `state` parameter.
    pub state: &'a str,
    /// The provider's name.
    pub provider: &'a str,
    /// The value of the browser's binding cookie.
    pub binding: &'a str,
    /// The nonce the ID token must carry.
    pub nonce: &'a str,
    /// The PKCE verifier (sealed under the KEK here).
    pub verifier: &'a str,
    /// What it is for.
    pub intent: &'a Intent,
}

/// Records a round trip started at a provider.
pub async fn create(pool: &PgPool, kek: &SecretKey, login: NewLogin<'_>) -> Result<(), sqlx::Error> {
    let NewLogin { state, provider, binding, nonce, verifier, intent } = login;
    let (verifier_nonce, verifier_sealed) =
        kek.seal(&aad(state), verifier.as_bytes()).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let (kind, user_id, invite) = intent.columns();
    sqlx::query(
        "INSERT INTO oidc_logins (state_hash, provider, binding_hash, nonce, verifier_nonce, verifier_sealed, expires_at, \
         intent, user_id, invite_token_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8, $9, $10)",
    )
    .bind(digest(state))
    .bind(provider)
    .bind(digest(binding))
    .bind(nonce)
    .bind(verifier_nonce)
    .bind(verifier_sealed)
    .bind(LIFETIME_SECONDS as f64)
    .bind(kind)
    .bind(user_id)
    .bind(invite)
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
    type Row = (String, Vec<u8>, Vec<u8>, String, Option<String>, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM oidc_logins WHERE state_hash = $1 AND provider = $2 AND binding_hash = $3 AND expires_at > now() \
         RETURNING nonce, verifier_nonce, verifier_sealed, intent, user_id, invite_token_hash",
    )
    .bind(digest(state))
    .bind(provider)
    .bind(digest(binding))
    .fetch_optional(pool)
    .await?;
    let Some((nonce, verifier_nonce, sealed, intent, user_id, invite)) = row else { return Ok(None) };
    let Some(intent) = Intent::from_columns(&intent, user_id, invite) else { return Ok(None) };
    let Ok(verifier) = kek.open(&aad(state), &verifier_nonce, &sealed) else { return Ok(None) };
    Ok(String::from_utf8(verifier).ok().map(|verifier| Pending { nonce, verifier, intent }))
}
