//! Extractors whose rejections use the error envelope: JSON bodies, path and query values,
//! and the request context (id, client address, user agent).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

pub use crate::commands::RequestMeta;
use crate::error::Code;
use crate::http::authenticate::SessionUser;
use crate::http::client_ip::client_ip;
use crate::http::error::ApiError;
use crate::http::input::{parse_json, Top};
use crate::http::request_id::current_request_id;
use crate::http::AppState;

/// A JSON object body; malformed JSON is 400 `invalid_json`, a wrong shape (an array, a
/// control character, a missing field) 422 `invalid_request` (see [`crate::http::input`]).
pub struct Json<T>(pub T);

/// A JSON array body (the few routes that take a list).
pub struct JsonList<T>(pub T);

fn is_json_content_type(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().split_once('/'))
        .map(|(kind, sub)| {
            // Compared without allocating: media types are case-insensitive.
            let suffix = sub.len().checked_sub(5).and_then(|at| sub.get(at..));
            kind.eq_ignore_ascii_case("application")
                && (sub.eq_ignore_ascii_case("json")
                    || suffix.is_some_and(|s| s.eq_ignore_ascii_case("+json")))
        })
        .unwrap_or(false)
}

async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json_content_type(&req) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "expected a body with Content-Type: application/json",
        ));
    }
    body_bytes(req, state).await
}

/// The whole body, within the router's `DefaultBodyLimit`.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(Code::PayloadTooLarge, "request body is too large")
        } else {
            ApiError::new(Code::InvalidBody, e.body_text())
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes, Top::Object).map(Json)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonList<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes, Top::Array).map(JsonList)
    }
}

/// A path parameter; one that does not deserialize is 400 `invalid_path`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| ApiError::new(Code::InvalidPath, e.body_text()))
    }
}

/// Query parameters; a wrong shape is 422 `invalid_query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| ApiError::new(Code::InvalidQuery, e.body_text()))
    }
}

/// The command side's plain [`RequestMeta`] (where a request came from, for event metadata),
/// filled in from the request.
impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let source_ip = client_ip(parts, &state.trusted_proxies).map(|ip| ip.to_string()).unwrap_or_default();
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect())
            .unwrap_or_default();
        // A session's person is the actor of what the request changes; resolve the session
        // now if no extractor did yet (an unauthenticated request simply has no user).
        if parts.extensions.get::<SessionUser>().is_none()
            && crate::http::authenticate::has_session_cookie(parts)
        {
            // Through the principal: a session counts only when no key header is present.
            let _ = crate::auth::Principal::from_request_parts(parts, state).await;
        }
        let user =
            parts.extensions.get::<SessionUser>().map(|u| (u.user.user_id.clone(), u.user.email.clone()));
        Ok(Self { request_id: current_request_id(), source_ip, user_agent, user })
    }
}

/// An optional JSON body: an empty body or `null` is `None`; anything else must be a JSON object.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        // No body, or a JSON `null`: no options.
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        parse_json(&bytes, Top::Object).map(|v| OptionalJson(Some(v)))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use tower::{Layer, ServiceExt};

    use super::*;

    fn streamed(chunks: Vec<Vec<u8>>) -> Request {
        let frames = chunks.into_iter().map(Ok::<_, std::io::Error>);
        Request::new(Body::from_stream(futures::stream::iter(frames)))
    }

    /// The body as a handler reads it, behind the router's body limit.
    async fn read(req: Request) -> Result<Bytes, ApiError> {
        let service = tower::service_fn(|req: Request| async move {
            Ok::<_, std::convert::Infallible>(body_bytes(req, &()).await)
        });
        let limited = DefaultBodyLimit::max(crate::http::MAX_BODY_BYTES).layer(service);
        limited.oneshot(req).await.unwrap_or_else(|e| match e {})
    }

    #[tokio::test]
    async fn a_body_is_read_whole_in_one_frame_or_many() {
        let one = read(Request::new(Body::from(r#"{"a":1}"#))).await.map_err(|e| e.code);
        assert_eq!(one.as_deref(), Ok(&br#"{"a":1}"#[..]));
        let frames = vec![b"{\"a\"".to_vec(), b"".to_vec(), b":1".to_vec(), b"}".to_vec()];
        let many = read(streamed(frames)).await;
        assert_eq!(many.map_err(|e| e.code).as_deref(), Ok(&br#"{"a":1}"#[..]));
        let empty = read(Request::new(Body::empty())).await.map_err(|e| e.code);
        assert_eq!(empty.as_deref(), Ok(&b""[..]));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_also_without_a_length() {
        let half = vec![b' '; crate::http::MAX_BODY_BYTES / 2 + 1];
        let over = read(streamed(vec![half.clone(), half.clone()])).await.map_err(|e| e.code);
        assert_eq!(over, Err(Code::PayloadTooLarge));
        // Exactly the limit, in three frames of which the first is the largest.
        let limit = crate::http::MAX_BODY_BYTES;
        let exact = vec![b' '; limit];
        let frames = vec![exact[..limit - 20].to_vec(), exact[..10].to_vec(), exact[..10].to_vec()];
        let at = read(streamed(frames)).await;
        assert_eq!(at.map(|b| b.len()).map_err(|e| e.code), Ok(limit));
    }

    #[tokio::test]
    async fn a_body_that_fails_to_arrive_is_400_invalid_body() {
        let frames = vec![Ok(b"{".to_vec()), Err(std::io::Error::other("connection reset"))];
        let broken = read(Request::new(Body::from_stream(futures::stream::iter(frames)))).await;
        assert_eq!(broken.map_err(|e| e.code), Err(Code::InvalidBody));
    }

    #[test]
    fn json_media_types_are_recognised_in_any_case() {
        let with = |ct: &str| {
            let mut req = Request::new(Body::empty());
            req.headers_mut().insert(
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_str(ct)
                    .unwrap_or_else(|_| axum::http::HeaderValue::from_static("x")),
            );
            is_json_content_type(&req)
        };
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
            " application/json ",
        ] {
            assert!(with(yes), "{yes}");
        }
        for no in ["text/json", "application/jsonx", "application/xml", "json", "+json"] {
            assert!(!with(no), "{no}");
        }
    }
}
