//! Settings a fleet must share, checked at start: every instance on one database must hash
//! keys with the same pepper and accept the same master key, or a key valid on one host is
//! unknown on another and the fleet has two super-admin keys. The database records a
//! fingerprint of each (an HMAC under the pepper, never the value) the first time an
//! instance starts; an instance whose own differs refuses to start and says which and why.
//! (The KEK is checked the same way by `crypto::data_keys::check_kek`.)

use sqlx::PgPool;

use crate::store::settings;

/// The setting holding the pepper's fingerprint.
pub const PEPPER_CHECK: &str = "fleet.pepper_check";

/// The setting holding the master key's fingerprint.
pub const MASTER_KEY_CHECK: &str = "fleet.master_key_check";

/// Why an instance must not join the fleet.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// Its pepper is not the fleet's.
    #[error("TOKENHUB_KEY_PEPPER differs from the one this database's instances use: keys hashed by one would be unknown to the other. Start every instance with the same TOKENHUB_KEY_PEPPER (or none, to use the one stored in the database)")]
    Pepper,
    /// Its master key is not the fleet's.
    #[error("the master key (MASTER_API_KEY / MASTER_API_KEY_HASH, or the generated one in the database) differs from the one this database's instances use: the fleet would have two super-admin keys. Start every instance with the same one; when changing it on purpose, start the first instance with FLEET_ADOPT_MASTER_KEY=true, then restart the others with the new key")]
    MasterKey,
    /// The database could not be read.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Records `fingerprint` under `name` if no instance has, else checks it is the same.
async fn same_or_first(pool: &PgPool, name: &str, fingerprint: &str) -> Result<bool, sqlx::Error> {
    if settings::insert_if_absent(pool, name, fingerprint).await? {
        return Ok(true);
    }
    Ok(settings::get(pool, name).await?.as_deref() == Some(fingerprint))
}

/// Checks this instance's pepper against the fleet's (recording it when it is the first).
pub async fn check_pepper(pool: &PgPool, pepper_fingerprint: &str) -> Result<(), Mismatch> {
    if !same_or_first(pool, PEPPER_CHECK, pepper_fingerprint).await? {
        return Err(Mismatch::Pepper);
    }
    Ok(())
}

/// Checks a server's master key against the fleet's (recording it when it is the first);
/// with `adopt_master_key` its master key becomes the fleet's. (Gateways and the command
/// line accept no master key: they are not checked.)
pub async fn check_master_key(
    pool: &PgPool,
    master_key_fingerprint: &str,
    adopt_master_key: bool,
) -> Result<(), Mismatch> {
    if adopt_master_key {
        settings::put(pool, MASTER_KEY_CHECK, master_key_fingerprint).await?;
        tracing::warn!("FLEET_ADOPT_MASTER_KEY: this instance's master key is now the fleet's; restart the others with it");
        return Ok(());
    }
    if !same_or_first(pool, MASTER_KEY_CHECK, master_key_fingerprint).await? {
        return Err(Mismatch::MasterKey);
    }
    Ok(())
}
