//! The floor of `scripts/bench-gateway.sh`: a proxy that only forwards, built on the same
//! server (axum) and upstream client (hyper's pooled client, as `tokenhub gateway`'s
//! `gateway::upstream`) as the gateway, with none of its work (no key, no policy, no
//! reservation, no metering). What the gateway costs beyond this is its own.
//!
//! ```text
//! cargo run --release --example bare_proxy -- 127.0.0.1:9001 http://127.0.0.1:9000
//! ```

#![allow(clippy::print_stderr, reason = "a command-line tool reports on the terminal")]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

async fn forward(State(up): State<Upstream>, body: Bytes) -> Response {
    let Ok(request) =
        Request::post(up.uri.clone()).header(header::CONTENT_TYPE, "application/json").body(Full::new(body))
    else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let answer = match up.client.request(request).await {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    match answer.into_body().collect().await {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], Body::from(body.to_bytes()))
            .into_response(),
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
    let Ok(uri) = format!("{base}/v1/chat/completions").parse::<Uri>() else {
        eprintln!("not a URL: {base}");
        std::process::exit(2);
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client =
        Client::builder(hyper_util::rt::TokioExecutor::new()).pool_max_idle_per_host(256).build(connector);
    let app = Router::new().route("/v1/chat/completions", post(forward)).with_state(Upstream { client, uri });
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap_or_else(|e| {
        eprintln!("cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server stopped: {e}");
    }
}
