//! The API key string: `thk_<public_id>_<secret><checksum>`.
//!
//! - `public_id`: 16 characters of `[A-Za-z0-9]`, the lookup handle (not secret).
//! - `secret`: 43 characters of `[A-Za-z0-9]`, 256 bits of entropy.
//! - `checksum`: CRC32 of everything before it, as 6 base62 characters, so secret scanners
//!   can recognise a real key without a database (as GitHub's tokens do).
//!
//! Parsing checks shape and checksum before any lookup, so garbage is refused for free.

use crate::crypto::random_alphanumeric;

/// Fixed prefix of every key.
pub const KEY_PREFIX: &str = "thk_";
/// Length of the public id.
pub const PUBLIC_ID_LEN: usize = 16;
/// Length of the secret part: 43 base62 characters carry 256.03 bits.
pub const SECRET_LEN: usize = 43;
/// Length of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Total length of a key string.
pub const KEY_LEN: usize = KEY_PREFIX.len() + PUBLIC_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// A newly generated key: the full string (shown once) and its public id.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The full key. Never logged, never stored.
    pub full: String,
    /// The public id inside it.
    pub public_id: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("public_id", &self.public_id).finish_non_exhaustive()
    }
}

/// Generates a new key.
pub fn generate() -> GeneratedKey {
    generate_for(&random_alphanumeric(PUBLIC_ID_LEN))
}

/// Generates a new secret for an existing public id (rotation).
pub fn generate_for(public_id: &str) -> GeneratedKey {
    let public_id = public_id.to_string();
    let body = format!("{KEY_PREFIX}{public_id}_{}", random_alphanumeric(SECRET_LEN));
    let full = format!("{body}{}", checksum(&body));
    GeneratedKey { full, public_id }
}

/// Why a string is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Wrong prefix, length or characters.
    #[error("not a TokenHub key")]
    Shape,
    /// Right shape, wrong checksum (a typo or a forgery).
    #[error("key checksum does not match")]
    Checksum,
}

/// Checks `key`'s shape and checksum; returns its public id.
pub fn parse(key: &str) -> Result<&str, KeyFormatError> {
    // Byte offsets below are character boundaries only because every byte is checked to be
    // ASCII first (a multi-byte character at a split point used to panic).
    if key.len() != KEY_LEN || !key.is_ascii() || !key.starts_with(KEY_PREFIX) {
        return Err(KeyFormatError::Shape);
    }
    let rest = key.get(KEY_PREFIX.len()..).ok_or(KeyFormatError::Shape)?;
    let (public_id, tail) = rest.split_at_checked(PUBLIC_ID_LEN).ok_or(KeyFormatError::Shape)?;
    let Some(secret_and_sum) = tail.strip_prefix('_') else { return Err(KeyFormatError::Shape) };
    if !public_id.bytes().chain(secret_and_sum.bytes()).all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Shape);
    }
    let (body, sum) = key.split_at_checked(KEY_LEN - CHECKSUM_LEN).ok_or(KeyFormatError::Shape)?;
    if checksum(body) != sum {
        return Err(KeyFormatError::Checksum);
    }
    Ok(public_id)
}

/// True when `s` could be a public id.
pub fn is_public_id(s: &str) -> bool {
    s.len() == PUBLIC_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_public_id() {
        for _ in 0..100 {
            let key = generate();
            assert_eq!(key.full.len(), KEY_LEN);
            assert_eq!(parse(&key.full), Ok(key.public_id.as_str()));
        }
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let key = generate().full;
        let mut bytes = key.clone().into_bytes();
        let i = KEY_PREFIX.len() + PUBLIC_ID_LEN + 5;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(bytes).unwrap_or_default();
        assert_eq!(parse(&changed), Err(KeyFormatError::Checksum));
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let key = generate().full;
        assert_eq!(parse(""), Err(KeyFormatError::Shape));
        assert_eq!(parse(&key[1..]), Err(KeyFormatError::Shape));
        assert_eq!(parse(&key.replacen("thk_", "thx_", 1)), Err(KeyFormatError::Shape));
        assert_eq!(parse(&format!("{}é", &key[..KEY_LEN - 2])), Err(KeyFormatError::Shape));
    }

    #[test]
    fn a_multi_byte_character_at_any_split_point_is_refused_not_a_panic() {
        let key = generate().full;
        for at in 0..KEY_LEN - 1 {
            // Replace two bytes at `at` with one two-byte character: same length, not ASCII.
            let mut candidate = String::new();
            candidate.push_str(&key[..at]);
            candidate.push('é');
            candidate.push_str(&key[at + 2..]);
            assert_eq!(candidate.len(), KEY_LEN);
            assert_eq!(parse(&candidate), Err(KeyFormatError::Shape), "at byte {at}");
        }
    }

    proptest::proptest! {
        /// Any string gets an answer (never a panic); only well-formed keys parse.
        #[test]
        fn any_string_is_answered(s in "\\PC{0,80}", prefix in proptest::bool::ANY) {
            let s = if prefix { format!("{KEY_PREFIX}{s}") } else { s };
            if let Ok(id) = parse(&s) {
                proptest::prop_assert!(is_public_id(id));
                proptest::prop_assert_eq!(s.len(), KEY_LEN);
            }
        }

        /// Arbitrary bytes of exactly a key's length, the shape most likely to reach the slicing.
        #[test]
        fn key_length_strings_are_answered(chars in proptest::collection::vec(proptest::char::any(), KEY_LEN - 20..KEY_LEN)) {
            let s: String = chars.into_iter().collect();
            let _ = parse(&s);
            let _ = parse(&format!("{KEY_PREFIX}{s}"));
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = generate();
        assert!(!format!("{key:?}").contains(&key.full));
    }
}
