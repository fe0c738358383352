//! Requests at a fixed rate (run by `scripts/bench-gateway.sh`): an open loop — each request is
//! sent on its own task when due, whether or not the ones before were answered, so a slow answer
//! never delays the next request (no coordinated omission) and each is timed from when it was
//! sent (the timer that paces them fires up to a millisecond late; that is not the server's).
//! Prints how many were sent, how many failed, and the p50 / p90 / p99 / p99.9 / max latency in
//! milliseconds.
//!
//! ```text
//! cargo run --release --example paced_load -- --url http://127.0.0.1:8081/v1/chat/completions \
//!     --key thk_… --body '{"model": "m", "messages": […]}' --rate 1000 --seconds 10
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool reports on the terminal")]

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    tokenhub::app::install_crypto_provider();
    let (Some(url), Some(body)) = (arg("--url"), arg("--body")) else {
        eprintln!(
            "usage: paced_load --url <URL> --body <JSON> [--key <bearer key>] [--rate N/s] [--seconds S]"
        );
        std::process::exit(2);
    };
    let key = arg("--key");
    let rate: u32 = arg("--rate").and_then(|s| s.parse().ok()).filter(|r| *r > 0).unwrap_or(1000);
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let Ok(client) = reqwest::Client::builder().pool_max_idle_per_host(256).build() else {
        eprintln!("cannot build the HTTP client");
        std::process::exit(2);
    };
    let request = move |client: &reqwest::Client| {
        let mut r = client.post(&url).header("content-type", "application/json").body(body.clone());
        if let Some(key) = &key {
            r = r.bearer_auth(key);
        }
        r
    };
    // Warm the connections first (not measured).
    for _ in 0..50 {
        let _ = request(&client).send().await.and_then(reqwest::Response::error_for_status);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let total = u64::from(rate) * seconds;
    let mut tasks = Vec::with_capacity(total as usize);
    for _ in 0..total {
        tick.tick().await;
        let sent = request(&client);
        tasks.push(tokio::spawn(async move {
            let due = Instant::now();
            let ok = match sent.send().await {
                Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0usize;
    for task in tasks {
        match task.await {
            Ok((true, took)) => latencies.push(took),
            _ => failed += 1,
        }
    }
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "rate {rate}/s for {seconds} s: {} answered, {failed} failed; latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        latencies.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}
