//! Tenant secrets' values: sealed under the tenant's data key for storing, opened for a
//! reveal, a webhook's signing key or an upstream credential. Values exist in plain text only
//! in memory, for the moment they are used.

use base64::Engine;
use sqlx::PgPool;
use tokenhub_projections::read::secrets as read;

use super::data_keys::{tenant_dek, DataKeyError, Keks};
use super::{secret_aad, CryptoError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a secret's value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data key (or the database behind it) failed; `Shredded` for a deleted tenant.
    #[error(transparent)]
    DataKey(#[from] DataKeyError),
    /// The stored value does not open under the data key (corrupt or tampered with).
    #[error("the stored value cannot be opened: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for OpenError {
    fn from(e: sqlx::Error) -> Self {
        Self::DataKey(DataKeyError::Database(e))
    }
}

/// A value sealed for version `version` of secret `name`: (nonce, ciphertext), base64.
pub async fn seal(
    pool: &PgPool,
    keks: &Keks,
    tenant_id: &str,
    name: &str,
    version: i64,
    value: &[u8],
) -> Result<(String, String), DataKeyError> {
    let dek = tenant_dek(pool, keks, tenant_id).await?;
    let (nonce, ciphertext) =
        dek.seal(&secret_aad(tenant_id, name, version), value).map_err(DataKeyError::Crypto)?;
    Ok((B64.encode(nonce), B64.encode(ciphertext)))
}

/// The current value of live secret `name` with its version (`None`: no such secret).
pub async fn open_current(
    pool: &PgPool,
    keks: &Keks,
    tenant_id: &str,
    name: &str,
) -> Result<Option<(i64, Vec<u8>)>, OpenError> {
    let Some(sealed) = read::sealed(pool, tenant_id, name).await? else { return Ok(None) };
    let dek = tenant_dek(pool, keks, tenant_id).await?;
    let decode = |s: &str| B64.decode(s).map_err(|e| OpenError::Corrupt(e.to_string()));
    let value = dek
        .open(
            &secret_aad(tenant_id, name, sealed.version),
            &decode(&sealed.nonce)?,
            &decode(&sealed.ciphertext)?,
        )
        .map_err(|e: CryptoError| OpenError::Corrupt(e.to_string()))?;
    Ok(Some((sealed.version, value)))
}
