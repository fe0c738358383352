//! Two `tokenhub serve` processes on the same PostgreSQL and NATS: a key revoked or disabled
//! on one stops verifying on the other within the stated bound (1 s). Their logs, at debug
//! level, never contain a key.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

async fn call(http: &reqwest::Client, method: Method, url: String, body: Option<Value>) -> Value {
    let mut req = http.request(method, url).header("X-Master-Key", MASTER);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.unwrap()
}

async fn verify_code(http: &reqwest::Client, base: &str, gateway: &str, key: &str) -> String {
    let res = http
        .post(format!("{base}/v1/keys/verify"))
        .bearer_auth(gateway)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    body["code"].as_str().unwrap_or_default().to_string()
}

/// Polls instance `base` until `key` answers `want`; returns how long that took.
async fn propagation(http: &reqwest::Client, base: &str, gateway: &str, key: &str, want: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if verify_code(http, base, gateway, key).await == want {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{key:.8}… did not become {want} on {base} within 5 s");
}

#[tokio::test]
async fn a_revoked_key_stops_on_every_instance_within_a_second() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    tokenhub::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut a = ServerProcess::start(&db, &stream);
    a.wait_ready(&http).await;
    let mut b = ServerProcess::start(&db, &stream);
    b.wait_ready(&http).await;

    let tenant =
        call(&http, Method::POST, format!("{}/admin/tenants", a.base), Some(json!({"name": "Two"}))).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_string();
    let admin_key = tenant["api_key"].as_str().unwrap().to_string();
    let gateway = call(
        &http,
        Method::POST,
        format!("{}/admin/platform-keys", a.base),
        Some(json!({"name": "gw", "role": "gateway"})),
    )
    .await;
    let gateway = gateway["api_key"].as_str().unwrap().to_string();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let issued = call(
            &http,
            Method::POST,
            format!("{}/admin/api-keys", a.base),
            Some(json!({"tenant_id": tenant_id, "name": "k"})),
        )
        .await;
        keys.push((
            issued["public_id"].as_str().unwrap().to_string(),
            issued["api_key"].as_str().unwrap().to_string(),
        ));
    }
    for (_, key) in &keys {
        propagation(&http, &b.base, &gateway, key, "VALID").await;
    }

    let (revoked_id, revoked_key) = &keys[0];
    call(&http, Method::DELETE, format!("{}/admin/api-keys/{revoked_id}", a.base), None).await;
    let revoke_lag = propagation(&http, &b.base, &gateway, revoked_key, "REVOKED").await;

    let (disabled_id, disabled_key) = &keys[1];
    http.post(format!("{}/tenant/api-keys/{disabled_id}/disable", a.base))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    let disable_lag = propagation(&http, &b.base, &gateway, disabled_key, "DISABLED").await;

    let (rotated_id, rotated_key) = &keys[2];
    let rotated: Value = http
        .post(format!("{}/tenant/api-keys/{rotated_id}/rotate", a.base))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotate_lag = propagation(&http, &b.base, &gateway, rotated_key, "NOT_FOUND").await;
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    eprintln!("propagation to the other instance: revoke {revoke_lag:?}, disable {disable_lag:?}, rotate {rotate_lag:?}");
    for lag in [revoke_lag, disable_lag, rotate_lag] {
        assert!(lag < Duration::from_secs(1), "stated bound is 1 s, measured {lag:?}");
    }
    assert_eq!(verify_code(&http, &b.base, &gateway, &new_key).await, "VALID");

    // A secret stored on one instance and revealed on the other.
    let canary_secret = "canary-secret-value-7d1f";
    let stored = http
        .post(format!("{}/tenant/secrets", a.base))
        .bearer_auth(&admin_key)
        .json(&json!({"key": "CANARY", "value": canary_secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let revealed: Value = http
        .post(format!("{}/tenant/secrets/CANARY/reveal", b.base))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revealed["value"], canary_secret);

    // The published log lines (shared/seeds/003): a rotated-away key on the control API.
    let refused = http.get(format!("{}/tenant/info", a.base)).bearer_auth(rotated_key).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let logs = format!("{}{}", a.logs(), b.logs());
    assert!(
        logs.lines().any(|l| l.contains(r#""msg":"Tenant validated""#)
            && l.contains(&format!(r#""tenant_id":"{tenant_id}""#))),
        "no 'Tenant validated' line with the tenant id"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""msg":"Invalid API key""#) && l.contains(r#""error":"not found""#)),
        "no 'Invalid API key' line with its reason"
    );
    assert!(!logs.contains(canary_secret), "a secret value reached the logs");
    assert!(logs.contains("tenant validated") || logs.contains("api key issued"), "logs were captured");
    for secret in keys.iter().map(|(_, k)| k).chain([&admin_key, &gateway, &new_key]) {
        assert!(!logs.contains(&secret[21..]), "a key secret reached the logs");
    }
    assert!(!logs.contains(MASTER), "the master key reached the logs");
}

#[tokio::test]
async fn three_instances_start_together_on_a_fresh_database_and_never_deadlock_under_load() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    // Started at once on a database that does not exist yet: every one must come up.
    let servers: Vec<ServerProcess> = (0..3).map(|_| ServerProcess::start(&db, &stream)).collect();
    for server in &servers {
        server.wait_ready(&http).await;
    }
    let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
    let deadlocks = || {
        sqlx::query_scalar::<_, i64>("SELECT deadlocks FROM pg_stat_database WHERE datname = $1")
            .bind(&db.name)
            .fetch_one(&admin)
    };
    let before = deadlocks().await.unwrap();
    // Writes spread over the three, 4 clients each: every projection runner and hand-over is
    // busy on checkpoints the others lock too.
    let started = Instant::now();
    let clients = servers.iter().flat_map(|s| (0..4).map(move |c| (s.base.clone(), c)));
    let tasks = clients.map(|(base, c)| {
        let http = http.clone();
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in 0..25 {
                let t = Instant::now();
                let res = http
                    .post(format!("{base}/admin/tenants"))
                    .header("X-Master-Key", MASTER)
                    .json(&json!({"name": format!("Fleet {c}-{i}"), "plan": "pro"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201, "{base}");
                slowest = slowest.max(t.elapsed());
            }
            slowest
        })
    });
    let slowest = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).max().unwrap();
    let after = deadlocks().await.unwrap();
    assert_eq!(after - before, 0, "deadlocks between instances");
    assert!(
        slowest < Duration::from_millis(900),
        "a write stalled {slowest:?} (all in {:?})",
        started.elapsed()
    );
    // Every instance sees every tenant.
    for server in &servers {
        let (mut seen, mut cursor) = (0, String::new());
        loop {
            let url = format!("{}/admin/tenants?limit=200{cursor}", server.base);
            let page = call(&http, Method::GET, url, None).await;
            seen += page["data"].as_array().map(Vec::len).unwrap_or(0);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(seen, 300, "{}", server.base);
    }
}

#[tokio::test]
async fn a_key_issued_on_one_instance_is_never_unknown_on_another() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    let a = ServerProcess::start(&db, &stream);
    a.wait_ready(&http).await;
    let b = ServerProcess::start(&db, &stream);
    b.wait_ready(&http).await;
    let tenant = call(
        &http,
        Method::POST,
        format!("{}/admin/tenants", a.base),
        Some(json!({"name": "Fresh", "plan": "pro"})),
    )
    .await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_string();
    let gateway = call(
        &http,
        Method::POST,
        format!("{}/admin/platform-keys", a.base),
        Some(json!({"name": "gw", "role": "gateway"})),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    // The gateway key itself was just issued on A: B authenticates it at once.
    for i in 0..20 {
        let issued = call(
            &http,
            Method::POST,
            format!("{}/admin/api-keys", a.base),
            Some(json!({"tenant_id": tenant_id, "name": format!("k{i}"), "role": "tenant_admin"})),
        )
        .await;
        let (public_id, key) = (issued["public_id"].as_str().unwrap(), issued["api_key"].as_str().unwrap());
        // At once on B: verify, the control API, a usage report.
        assert_eq!(verify_code(&http, &b.base, &gateway, key).await, "VALID", "verify of key {i} on B");
        let (s, body) = send(http.get(format!("{}/tenant/info", b.base)).bearer_auth(key)).await;
        assert_eq!(s, 200, "control API with key {i} on B: {body}");
        let record = json!({"id": format!("r-{i}"), "key": public_id, "model": "m", "api_calls": 1,
            "prompt_tokens": 1, "completion_tokens": 1, "bandwidth_bytes": 0, "storage_bytes": 0,
            "timestamp": tokenhub::time_fmt::rfc3339(time::OffsetDateTime::now_utc())});
        let (s, body) = send(
            http.post(format!("{}/v1/usage", b.base))
                .bearer_auth(&gateway)
                .json(&json!({"records": [record]})),
        )
        .await;
        assert_eq!(s, 200, "usage of key {i} on B: {body}");
    }
    // A key that exists nowhere is still NOT_FOUND, and its usage 422.
    let nowhere = "thk_AAAAAAAAAAAAAAAA_0000000000000000000000000000000000000000000";
    let code = verify_code(&http, &b.base, &gateway, nowhere).await;
    assert!(code == "NOT_FOUND" || code == "MALFORMED", "{code}");
}
