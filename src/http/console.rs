//! The admin console at `/console`: static files compiled into the binary (plain ES modules,
//! no build step), a client of the public API only, under a strict Content-Security-Policy
//! (no inline script or style, nothing from another origin, no framing).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::error::Code;
use crate::http::error::ApiError;

/// The console's policy: everything from this origin only; images may be `data:` (the TOTP
/// QR code).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../console/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../console/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../../console/api.js")),
    ("pages.js", "text/javascript; charset=utf-8", include_str!("../../console/pages.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../console/style.css")),
];

fn file(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(Code::RouteNotFound, "no such console file").into_response();
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    file("index.html")
}

async fn asset(Path(name): Path<String>) -> Response {
    file(&name)
}

/// An invite link opened in a browser: the console's invite page, with the token in the
/// fragment (never sent to a server again, never in a log).
async fn invite(Path(token): Path<String>) -> Response {
    if token.is_empty() || token.len() > 64 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return ApiError::new(Code::InviteInvalid, "the invite is not valid (wrong, expired or used)")
            .into_response();
    }
    Redirect::to(&format!("/console/#/invite/{token}")).into_response()
}

/// `/console`, `/console/` and `/console/<file>`, and the landing of invite links
/// (`/auth/invites/<token>`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/auth/invites/{token}", get(invite))
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(index))
        .route("/console/{name}", get(asset))
}
