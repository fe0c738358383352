//! Tenant secrets: sealed under the tenant's data key, never in plain text in the database,
//! on NATS or in exports; reveals are audited; ciphertext moved between tenants or names does
//! not open; deleting the tenant shreds them.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use tokenhub::crypto::{data_keys::tenant_dek, secret_aad};

use crate::common::*;

const CANARY: &str = "sk_live_CANARY_7f3a9c1e5b";

#[tokio::test]
async fn secrets_are_sealed_audited_isolated_and_shredded() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, admin) = app.create_tenant("Vault").await;
    let (other, other_admin) = app.create_tenant("Elsewhere").await;
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(path)).bearer_auth(&admin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        send(req)
    };

    let (status, ack) =
        call(Method::POST, "/tenant/secrets", Some(json!({"key": "STRIPE_SECRET_KEY", "value": CANARY})))
            .await;
    assert_eq!(
        (status, ack.clone()),
        (200, json!({"success": true, "message": "Secret stored", "version": 1}))
    );
    let (_, ack) = call(
        Method::POST,
        "/tenant/secrets",
        Some(json!({"key": "STRIPE_SECRET_KEY", "value": format!("{CANARY}-v2")})),
    )
    .await;
    assert_eq!(ack["version"], 2);
    call(Method::POST, "/tenant/secrets", Some(json!({"key": "JIRA_API_TOKEN", "value": "jira-canary"})))
        .await;
    for (body, code) in [
        (json!({"key": "stripe-key", "value": "x"}), "invalid_secret_name"),
        (json!({"key": "BIG", "value": "x".repeat(64 * 1024 + 1)}), "secret_too_large"),
    ] {
        let (status, answer) = call(Method::POST, "/tenant/secrets", Some(body)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)));
    }

    let (_, list) = call(Method::GET, "/tenant/secrets", None).await;
    assert_eq!(list, json!({"secrets": ["JIRA_API_TOKEN", "STRIPE_SECRET_KEY"]}));
    let (_, detailed) = call(Method::GET, "/tenant/secrets?detail=true", None).await;
    assert_eq!(detailed["detail"][1]["version"], 2);

    let (status, revealed) = call(Method::POST, "/tenant/secrets/STRIPE_SECRET_KEY/reveal", None).await;
    assert_eq!(status, 200);
    assert_eq!(revealed, json!({"key": "STRIPE_SECRET_KEY", "version": 2, "value": format!("{CANARY}-v2")}));
    let (status, by_gateway) = send(
        app.http
            .post(app.url("/tenant/secrets/JIRA_API_TOKEN/reveal"))
            .bearer_auth(&gateway)
            .header("X-Tenant-ID", &tenant),
    )
    .await;
    assert_eq!((status, by_gateway["value"].as_str()), (200, Some("jira-canary")));
    let reveals: Vec<(String, String)> = sqlx::query_as(
        "SELECT metadata->>'actor_kind', payload::text FROM events WHERE event_type = 'secret.revealed' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(reveals.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["api_key", "platform_key"]);
    assert!(reveals.iter().all(|(_, p)| !p.contains("canary") && !p.contains("CANARY")));

    // Another tenant sees nothing of it.
    let (status, _) =
        send(app.http.post(app.url("/tenant/secrets/STRIPE_SECRET_KEY/reveal")).bearer_auth(&other_admin))
            .await;
    assert_eq!(status, 404);
    let (_, theirs) = send(app.http.get(app.url("/tenant/secrets")).bearer_auth(&other_admin)).await;
    assert_eq!(theirs["secrets"], json!([]));

    // Ciphertext moved to another tenant or name does not open.
    let (nonce, ciphertext): (String, String) = sqlx::query_as(
        "SELECT nonce, ciphertext FROM secrets WHERE tenant_id = $1 AND name = 'STRIPE_SECRET_KEY'",
    )
    .bind(&tenant)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let (nonce, ciphertext) = (b64.decode(nonce).unwrap(), b64.decode(ciphertext).unwrap());
    let kek = &app.app.state.keks;
    let own = tenant_dek(&app.pool, kek, &tenant).await.unwrap();
    assert!(own.open(&secret_aad(&tenant, "STRIPE_SECRET_KEY", 2), &nonce, &ciphertext).is_ok());
    assert!(
        own.open(&secret_aad(&tenant, "JIRA_API_TOKEN", 2), &nonce, &ciphertext).is_err(),
        "another name"
    );
    let theirs = tenant_dek(&app.pool, kek, &other).await.unwrap();
    assert!(
        theirs.open(&secret_aad(&other, "STRIPE_SECRET_KEY", 2), &nonce, &ciphertext).is_err(),
        "another tenant"
    );

    // The canary is nowhere in plain text: database dump, NATS, audit export.
    app.wait_relayed(Duration::from_secs(10)).await;
    let dump = std::process::Command::new("pg_dump").arg(&db.url).output().expect("pg_dump runs");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("STRIPE_SECRET_KEY") && !dump.contains("CANARY") && !dump.contains("jira-canary"));
    let messages: String =
        stream.messages().await.iter().map(|m| String::from_utf8_lossy(&m.payload).to_string()).collect();
    assert!(
        messages.contains("secret.stored")
            && !messages.contains("CANARY")
            && !messages.contains("ciphertext")
    );
    let export = app.admin(Method::GET, "/audit/events/export").send().await.unwrap().text().await.unwrap();
    assert!(!export.contains("CANARY") && !export.contains("ciphertext"));

    // Crypto-shredding: once the tenant is deleted, nobody can open its secrets again.
    send(app.admin(Method::DELETE, &format!("/admin/tenants/{tenant}"))).await;
    assert!(tenant_dek(&app.pool, kek, &tenant).await.is_err(), "the data key is gone");
    let (status, body) = send(
        app.admin(Method::POST, "/tenant/secrets/STRIPE_SECRET_KEY/reveal").header("X-Tenant-ID", &tenant),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("secret_shredded")));
    let stored_in_log: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'secret.stored' AND tenant_id = $1",
    )
    .bind(&tenant)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored_in_log, 3, "the ciphertext stays in the immutable log");
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_kek_for_existing_data_is_a_clear_startup_error() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (_, admin) = app.create_tenant("K").await;
    send(
        app.http
            .post(app.url("/tenant/secrets"))
            .bearer_auth(&admin)
            .json(&json!({"key": "A", "value": "b"})),
    )
    .await;
    app.stop().await;
    let other_kek = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let mut wrong = config(&db, &stream, &["--master-api-key", MASTER]);
    wrong.kek = Some(other_kek);
    let err = tokenhub::app::App::build(&wrong).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("wrapped by KEK"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kek_rotation_under_load_loses_nothing() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let b64 = base64::engine::general_purpose::STANDARD;
    let new_kek = b64.encode([42u8; 32]);

    // Data keys and secrets under the first KEK.
    let first = TestApp::start(&db, &stream).await;
    let mut tenants = Vec::new();
    for i in 0..5 {
        let (_, admin) = first.create_tenant(&format!("R{i}")).await;
        let (status, _) = send(
            first
                .http
                .post(first.url("/tenant/secrets"))
                .bearer_auth(&admin)
                .json(&json!({"key": "TOKEN", "value": format!("value-{i}")})),
        )
        .await;
        assert_eq!(status, 200);
        tenants.push(admin);
    }
    first.stop().await;

    // Servers now run with the new KEK and the old one as previous; rotate while they work.
    let mut both = config(&db, &stream, &["--master-api-key", MASTER]);
    both.kek = Some(new_kek.clone());
    both.kek_previous = Some(TEST_KEK.to_string());
    let app = TestApp::start_with(both).await;
    let load = {
        let (http, base, tenants) = (app.http.clone(), app.url(""), tenants.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for round in 0..10 {
                for (i, admin) in tenants.iter().enumerate() {
                    let res = http
                        .post(format!("{base}/tenant/secrets/TOKEN/reveal"))
                        .bearer_auth(admin)
                        .send()
                        .await
                        .unwrap();
                    let body: Value = res.json().await.unwrap_or_default();
                    if body["value"] != format!("value-{i}") {
                        failures.push(format!("round {round} tenant {i}: {body}"));
                    }
                    let stored = http
                        .post(format!("{base}/tenant/secrets"))
                        .bearer_auth(admin)
                        .json(
                            &json!({"key": format!("EXTRA_{round}"), "value": format!("extra-{i}-{round}")}),
                        )
                        .send()
                        .await
                        .unwrap();
                    if !stored.status().is_success() {
                        failures.push(format!("store round {round} tenant {i}: {}", stored.status()));
                    }
                }
            }
            failures
        })
    };
    let cli = <tokenhub::cli::Cli as clap::Parser>::try_parse_from([
        "tokenhub",
        "--database-url",
        &db.url,
        "--kek",
        &new_kek,
        "--kek-previous",
        TEST_KEK,
        "kek",
        "rotate",
    ])
    .unwrap();
    tokenhub::cli::run(cli).await.unwrap();
    let failures = load.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let old_ids: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_data_keys WHERE wrapped IS NOT NULL AND kek_id <> $1",
    )
    .bind(&app.app.state.keks.current.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(old_ids, 0, "every data key is under the new KEK");
    app.stop().await;

    // The old KEK is no longer needed.
    let mut only_new = config(&db, &stream, &["--master-api-key", MASTER]);
    only_new.kek = Some(new_kek);
    let after = TestApp::start_with(only_new).await;
    for (i, admin) in tenants.iter().enumerate() {
        let (_, body) =
            send(after.http.post(after.url("/tenant/secrets/TOKEN/reveal")).bearer_auth(admin)).await;
        assert_eq!(body["value"], format!("value-{i}"));
        let (_, extra) =
            send(after.http.post(after.url("/tenant/secrets/EXTRA_9/reveal")).bearer_auth(admin)).await;
        assert_eq!(extra["value"], format!("extra-{i}-9"));
    }
    after.stop().await;
}

