//! Issue 31: per-minute limits are counted once for the fleet. Three `tokenhub serve` on one
//! PostgreSQL, requests spread round-robin: a key's requests per minute and a tenant's
//! control-API rate admit exactly the limit in a window (not 3 ×); with
//! `FLEET_RATE_LIMITS=false` each instance counts on its own (the old behaviour, 3 ×).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::*;

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let res = http.post(url).header("X-Master-Key", MASTER).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.unwrap()
}

/// Waits until at least `needed` seconds are left in the current minute, so a burst stays in
/// one window.
async fn room_in_this_minute(needed: u64) {
    let second = time::OffsetDateTime::now_utc().second() as u64;
    if 60 - second < needed {
        tokio::time::sleep(Duration::from_secs(60 - second) + Duration::from_millis(200)).await;
    }
}

/// Three instances; returns them, a gateway key, a tenant id and its admin key.
async fn fleet(
    db: &TestDb,
    stream: &TestStream,
    env: &[(&str, &str)],
) -> (Vec<ServerProcess>, reqwest::Client, String, String, String) {
    tokenhub::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut env = env.to_vec();
    env.push(("MASTER_API_KEY", MASTER));
    let servers: Vec<ServerProcess> = (0..3).map(|_| ServerProcess::start_with(db, stream, &env)).collect();
    for server in &servers {
        server.wait_ready(&http).await;
    }
    let base = &servers[0].base;
    let tenant = post(&http, format!("{base}/admin/tenants"), json!({"name": "Fleet"})).await;
    let gateway =
        post(&http, format!("{base}/admin/platform-keys"), json!({"name": "gw", "role": "gateway"})).await;
    (
        servers,
        http,
        gateway["api_key"].as_str().unwrap().to_string(),
        tenant["tenant_id"].as_str().unwrap().to_string(),
        tenant["api_key"].as_str().unwrap().to_string(),
    )
}

/// `total` verifications of `key`, round-robin over `servers`, 12 at a time; the VALID count.
async fn verified(
    http: &reqwest::Client,
    servers: &[ServerProcess],
    gateway: &str,
    key: &str,
    total: usize,
) -> usize {
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let calls = (0..total).map(|i| {
        let (http, url) = (http.clone(), format!("{}/v1/keys/verify", bases[i % bases.len()]));
        let (gateway, key) = (gateway.to_string(), key.to_string());
        async move {
            let res = http.post(url).bearer_auth(gateway).json(&json!({"key": key})).send().await.unwrap();
            let body: Value = res.json().await.unwrap();
            body["code"].as_str().unwrap_or_default().to_string()
        }
    });
    let codes: Vec<String> = futures::stream::iter(calls).buffer_unordered(12).collect().await;
    assert!(codes.iter().all(|c| c == "VALID" || c == "RATE_LIMITED"), "{codes:?}");
    codes.iter().filter(|c| *c == "VALID").count()
}

/// `total` control-API calls by `key`, round-robin over `servers`; the count answered 200.
async fn control_calls(http: &reqwest::Client, servers: &[ServerProcess], key: &str, total: usize) -> usize {
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let calls = (0..total).map(|i| {
        let (http, url, key) =
            (http.clone(), format!("{}/tenant/info", bases[i % bases.len()]), key.to_string());
        async move { http.get(url).bearer_auth(key).send().await.unwrap().status().as_u16() }
    });
    let statuses: Vec<u16> = futures::stream::iter(calls).buffer_unordered(12).collect().await;
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    statuses.iter().filter(|s| **s == 200).count()
}

async fn key_with_rpm(http: &reqwest::Client, base: &str, tenant: &str, rpm: u32) -> String {
    let issued = post(
        http,
        format!("{base}/admin/api-keys"),
        json!({"tenant_id": tenant, "name": "limited", "rate_limit": {"requests_per_minute": rpm}}),
    )
    .await;
    issued["api_key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn three_instances_admit_a_keys_and_a_tenants_per_minute_limit_once() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (servers, http, gateway, tenant, admin_key) = fleet(&db, &stream, &[]).await;
    let key = key_with_rpm(&http, &servers[0].base, &tenant, 30).await;
    room_in_this_minute(20).await;
    let admitted = verified(&http, &servers, &gateway, &key, 120).await;
    assert_eq!(admitted, 30, "the key's 30 per minute, across three instances");

    // The tenant's control-API limit (the operator's override), through any instance.
    let url = format!("{}/admin/tenants/{tenant}", servers[0].base);
    let res = http
        .patch(url)
        .header("X-Master-Key", MASTER)
        .json(&json!({"limits": {"requests_per_minute": 20}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Every instance re-reads overrides within 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    room_in_this_minute(20).await;
    let passed = control_calls(&http, &servers, &admin_key, 60).await;
    assert_eq!(passed, 20, "the tenant's 20 per minute, across three instances");
}

#[tokio::test]
async fn with_fleet_limits_off_each_instance_counts_alone() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (servers, http, gateway, tenant, _) = fleet(&db, &stream, &[("FLEET_RATE_LIMITS", "false")]).await;
    let key = key_with_rpm(&http, &servers[0].base, &tenant, 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    room_in_this_minute(20).await;
    let admitted = verified(&http, &servers, &gateway, &key, 60).await;
    assert_eq!(admitted, 30, "10 per minute on each of three instances");
}
