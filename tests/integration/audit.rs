//! The audit log: query with filters and tenant scoping, NDJSON export, tamper evidence caught
//! at the exact position, state at a past moment, key history, and replay from NATS.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn audit_query_is_filtered_scoped_and_redacted() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let auditor = app.platform_key("auditor").await;
    let (a, a_admin) = app.create_tenant("A").await;
    let (b, _) = app.create_tenant("B").await;
    let (key_id, _) = app.issue_key(&a, json!({})).await;
    let res = app
        .admin(Method::DELETE, &format!("/admin/api-keys/{key_id}"))
        .header("X-Request-Id", "revoke-1")
        .header("User-Agent", "ops/1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let (status, page) =
        send(app.http.get(app.url(&format!("/audit/events?aggregate_id={key_id}"))).bearer_auth(&auditor))
            .await;
    assert_eq!(status, 200, "{page}");
    let items = page["data"].as_array().unwrap();
    assert_eq!(
        items.iter().map(|i| i["event_type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["api_key.issued", "api_key.revoked"]
    );
    let revoked = &items[1];
    assert_eq!(revoked["actor"], json!({"kind": "super_admin", "id": "master"}));
    assert_eq!(revoked["request_id"], "revoke-1");
    assert_eq!(revoked["source_ip"], "127.0.0.1");
    assert_eq!(revoked["user_agent"], "ops/1");
    assert_eq!(revoked["tenant_id"], a.as_str());
    assert!(items[0]["payload"].get("secret_hash").is_none(), "hashes are left out");
    assert!(items[0]["payload"]["public_id"].is_string());

    let (_, by_type) =
        send(app.http.get(app.url("/audit/events?event_type=tenant.created")).bearer_auth(&auditor)).await;
    assert_eq!(by_type["data"].as_array().map(Vec::len), Some(2));
    let (_, first) = send(app.http.get(app.url("/audit/events?limit=3")).bearer_auth(&auditor)).await;
    let cursor = first["next_cursor"].as_i64().unwrap();
    let (_, second) =
        send(app.http.get(app.url(&format!("/audit/events?limit=3&cursor={cursor}"))).bearer_auth(&auditor))
            .await;
    assert_eq!(second["data"][0]["position"].as_i64(), Some(cursor + 1));
    let future = "2999-01-01T00:00:00Z";
    let (_, none) =
        send(app.http.get(app.url(&format!("/audit/events?from={future}"))).bearer_auth(&auditor)).await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));

    // A tenant admin sees its own tenant only, whatever it asks for.
    let (status, own) =
        send(app.http.get(app.url(&format!("/tenant/audit/events?tenant_id={b}"))).bearer_auth(&a_admin))
            .await;
    assert_eq!(status, 200);
    let own = own["data"].as_array().unwrap();
    assert!(!own.is_empty() && own.iter().all(|i| i["tenant_id"] == a.as_str()));

    // Names beside ids: the tenants' and keys' current names; a tenant's page names only its
    // own (no other tenant's, no platform key's).
    let (_, named) = send(app.http.get(app.url("/audit/events?limit=1000")).bearer_auth(&auditor)).await;
    assert_eq!(named["names"][&a], "A", "{}", named["names"]);
    assert_eq!(named["names"][&b], "B");
    assert_eq!(named["names"][&key_id], "k");
    let (_, own) = send(app.http.get(app.url("/tenant/audit/events?limit=1000")).bearer_auth(&a_admin)).await;
    let own_names = own["names"].as_object().unwrap();
    assert_eq!(own_names.get(&a).and_then(Value::as_str), Some("A"));
    assert_eq!(own_names.get(&key_id).and_then(Value::as_str), Some("k"));
    assert!(own_names.get(&b).is_none(), "{own_names:?}");
    let platform: Vec<String> = sqlx::query_scalar("SELECT public_id FROM api_keys WHERE tenant_id IS NULL")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!platform.is_empty() && platform.iter().all(|p| !own_names.contains_key(p)));
    app.stop().await;
}

