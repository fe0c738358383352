//! Fields that stay inside the event store: they are removed from every copy of an event
//! that leaves the process (NATS, audit exports, API answers).

use serde_json::Value;

/// Field names that are never exported, wherever they appear in a payload.
pub const SENSITIVE_FIELDS: &[&str] = &[
    "secret_hash",
    "previous_secret_hash",
    "ciphertext",
    "nonce",
    "password_hash",
    "invite_token_hash",
    "recovery_code_hashes",
    "recovery_code_hash",
];

/// Removes every sensitive field, at any depth, from an event payload.
pub fn redact_payload(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !SENSITIVE_FIELDS.contains(&k.as_str()));
            map.values_mut().for_each(redact_payload);
        }
        Value::Array(items) => items.iter_mut().for_each(redact_payload),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_hashes_are_removed() {
        let mut v = serde_json::json!({"a": 1, "admin_key": {"public_id": "p", "secret_hash": "h"}});
        redact_payload(&mut v);
        assert_eq!(v, serde_json::json!({"a": 1, "admin_key": {"public_id": "p"}}));
    }
}
