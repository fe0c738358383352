//! A minimal fast OpenAI-compatible upstream for `scripts/bench-gateway.sh`: answers
//! `POST /v1/chat/completions` at once with a fixed completion and its `usage`; for the model
//! `slow-stream` it streams one chunk every 100 ms for 10 s, then the usage chunk.
//!
//! ```text
//! cargo run --release --example fast_upstream -- 127.0.0.1:9000
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool reports on the terminal")]

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

const ANSWER: &str = r#"{"id":"c0","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#;

async fn chat(body: Bytes) -> Response {
    let slow = body.windows(11).any(|w| w == b"slow-stream");
    if !slow {
        return ([("content-type", "application/json")], ANSWER).into_response();
    }
    let chunks = futures::stream::unfold(0u32, |n| async move {
        if n > 100 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let event = if n == 100 {
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":100,\"total_tokens\":110}}\n\ndata: [DONE]\n\n".to_string()
        } else {
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"}}]}\n\n".to_string()
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(event)), n + 1))
    });
    ([("content-type", "text/event-stream")], Body::from_stream(chunks)).into_response()
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("fast upstream on {addr}");
    let app = Router::new().route("/v1/chat/completions", post(chat));
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
