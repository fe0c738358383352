//! Per-tenant data keys in `tenant_data_keys`, wrapped by the KEK. A destroyed key (tenant
//! deleted) has no wrapped bytes left: nothing sealed under it can be opened again.

use sqlx::PgPool;

use super::{dek_aad, CryptoError, SecretKey};

/// Version of the DEKs created today (one per tenant).
pub const DEK_VERSION: i32 = 1;

/// A failure around data keys.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    /// Database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Crypto failure.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The tenant's key was destroyed.
    #[error("the tenant's data key was destroyed")]
    Shredded,
    /// The key is wrapped by another KEK than the configured one.
    #[error("the data key is wrapped by KEK {found}, the configured KEK is {configured}")]
    WrongKek {
        /// Id of the KEK that wrapped it.
        found: String,
        /// Id of the configured KEK.
        configured: String,
    },
}

#[derive(sqlx::FromRow)]
struct Row {
    kek_id: String,
    nonce: Option<Vec<u8>>,
    wrapped: Option<Vec<u8>>,
}

/// The tenant's DEK, created (and wrapped by `kek`) on first use.
pub async fn tenant_dek(pool: &PgPool, kek: &SecretKey, tenant_id: &str) -> Result<SecretKey, DataKeyError> {
    let fresh = SecretKey::generate();
    let (nonce, wrapped) = kek.seal(&dek_aad(tenant_id, DEK_VERSION), fresh.expose())?;
    sqlx::query(
        "INSERT INTO tenant_data_keys (tenant_id, version, kek_id, nonce, wrapped) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(DEK_VERSION)
    .bind(&kek.id)
    .bind(nonce)
    .bind(wrapped)
    .execute(pool)
    .await?;
    let row: Row = sqlx::query_as("SELECT kek_id, nonce, wrapped FROM tenant_data_keys WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(pool)
        .await?;
    let (Some(nonce), Some(wrapped)) = (row.nonce, row.wrapped) else { return Err(DataKeyError::Shredded) };
    if row.kek_id != kek.id {
        return Err(DataKeyError::WrongKek { found: row.kek_id, configured: kek.id.clone() });
    }
    let dek = kek.open(&dek_aad(tenant_id, DEK_VERSION), &nonce, &wrapped)?;
    Ok(SecretKey::from_bytes(&dek)?)
}

/// Checks at start that the configured KEK is the one that wrapped the stored keys.
pub async fn check_kek(pool: &PgPool, kek: &SecretKey) -> Result<(), DataKeyError> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT kek_id FROM tenant_data_keys WHERE kek_id <> $1 AND wrapped IS NOT NULL LIMIT 1",
    )
    .bind(&kek.id)
    .fetch_optional(pool)
    .await?;
    match other {
        Some(found) => Err(DataKeyError::WrongKek { found, configured: kek.id.clone() }),
        None => Ok(()),
    }
}
