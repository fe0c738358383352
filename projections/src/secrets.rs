//! The `secrets` query table: the latest version of each tenant secret (ciphertext only).

use sqlx::PgConnection;
use tokenhub_aggregates::secret::SecretEvent;

use crate::{Projection, ProjectionError, StoredEvent};

/// Builds `secrets`.
pub struct SecretsProjection;

#[async_trait::async_trait]
impl Projection for SecretsProjection {
    fn name(&self) -> &'static str {
        "secrets"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["secrets"]
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "secret" {
            return Ok(());
        }
        match event.decode::<SecretEvent>()? {
            SecretEvent::Stored { tenant_id, name, version, ciphertext, nonce, dek_version, stored_at } => {
                sqlx::query(
                    "INSERT INTO secrets (tenant_id, name, version, nonce, ciphertext, dek_version, deleted, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, false, $7) ON CONFLICT (tenant_id, name) DO UPDATE SET \
                     version = excluded.version, nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                     dek_version = excluded.dek_version, deleted = false, updated_at = excluded.updated_at",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(version)
                .bind(nonce)
                .bind(ciphertext)
                .bind(dek_version)
                .bind(stored_at)
                .execute(conn)
                .await?;
            }
            SecretEvent::Deleted { deleted_at } => {
                let Some((tenant_id, name)) = event.aggregate_id.split_once(':') else { return Ok(()) };
                sqlx::query(
                    "UPDATE secrets SET deleted = true, updated_at = $3 WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(deleted_at)
                .execute(conn)
                .await?;
            }
            SecretEvent::Revealed { .. } => {}
        }
        Ok(())
    }
}
