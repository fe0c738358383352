//! The floor of `scripts/bench-gateway.sh`: a proxy that only forwards, built on the same
//! server (axum) and client (reqwest) as `tokenhub gateway`, with none of its work (no key, no
//! policy, no reservation, no metering). What the gateway costs beyond this is its own.
//!
//! ```text
//! cargo run --release --example bare_proxy -- 127.0.0.1:9001 http://127.0.0.1:9000
//! ```

#![allow(clippy::print_stderr, reason = "a command-line tool reports on the terminal")]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

async fn forward(State(up): State<Upstream>, body: Bytes) -> Response {
    let sent =
        up.client.post(up.url.clone()).header(header::CONTENT_TYPE, "application/json").body(body).send();
    let answer = match sent.await {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match answer.bytes().await {
        Ok(bytes) => {
            (status, [(header::CONTENT_TYPE, "application/json")], Body::from(bytes)).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(base)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy <listen address> <upstream base, e.g. http://127.0.0.1:9000>");
        std::process::exit(2);
    };
    let Ok(url) = reqwest::Url::parse(&format!("{base}/v1/chat/completions")) else {
        eprintln!("not a URL: {base}");
        std::process::exit(2);
    };
    // As `tokenhub` does at start (reqwest's TLS comes without a provider).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(256)
        .retry(reqwest::retry::never())
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot build the client: {e}");
            std::process::exit(1);
        });
    let app = Router::new().route("/v1/chat/completions", post(forward)).with_state(Upstream { client, url });
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap_or_else(|e| {
        eprintln!("cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server stopped: {e}");
    }
}
