//! What any byte sequence a client sends gets: a 4xx naming the offending place, before a
//! value can reach a handler or PostgreSQL.
//!
//! - [`parse_json`]: a body must be valid JSON (400 `invalid_json`) of the expected top-level
//!   shape (an object, or a list where a route takes one: 422 `invalid_request`), and no
//!   string in it — key or value — may hold a control character other than tab, line feed
//!   and carriage return (422 `invalid_request` with the JSON path, e.g. `$.reason`).
//! - [`reject_control_characters`]: middleware refusing control characters in the decoded
//!   path (400 `invalid_path`), in query parameters (422 `invalid_query`, naming the
//!   parameter) and in header values (422 `invalid_header`, naming the header).
//!
//! PostgreSQL cannot store U+0000 in text at all; other control characters are refused
//! because no field of this API has a use for them and they forge log and terminal output.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::http::strict::Strict;

use crate::error::Code;
use crate::http::error::ApiError;

/// The top-level JSON shape a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Top {
    /// `{...}`
    Object,
    /// `[...]`
    Array,
}

/// True for a character no string of the API may hold (C0 and C1 controls and DEL, except
/// tab, line feed and carriage return, which free text may contain).
pub fn forbidden_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// True for a character no query value, path segment or header may hold.
fn forbidden_in_token(c: char) -> bool {
    c.is_control()
}

/// True when `bytes` may hold a control character inside a JSON string: an escape `\u…`,
/// `\b` or `\f`, a raw DEL, or a raw C1 control (UTF-8 `C2 80`–`C2 9F`). Raw C0 controls are already
/// invalid JSON. Cheap, so clean bodies are not parsed twice.
fn may_hold_controls(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| {
        (w[0] == b'\\' && matches!(w[1], b'u' | b'b' | b'f'))
            || (w[0] == 0xC2 && (0x80..=0x9F).contains(&w[1]))
    }) || bytes.contains(&0x7F)
}

/// The JSON path of the first string (key or value) holding a forbidden character.
pub fn control_character_path(value: &serde_json::Value) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &mut String) -> Option<String> {
        match value {
            serde_json::Value::String(s) => s.chars().any(forbidden_in_text).then(|| path.clone()),
            serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let found = if k.chars().any(forbidden_in_text) { Some(path.clone()) } else { walk(v, path) };
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }
    walk(value, &mut "$".to_string())
}

/// Parses a JSON body of shape `top` into `T` (see the module docs for the answers).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], top: Top) -> Result<T, ApiError> {
    // The common case first: a well-formed body of the right shape without a control
    // character parses once, without the path tracking only an error needs. A body with an
    // array anywhere is read strictly (`http::strict`: never an array for an object).
    if !holds_bracket(bytes) {
        if let Ok(parsed) = serde_json::from_slice::<T>(bytes) {
            if has_shape(bytes, top) && !may_hold_controls(bytes) {
                return Ok(parsed);
            }
        }
    } else if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if has_shape(bytes, top) && control_character_path(&value).is_none() {
            let first: Result<T, _> = serde_path_to_error::deserialize(Strict(&value));
            match first {
                Ok(parsed) => return Ok(parsed),
                Err(e) if e.inner().to_string().starts_with("invalid type: floating point") => {
                    integral_floats_as_integers(&mut value);
                }
                Err(e) => {
                    return Err(ApiError::new(Code::InvalidRequest, format!("{}: {}", e.path(), e.inner())))
                }
            }
            return serde_path_to_error::deserialize(Strict(&value))
                .map_err(|e| ApiError::new(Code::InvalidRequest, format!("{}: {}", e.path(), e.inner())));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, serde_path_to_error::Error<serde_json::Error>> =
        serde_path_to_error::deserialize(&mut de);
    match &parsed {
        Err(e) if !e.inner().is_data() => {
            return Err(ApiError::new(Code::InvalidJson, e.inner().to_string()));
        }
        Ok(_) => de.end().map_err(|e| ApiError::new(Code::InvalidJson, e.to_string()))?,
        Err(_) => {}
    }
    if !has_shape(bytes, top) {
        let wanted = if top == Top::Object { "a JSON object" } else { "a JSON array" };
        return Err(ApiError::new(Code::InvalidRequest, format!("$: the body must be {wanted}")));
    }
    if may_hold_controls(bytes) {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(path) = control_character_path(&value) {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!("{path}: control characters are not allowed"),
                ));
            }
        }
    }
    match parsed {
        // `410.0` is an integer in JSON Schema (and what some JSON encoders write): read
        // integral numbers as integers and try again. Only on this error, so the common path
        // parses once.
        Err(e) if e.inner().to_string().starts_with("invalid type: floating point") => {
            let mut value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| ApiError::new(Code::InvalidJson, e.to_string()))?;
            integral_floats_as_integers(&mut value);
            serde_path_to_error::deserialize(value)
                .map_err(|e| ApiError::new(Code::InvalidRequest, format!("{}: {}", e.path(), e.inner())))
        }
        other => {
            other.map_err(|e| ApiError::new(Code::InvalidRequest, format!("{}: {}", e.path(), e.inner())))
        }
    }
}

