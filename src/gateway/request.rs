//! What the gateway reads of a request body, checked before anything is forwarded: the fields
//! the document (`openapi/gateway.json`) names must have their types, so an odd body gets a
//! clear 400 in OpenAI's shape instead of an upstream's surprise. Every other field goes to
//! the upstream unchanged.
//!
//! A body goes upstream as the client sent it, so the gateway and the upstream must read the
//! same request: [`parse`] refuses an object that names a member twice
//! (`{"model": "a", "model": "b"}`), which JSON parsers settle differently (the first or the
//! last wins), so a key could pass the gateway's model allowlist or quota bound with one value
//! and be served with the other.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::errors::GatewayError;
use super::Operation;

/// The most tokens a request may name in `max_tokens` / `max_completion_tokens`.
pub const MAX_TOKENS_BOUND: i64 = i32::MAX as i64;

/// The most choices (`n`) a chat request may ask for (OpenAI's own bound).
pub const MAX_CHOICES: i64 = 128;

/// Why a body was refused before its fields were looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// Not one JSON object (or not JSON).
    NotAnObject,
    /// An object in it names a member twice.
    DuplicateName,
}

/// Parses a request body into its members: one JSON object, no object in it naming a member
/// twice (at any depth).
pub fn parse(body: &[u8]) -> Result<Map<String, Value>, Unreadable> {
    let repeated = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict(&repeated).deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(members)) => Ok(members),
        _ if repeated.get() => Err(Unreadable::DuplicateName),
        _ => Err(Unreadable::NotAnObject),
    }
}

/// Builds a [`Value`] as serde_json does, refusing an object that names a member twice (and
/// saying so in its cell).
#[derive(Clone, Copy)]
struct Strict<'a>(&'a Cell<bool>);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if members.insert(name, value).is_some() {
                self.0.set(true);
                return Err(de::Error::custom("a member named twice"));
            }
        }
        Ok(Value::Object(members))
    }
}

/// How many choices a request asks for (`n`, 1 when absent); checked by [`check`] first.
pub fn choices(request: &Map<String, Value>) -> i64 {
    request.get("n").and_then(token_count).unwrap_or(1).clamp(1, MAX_CHOICES)
}

/// The most completion tokens a checked request can be counted for: `max_tokens` or
/// `max_completion_tokens` (the larger when both are named, whichever the upstream honours;
/// `default` when neither is) for each of its choices; 0 for embeddings.
pub fn completion_bound(operation: Operation, request: &Map<String, Value>, default: i64) -> i64 {
    match operation {
        Operation::Embeddings => 0,
        Operation::Chat => {
            ["max_completion_tokens", "max_tokens"]
                .iter()
                .filter_map(|k| request.get(*k).and_then(token_count))
                .max()
                .unwrap_or(default)
                * choices(request)
        }
    }
}

