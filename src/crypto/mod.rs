//! Envelope encryption of tenant secrets.
//!
//! - The key-encryption key (KEK) comes from `TOKENHUB_KEK` (base64, 32 bytes) or a key file
//!   (`TOKENHUB_KEK_FILE`, created with mode 0600 on first start, with a warning).
//! - Each tenant has a data key (DEK) in `tenant_data_keys`, outside the event log, wrapped by
//!   the KEK (XChaCha20-Poly1305, associated data binding tenant and DEK version).
//! - Secret values are sealed under the tenant's DEK with associated data binding tenant,
//!   secret name and version, so a ciphertext moved to another tenant or name fails to open.
//! - Deleting a tenant destroys its DEK (crypto-shredding): its secrets' ciphertext stays in
//!   the immutable log and can no longer be opened by anyone.

pub mod data_keys;
pub mod secrets;

use base64::Engine;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// A crypto failure. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, or ciphertext/associated data changed or moved.
    #[error("ciphertext cannot be opened with this key and context")]
    Open,
    /// Sealing failed.
    #[error("encryption failed")]
    Seal,
    /// The KEK is missing or malformed.
    #[error("key-encryption key: {0}")]
    Kek(String),
}

/// A 256-bit XChaCha20-Poly1305 key with a short public id (hash prefix), never logged.
#[derive(Clone)]
pub struct SecretKey {
    key: Key,
    /// First 8 bytes of SHA-256 of the key, hex: names the key without revealing it.
    pub id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Kek(format!("expected 32 bytes, got {}", bytes.len())))?;
        let id = hex(&Sha256::digest(array)[..8]);
        Ok(Self { key: array.into(), id })
    }

    /// A new random key.
    pub fn generate() -> Self {
        let key = Key::generate();
        let id = hex(&Sha256::digest(key.as_slice())[..8]);
        Self { key, id }
    }

    /// The raw key (only to wrap it or write the key file).
    pub fn expose(&self) -> &[u8] {
        self.key.as_slice()
    }

    /// Seals `plaintext` bound to `aad`; returns (nonce, ciphertext).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        let nonce = XNonce::generate();
        let ciphertext = XChaCha20Poly1305::new(&self.key)
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::Seal)?;
        Ok((nonce.to_vec(), ciphertext))
    }

    /// Opens what [`Self::seal`] produced with the same `aad`.
    pub fn open(&self, aad: &[u8], nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| CryptoError::Open)?;
        XChaCha20Poly1305::new(&self.key)
            .decrypt(&nonce.into(), Payload { msg: ciphertext, aad })
            .map_err(|_| CryptoError::Open)
    }
}

/// Associated data of a tenant's DEK.
pub fn dek_aad(tenant_id: &str, version: i32) -> Vec<u8> {
    format!("tokenhub:dek:{tenant_id}:{version}").into_bytes()
}

/// Associated data of a secret value.
pub fn secret_aad(tenant_id: &str, name: &str, version: i64) -> Vec<u8> {
    format!("tokenhub:secret:{tenant_id}:{name}:{version}").into_bytes()
}

/// Loads the KEK: `TOKENHUB_KEK` (base64), else the key file, created (mode 0600) when
/// missing. Returns the key and whether it was just created.
pub fn load_kek(inline: Option<&str>, file: &std::path::Path) -> Result<(SecretKey, bool), CryptoError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(inline) = inline.filter(|s| !s.is_empty()) {
        let bytes =
            b64.decode(inline.trim()).map_err(|_| CryptoError::Kek("TOKENHUB_KEK is not base64".into()))?;
        return Ok((SecretKey::from_bytes(&bytes)?, false));
    }
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let bytes = b64
                .decode(text.trim())
                .map_err(|_| CryptoError::Kek(format!("{} is not a base64 key", file.display())))?;
            Ok((SecretKey::from_bytes(&bytes)?, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            write_key_file(file, &b64.encode(key.expose()))?;
            Ok((key, true))
        }
        Err(e) => Err(CryptoError::Kek(format!("cannot read {}: {e}", file.display()))),
    }
}

fn write_key_file(file: &std::path::Path, content: &str) -> Result<(), CryptoError> {
    use std::io::Write;
    let fail = |e: std::io::Error| CryptoError::Kek(format!("cannot create {}: {e}", file.display()));
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(file).map_err(fail)?;
    f.write_all(content.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// Parses `TOKENHUB_KEK_PREVIOUS`: comma-separated base64 keys.
pub fn parse_previous(raw: Option<&str>) -> Result<Vec<SecretKey>, CryptoError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bytes =
                b64.decode(s).map_err(|_| CryptoError::Kek("TOKENHUB_KEK_PREVIOUS is not base64".into()))?;
            SecretKey::from_bytes(&bytes)
        })
        .collect()
}

/// Loads the current KEK (`TOKENHUB_KEK`, else the file at `kek_file`, created when absent)
/// and the previous ones (`TOKENHUB_KEK_PREVIOUS`); true when the file was created.
pub fn load_keks(
    kek: Option<&str>,
    kek_file: &std::path::Path,
    previous: Option<&str>,
) -> Result<(data_keys::Keks, bool), CryptoError> {
    let (current, created) = load_kek(kek, kek_file)?;
    let previous = parse_previous(previous)?;
    Ok((data_keys::Keks { current, previous }, created))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `len` random characters from `[A-Za-z0-9]`, from the thread-local CSPRNG.
pub fn random_alphanumeric(len: usize) -> String {
    rand::distr::SampleString::sample_string(&rand::distr::Alphanumeric, &mut rand::rng(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let key = SecretKey::generate();
        let aad = secret_aad("ten_a", "STRIPE_SECRET_KEY", 1);
        let (nonce, ct) = key.seal(&aad, b"sk_live_canary").unwrap_or_default();
        assert_eq!(key.open(&aad, &nonce, &ct).ok(), Some(b"sk_live_canary".to_vec()));
        assert!(
            key.open(&secret_aad("ten_b", "STRIPE_SECRET_KEY", 1), &nonce, &ct).is_err(),
            "another tenant"
        );
        assert!(key.open(&secret_aad("ten_a", "OTHER", 1), &nonce, &ct).is_err(), "another name");
        assert!(
            key.open(&secret_aad("ten_a", "STRIPE_SECRET_KEY", 2), &nonce, &ct).is_err(),
            "another version"
        );
        assert!(SecretKey::generate().open(&aad, &nonce, &ct).is_err(), "another key");
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("kek-{}", uuid::Uuid::new_v4().simple()));
        let file = dir.join("kek");
        let (first, created) = load_kek(None, &file).unwrap_or_else(|_| (SecretKey::generate(), false));
        assert!(created);
        let (again, created) = load_kek(None, &file).unwrap_or_else(|_| (SecretKey::generate(), true));
        assert!(!created);
        assert_eq!(first.id, again.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        assert!(load_kek(Some("not base64!"), &file).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