/// Whether the body holds a `[` anywhere (an array, or the character in a string: either way
/// the strict reading is taken, which answers both alike).
fn holds_bracket(bytes: &[u8]) -> bool {
    bytes.contains(&b'[')
}

/// Whether the first non-blank byte opens the wanted top level.
fn has_shape(bytes: &[u8], top: Top) -> bool {
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    match top {
        Top::Object => first == Some(b'{'),
        Top::Array => first == Some(b'['),
    }
}

fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // An integral float in range converts exactly (it is an integer already).
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "integral and within the target range"
            )]
            if f.fract() == 0.0 && (0.0..1.8e19).contains(&f) {
                *value = Value::from(f as u64);
            } else if f.fract() == 0.0 && (-9.2e18..0.0).contains(&f) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Middleware: control characters in the path, a query parameter or a header value.
pub async fn reject_control_characters(request: Request, next: Next) -> Response {
    // Borrowed (no allocation) unless the path is percent-encoded.
    let path = percent_encoding::percent_decode_str(request.uri().path()).decode_utf8_lossy();
    if path.chars().any(forbidden_in_token) {
        return ApiError::new(Code::InvalidPath, "the path holds a control character").into_response();
    }
    if let Some(query) = request.uri().query() {
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if value.is_empty() {
                let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
                return ApiError::new(
                    Code::InvalidQuery,
                    format!("{shown}: an empty value (leave the parameter out)"),
                )
                .into_response();
            }
            if name.chars().chain(value.chars()).any(forbidden_in_token) {
                let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
                return ApiError::new(
                    Code::InvalidQuery,
                    format!("{shown}: control characters are not allowed"),
                )
                .into_response();
            }
        }
    }
    for (name, value) in request.headers() {
        if value.as_bytes().iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F) {
            return ApiError::new(Code::InvalidHeader, format!("{name}: control characters are not allowed"))
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields are only deserialized")]
    struct Body {
        name: String,
        #[serde(default)]
        tags: Option<std::collections::BTreeMap<String, String>>,
    }

    fn code(r: Result<Body, ApiError>) -> (u16, &'static str, String) {
        match r {
            Ok(_) => (200, "", String::new()),
            Err(e) => (e.code.status(), e.code.as_str(), e.message),
        }
    }

    #[test]
    fn an_array_where_an_object_is_expected_is_422() {
        assert_eq!(code(parse_json(br#"["ArrayCo"]"#, Top::Object)).1, "invalid_request");
        assert_eq!(code(parse_json(br#""ArrayCo""#, Top::Object)).0, 422);
        assert_eq!(code(parse_json(br#"{"name": "ok"}"#, Top::Object)).0, 200);
    }

    #[test]
    fn control_characters_are_named_by_path() {
        let (status, c, message) = code(parse_json(br#"{"name": "a\u0000b"}"#, Top::Object));
        assert_eq!((status, c), (422, "invalid_request"));
        assert!(message.starts_with("$.name:"), "{message}");
        let (_, _, message) = code(parse_json(br#"{"name": "x", "tags": {"k": "\u001b[31m"}}"#, Top::Object));
        assert!(message.starts_with("$.tags.k:"), "{message}");
        let (_, _, message) = code(parse_json("{\"name\": \"x\u{85}\"}".as_bytes(), Top::Object));
        assert!(message.starts_with("$.name:"), "C1 control: {message}");
        assert_eq!(code(parse_json(br#"{"name": "tab\tand\nnewline"}"#, Top::Object)).0, 200);
        assert_eq!(code(parse_json(br#"{"name": "not \\u0000 a control"}"#, Top::Object)).0, 200);
    }

    #[test]
    fn malformed_json_is_400() {
        assert_eq!(code(parse_json(b"{\"name\": ", Top::Object)).0, 400);
        assert_eq!(code(parse_json(b"{\"name\": \"a\"} trailing", Top::Object)).0, 400);
        assert_eq!(code(parse_json(b"\xff\xfe", Top::Object)).0, 400);
    }

    proptest::proptest! {
        /// Any bytes get a 200 or a 4xx from the body parser, never a panic or a 5xx.
        #[test]
        fn any_body_is_answered(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let (status, _, _) = code(parse_json(&bytes, Top::Object));
            proptest::prop_assert!(status == 200 || (400..500).contains(&status));
        }

        /// Any string value is either accepted or refused with its path.
        #[test]
        fn any_string_value_is_answered(s in "\\PC*|[\\x00-\\x1f\\x7f]{0,3}") {
            let body = serde_json::json!({"name": s}).to_string();
            let (status, _, message) = code(parse_json(body.as_bytes(), Top::Object));
            if s.chars().any(forbidden_in_text) {
                proptest::prop_assert_eq!(status, 422);
                proptest::prop_assert!(message.starts_with("$.name"));
            } else {
                proptest::prop_assert_eq!(status, 200);
            }
        }
    }
}
