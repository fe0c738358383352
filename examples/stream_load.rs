//! Many slow streams at once through the gateway (run by `scripts/bench-gateway.sh`): opens
//! `--streams` streaming chat completions together, reads each to its end, and prints how many
//! completed, the p50/p99 time to first byte, and the gateway's resident memory while they
//! were all open (from `/proc/<pid>/status`, `--pid`).
//!
//! ```text
//! cargo run --release --example stream_load -- --url http://127.0.0.1:8081/v1/chat/completions \
//!     --key thk_… --streams 2000 --pid 1234
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool reports on the terminal")]

use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    tokenhub::app::install_crypto_provider();
    let (Some(url), Some(key)) = (arg("--url"), arg("--key")) else {
        eprintln!("usage: stream_load --url <gateway chat completions URL> --key <data key> [--streams N] [--pid P]");
        std::process::exit(2);
    };
    let streams: usize = arg("--streams").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let pid = arg("--pid").unwrap_or_default();
    let Ok(client) = reqwest::Client::builder().pool_max_idle_per_host(streams).build() else {
        eprintln!("cannot build the HTTP client");
        std::process::exit(2);
    };
    let before = rss_kib(&pid);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for _ in 0..streams {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let mut res = client
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(r#"{"model":"slow-stream","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"go"}]}"#)
                .send()
                .await
                .ok()?;
            if !res.status().is_success() {
                return None;
            }
            let mut first = None;
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                first.get_or_insert_with(|| t0.elapsed());
                body.extend_from_slice(&chunk);
            }
            let done = body.windows(6).any(|w| w == b"[DONE]");
            done.then_some(first.unwrap_or_default())
        }));
    }
    // Memory while every stream is open (they last 10 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = rss_kib(&pid);
    let mut firsts = Vec::new();
    for t in tasks {
        if let Ok(Some(first)) = t.await {
            firsts.push(first);
        }
    }
    firsts.sort();
    let pct = |p: f64| {
        firsts
            .get(((firsts.len() as f64 * p) as usize).min(firsts.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "streams {streams} completed {} in {:.1} s; time to first byte p50 {:.1} ms p99 {:.1} ms; gateway RSS {} KiB before, {} KiB with all open: {:.1} KiB per open stream",
        firsts.len(),
        started.elapsed().as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        before,
        during,
        during.saturating_sub(before) as f64 / streams as f64
    );
    if firsts.len() != streams {
        std::process::exit(1);
    }
}
