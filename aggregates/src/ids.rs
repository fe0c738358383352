//! Identifier formats. Ids are opaque to clients but have a fixed shape so that the edge can
//! reject garbage before touching storage, and so they are safe inside NATS subjects.

/// Prefix of tenant ids.
pub const TENANT_ID_PREFIX: &str = "ten_";
/// Length of the random part of a generated id.
pub const ID_RANDOM_LEN: usize = 20;

/// True when `s` is `<prefix><alphanumeric random part>` with the expected length.
pub fn has_id_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == ID_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// True when `s` is 1 to `max` bytes of `[A-Za-z0-9_.:-]`: caller-chosen names and ids (request
/// ids, usage record ids, resource names) that are safe in logs, subjects and URLs.
pub fn is_token(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// True when `s` looks like a tenant id.
pub fn is_tenant_id(s: &str) -> bool {
    has_id_shape(s, TENANT_ID_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_shape_is_checked() {
        assert!(is_tenant_id("ten_abcdefghij0123456789"));
        assert!(!is_tenant_id("ten_abc"));
        assert!(!is_tenant_id("ten_abcdefghij012345678."));
        assert!(!is_tenant_id("key_abcdefghij0123456789"));
    }
}
