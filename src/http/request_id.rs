//! Request ids: taken from a well-formed incoming `X-Request-Id` or generated (UUID v7),
//! echoed on every response, recorded on the request span and in every event's metadata.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header name.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled ("" outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

fn acceptable(id: &str) -> bool {
    tokenhub_aggregates::ids::is_token(id, 128)
}

/// The path as logs may show it: an invite's token (a credential in the path) becomes
/// `{token}`.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/auth/invites/") {
        Some(rest) => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/auth/invites/{{token}}{tail}").into()
        }
        None => path.into(),
    }
}

/// Middleware: assigns the id, opens the request span, sets the response header.
pub async fn assign_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %loggable_path(request.uri().path()),
    );
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request).instrument(span.clone())).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(status, elapsed_us = started.elapsed().as_micros() as u64, "request done");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn invite_tokens_never_reach_the_span() {
        assert_eq!(super::loggable_path("/auth/invites/abcDEF123/accept"), "/auth/invites/{token}/accept");
        assert_eq!(super::loggable_path("/auth/invites/abcDEF123"), "/auth/invites/{token}");
        assert_eq!(super::loggable_path("/tenant/info"), "/tenant/info");
    }
}
