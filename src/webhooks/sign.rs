//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): `webhook-signature:
//! v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`, keyed by the base64 secret after
//! its `whsec_` prefix.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A signing secret as the spec writes it: `whsec_` and base64 (the prefix is optional).
pub fn decode_secret(value: &str) -> Option<Vec<u8>> {
    let raw = value.trim();
    let raw = raw.strip_prefix("whsec_").unwrap_or(raw);
    B64.decode(raw).ok().filter(|k| !k.is_empty())
}

/// The `webhook-signature` header value for one attempt (`None` only for an empty key, which
/// [`decode_secret`] never returns).
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_example() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets() {
        assert!(decode_secret("whsec_").is_none());
        assert!(decode_secret("whsec_!!").is_none());
        assert_eq!(decode_secret("whsec_AAEC"), Some(vec![0, 1, 2]));
        assert_eq!(decode_secret("AAEC"), Some(vec![0, 1, 2]));
    }
}