/// Writes the counts a checked chat request names as decimals (`26.0`, `1e0`: integers to
/// JSON Schema) as the integers counted, since some upstreams refuse `"n": 26.0`; true if
/// one was.
pub fn counts_as_integers(operation: Operation, request: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    if matches!(operation, Operation::Chat) {
        for field in ["n", "max_tokens", "max_completion_tokens"] {
            if let Some(value) = request.get_mut(field).filter(|v| v.is_f64()) {
                if let Some(count) = token_count(value) {
                    *value = Value::from(count);
                    changed = true;
                }
            }
        }
    }
    changed
}

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
    // A null stands for the field's absence, as in OpenAI's own API.
    if !matches!(request.get("stream"), None | Some(Value::Bool(_) | Value::Null)) {
        return Err(invalid("`stream` must be true, false or null"));
    }
    match request.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(options))
            if matches!(options.get("include_usage"), None | Some(Value::Bool(_) | Value::Null)) => {}
        Some(_) => {
            return Err(invalid(
                "`stream_options` must be an object or null; its `include_usage` true, false or null",
            ))
        }
    }
    if let Some(n) = request.get("n").filter(|n| !n.is_null()) {
        if !token_count(n).is_some_and(|n| (1..=MAX_CHOICES).contains(&n)) {
            return Err(invalid(format!("`n` must be an integer from 1 to {MAX_CHOICES}, or null")));
        }
    }
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(value) = request.get(field).filter(|v| !v.is_null()) {
            if token_count(value).is_none() {
                return Err(invalid(format!(
                    "`{field}` must be an integer from 0 to {MAX_TOKENS_BOUND}, or null"
                )));
            }
        }
    }
    match request.get("tensorzero::tags") {
        None | Some(Value::Null) => Ok(()),
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
    fn n_is_checked_and_counted() {
        let m = json!([{"role": "user", "content": "hi"}]);
        for good in [json!(1), json!(128), json!(3.0)] {
            assert!(chat_ok(json!({"messages": m, "n": good})), "{good}");
        }
        for bad in [json!(0), json!(129), json!(-1), json!(1.5), json!("2")] {
            assert!(!chat_ok(json!({"messages": m, "n": bad})), "{bad}");
        }
        assert_eq!(choices(json!({"n": 7}).as_object().unwrap()), 7);
        assert_eq!(choices(json!({}).as_object().unwrap()), 1);
        assert_eq!(choices(json!({"n": null}).as_object().unwrap()), 1);
        // Every optional field OpenAI's API takes as null may be null.
        assert!(chat_ok(json!({"messages": m, "n": null, "stream": null, "stream_options": null,
            "max_tokens": null, "max_completion_tokens": null, "tensorzero::tags": null})));
        assert!(chat_ok(json!({"messages": m, "stream": true, "stream_options": {"include_usage": null}})));
    }

    #[test]
    fn a_body_naming_a_member_twice_is_refused_at_any_depth() {
        for twice in [
            &br#"{"model": "cheap", "messages": [], "model": "dear"}"#[..],
            br#"{"model": "m", "stream_options": {"include_usage": true, "include_usage": false}}"#,
            br#"{"messages": [{"role": "user", "role": "system"}]}"#,
            br#"{"mod\u0065l": "a", "model": "b"}"#,
        ] {
            assert_eq!(parse(twice), Err(Unreadable::DuplicateName), "{}", String::from_utf8_lossy(twice));
        }
        for odd in [&b"[1]"[..], b"\"x\"", b"{", b"{} {}", b"", b"{\"a\": 1e400}"] {
            assert_eq!(parse(odd), Err(Unreadable::NotAnObject), "{}", String::from_utf8_lossy(odd));
        }
        // Deeper than serde_json's recursion limit: refused, never a stack overflow.
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse(deep.as_bytes()), Err(Unreadable::NotAnObject));
    }

    proptest::proptest! {
        /// Any JSON object without a repeated name parses as serde_json parses it; the same
        /// object with one of its names repeated (at any depth) is refused.
        #[test]
        fn strict_parsing_agrees_with_serde_json_and_refuses_every_repeat(value in json_object(), pick in 0usize..64) {
            let text = serde_json::to_string(&value).unwrap();
            let serde_json: Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(parse(text.as_bytes()).map(Value::Object), Ok(serde_json));
            let mut objects = Vec::new();
            collect_objects(&value, &mut objects);
            let non_empty: Vec<_> = objects.into_iter().filter(|o| !o.is_empty()).collect();
            if let Some(object) = non_empty.get(pick % non_empty.len().max(1)) {
                // Repeat the object's first member inside it, in the text.
                let (name, member) = object.iter().next().unwrap();
                let whole = serde_json::to_string(&Value::Object((*object).clone())).unwrap();
                let repeated = format!("{{{}:{},{}", serde_json::to_string(name).unwrap(), member, &whole[1..]);
                let text = text.replacen(&whole, &repeated, 1);
                proptest::prop_assert_eq!(parse(text.as_bytes()), Err(Unreadable::DuplicateName), "{}", text);
            }
        }
    }

    proptest::proptest! {
        /// Any bytes at all get an answer from the parse and the checks, never a panic.
        #[test]
        fn any_body_is_answered(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
                                json in json_object()) {
            for bytes in [body, serde_json::to_vec(&json).unwrap()] {
                if let Ok(members) = parse(&bytes) {
                    let _ = check(Operation::Chat, &members);
                    let _ = check(Operation::Embeddings, &members);
                    let _ = choices(&members);
                }
            }
        }
    }

    fn collect_objects<'a>(value: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
        match value {
            Value::Object(o) => {
                out.push(o);
                o.values().for_each(|v| collect_objects(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect_objects(v, out)),
            _ => {}
        }
    }

    fn json_object() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            "[a-z\\\\\"\u{e9}\u{1F600} ]{0,8}".prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z\u{e9}]{1,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map("[a-z]{1,6}", value, 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
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
