//! Usage ingest load generator (run by `scripts/load-usage.sh`): posts `--records` usage
//! records in batches from `--concurrency` tasks to a running server, re-sending a share of
//! them on purpose (`--duplicate-percent`), then waits until the tenant's rollups show every
//! unique record and prints records per second acknowledged and end to end (acknowledged by
//! JetStream and visible in the rollups). Exits 1 when the rollup totals differ from what was
//! sent (each duplicate counted once).
//!
//! ```text
//! cargo run --release --example load_usage -- --base http://127.0.0.1:8080 --master-key … \
//!     --gateway-key … --tenant ten_… --keys id1,id2 [--records 200000] [--batch 500]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool reports on the terminal")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

struct Args {
    base: String,
    master_key: String,
    gateway_key: String,
    tenant: String,
    keys: Vec<String>,
    records: u64,
    batch: u64,
    concurrency: u64,
    duplicate_percent: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        master_key: String::new(),
        gateway_key: String::new(),
        tenant: String::new(),
        keys: Vec::new(),
        records: 200_000,
        batch: 500,
        concurrency: 8,
        duplicate_percent: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: not a number"));
        match flag.as_str() {
            "--base" => args.base = value.clone(),
            "--master-key" => args.master_key = value.clone(),
            "--gateway-key" => args.gateway_key = value.clone(),
            "--tenant" => args.tenant = value.clone(),
            "--keys" => args.keys = value.split(',').map(str::to_string).collect(),
            "--records" => args.records = number()?,
            "--batch" => args.batch = number()?.clamp(1, 1000),
            "--concurrency" => args.concurrency = number()?.max(1),
            "--duplicate-percent" => args.duplicate_percent = number()?.min(100),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.master_key.is_empty()
        || args.gateway_key.is_empty()
        || args.tenant.is_empty()
        || args.keys.is_empty()
    {
        return Err("--master-key, --gateway-key, --tenant and --keys are required".into());
    }
    Ok(args)
}

/// Record `n`: 1 API call, `n % 100 + 1` prompt tokens and 10 completion tokens.
fn record(n: u64, keys: &[String], run: &str, timestamp: &str) -> Value {
    json!({
        "id": format!("{run}-{n}"),
        "key": keys[(n % keys.len() as u64) as usize],
        "model": if n % 2 == 0 { "gpt-4o" } else { "claude" },
        "api_calls": 1,
        "prompt_tokens": n % 100 + 1,
        "completion_tokens": 10,
        "bandwidth_bytes": 1000,
        "timestamp": timestamp,
    })
}

fn expected_tokens(records: u64) -> u64 {
    (0..records).map(|n| n % 100 + 1 + 10).sum()
}

async fn summary(http: &reqwest::Client, args: &Args) -> Result<Value, String> {
    http.get(format!("{}/usage/summary", args.base))
        .header("X-Master-Key", &args.master_key)
        .header("X-Tenant-ID", &args.tenant)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Arc::new(parse_args()?);
    tokenhub::app::install_crypto_provider();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().map_err(|e| e.to_string())?;
    let before = summary(&http, &args).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let timestamp = time::OffsetDateTime::now_utc().format(&Rfc3339).map_err(|e| e.to_string())?;
    let batches = args.records.div_ceil(args.batch);
    let next = Arc::new(AtomicU64::new(0));
    let (accepted, duplicates, sent) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    println!(
        "posting {} records in batches of {} from {} tasks, {}% re-sent on purpose…",
        args.records, args.batch, args.concurrency, args.duplicate_percent
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (args, http, next, run, timestamp) =
            (args.clone(), http.clone(), next.clone(), run.clone(), timestamp.clone());
        let (accepted, duplicates, sent) = (accepted.clone(), duplicates.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), String>(());
                }
                let from = b * args.batch;
                let to = (from + args.batch).min(args.records);
                let mut records: Vec<Value> =
                    (from..to).map(|n| record(n, &args.keys, &run, &timestamp)).collect();
                // Re-send some records of the previous batch (already acknowledged or in flight).
                let dups = (to - from) * args.duplicate_percent / 100;
                for n in from.saturating_sub(dups)..from {
                    records.push(record(n, &args.keys, &run, &timestamp));
                }
                sent.fetch_add(records.len() as u64, Ordering::Relaxed);
                let answer: Value = loop {
                    let res = http
                        .post(format!("{}/v1/usage", args.base))
                        .bearer_auth(&args.gateway_key)
                        .json(&json!({"records": records}))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = res.status();
                    let body: Value = res.json().await.map_err(|e| e.to_string())?;
                    if status.is_success() {
                        break body;
                    }
                    if status.as_u16() != 503 {
                        return Err(format!("{status}: {body}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                accepted.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                duplicates.fetch_add(answer["duplicates"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let acked = started.elapsed();
    let (accepted, duplicates, sent) =
        (accepted.load(Ordering::Relaxed), duplicates.load(Ordering::Relaxed), sent.load(Ordering::Relaxed));
    let base_records = before["records"].as_u64().unwrap_or(0);
    let base_tokens = before["llm_tokens"].as_u64().unwrap_or(0);
    let mut last_progress = Instant::now();
    let after = loop {
        let now = summary(&http, &args).await?;
        let counted = now["records"].as_u64().unwrap_or(0) - base_records;
        if counted >= args.records {
            break now;
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            eprintln!("  rollups: {counted}/{} records", args.records);
            last_progress = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("rollups stuck at {counted}/{}", args.records));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let end_to_end = started.elapsed();
    let records = after["records"].as_u64().unwrap_or(0) - base_records;
    let tokens = after["llm_tokens"].as_u64().unwrap_or(0) - base_tokens;
    let rate = |d: Duration| args.records as f64 / d.as_secs_f64();
    println!(
        "sent {sent} records ({} unique, {} re-sent): accepted {accepted}, duplicates {duplicates}",
        args.records,
        sent - args.records
    );
    println!("acknowledged by JetStream:   {:>8.0} records/s ({:.2} s)", rate(acked), acked.as_secs_f64());
    println!(
        "end to end (in the rollups): {:>8.0} records/s ({:.2} s)   target >= 20000",
        rate(end_to_end),
        end_to_end.as_secs_f64()
    );
    let want_tokens = expected_tokens(args.records);
    println!("rollups: {records} records, {tokens} LLM tokens (expected {} and {want_tokens})", args.records);
    if records != args.records || tokens != want_tokens || accepted != args.records {
        return Err("rollup totals differ from what was sent".into());
    }
    println!("totals match: every duplicate counted once");
    Ok(())
}
