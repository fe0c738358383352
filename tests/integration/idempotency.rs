//! `Idempotency-Key` on every create: a retry answers the first answer byte for byte (keys
//! shown once included), across a `kill -9` and restart; another body is 422; concurrent
//! retries make one resource; a refused create releases its key; the record's states (owned,
//! answered, in use, mismatch, answer lost, taken over) follow the commit marker.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokenhub::store::idempotency::{self, Claim};

use crate::common::*;

struct Answer {
    status: u16,
    body: String,
    replayed: bool,
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    tenant: Option<&str>,
    key: &str,
    body: &Value,
) -> Answer {
    let mut req = http
        .post(format!("{base}{path}"))
        .header("X-Master-Key", MASTER)
        .header("Idempotency-Key", key)
        .timeout(Duration::from_secs(20))
        .json(body);
    if let Some(t) = tenant {
        req = req.header("X-Tenant-ID", t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    Answer { status, body: res.text().await.unwrap_or_default(), replayed }
}

async fn count(http: &reqwest::Client, base: &str, path: &str, tenant: Option<&str>, field: &str) -> usize {
    let mut req = http.get(format!("{base}{path}")).header("X-Master-Key", MASTER);
    if let Some(t) = tenant {
        req = req.header("X-Tenant-ID", t);
    }
    let (status, body) = send(req).await;
    assert_eq!(status, 200, "{path}: {body}");
    body[field].as_array().map(Vec::len).unwrap_or_else(|| panic!("{path} has no {field}: {body}"))
}

#[tokio::test]
async fn every_create_replays_its_first_answer_across_a_kill_and_restart() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    let mut server = ServerProcess::start(&db, &stream);
    server.wait_ready(&http).await;
    let base = server.base.clone();

    let tenant_body = json!({"name": "Idem", "plan": "pro"});
    let first_tenant = post(&http, &base, "/admin/tenants", None, "create-tenant-1", &tenant_body).await;
    assert_eq!(first_tenant.status, 201, "{}", first_tenant.body);
    assert!(!first_tenant.replayed);
    let tenant: Value = serde_json::from_str(&first_tenant.body).unwrap();
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_string();
    let t = Some(tenant_id.as_str());

    let creates: Vec<(&str, Option<&str>, Value)> = vec![
        ("/admin/api-keys", None, json!({"tenant_id": tenant_id, "name": "by-admin"})),
        ("/admin/platform-keys", None, json!({"name": "gw", "role": "gateway"})),
        ("/tenant/api-keys", t, json!({"name": "by-tenant-route"})),
        ("/tenant/sub-accounts", t, json!({"name": "team-a"})),
        ("/tenant/rbac/roles", t, json!({"name": "editor", "permissions": ["read"]})),
        ("/tenant/secrets", t, json!({"key": "STRIPE_SECRET_KEY", "value": "sk-idem-canary"})),
    ];
    let mut firsts = vec![("/admin/tenants", None, tenant_body.clone(), first_tenant)];
    for (path, tenant, body) in creates {
        let first = post(&http, &base, path, tenant, "k-1", &body).await;
        assert!((200..300).contains(&first.status), "{path}: {} {}", first.status, first.body);
        // An immediate retry on the same instance is the kept answer.
        let again = post(&http, &base, path, tenant, "k-1", &body).await;
        assert_eq!((again.status, &again.body, again.replayed), (first.status, &first.body, true), "{path}");
        firsts.push((path, tenant, body, first));
    }

    server.kill9();
    let server = ServerProcess::start(&db, &stream);
    server.wait_ready(&http).await;
    let base = server.base.clone();
    for (path, tenant, body, first) in &firsts {
        let key = if *path == "/admin/tenants" { "create-tenant-1" } else { "k-1" };
        let retry = post(&http, &base, path, *tenant, key, body).await;
        assert_eq!(
            (retry.status, &retry.body, retry.replayed),
            (first.status, &first.body, true),
            "{path} after restart"
        );
        // The same key with another body is refused, and creates nothing.
        let mut other = body.clone();
        other["name"] = json!("something-else");
        let refused = post(&http, &base, path, *tenant, key, &other).await;
        assert_eq!(refused.status, 422, "{path}: {}", refused.body);
        assert!(refused.body.contains("idempotency_key_mismatch"), "{path}: {}", refused.body);
    }
    // One of each, not two.
    assert_eq!(count(&http, &base, "/admin/tenants", None, "data").await, 1);
    assert_eq!(count(&http, &base, "/admin/platform-keys", None, "data").await, 1);
    // The tenant's first admin key, the admin route's key and the tenant route's key.
    assert_eq!(count(&http, &base, "/tenant/api-keys", t, "data").await, 3);
    assert_eq!(count(&http, &base, "/tenant/sub-accounts", t, "data").await, 1);
    let pool = db.pool().await;
    let stored: (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE event_type = 'secret.stored'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.0, 1, "the secret was stored once");

    // Keys are per principal: the tenant's admin key using the same key creates its own.
    let admin_key = tenant["api_key"].as_str().unwrap();
    let (status, own) = send(
        http.post(format!("{base}/tenant/sub-accounts"))
            .bearer_auth(admin_key)
            .header("Idempotency-Key", "k-1")
            .json(&json!({"name": "team-b"})),
    )
    .await;
    assert_eq!(status, 201, "{own}");
    assert_eq!(count(&http, &base, "/tenant/sub-accounts", t, "data").await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_tenant_and_one_answer() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let base = app.url("");
    let body = json!({"name": "Racer", "plan": "pro"});
    let answers = futures::future::join_all(
        (0..8).map(|_| post(&app.http, &base, "/admin/tenants", None, "race-1", &body)),
    )
    .await;
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    assert!(!created.is_empty());
    for a in &answers {
        assert!(a.status == 201 || a.status == 409, "{} {}", a.status, a.body);
        if a.status == 201 {
            assert_eq!(a.body, created[0].body, "every 201 is the one answer");
        } else {
            assert!(a.body.contains("idempotency_key_in_use"), "{}", a.body);
        }
    }
    assert_eq!(created.iter().filter(|a| !a.replayed).count(), 1, "one request ran, the others replayed");
    assert_eq!(count(&app.http, &base, "/admin/tenants", None, "data").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_create_releases_its_key_and_bad_keys_are_refused() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let base = app.url("");
    let bad = json!({"name": "", "plan": "pro"});
    let refused = post(&app.http, &base, "/admin/tenants", None, "k", &bad).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let rows: (i64,) =
        sqlx::query_as("SELECT count(*) FROM idempotency_requests").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows.0, 0, "a refusal writes nothing, so the key is free again");
    // Fixed body, same key: it runs (the refusal was not kept).
    let ok =
        post(&app.http, &base, "/admin/tenants", None, "k", &json!({"name": "Fixed", "plan": "pro"})).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert!(!ok.replayed);

    for key in ["", "has space", "é", &"x".repeat(256)] {
        let (status, body) = send(
            app.admin(Method::POST, "/admin/tenants")
                .header("Idempotency-Key", key.as_bytes())
                .json(&json!({"name": "K", "plan": "pro"})),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid_idempotency_key")),
            "{key:?}"
        );
    }
    // An unauthenticated request is answered 401 and claims nothing.
    let (status, _) = send(
        app.http
            .post(app.url("/admin/tenants"))
            .header("Idempotency-Key", "anon")
            .json(&json!({"name": "A"})),
    )
    .await;
    assert_eq!(status, 401);
    let rows: (i64,) = sqlx::query_as("SELECT count(*) FROM idempotency_requests WHERE answer IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows.0, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_record_follows_the_commit_marker() {
    let db = TestDb::new();
    let pool = db.pool().await;
    tokenhub::store::migrate(&pool).await.unwrap();
    let (scope, fp, other) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let claim = |lease: u64, fp: [u8; 32]| {
        let pool = pool.clone();
        async move { idempotency::claim(&pool, &scope, &fp, Duration::from_secs(lease)).await.unwrap() }
    };
    assert!(matches!(claim(60, fp).await, Claim::Owned));
    assert!(matches!(claim(60, fp).await, Claim::InUse), "the first request still runs");
    assert!(matches!(claim(60, other).await, Claim::Mismatch));
    // The first request's server died before committing: once its lease is over, a retry
    // takes the key over.
    sqlx::query("UPDATE idempotency_requests SET lease_until = now() - interval '1 s'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(claim(60, fp).await, Claim::Owned), "uncommitted and abandoned: run again");
    // Committed, then the server died before keeping the answer: never run again.
    sqlx::query("UPDATE idempotency_requests SET committed = true, lease_until = now() - interval '1 s'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(claim(60, fp).await, Claim::AnswerLost));
    // Past 24 hours the key is free again.
    sqlx::query("UPDATE idempotency_requests SET created_at = now() - interval '25 hours'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(claim(60, other).await, Claim::Owned));
    assert_eq!(idempotency::prune(&pool).await.unwrap(), 0, "the taken-over record is new");
    sqlx::query("UPDATE idempotency_requests SET created_at = now() - interval '25 hours'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(idempotency::prune(&pool).await.unwrap(), 1);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_person_not_per_role() {
    use crate::person::person;
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let first = person(&app, "first@scope.test", "super_admin", None).await;
    let second = person(&app, "second@scope.test", "super_admin", None).await;
    let create = |signed: &crate::person::Signed| {
        signed
            .request(&app, Method::POST, "/admin/tenants")
            .header("Idempotency-Key", "shared-key-1")
            .json(&json!({"name": "Scoped", "plan": "pro"}))
    };
    let (s, a) = send(create(&first)).await;
    assert_eq!(s, 201, "{a}");
    let (s, again) = send(create(&first)).await;
    assert_eq!((s, &again), (201, &a), "the same person's retry replays the first answer");
    let (s, b) = send(create(&second)).await;
    assert_eq!(s, 201, "{b}");
    assert_ne!(
        b["api_key"], a["api_key"],
        "another super admin never receives the first one's shown-once key"
    );
    assert_ne!(b["tenant_id"], a["tenant_id"]);
    // The master key is a principal of its own too.
    let (s, c) = send(
        app.admin(Method::POST, "/admin/tenants")
            .header("Idempotency-Key", "shared-key-1")
            .json(&json!({"name": "Scoped", "plan": "pro"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    assert_ne!(c["api_key"], a["api_key"]);
    app.stop().await;
}

#[tokio::test]
async fn a_planned_answer_is_replayed_only_once_its_command_committed() {
    let db = TestDb::new();
    let pool = db.pool().await;
    tokenhub::store::migrate(&pool).await.unwrap();
    let (scope, fp) = ([7u8; 32], [8u8; 32]);
    let claim = || {
        let pool = pool.clone();
        async move { idempotency::claim(&pool, &scope, &fp, Duration::from_secs(60)).await.unwrap() }
    };
    assert!(matches!(claim().await, Claim::Owned));
    let planned =
        idempotency::SealedAnswer { kek_id: "k".into(), nonce: vec![1; 24], ciphertext: vec![2; 40] };
    idempotency::plan(&pool, &scope, &planned).await.unwrap();
    // Planned, not committed: the first request still runs (its command may yet be refused).
    assert!(matches!(claim().await, Claim::InUse));
    // Committed (the marker is written with the events), then the server died before
    // answering: the planned answer is the answer.
    sqlx::query("UPDATE idempotency_requests SET committed = true, lease_until = now() - interval '1 s'")
        .execute(&pool)
        .await
        .unwrap();
    match claim().await {
        Claim::Answered(a) => assert_eq!((a.nonce, a.ciphertext), (planned.nonce, planned.ciphertext)),
        other => panic!("a committed planned answer is replayed, not {other:?}"),
    }
}

#[tokio::test]
async fn a_create_killed_at_any_moment_is_retried_into_its_first_answer_or_created_once() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    let mut rng = XorShift(0x5eed_1234);
    let mut lost = Vec::new();
    for i in 0..10 {
        // A short request timeout: a claim whose request died before committing is taken
        // over once its lease (the timeout plus 5 s) is over.
        let env = [("MASTER_API_KEY", MASTER), ("HTTP_REQUEST_TIMEOUT_MS", "1000")];
        let mut server = ServerProcess::start_with(&db, &stream, &env);
        server.wait_ready(&http).await;
        let base = server.base.clone();
        let body = json!({"name": format!("Crash {i}"), "plan": "pro"});
        let key = format!("crash-{i}");
        // The request runs while the server is killed after a few milliseconds.
        let first = {
            let (http, base, body, key) = (http.clone(), base.clone(), body.clone(), key.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/admin/tenants"))
                    .header("X-Master-Key", MASTER)
                    .header("Idempotency-Key", key)
                    .json(&body)
                    .send()
                    .await
                    .ok()
            })
        };
        tokio::time::sleep(Duration::from_micros(rng.below(40_000))).await;
        server.kill9();
        let first = match first.await.unwrap() {
            Some(res) if res.status().is_success() => res.text().await.ok(),
            _ => None,
        };
        let server = ServerProcess::start_with(&db, &stream, &env);
        server.wait_ready(&http).await;
        // The retry a client makes: again while told to retry later (`idempotency_key_in_use`
        // while the first request's claim is in force, a 503), never an answer lost.
        let mut retry = post(&http, &server.base, "/admin/tenants", None, &key, &body).await;
        for _ in 0..20 {
            let later =
                retry.status == 503 || (retry.status == 409 && retry.body.contains("idempotency_key_in_use"));
            if !later {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            retry = post(&http, &server.base, "/admin/tenants", None, &key, &body).await;
        }
        if retry.status == 409 {
            lost.push((i, retry.body.clone()));
            continue;
        }
        assert_eq!(retry.status, 201, "retry {i}: {}", retry.body);
        if let Some(first) = first {
            assert_eq!(retry.body, first, "retry {i} answers the first answer");
        }
        let pool = db.pool().await;
        let made: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE name = $1")
            .bind(format!("Crash {i}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(made, 1, "retry {i} created once");
    }
    assert!(lost.is_empty(), "answers lost: {lost:?}");
}

/// The crash window of every create, hit on purpose: the server is killed the moment its
/// events (and so the claim's commit marker) are committed, before it can answer. The retry
/// after the restart answers the planned answer (replayed), and the create happened once.
#[tokio::test]
async fn every_create_killed_just_after_its_commit_is_retried_into_its_answer() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    let env = [("MASTER_API_KEY", MASTER), ("HTTP_REQUEST_TIMEOUT_MS", "1000")];
    let mut server = ServerProcess::start_with(&db, &stream, &env);
    server.wait_ready(&http).await;
    let made = post(&http, &server.base, "/admin/tenants", None, "setup", &json!({"name": "Window"})).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let tenant =
        serde_json::from_str::<Value>(&made.body).unwrap()["tenant_id"].as_str().unwrap().to_string();
    let pool = db.pool().await;
    let cases: [(&str, Option<&str>, Value, &str, u16); 5] = [
        ("/admin/tenants", None, json!({"name": "Window 2"}), "tenant.created", 201),
        ("/tenant/api-keys", Some(&tenant), json!({"name": "k"}), "api_key.issued", 201),
        (
            "/tenant/sub-accounts",
            Some(&tenant),
            json!({"name": "team", "quota_limit": 5}),
            "sub_account.created",
            201,
        ),
        (
            "/tenant/rbac/roles",
            Some(&tenant),
            json!({"name": "ops", "permissions": ["keys.read"]}),
            "role.created",
            201,
        ),
        (
            "/tenant/secrets",
            Some(&tenant),
            json!({"key": "OPENAI", "value": "sk-window"}),
            "secret.stored",
            200,
        ),
    ];
    for (n, (path, on, body, event_type, status)) in cases.into_iter().enumerate() {
        let events = |pool: sqlx::PgPool| async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE event_type = $1")
                .bind(event_type)
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        let before = events(pool.clone()).await;
        let key = format!("window-{n}");
        let first = {
            let (http, base, body, key, on) =
                (http.clone(), server.base.clone(), body.clone(), key.clone(), on.map(str::to_string));
            tokio::spawn(async move { post(&http, &base, path, on.as_deref(), &key, &body).await })
        };
        // Killed the moment the commit marker is visible (polled every millisecond).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut committed = false;
        while !committed && tokio::time::Instant::now() < deadline {
            committed =
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM idempotency_requests WHERE committed")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    > n as i64 + 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !committed {
            let first = first.await.unwrap();
            panic!("{path}: the create did not commit: {} {}", first.status, first.body);
        }
        server.kill9();
        let _ = first.await;
        server = ServerProcess::start_with(&db, &stream, &env);
        server.wait_ready(&http).await;
        let retry = post(&http, &server.base, path, on, &key, &body).await;
        assert_eq!(retry.status, status, "{path}: the retry answers the first answer: {}", retry.body);
        assert!(retry.replayed, "{path}: the answer is replayed, not made again");
        assert_eq!(events(pool.clone()).await, before + 1, "{path}: created once");
        let answer: Value = serde_json::from_str(&retry.body).unwrap();
        assert!(answer.is_object() && !answer.as_object().unwrap().is_empty(), "{path}: {answer}");
        if let Some(id) = answer["sub_account_id"].as_str() {
            // The planned answer reads exactly as the stored row.
            let read = http
                .get(format!("{}/tenant/sub-accounts/{id}", server.base))
                .header("X-Master-Key", MASTER)
                .header("X-Tenant-ID", &tenant);
            assert_eq!(send(read).await, (200, answer.clone()), "{path}");
        }
    }
    server.kill9();
}