#[tokio::test]
async fn export_streams_every_matching_event_as_ndjson() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for i in 0..4 {
        app.create_tenant(&format!("E{i}")).await;
    }
    let res = app.admin(Method::GET, "/audit/events/export").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as i64, app.head().await);
    assert!(lines.windows(2).all(|w| w[0]["position"].as_i64() < w[1]["position"].as_i64()));
    let res = app.admin(Method::GET, "/audit/events/export?event_type=tenant.created").send().await.unwrap();
    assert_eq!(res.text().await.unwrap().lines().count(), 4);

    let file = std::env::temp_dir().join(format!("audit-{}.ndjson", uuid::Uuid::new_v4().simple()));
    let cli = <tokenhub::cli::Cli as clap::Parser>::try_parse_from([
        "tokenhub",
        "--database-url",
        &db.url,
        "audit",
        "export",
        "--event-type",
        "tenant.created",
        "--output",
        file.to_str().unwrap(),
    ])
    .unwrap();
    tokenhub::cli::run(cli).await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 4);
    let _ = std::fs::remove_file(file);
    app.stop().await;
}

async fn verify(app: &TestApp) -> Value {
    send(app.admin(Method::GET, "/audit/verify")).await.1
}

#[tokio::test]
async fn tampering_behind_the_services_back_is_caught_at_the_exact_position() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for i in 0..3 {
        app.create_tenant(&format!("T{i}")).await;
    }
    let head = app.head().await;
    let report = verify(&app).await;
    assert_eq!((report["ok"].as_bool(), report["checked"].as_i64()), (Some(true), Some(head)));

    // As the database owner, with the immutability trigger disabled: alter one payload.
    let pool = db.pool().await;
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_immutable_rows").execute(&pool).await.unwrap();
    sqlx::query("UPDATE events SET payload = jsonb_set(payload, '{name}', '\"Forged\"') WHERE position = 5")
        .execute(&pool)
        .await
        .unwrap();
    let report = verify(&app).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"], json!({"position": 5, "reason": "altered"}));
    let cli = <tokenhub::cli::Cli as clap::Parser>::try_parse_from([
        "tokenhub",
        "--database-url",
        &db.url,
        "audit",
        "verify",
    ])
    .unwrap();
    let err = tokenhub::cli::run(cli).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("position 5"), "{err}");

    // On another log: deleting the newest rows is caught by the head; deleting a row in the
    // middle is caught where the row was.
    let (db2, stream2) = (TestDb::new(), TestStream::new());
    let app2 = TestApp::start(&db2, &stream2).await;
    for i in 0..3 {
        app2.create_tenant(&format!("D{i}")).await;
    }
    let last = app2.head().await;
    let pool2 = db2.pool().await;
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_immutable_rows").execute(&pool2).await.unwrap();
    sqlx::query("DELETE FROM events WHERE position >= $1").bind(last - 1).execute(&pool2).await.unwrap();
    assert_eq!(verify(&app2).await["first_break"], json!({"position": last - 1, "reason": "head_mismatch"}));
    sqlx::query("DELETE FROM events WHERE position = 7").execute(&pool2).await.unwrap();
    assert_eq!(verify(&app2).await["first_break"], json!({"position": 7, "reason": "missing"}));
    app.stop().await;
    app2.stop().await;
}

