//! Data keys in `tenant_data_keys`, one per tenant and one per person (keyed by the user id),
//! wrapped by the KEK. A destroyed key (tenant deleted, person erased) has no wrapped bytes
//! left: nothing sealed under it can be opened again.

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
    /// The key is wrapped by (or the fleet recorded) another KEK than the configured one.
    #[error("the data keys are wrapped by KEK {found}, the configured KEK is {configured}")]
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

/// The configured KEKs: the current one, which wraps new data keys, and previous ones still
/// accepted (by id) for data keys not yet re-wrapped by `tokenhub kek rotate`.
#[derive(Debug, Clone)]
pub struct Keks {
    /// Wraps new data keys.
    pub current: SecretKey,
    /// Still accepted for unwrapping.
    pub previous: Vec<SecretKey>,
}

impl Keks {
    /// The KEK with this id.
    pub fn by_id(&self, id: &str) -> Option<&SecretKey> {
        std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == id)
    }

    fn ids(&self) -> Vec<String> {
        std::iter::once(&self.current).chain(&self.previous).map(|k| k.id.clone()).collect()
    }
}

/// The tenant's DEK, created (and wrapped by the current KEK) on first use.
pub async fn tenant_dek(pool: &PgPool, keks: &Keks, tenant_id: &str) -> Result<SecretKey, DataKeyError> {
    let row = match load_row(pool, tenant_id).await? {
        Some(row) => row,
        None => {
            // First use: create and wrap a key (a concurrent first use may win; read theirs).
            let kek = &keks.current;
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
            load_row(pool, tenant_id).await?.ok_or(DataKeyError::Shredded)?
        }
    };
    let (Some(nonce), Some(wrapped)) = (row.nonce, row.wrapped) else { return Err(DataKeyError::Shredded) };
    let Some(wrapping) = keks.by_id(&row.kek_id) else {
        return Err(DataKeyError::WrongKek { found: row.kek_id, configured: keks.current.id.clone() });
    };
    let dek = wrapping.open(&dek_aad(tenant_id, DEK_VERSION), &nonce, &wrapped)?;
    Ok(SecretKey::from_bytes(&dek)?)
}

/// The DEK of `owner` if it exists and is not destroyed; never creates one (a read for an
/// owner that has none takes the time of one that has).
pub async fn existing_dek(
    pool: &PgPool,
    keks: &Keks,
    owner: &str,
) -> Result<Option<SecretKey>, DataKeyError> {
    let Some(row) = load_row(pool, owner).await? else { return Ok(None) };
    let (Some(nonce), Some(wrapped)) = (row.nonce, row.wrapped) else { return Ok(None) };
    let Some(wrapping) = keks.by_id(&row.kek_id) else {
        return Err(DataKeyError::WrongKek { found: row.kek_id, configured: keks.current.id.clone() });
    };
    let dek = wrapping.open(&dek_aad(owner, DEK_VERSION), &nonce, &wrapped)?;
    Ok(Some(SecretKey::from_bytes(&dek)?))
}

async fn load_row(pool: &PgPool, tenant_id: &str) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as("SELECT kek_id, nonce, wrapped FROM tenant_data_keys WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// A data key row: tenant, version, wrapping KEK id, nonce, wrapped key.
type WrappedRow = (String, i32, String, Vec<u8>, Vec<u8>);

/// Re-wraps every live data key not yet under the current KEK, one small transaction each
/// (the row is locked while it changes, so concurrent readers see the old or the new wrapping,
/// both of which they can open). Returns how many were re-wrapped.
pub async fn rewrap_all(
    pool: &PgPool,
    keks: &Keks,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<u64, DataKeyError> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_data_keys WHERE wrapped IS NOT NULL AND kek_id <> $1",
    )
    .bind(&keks.current.id)
    .fetch_one(pool)
    .await?;
    let mut done = 0u64;
    loop {
        let mut tx = pool.begin().await?;
        let row: Option<WrappedRow> = sqlx::query_as(
            "SELECT tenant_id, version, kek_id, nonce, wrapped FROM tenant_data_keys \
             WHERE wrapped IS NOT NULL AND kek_id <> $1 LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(&keks.current.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((tenant_id, version, kek_id, nonce, wrapped)) = row else { break };
        let old = keks.by_id(&kek_id).ok_or_else(|| DataKeyError::WrongKek {
            found: kek_id.clone(),
            configured: keks.current.id.clone(),
        })?;
        let aad = dek_aad(&tenant_id, version);
        let dek = old.open(&aad, &nonce, &wrapped)?;
        let (nonce, wrapped) = keks.current.seal(&aad, &dek)?;
        sqlx::query("UPDATE tenant_data_keys SET kek_id = $2, nonce = $3, wrapped = $4 WHERE tenant_id = $1")
            .bind(&tenant_id)
            .bind(&keks.current.id)
            .bind(nonce)
            .bind(wrapped)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        done += 1;
        progress(done, total.max(0) as u64);
    }
    Ok(done)
}

/// Checks at start that every stored data key is wrapped by a configured KEK.
pub async fn check_kek(pool: &PgPool, keks: &Keks) -> Result<(), DataKeyError> {
    // The first instance to start records its KEK (setting `kek_id`); every other instance
    // must hold it, as current or previous. Two hosts that each generated their own KEK
    // would otherwise both serve, and a secret stored through one could not be read on the
    // other.
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(KEK_SETTING)
        .bind(&keks.current.id)
        .execute(pool)
        .await?;
    let recorded: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(KEK_SETTING)
        .fetch_optional(pool)
        .await?;
    if let Some(recorded) = recorded.filter(|r| !keks.ids().contains(r)) {
        return Err(DataKeyError::WrongKek { found: recorded, configured: keks.current.id.clone() });
    }
    let other: Option<String> = sqlx::query_scalar(
        "SELECT kek_id FROM tenant_data_keys WHERE wrapped IS NOT NULL AND NOT (kek_id = ANY($1)) LIMIT 1",
    )
    .bind(keks.ids())
    .fetch_optional(pool)
    .await?;
    match other {
        Some(found) => Err(DataKeyError::WrongKek { found, configured: keks.current.id.clone() }),
        None => Ok(()),
    }
}

/// The setting that names the KEK every instance must hold.
pub const KEK_SETTING: &str = "kek_id";

/// Records `kek_id` as the KEK every instance must hold (after `tokenhub kek rotate`).
pub async fn record_kek(pool: &PgPool, kek_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now()",
    )
    .bind(KEK_SETTING)
    .bind(kek_id)
    .execute(pool)
    .await
    .map(drop)
}