#[tokio::test]
async fn concurrent_reveals_of_one_secret_all_succeed_and_are_each_audited() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (_, admin) = app.create_tenant("Reveals").await;
    let (s, _) = send(
        app.http
            .post(app.url("/tenant/secrets"))
            .bearer_auth(&admin)
            .json(&json!({"key": "HOT", "value": "v"})),
    )
    .await;
    assert!(s < 300);
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'secret.revealed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let reveals = (0..16).map(|_| {
        let (http, url, admin) = (app.http.clone(), app.url("/tenant/secrets/HOT/reveal"), admin.clone());
        tokio::spawn(async move { http.post(url).bearer_auth(admin).send().await.unwrap().status().as_u16() })
    });
    let statuses: Vec<u16> =
        futures::future::join_all(reveals).await.into_iter().map(|r| r.unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'secret.revealed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(after - before, 16, "every reveal is on the record");
    app.stop().await;
}

/// Two hosts started without `TOKENHUB_KEK` each generate a KEK file of their own: the second
/// to start refuses (the first recorded its KEK), instead of serving secrets it cannot open.
#[tokio::test]
async fn a_second_host_with_another_generated_kek_refuses_to_start() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    let dir = std::env::temp_dir().join(format!("tokenhub-kek-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a/kek").display().to_string(), dir.join("b/kek").display().to_string());
    let first = ServerProcess::start_with(
        &db,
        &stream,
        &[("MASTER_API_KEY", MASTER), ("TOKENHUB_KEK", ""), ("TOKENHUB_KEK_FILE", &a)],
    );
    first.wait_ready(&http).await;
    let mut second = ServerProcess::start_with(
        &db,
        &stream,
        &[("MASTER_API_KEY", MASTER), ("TOKENHUB_KEK", ""), ("TOKENHUB_KEK_FILE", &b)],
    );
    let mut exited = false;
    for _ in 0..100 {
        if second.exited() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = second.logs();
    assert!(exited, "the second host must not serve: {logs}");
    assert!(logs.contains("same TOKENHUB_KEK"), "{logs}");
    // The first host's KEK file, given to the second, lets it start.
    let third = ServerProcess::start_with(
        &db,
        &stream,
        &[("MASTER_API_KEY", MASTER), ("TOKENHUB_KEK", ""), ("TOKENHUB_KEK_FILE", &a)],
    );
    third.wait_ready(&http).await;
    drop((first, third));
    let _ = std::fs::remove_dir_all(&dir);
}
