//! Hashing of API keys: HMAC-SHA-256 under a server-side pepper.
//!
//! Keys carry 256 bits of entropy, so a fast keyed hash is as safe as a slow one and keeps
//! verification in microseconds; argon2id is kept for the master key, which a person may
//! choose. The pepper comes from `TOKENHUB_KEY_PEPPER` or, when unset, is generated once and
//! shared through the database (see `docs` in the README).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Hashes and checks keys.
#[derive(Clone)]
pub struct KeyHasher {
    mac: HmacSha256,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    /// A hasher keyed with `pepper` (any length; 32 bytes or more recommended).
    pub fn new(pepper: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <HmacSha256 as Mac>::new_from_slice(pepper).unwrap_or_else(|_| unreachable_hmac());
        Self { mac }
    }

    /// Raw 32-byte hash of `key`.
    pub fn hash_bytes(&self, key: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Hex hash of `key`, as stored.
    pub fn hash_hex(&self, key: &str) -> String {
        crate::crypto::hex(&self.hash_bytes(key))
    }
}

#[expect(clippy::panic, reason = "HMAC-SHA-256 accepts every key length; this is unreachable")]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC rejected a key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_the_key_and_refuses_others() {
        let hasher = KeyHasher::new(b"pepper-pepper-pepper-pepper-pepper");
        let stored = hasher.hash_hex("thk_a");
        let verify = |h: &KeyHasher, key: &str| h.hash_hex(key) == stored;
        assert!(verify(&hasher, "thk_a"));
        assert!(!verify(&hasher, "thk_b"));
        assert!(!verify(&KeyHasher::new(b"other"), "thk_a"));
    }
}
