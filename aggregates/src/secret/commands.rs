//! Commands on a secret, its id and which names it may have.

use time::OffsetDateTime;

/// The aggregate id of secret `name` of `tenant_id`.
pub fn secret_id(tenant_id: &str, name: &str) -> String {
    format!("{tenant_id}:{name}")
}

/// True for names like `STRIPE_SECRET_KEY`: `[A-Z][A-Z0-9_]{0,127}`.
pub fn is_secret_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A command on a secret.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretCommand {
    /// Store a new version (sealed by the caller for exactly this version).
    Store {
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// The version the ciphertext was sealed for: the current version + 1.
        version: i64,
        /// Base64 ciphertext.
        ciphertext: String,
        /// Base64 nonce.
        nonce: String,
        /// Version of the tenant data key used.
        dek_version: i32,
        /// When.
        at: OffsetDateTime,
    },
    /// Delete it (its events stay; the name may be stored again later).
    Delete {
        /// When.
        at: OffsetDateTime,
    },
    /// Record that a principal read the value.
    RecordReveal {
        /// When.
        at: OffsetDateTime,
    },
}
