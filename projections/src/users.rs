//! The `users` query table: who can sign in, with which role, and the hash of the password and
//! of the pending invite (hashes only), the sealed TOTP secret; the projection is what sign-in
//! reads.

use sqlx::PgConnection;
use tokenhub_aggregates::user::{Membership, UserEvent};

use crate::{Projection, ProjectionError, StoredEvent};

/// Builds `users`.
pub struct UsersProjection;

fn scope(membership: &Membership) -> (&'static str, Option<&str>, &str) {
    match membership {
        Membership::Platform { role } => ("platform", None, role),
        Membership::Tenant { tenant_id, role } => ("tenant", Some(tenant_id), role),
    }
}

#[async_trait::async_trait]
impl Projection for UsersProjection {
    fn name(&self) -> &'static str {
        "users"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users", "user_identities"]
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "user" {
            return Ok(());
        }
        let id = &event.aggregate_id;
        match event.decode::<UserEvent>()? {
            UserEvent::Invited { user_id, email, membership, invite_token_hash, invite_expires_at, at } => {
                let (scope, tenant, role) = scope(&membership);
                sqlx::query(
                    "INSERT INTO users (user_id, email, scope, tenant_id, role, status, invite_token_hash, \
                     invite_expires_at, created_at, updated_at, created_position) \
                     VALUES ($1, $2, $3, $4, $5, 'invited', $6, $7, $8, $8, $9)",
                )
                .bind(user_id)
                .bind(email)
                .bind(scope)
                .bind(tenant)
                .bind(role)
                .bind(invite_token_hash)
                .bind(invite_expires_at)
                .bind(at)
                .bind(event.position)
                .execute(conn)
                .await?;
            }
            UserEvent::Activated { password_hash, at, .. } => {
                sqlx::query(
                    "UPDATE users SET status = 'active', password_hash = $2, invite_token_hash = NULL, \
                     invite_expires_at = NULL, updated_at = $3 WHERE user_id = $1",
                )
                .bind(id)
                .bind(password_hash)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::IdentityLinked { provider, issuer, subject, at } => {
                // The first link of an identity wins; the service refuses a second before it
                // appends, this keeps a race from giving one identity two accounts.
                sqlx::query(
                    "INSERT INTO user_identities (issuer, subject, user_id, provider, linked_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, subject) DO NOTHING",
                )
                .bind(issuer)
                .bind(subject)
                .bind(id)
                .bind(provider)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::Erased { at } => {
                // The person stays `disabled` (erasure is a further fact, on the record as an
                // event). Crypto-shredding, as for a deleted tenant: the person's data key is destroyed,
                // so what is sealed under it in the log (password hashes, the TOTP secret) can
                // never be opened again. Derived from the log: it happens even after a crash.
                sqlx::query(
                    "UPDATE users SET password_hash = NULL, totp_enrolled = false, \
                     totp_nonce = NULL, totp_ciphertext = NULL, updated_at = $2 WHERE user_id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO tenant_data_keys (tenant_id, version, kek_id, destroyed_at) VALUES ($1, 1, 'none', $2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET nonce = NULL, wrapped = NULL, \
                     destroyed_at = coalesce(tenant_data_keys.destroyed_at, excluded.destroyed_at)",
                )
                .bind(id)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::PasswordSet { password_hash, at } => {
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE user_id = $1")
                    .bind(id)
                    .bind(password_hash)
                    .bind(at)
                    .execute(conn)
                    .await?;
            }
            UserEvent::TotpEnrolled { ciphertext, nonce, at, .. } => {
                sqlx::query(
                    "UPDATE users SET totp_enrolled = true, totp_nonce = $2, totp_ciphertext = $3, updated_at = $4 \
                     WHERE user_id = $1",
                )
                .bind(id)
                .bind(nonce)
                .bind(ciphertext)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::TotpRemoved { at } => {
                sqlx::query(
                    "UPDATE users SET totp_enrolled = false, totp_nonce = NULL, totp_ciphertext = NULL, \
                     updated_at = $2 WHERE user_id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::RoleChanged { membership, at } => {
                let (scope, tenant, role) = scope(&membership);
                sqlx::query(
                    "UPDATE users SET scope = $2, tenant_id = $3, role = $4, updated_at = $5 WHERE user_id = $1",
                )
                .bind(id)
                .bind(scope)
                .bind(tenant)
                .bind(role)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::Disabled { at } => {
                sqlx::query(
                    "UPDATE users SET status = 'disabled', invite_token_hash = NULL, updated_at = $2 WHERE user_id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::RecoveryCodesGenerated { .. }
            | UserEvent::RecoveryCodeUsed { .. }
            | UserEvent::SignedIn { .. }
            | UserEvent::SignInFailed { .. } => {}
        }
        Ok(())
    }
}