#[tokio::test]
async fn state_at_a_past_moment_and_key_history() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let before_all = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(5));
    let (tenant, admin) = app.create_tenant("Original").await;
    let (key_id, _) = app.issue_key(&tenant, json!({"name": "first"})).await;
    let (_, sub) = send(
        app.http.post(app.url("/tenant/sub-accounts")).bearer_auth(&admin).json(&json!({"name": "team-a"})),
    )
    .await;
    let sub_id = sub["sub_account_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = rfc3339(time::OffsetDateTime::now_utc());
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(
        app.admin(Method::PATCH, &format!("/admin/tenants/{tenant}"))
            .json(&json!({"name": "Renamed", "plan": "enterprise"})),
    )
    .await;
    send(app.admin(Method::PATCH, &format!("/admin/api-keys/{key_id}")).json(&json!({"name": "second"})))
        .await;
    send(app.admin(Method::DELETE, &format!("/admin/api-keys/{key_id}"))).await;
    send(
        app.http
            .patch(app.url(&format!("/tenant/sub-accounts/{sub_id}")))
            .bearer_auth(&admin)
            .json(&json!({"name": "team-b"})),
    )
    .await;

    let (status, then) =
        send(app.admin(Method::GET, &format!("/admin/tenants/{tenant}?as_of={middle}"))).await;
    assert_eq!(status, 200, "{then}");
    assert_eq!((then["name"].as_str(), then["plan"].as_str()), (Some("Original"), Some("pro")));
    let (_, now) = send(app.admin(Method::GET, &format!("/admin/tenants/{tenant}"))).await;
    assert_eq!(now["name"], "Renamed");
    let (status, _) =
        send(app.admin(Method::GET, &format!("/admin/tenants/{tenant}?as_of={before_all}"))).await;
    assert_eq!(status, 404, "not created yet");

    let (_, key_then) =
        send(app.admin(Method::GET, &format!("/admin/api-keys/{key_id}?as_of={middle}"))).await;
    assert_eq!((key_then["name"].as_str(), key_then["status"].as_str()), (Some("first"), Some("active")));
    let (_, key_now) = send(app.admin(Method::GET, &format!("/admin/api-keys/{key_id}"))).await;
    assert_eq!((key_now["name"].as_str(), key_now["status"].as_str()), (Some("second"), Some("revoked")));
    let (_, sub_then) = send(
        app.http.get(app.url(&format!("/tenant/sub-accounts/{sub_id}?as_of={middle}"))).bearer_auth(&admin),
    )
    .await;
    assert_eq!(sub_then["name"], "team-a");

    // The same past states for auditors (`/audit/state`) and for the tenant's own admin
    // (`/tenant/audit/state`, its tenant and keys only).
    let auditor = app.platform_key("auditor").await;
    let (_, other_admin) = app.create_tenant("Elsewhere").await;
    let state_of = |path: &str, kind: &str, id: &str, at: &str| {
        format!("{path}?aggregate_type={kind}&aggregate_id={id}&as_of={at}")
    };
    let (status, past) = send(
        app.http.get(app.url(&state_of("/audit/state", "tenant", &tenant, &middle))).bearer_auth(&auditor),
    )
    .await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(
        (past["aggregate_type"].as_str(), past["state"]["name"].as_str()),
        (Some("tenant"), Some("Original"))
    );
    let (_, past) = send(
        app.http.get(app.url(&state_of("/audit/state", "api_key", &key_id, &middle))).bearer_auth(&auditor),
    )
    .await;
    assert_eq!(
        (past["aggregate_type"].as_str(), past["state"]["status"].as_str()),
        (Some("api_key"), Some("active"))
    );
    assert!(!past.to_string().contains("hash"), "no key hash in a past state: {past}");
    let (_, past) = send(
        app.http
            .get(app.url(&state_of("/tenant/audit/state", "api_key", &key_id, &middle)))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(past["state"]["name"], "first");
    for (who, kind, id) in [(&other_admin, "api_key", &key_id), (&other_admin, "tenant", &tenant)] {
        let (status, body) =
            send(app.http.get(app.url(&state_of("/tenant/audit/state", kind, id, &middle))).bearer_auth(who))
                .await;
        assert_eq!(status, 404, "another tenant's {kind} is not found: {body}");
    }
    let (status, _) = send(
        app.http
            .get(app.url(&state_of("/audit/state", "api_key", &key_id, &before_all)))
            .bearer_auth(&auditor),
    )
    .await;
    assert_eq!(status, 404, "not issued yet");
    for bad in [
        "/audit/state?aggregate_type=tenant",
        "/audit/state?aggregate_type=role&aggregate_id=x&as_of=2024-01-01T00:00:00Z",
        "/audit/state?aggregate_type=tenant&aggregate_id=x&as_of=yesterday",
    ] {
        let (status, body) = send(app.http.get(app.url(bad)).bearer_auth(&auditor)).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }

    let (status, history) = send(app.admin(Method::GET, &format!("/admin/api-keys/{key_id}/history"))).await;
    assert_eq!(status, 200);
    let changes: Vec<(&str, &str)> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["event_type"].as_str().unwrap(), i["actor"]["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("api_key.issued", "super_admin"),
            ("api_key.updated", "super_admin"),
            ("api_key.revoked", "super_admin")
        ]
    );
    assert!(history["data"].as_array().unwrap().iter().all(|i| i["time"].is_string()));
    let (status, _) = send(app.admin(Method::GET, "/admin/api-keys/nokeynokeynokey0/history")).await;
    assert_eq!(status, 404);
    app.stop().await;
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// How a compliance system replays from a point in time: a durable consumer delivering by
/// start time, keeping the CloudEvents whose `time` is after the point (an event committed
/// before it may be published just after it).
#[tokio::test]
async fn a_durable_consumer_from_a_point_in_time_receives_exactly_the_later_events() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for i in 0..3 {
        app.create_tenant(&format!("Before{i}")).await;
    }
    app.wait_relayed(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let point = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..2 {
        app.create_tenant(&format!("After{i}")).await;
    }
    app.wait_relayed(Duration::from_secs(10)).await;

    let js = stream.js().await;
    let events = js.get_stream(&stream.stream).await.unwrap();
    let consumer = events
        .create_consumer(pull::Config {
            durable_name: Some("compliance".into()),
            deliver_policy: DeliverPolicy::ByStartTime { start_time: point },
            ..Default::default()
        })
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut batch =
        consumer.fetch().max_messages(100).expires(Duration::from_secs(1)).messages().await.unwrap();
    while let Some(Ok(message)) = batch.next().await {
        let ce: Value = serde_json::from_slice(&message.payload).unwrap();
        let time = time::OffsetDateTime::parse(
            ce["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        if time > point {
            received.push(ce["id"].as_str().unwrap().to_string());
        }
        message.ack().await.unwrap();
    }
    let expected: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events WHERE recorded_at > $1 ORDER BY position")
            .bind(point)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
    assert_eq!(expected.len(), 2 * 4, "two tenants, four events each");
    assert_eq!(received, expected);
    app.stop().await;
}

#[tokio::test]
async fn read_only_commands_never_create_or_migrate_a_database_and_an_empty_log_is_an_error() {
    let run = |url: String, action: &'static str| async move {
        let cli = <tokenhub::cli::Cli as clap::Parser>::try_parse_from([
            "tokenhub",
            "--database-url",
            &url,
            "audit",
            action,
        ])
        .unwrap();
        tokenhub::cli::run(cli).await.err().map(|e| e.to_string())
    };
    // A mistyped database name: refused, and still not there afterwards.
    let missing = format!("tokenhub_typo_{}", std::process::id());
    let base = pg_admin_url();
    let url = format!("{}/{missing}", base.rsplit_once('/').unwrap().0);
    for action in ["verify", "export"] {
        let err = run(url.clone(), action).await.unwrap_or_default();
        assert!(err.contains("holds no TokenHub event log"), "{action}: {err}");
    }
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&missing)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(!exists, "audit verify created the database it was pointed at");

    // A database that exists but holds no log, and a migrated one with an empty log.
    let db = TestDb::new();
    let _ = db.pool().await;
    let err = run(db.url.clone(), "verify").await.unwrap_or_default();
    assert!(err.contains("holds no TokenHub event log") || err.contains("empty"), "{err}");
    tokenhub::store::migrate(&db.pool().await).await.unwrap();
    let err = run(db.url.clone(), "verify").await.unwrap_or_default();
    assert!(err.contains("the event log is empty"), "{err}");
}
