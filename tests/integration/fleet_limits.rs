//! Issue 31: per-minute limits are counted once for the fleet. Three `tokenhub serve` on one
//! PostgreSQL, requests spread round-robin: a key's requests per minute and a tenant's
//! control-API rate admit exactly the limit in a window (not 3 ×); with
//! `FLEET_RATE_LIMITS=false` each instance counts on its own (the old behaviour, 3 ×). A key's
//! tokens per minute reported to one instance hold it on the others within a second.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::*;

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let res = http.post(url).header("X-Master-Key", MASTER).json(&body).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
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
    assert!(
        codes.iter().all(|c| ["VALID", "RATE_LIMITED", "QUOTA_EXCEEDED"].contains(&c.as_str())),
        "{codes:?}"
    );
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

async fn report_tokens(http: &reqwest::Client, base: &str, gateway: &str, public_id: &str, tokens: u64) {
    let record = json!({"id": format!("r-{}", uuid::Uuid::new_v4().simple()), "key": public_id, "model": "m",
        "api_calls": 1, "prompt_tokens": tokens, "completion_tokens": 0, "bandwidth_bytes": 0, "storage_bytes": 0,
        "timestamp": tokenhub::time_fmt::rfc3339(time::OffsetDateTime::now_utc())});
    let (s, body) =
        send(http.post(format!("{base}/v1/usage")).bearer_auth(gateway).json(&json!({"records": [record]})))
            .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn tokens_per_minute_reported_to_one_instance_hold_the_key_on_the_others() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (servers, http, gateway, tenant, _) = fleet(&db, &stream, &[]).await;
    let issued = post(
        &http,
        format!("{}/admin/api-keys", servers[0].base),
        json!({"tenant_id": tenant, "name": "tpm", "rate_limit": {"tokens_per_minute": 1000}}),
    )
    .await;
    let (public_id, key) = (issued["public_id"].as_str().unwrap(), issued["api_key"].as_str().unwrap());
    room_in_this_minute(15).await;
    // Verified on the first and third (so they follow the key's count), used through the second.
    assert_eq!(verified(&http, &servers[..1], &gateway, key, 1).await, 1);
    assert_eq!(verified(&http, &servers[2..], &gateway, key, 1).await, 1);
    report_tokens(&http, &servers[1].base, &gateway, public_id, 1200).await;
    let started = std::time::Instant::now();
    for server in [&servers[0], &servers[2]] {
        while verified(&http, std::slice::from_ref(server), &gateway, key, 1).await == 1 {
            assert!(started.elapsed() < Duration::from_secs(3), "{} still admits the key", server.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("tokens per minute reached the other instances in {:?}", started.elapsed());
}

/// Failed master-key attempts from one address are counted for the fleet: at most the limit
/// plus one try per other instance (the one that tells it the address is spent), not 3 ×.
#[tokio::test]
async fn failed_master_key_attempts_are_counted_once_across_instances() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (servers, http, _, _, _) = fleet(&db, &stream, &[("AUTH_FAILURES_PER_MINUTE", "6")]).await;
    room_in_this_minute(20).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let res = http
            .get(format!("{}/admin/tenants", servers[i % 3].base))
            .header("X-Master-Key", "not-the-master-key-not-the-master-key")
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    let tried = statuses.iter().filter(|s| **s == 401).count();
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    assert!((6..=8).contains(&tried), "{tried} wrong keys were tried (limit 6, 3 instances): {statuses:?}");
    assert!(statuses[12..].iter().all(|s| *s == 429), "{statuses:?}");
}

/// The class, not the case: generated fleets (1–5 instances, each its own [`Leaser`] on the
/// real database), limits (1–300) and bursts of concurrent takes spread at random over the
/// instances. The fleet never admits more than the limit; once every instance has been
/// refused, none holds an unused share, so it admitted exactly the limit.
#[tokio::test]
async fn generated_fleets_never_admit_more_than_the_limit() {
    use rand::{Rng, SeedableRng};
    use tokenhub::fleet::leases::{Lease, Leaser, Take};

    let db = TestDb::new();
    let pool = db.pool().await;
    tokenhub::store::migrate(&pool).await.unwrap();
    let seed: u64 =
        std::env::var("LEASE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut spent_cases = 0;
    for case in 0..40 {
        let instances = rng.random_range(1..=5usize);
        let limit = rng.random_range(1..=300u64);
        let attempts = rng.random_range(0..=(limit as usize * 2 + 10));
        let window = 60 * (1_000 + case);
        let fleet: Vec<(Leaser, std::sync::Arc<Lease>)> = (0..instances)
            .map(|_| (Leaser::new(Some(pool.clone())), std::sync::Arc::new(Lease::default())))
            .collect();
        let picks: Vec<usize> = (0..attempts).map(|_| rng.random_range(0..instances)).collect();
        let takes = picks.iter().map(|&i| {
            let (leaser, lease) = (fleet[i].0.clone(), std::sync::Arc::clone(&fleet[i].1));
            async move { (i, leaser.take(&lease, || format!("generated:{case}"), limit, window).await) }
        });
        // Completion order: each outcome carries the instance that took it.
        let taken: Vec<(usize, Take)> = futures::stream::iter(takes).buffer_unordered(16).collect().await;
        let outcomes: Vec<Take> = taken.iter().map(|(_, t)| *t).collect();
        let admitted = outcomes.iter().filter(|t| matches!(t, Take::Admitted { .. })).count() as u64;
        let context =
            format!("seed {seed}, case {case}: {instances} instances, limit {limit}, {attempts} attempts");
        assert!(admitted <= limit, "{admitted} admitted past the limit ({context})");
        assert!(!outcomes.contains(&Take::NeedsLease), "{context}");
        // A refused instance has used its whole share: when all were, the fleet's budget is
        // exactly spent.
        let refused_everywhere =
            (0..instances).all(|i| taken.iter().any(|(p, t)| *p == i && *t == Take::Refused));
        if refused_everywhere {
            assert_eq!(admitted, limit, "({context})");
            spent_cases += 1;
        }
        if attempts as u64 <= limit && instances == 1 {
            assert_eq!(admitted, attempts as u64, "one instance under its limit admits all ({context})");
        }
    }
    assert!(spent_cases > 0, "seed {seed}: no generated case spent a window");

    // Ended windows are pruned: per-minute ones after minutes, a tenant's after days.
    let rows = || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rate_windows").fetch_one(&pool);
    let generated = rows().await.unwrap();
    assert!(generated > 0);
    sqlx::query("INSERT INTO rate_windows (scope, window_start, leased) VALUES ('tenant:t:ceiling:5/86400', 60000, 1)")
        .execute(&pool)
        .await
        .unwrap();
    let pruned = tokenhub::store::rate_windows::prune(&pool, 60 * 2_000, 0).await.unwrap();
    assert_eq!((pruned as i64, rows().await.unwrap()), (generated, 1), "the tenant's window stays");
    tokenhub::store::rate_windows::prune(&pool, 60 * 2_000, 60 * 2_000).await.unwrap();
    assert_eq!(rows().await.unwrap(), 0);
}

/// A key's quota with verification on one instance and its usage reported to another: every
/// other instance counts a report within milliseconds (the live usage broadcast), so a client
/// that verifies on one and reports on another stops within a report or two of the quota (the
/// issue measured 46,600–79,800 tokens past a 5,000-token quota this way).
#[tokio::test]
async fn a_quota_holds_when_verify_and_usage_reach_different_instances() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (servers, http, gateway, tenant, _) = fleet(&db, &stream, &[]).await;
    let issued = post(
        &http,
        format!("{}/admin/api-keys", servers[0].base),
        json!({"tenant_id": tenant, "name": "quota", "quota_limit": 5000}),
    )
    .await;
    let (public_id, key) = (issued["public_id"].as_str().unwrap(), issued["api_key"].as_str().unwrap());
    let mut reported = 0u64;
    while verified(&http, &servers[..1], &gateway, key, 1).await == 1 {
        report_tokens(&http, &servers[1].base, &gateway, public_id, 500).await;
        reported += 500;
        assert!(reported <= 50_000, "the quota never held");
    }
    println!("{reported} tokens reported against a quota of 5,000");
    assert!(reported <= 6_000, "{reported} tokens reported against a quota of 5,000");
}

/// Issue 31, item 5, at three instances: a key issued on one instance verifies at once on
/// another (the verify waits for the log head instead of answering `NOT_FOUND`), and its
/// revocation reaches both others; 20 samples, the time from the revocation's answer to the
/// first `REVOKED` on each of the other two. Bound held here: every sample within the stated
/// second; the figures are printed (docs/operations.md states them).
#[tokio::test]
async fn three_instances_know_a_new_key_at_once_and_its_revocation_within_the_bound() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (servers, http, gateway, tenant, _) = fleet(&db, &stream, &[]).await;
    let verify = |base: String, key: String| {
        let (http, gateway) = (http.clone(), gateway.clone());
        async move {
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
    };
    let mut samples = Vec::new();
    for i in 0..20 {
        let (on, others) = (&servers[i % 3], [&servers[(i + 1) % 3], &servers[(i + 2) % 3]]);
        let issued = post(
            &http,
            format!("{}/admin/api-keys", on.base),
            json!({"tenant_id": tenant, "name": format!("k{i}")}),
        )
        .await;
        let (key, public_id) = (
            issued["api_key"].as_str().unwrap().to_string(),
            issued["public_id"].as_str().unwrap().to_string(),
        );
        for other in others {
            assert_eq!(
                verify(other.base.clone(), key.clone()).await,
                "VALID",
                "a new key is known on every instance"
            );
        }
        let res = http
            .delete(format!("{}/admin/api-keys/{public_id}", on.base))
            .header("X-Master-Key", MASTER)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        let revoked_at = std::time::Instant::now();
        let mut slowest = Duration::ZERO;
        for other in others {
            loop {
                if verify(other.base.clone(), key.clone()).await == "REVOKED" {
                    slowest = slowest.max(revoked_at.elapsed());
                    break;
                }
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(1),
                    "revocation reached {} within 1 s",
                    other.base
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        samples.push(slowest);
    }
    samples.sort();
    println!(
        "revocation seen on both other instances: p50 {:?}, p95 {:?}, max {:?} (20 samples)",
        samples[9], samples[18], samples[19]
    );
    // The bound (p99 < 100 ms), on the 19th of 20 samples: one sample slowed by a
    // machine shared with the other tests does not fail it.
    assert!(samples[18] < Duration::from_millis(100), "p95 {:?}", samples[18]);
}

/// Issue 31, item 4: `kill -9` of the instance that leads the relay, during load on the
/// others. Another instance takes over within 2 s (the time from the kill to the first event
/// committed after it reaching the stream), and the stream ends with every position of the log
/// exactly once, in order: no gap, no duplicate.
#[tokio::test]
async fn killing_the_relay_leader_under_load_fails_over_within_two_seconds_without_gap_or_duplicate() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (mut servers, http, _, _, _) = fleet(&db, &stream, &[]).await;
    let leading = eventually(Duration::from_secs(10), || async {
        servers.iter().any(|s| s.log_so_far().contains("relay leading"))
    })
    .await;
    assert!(leading, "one instance leads the relay");
    let leader = servers.iter().position(|s| s.log_so_far().contains("relay leading")).unwrap();
    let others: Vec<String> =
        servers.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, s)| s.base.clone()).collect();
    // Load: tenants created on the other instances, one after another, until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let (http, stop) = (http.clone(), stop.clone());
        async move {
            let mut n = 0usize;
            while !stop.is_cancelled() {
                let base = &others[n % others.len()];
                post(&http, format!("{base}/admin/tenants"), json!({"name": format!("Load {n}")})).await;
                n += 1;
            }
            n
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = db.pool().await;
    let head = || async {
        sqlx::query_scalar::<_, i64>("SELECT max(position) FROM events").fetch_one(&pool).await.unwrap()
    };
    let js = stream.js().await;
    let last_in_stream = || async {
        let mut s = js.get_stream(&stream.stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        match s.get_raw_message(last).await {
            Ok(m) => {
                m.headers.get("Tokenhub-Position").and_then(|v| v.as_str().parse::<i64>().ok()).unwrap_or(0)
            }
            Err(_) => 0,
        }
    };
    servers[leader].kill9();
    let killed_at = std::time::Instant::now();
    let committed_after_kill = head().await + 1;
    let took_over =
        eventually(Duration::from_secs(10), || async { last_in_stream().await >= committed_after_kill })
            .await;
    let takeover = killed_at.elapsed();
    stop.cancel();
    let created = load.await.unwrap();
    assert!(took_over, "another instance took the relay over");
    println!("relay takeover after kill -9 of its leader: {takeover:?} ({created} tenants created during the test)");
    assert!(takeover < Duration::from_secs(2), "took over in {takeover:?}");

    // Every position once, in order.
    let final_head = head().await;
    assert!(eventually(Duration::from_secs(15), || async { last_in_stream().await == final_head }).await);
    let positions: Vec<i64> = stream
        .messages()
        .await
        .iter()
        .map(|m| m.headers.get("Tokenhub-Position").unwrap().as_str().parse::<i64>().unwrap())
        .collect();
    assert_eq!(positions, (1..=final_head).collect::<Vec<i64>>(), "no gap, no duplicate, in order");
}

/// Issue 31, item 0: one instance of the fleet applies the projections and the others follow
/// it. Writes on the followers still read their own writes at once (a tenant created on an
/// instance is found there by the next request), also across a `kill -9` of the instance that
/// applies them: another takes over within 2 s, and every tenant created is in the query tables.
#[tokio::test]
async fn one_instance_applies_the_projections_and_a_killed_one_is_replaced_without_a_lost_read() {
    const LEADS: &str = "this instance applies the projections";
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (mut servers, http, _, _, _) = fleet(&db, &stream, &[]).await;
    let leading = |servers: &[ServerProcess]| -> Vec<usize> {
        (0..servers.len()).filter(|i| servers[*i].log_so_far().contains(LEADS)).collect()
    };
    assert!(eventually(Duration::from_secs(10), || async { !leading(&servers).is_empty() }).await);
    let leaders = leading(&servers);
    assert_eq!(leaders.len(), 1, "one instance of three applies the projections");
    let leader = leaders[0];
    let others: Vec<String> =
        servers.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, s)| s.base.clone()).collect();
    // Load on the followers: create a tenant, then read it back from the same instance at once.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let (http, stop) = (http.clone(), stop.clone());
        async move {
            let (mut created, mut slowest) = (0usize, Duration::ZERO);
            while !stop.is_cancelled() {
                let base = &others[created % others.len()];
                let started = std::time::Instant::now();
                let tenant =
                    post(&http, format!("{base}/admin/tenants"), json!({"name": format!("load-{created}")}))
                        .await;
                let id = tenant["tenant_id"].as_str().unwrap();
                let read = http
                    .get(format!("{base}/admin/tenants/{id}"))
                    .header("X-Master-Key", MASTER)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(read.status(), 200, "a tenant created on {base} is read back there at once");
                slowest = slowest.max(started.elapsed());
                created += 1;
            }
            (created, slowest)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    servers[leader].kill9();
    let killed_at = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || async {
            servers.iter().enumerate().any(|(i, s)| i != leader && s.log_so_far().contains(LEADS))
        })
        .await,
        "another instance applies the projections"
    );
    let takeover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let (created, slowest) = load.await.unwrap();
    println!(
        "projection lead taken over {takeover:?} after kill -9; {created} tenants created and read back on \
         the followers, slowest create + read {slowest:?}"
    );
    assert!(takeover < Duration::from_secs(2), "took over in {takeover:?}");
    let pool = db.pool().await;
    let head: i64 = sqlx::query_scalar("SELECT max(position) FROM events").fetch_one(&pool).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE name LIKE 'load-%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let lowest: i64 = sqlx::query_scalar("SELECT min(position) FROM checkpoints WHERE name = ANY($1)")
        .bind(tokenhub_projections::all().iter().map(|p| p.name()).collect::<Vec<_>>())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lowest, head, "the projections reached the head of the log");
    assert_eq!(stored as usize, created, "every tenant created is in the query table");
}
