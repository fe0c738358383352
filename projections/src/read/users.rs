//! Reads of `users` and `user_identities` (see [`crate::users`]), each row with its tenant's
//! `require_2fa`.

use sqlx::PgPool;
use time::OffsetDateTime;

/// A user as sign-in reads it (`users`). Its `Debug` leaves the hashes and the sealed secret
/// out.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub user_id: String,
    /// E-mail.
    pub email: String,
    /// `platform` or `tenant`.
    pub scope: String,
    /// Tenant, for tenant users.
    pub tenant_id: Option<String>,
    /// Role.
    pub role: String,
    /// `invited`, `active`, `disabled`.
    pub status: String,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    /// TOTP on.
    pub totp_enrolled: bool,
    /// The sealed TOTP secret (base64), while enrolled.
    pub totp_nonce: Option<String>,
    /// Its ciphertext (base64).
    pub totp_ciphertext: Option<String>,
    /// The user's tenant requires TOTP (`require_2fa`).
    pub tenant_requires_2fa: bool,
    /// When invited.
    pub created_at: OffsetDateTime,
    /// Position of the invite in the log (the listings' cursor).
    pub created_position: i64,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("tenant_id", &self.tenant_id)
            .field("status", &self.status)
            .field("totp_enrolled", &self.totp_enrolled)
            .finish_non_exhaustive()
    }
}

impl UserRow {
    /// TOTP is required of this person: platform roles always, tenant roles when the
    /// tenant's `require_2fa` is on.
    pub fn requires_totp(&self) -> bool {
        self.scope == "platform" || self.tenant_requires_2fa
    }
}

const SELECT: &str = "SELECT u.user_id, u.email, u.scope, u.tenant_id, u.role, u.status, u.password_hash, \
     u.totp_enrolled, u.totp_nonce, u.totp_ciphertext, coalesce(t.require_2fa, false) AS tenant_requires_2fa, \
     u.created_at, u.created_position FROM users u LEFT JOIN tenants t ON t.tenant_id = u.tenant_id";

/// The user with `user_id`.
pub async fn by_id(pool: &PgPool, user_id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE u.user_id = $1")).bind(user_id).fetch_optional(pool).await
}

/// The person an OpenID identity is linked to.
pub async fn by_identity(pool: &PgPool, issuer: &str, subject: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE u.user_id = (SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2)"
    ))
    .bind(issuer)
    .bind(subject)
    .fetch_optional(pool)
    .await
}

/// The invited person whose invite token hashes to `invite_token_hash`.
pub async fn by_invite(pool: &PgPool, invite_token_hash: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE u.invite_token_hash = $1 AND u.status = 'invited'"))
        .bind(invite_token_hash)
        .fetch_optional(pool)
        .await
}

/// The person whose invite token hashes to `invite_token_hash`, whatever their status.
pub async fn by_invite_token(pool: &PgPool, invite_token_hash: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE u.invite_token_hash = $1"))
        .bind(invite_token_hash)
        .fetch_optional(pool)
        .await
}

/// The users with these ids (those that exist).
pub async fn by_ids(pool: &PgPool, user_ids: &[String]) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE u.user_id = ANY($1)")).bind(user_ids).fetch_all(pool).await
}

/// Up to `limit` people invited after log position `after`, oldest first: all of them, or
/// `tenant_id`'s.
pub async fn page(
    pool: &PgPool,
    tenant_id: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE ($1::text IS NULL OR u.tenant_id = $1) AND u.created_position > $2 \
         ORDER BY u.created_position LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
