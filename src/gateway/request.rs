//! What the gateway reads of a request body, checked before anything is forwarded: the fields
//! the document (`openapi/gateway.json`) names must have their types, so an odd body gets a
//! clear 400 in OpenAI's shape instead of an upstream's surprise. Every other field goes to
//! the upstream unchanged.

use serde_json::{Map, Value};

use super::errors::GatewayError;
use super::Operation;

/// The most tokens a request may name in `max_tokens` / `max_completion_tokens`.
pub const MAX_TOKENS_BOUND: i64 = i32::MAX as i64;

/// A JSON integer as JSON Schema counts one (`5.0` is one).
fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// A token count the request names, when it is an integer in range.
pub fn token_count(v: &Value) -> Option<i64> {
    let n =
        v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64))?;
    (0..=MAX_TOKENS_BOUND).contains(&n).then_some(n)
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::invalid("invalid_request", message)
}

/// Checks the fields `operation` reads (`model` is checked before, by the caller).
pub fn check(operation: Operation, request: &Map<String, Value>) -> Result<(), GatewayError> {
    match operation {
        Operation::Chat => chat(request),
        Operation::Embeddings => embeddings(request),
    }
}

fn chat(request: &Map<String, Value>) -> Result<(), GatewayError> {
    let Some(Value::Array(messages)) = request.get("messages") else {
        return Err(invalid("`messages` must be a non-empty array"));
    };
    if messages.is_empty() {
        return Err(invalid("`messages` must be a non-empty array"));
    }
    for (i, message) in messages.iter().enumerate() {
        let Value::Object(message) = message else {
            return Err(invalid(format!("`messages[{i}]` must be an object")));
        };
        if !matches!(message.get("role"), Some(Value::String(r)) if !r.is_empty()) {
            return Err(invalid(format!("`messages[{i}].role` must be a non-empty string")));
        }
        if !matches!(message.get("content"), None | Some(Value::String(_) | Value::Array(_) | Value::Null)) {
            return Err(invalid(format!("`messages[{i}].content` must be a string, an array or null")));
        }
    }
    if !matches!(request.get("stream"), None | Some(Value::Bool(_))) {
        return Err(invalid("`stream` must be true or false"));
    }
    match request.get("stream_options") {
        None => {}
        Some(Value::Object(options))
            if matches!(options.get("include_usage"), None | Some(Value::Bool(_))) => {}
        Some(_) => {
            return Err(invalid("`stream_options` must be an object; its `include_usage` true or false"))
        }
    }
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(value) = request.get(field) {
            if token_count(value).is_none() {
                return Err(invalid(format!("`{field}` must be an integer from 0 to {MAX_TOKENS_BOUND}")));
            }
        }
    }
    match request.get("tensorzero::tags") {
        None => Ok(()),
        Some(Value::Object(tags)) if tags.values().all(Value::is_string) => Ok(()),
        Some(_) => Err(invalid("`tensorzero::tags` must be an object of strings")),
    }
}

fn embeddings(request: &Map<String, Value>) -> Result<(), GatewayError> {
    let valid = match request.get("input") {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(items)) if !items.is_empty() => {
            let tokens = |v: &Value| v.as_array().is_some_and(|t| !t.is_empty() && t.iter().all(is_integer));
            items.iter().all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
                || items.iter().all(is_integer)
                || items.iter().all(tokens)
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "`input` must be a non-empty string, or a non-empty array of non-empty strings, of token ids, or of non-empty arrays of token ids",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat_ok(body: Value) -> bool {
        check(Operation::Chat, body.as_object().unwrap()).is_ok()
    }

    fn embeddings_ok(body: Value) -> bool {
        check(Operation::Embeddings, body.as_object().unwrap()).is_ok()
    }

    #[test]
    fn a_chat_request_needs_messages_with_roles_and_typed_options() {
        let m = json!([{"role": "user", "content": "hi"}]);
        assert!(chat_ok(json!({"messages": m})));
        assert!(chat_ok(json!({"messages": m, "stream": true, "stream_options": {"include_usage": false},
            "max_tokens": 0, "max_completion_tokens": 5, "tensorzero::tags": {"a": "b"}, "temperature": 2, "x": [1]})));
        assert!(chat_ok(json!({"messages": m, "max_tokens": 7.0})), "JSON Schema's integer");
        assert!(chat_ok(json!({"messages": [{"role": "assistant", "content": null, "tool_calls": []}]})));
        for bad in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": "hi"}),
            json!({"messages": [1]}),
            json!({"messages": [{"content": "hi"}]}),
            json!({"messages": [{"role": "", "content": "hi"}]}),
            json!({"messages": [{"role": "user", "content": 5}]}),
            json!({"messages": m, "stream": "yes"}),
            json!({"messages": m, "stream_options": true}),
            json!({"messages": m, "stream_options": {"include_usage": 1}}),
            json!({"messages": m, "max_tokens": -1}),
            json!({"messages": m, "max_tokens": 1.5}),
            json!({"messages": m, "max_completion_tokens": 3_000_000_000u64}),
            json!({"messages": m, "tensorzero::tags": {"a": 1}}),
        ] {
            assert!(!chat_ok(bad.clone()), "{bad}");
        }
    }

    #[test]
    fn an_embeddings_request_needs_input_of_one_shape() {
        for good in [
            json!("hi"),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([[1], [2, 3]]),
            json!([5.0, 18446744073709551615u64]),
        ] {
            assert!(embeddings_ok(json!({"input": good})), "{good}");
        }
        for bad in [
            json!(null),
            json!(""),
            json!([]),
            json!(["a", 1]),
            json!([""]),
            json!([[]]),
            json!({"a": 1}),
            json!(5),
        ] {
            assert!(!embeddings_ok(json!({"input": bad})), "{bad}");
        }
        assert!(!embeddings_ok(json!({})));
    }
}
