//! Usage ingest and rollups: CloudEvents on the usage stream with key-bound tags, idempotent
//! re-posts, zero data retention, exactly-once rollups under redelivery and restart, the
//! summary / history / admin queries and the example billing subscriber.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokenhub::time_fmt::rfc3339;

use crate::common::*;

pub fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// A record of `key` with `prompt` + `completion` tokens.
pub fn record(id: &str, key: &str, prompt: u64, completion: u64) -> Value {
    json!({"id": id, "key": key, "model": "gpt-4o", "api_calls": 1, "prompt_tokens": prompt,
           "completion_tokens": completion, "bandwidth_bytes": 100, "storage_bytes": 7, "timestamp": now()})
}

/// Posts a batch as `gateway`.
pub async fn post_usage(app: &TestApp, gateway: &str, records: Vec<Value>) -> (u16, Value) {
    send(app.http.post(app.url("/v1/usage")).bearer_auth(gateway).json(&json!({"records": records}))).await
}

/// Waits until the usage projection of `app` has consumed everything in the usage stream.
pub async fn wait_counted(app: &TestApp, stream: &TestStream) {
    let js = stream.js().await;
    let last = match js.get_stream(&stream.usage_stream).await {
        Ok(mut s) => s.info().await.unwrap().state.last_sequence,
        Err(_) => 0,
    };
    let mut rx = app.app.usage_applied.clone();
    let reached = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|s| *s >= last)).await.is_ok();
    assert!(reached, "usage projection did not reach {last} (at {})", *rx.borrow());
}

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    send(app.http.get(app.url(path)).bearer_auth(key)).await
}

#[tokio::test]
async fn records_become_cloudevents_with_the_keys_tags_and_roll_up() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Metered").await;
    let (_, other_admin) = app.create_tenant("Other").await;
    let tags = json!({"customer_id": "acme", "cost_center": "ml"});
    let (key, full_key) = app.issue_key(&tenant, json!({"tags": tags})).await;
    let (key2, _) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;

    let mut first = record("req-1", &key, 10, 5);
    first["tags"] = json!({"customer_id": "evil", "injected": "yes"});
    let mut second = record("req-2", &key, 100, 50);
    second["model"] = json!("claude");
    second["userId"] = json!("user-7");
    let third = record("req-3", &key2, 1, 1);
    let (status, answer) = post_usage(&app, &gateway, vec![first, second, third]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 3);
    assert_eq!(answer["records"][0], json!({"id": "req-1", "status": "accepted"}));

    // The usage stream holds one CloudEvent per record.
    let messages = stream.messages_of(&stream.usage_stream).await;
    assert_eq!(messages.len(), 3);
    for m in &messages {
        let text = String::from_utf8(m.payload.to_vec()).unwrap();
        assert!(!text.contains(&full_key), "the full key never reaches NATS");
        let event: Value = serde_json::from_str(&text).unwrap();
        // CloudEvents 1.0 required attributes: id, source, specversion, type (non-empty strings).
        assert_eq!(event["specversion"], "1.0");
        for attribute in ["id", "source", "type"] {
            assert!(event[attribute].as_str().is_some_and(|s| !s.is_empty()), "{attribute}: {event}");
        }
        // Attribute names are lower-case letters and digits only.
        for name in event.as_object().unwrap().keys() {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "attribute {name}");
        }
        assert_eq!(event["type"], "tokenhub.usage.v1");
        assert_eq!(event["source"], format!("/tokenhub/tenants/{tenant}/usage"));
        assert_eq!(event["subject"], tenant.as_str());
        assert_eq!(event["datacontenttype"], "application/json");
        assert!(OffsetDateTime::parse(event["time"].as_str().unwrap(), &Rfc3339).is_ok());
        let id = m.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap();
        assert_eq!(id, format!("{tenant}:{}", event["id"].as_str().unwrap()));
        assert_eq!(m.subject.as_str(), format!("{}.usage.{tenant}", stream.prefix));
        if event["data"]["key_id"] == key.as_str() {
            assert_eq!(event["data"]["tags"], tags, "key-bound tags only, whatever the caller sent");
        } else {
            assert_eq!(event["data"]["tags"], json!({}));
        }
    }

    wait_counted(&app, &stream).await;
    let month = &now()[..7];
    let (status, summary) = get(&app, &admin, "/usage/summary").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["tenant_id"], tenant.as_str());
    assert_eq!(summary["period"], month);
    assert_eq!(summary["api_calls"], 3);
    assert_eq!(summary["llm_tokens"], 167);
    assert_eq!(summary["bandwidth_bytes"], 300);
    assert_eq!(summary["storage_bytes"], 21);

    let (_, by_model) = get(&app, &admin, "/usage/summary?model=claude").await;
    assert_eq!(by_model["llm_tokens"], 150);
    let (_, by_key) = get(&app, &admin, &format!("/usage/summary?key={key2}")).await;
    assert_eq!(by_key["llm_tokens"], 2);
    let (_, by_user) = get(&app, &admin, "/usage/summary?userId=user-7").await;
    assert_eq!(by_user["api_calls"], 1);

    let (status, history) = get(&app, &admin, &format!("/usage/history?period={month}")).await;
    assert_eq!(status, 200, "{history}");
    let today = &now()[..10];
    assert_eq!(
        history["history"],
        json!([{"date": today, "api_calls": 3, "llm_tokens": 167,
        "bandwidth_bytes": 300, "storage_bytes": 21}])
    );
    // Breakdowns: the groups sum to the summary with the same filters, most tokens first.
    for by in ["key", "sub_account", "user", "model"] {
        let (status, b) = get(&app, &admin, &format!("/usage/breakdown?by={by}&period={month}")).await;
        assert_eq!(status, 200, "{b}");
        let groups = b["groups"].as_array().unwrap();
        let sum = |field: &str| groups.iter().map(|g| g[field].as_i64().unwrap()).sum::<i64>();
        assert_eq!((sum("llm_tokens"), sum("api_calls"), sum("records")), (167, 3, 3), "by {by}: {b}");
        assert_eq!(b["truncated"], false);
        let tokens: Vec<i64> = groups.iter().map(|g| g["llm_tokens"].as_i64().unwrap()).collect();
        assert!(tokens.windows(2).all(|w| w[0] >= w[1]), "by {by}: most tokens first: {b}");
    }
    let (_, b) = get(&app, &admin, "/usage/breakdown?by=key").await;
    let by_key: Vec<(Value, Value)> = b["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["value"].clone(), g["llm_tokens"].clone()))
        .collect();
    assert_eq!(by_key, vec![(json!(key), json!(165)), (json!(key2), json!(2))]);
    let (_, b) = get(&app, &admin, "/usage/breakdown?by=user").await;
    assert!(
        b["groups"].as_array().unwrap().iter().any(|g| g["value"].is_null()),
        "usage without a user: {b}"
    );
    let (_, b) = get(&app, &admin, "/usage/breakdown?by=model&limit=1").await;
    assert_eq!((b["groups"].as_array().unwrap().len(), &b["truncated"]), (1, &json!(true)));
    let (_, b) = get(&app, &admin, &format!("/usage/breakdown?by=model&key={key2}")).await;
    assert_eq!(b["groups"].as_array().unwrap().len(), 1, "filters apply: {b}");
    for bad in ["/usage/breakdown", "/usage/breakdown?by=tenant", "/usage/breakdown?by=key&limit=0"] {
        let (status, body) = get(&app, &admin, bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (_, old) = get(&app, &admin, "/usage/history?period=2024-01").await;
    assert_eq!(old["history"], json!([]));
    let (status, bad) = get(&app, &admin, "/usage/history?period=2024-13").await;
    assert_eq!((status, bad["error"]["code"].as_str()), (422, Some("invalid_period")));

    // Another tenant sees none of it.
    let (_, other) = get(&app, &other_admin, "/usage/summary").await;
    assert_eq!(other["api_calls"], 0);

    // Finance admins read every tenant, and one tenant with X-Tenant-ID.
    let finance = app.platform_key("finance_admin").await;
    let (status, all) = get(&app, &finance, "/admin/usage").await;
    assert_eq!(status, 200, "{all}");
    let mine = all["tenants"].as_array().unwrap().iter().find(|t| t["tenant_id"] == tenant.as_str()).unwrap();
    assert_eq!(mine["llm_tokens"], 167);
    // Paged by tenant id.
    let (other_tenant, _) = app.create_tenant("Second").await;
    let (other_key, _) = app.issue_key(&other_tenant, json!({})).await;
    assert_eq!(post_usage(&app, &gateway, vec![record("o-1", &other_key, 1, 0)]).await.0, 200);
    wait_counted(&app, &stream).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/usage?limit=1&cursor={c}"),
            None => "/admin/usage?limit=1".to_string(),
        };
        let (status, page) = get(&app, &finance, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["tenants"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut expected = vec![tenant.clone(), other_tenant];
    expected.sort();
    assert_eq!(seen, expected);
    let (status, _) = get(&app, &finance, "/admin/usage?limit=0").await;
    assert_eq!(status, 422);
    let (status, one) =
        send(app.http.get(app.url("/usage/summary")).bearer_auth(&finance).header("X-Tenant-ID", &tenant))
            .await;
    assert_eq!((status, one["llm_tokens"].as_i64()), (200, Some(167)));
    app.stop().await;
}

#[tokio::test]
async fn reposts_count_once_and_only_metadata_is_accepted() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Idem").await;
    let (key, full_key) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;

    let batch: Vec<Value> = (0..3).map(|i| record(&format!("r{i}"), &key, 10, 0)).collect();
    let (_, first) = post_usage(&app, &gateway, batch.clone()).await;
    assert_eq!((first["accepted"].as_u64(), first["duplicates"].as_u64()), (Some(3), Some(0)));
    let (_, again) = post_usage(&app, &gateway, batch.clone()).await;
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)));
    // Same id twice in one batch, plus an old one: one new record.
    let mixed = vec![record("r9", &key, 10, 0), record("r9", &key, 10, 0), batch[0].clone()];
    let (_, mixed) = post_usage(&app, &gateway, mixed).await;
    assert_eq!((mixed["accepted"].as_u64(), mixed["duplicates"].as_u64()), (Some(1), Some(2)));
    wait_counted(&app, &stream).await;
    // After the projection counted them, a re-post is still a duplicate.
    let (_, late) = post_usage(&app, &gateway, batch.clone()).await;
    assert_eq!(late["duplicates"], 3);

    let published = stream.messages_of(&stream.usage_stream).await.len();
    assert_eq!(published, 4);
    // Zero data retention: content fields are refused, and nothing of the batch is published.
    for field in ["prompt", "response", "messages"] {
        let mut r = record("content", &key, 1, 1);
        r[field] = json!("tell me a secret");
        let (status, body) = post_usage(&app, &gateway, vec![record("ok-before", &key, 1, 1), r]).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid_request")),
            "{field}: {body}"
        );
    }
    let (status, body) = post_usage(&app, &gateway, vec![record("full", &full_key, 1, 1)]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("full_key_not_accepted")));
    assert!(!body.to_string().contains(&full_key));
    let (status, body) = post_usage(&app, &gateway, vec![record("nokey", "AAAAAAAAAAAAAAAA", 1, 1)]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("unknown_key")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("records[0].key"));
    let (status, body) = post_usage(&app, &gateway, vec![]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("empty_batch")));
    let big: Vec<Value> = (0..1001).map(|i| record(&format!("b{i}"), &key, 1, 1)).collect();
    let (status, body) = post_usage(&app, &gateway, big).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("batch_too_large")));
    let mut future = record("future", &key, 1, 1);
    future["timestamp"] = json!("2999-01-01T00:00:00Z");
    let (status, body) = post_usage(&app, &gateway, vec![future]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_usage_record")));
    // By tenant and end-user, without a key.
    let (status, body) = post_usage(
        &app,
        &gateway,
        vec![json!({"id": "u1", "tenant_id": tenant, "userId": "end-user", "api_calls": 2, "timestamp": now()})],
    )
    .await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(stream.messages_of(&stream.usage_stream).await.len(), published + 1);

    // Only gateways report.
    let (status, _) = send(
        app.http
            .post(app.url("/v1/usage"))
            .bearer_auth(&admin)
            .json(&json!({"records": [record("x", &key, 1, 1)]})),
    )
    .await;
    assert_eq!(status, 403);

    wait_counted(&app, &stream).await;
    let (_, summary) = get(&app, &admin, "/usage/summary").await;
    assert_eq!(summary["records"], 5);
    assert_eq!(summary["api_calls"], 6);
    assert_eq!(summary["llm_tokens"], 40);
    app.stop().await;
}

#[tokio::test]
async fn rollups_are_exactly_once_under_redelivery_and_restart() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Once").await;
    let (key, _) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;
    for batch in 0..5 {
        let records = (0..10).map(|i| record(&format!("b{batch}-{i}"), &key, 3, 4)).collect();
        assert_eq!(post_usage(&app, &gateway, records).await.0, 200);
    }
    wait_counted(&app, &stream).await;
    let (_, before) = get(&app, &admin, "/usage/summary").await;
    assert_eq!((before["records"].as_i64(), before["llm_tokens"].as_i64()), (Some(50), Some(350)));

    // The same records applied again (a redelivered batch) add nothing.
    let events: Vec<tokenhub::usage::rollups::Counted> = stream
        .messages_of(&stream.usage_stream)
        .await
        .into_iter()
        .map(|m| tokenhub::usage::rollups::Counted {
            seq: m.sequence,
            event: serde_json::from_slice(&m.payload).unwrap(),
        })
        .collect();
    assert_eq!(tokenhub::usage::rollups::apply_batch(&app.pool, &events).await.unwrap(), 0);

    // An operator deletes the durable consumer: it is recreated after the ack floor kept in
    // the database, not from the start of the stream.
    app.stop().await;
    let js = stream.js().await;
    let usage_stream = js.get_stream(&stream.usage_stream).await.unwrap();
    usage_stream.delete_consumer("tokenhub-usage-rollups").await.unwrap();
    let app = TestApp::start(&db, &stream).await;
    wait_counted(&app, &stream).await;
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        usage_stream.get_consumer("tokenhub-usage-rollups").await.unwrap();
    assert_eq!(
        consumer.info().await.unwrap().config.deliver_policy,
        async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: 51 }
    );
    assert_eq!(get(&app, &admin, "/usage/summary").await.1, before);

    // With the floor lost too, the whole stream is delivered again: nothing counts twice.
    app.stop().await;
    usage_stream.delete_consumer("tokenhub-usage-rollups").await.unwrap();
    sqlx::query("DELETE FROM usage_consumer_floors").execute(&db.pool().await).await.unwrap();
    let app = TestApp::start(&db, &stream).await;
    wait_counted(&app, &stream).await;
    let (_, after) = get(&app, &admin, "/usage/summary").await;
    assert_eq!(after, before, "redelivery after a restart counts nothing twice");
    let (_, history) = get(&app, &admin, "/usage/history").await;
    assert_eq!(history["history"][0]["llm_tokens"], 350);

    // A plain restart continues where the consumer acknowledged.
    let records = (0..10).map(|i| record(&format!("late-{i}"), &key, 1, 0)).collect();
    assert_eq!(post_usage(&app, &gateway, records).await.0, 200);
    app.stop().await;
    let app = TestApp::start(&db, &stream).await;
    wait_counted(&app, &stream).await;
    let (_, last) = get(&app, &admin, "/usage/summary").await;
    assert_eq!((last["records"].as_i64(), last["llm_tokens"].as_i64()), (Some(60), Some(360)));
    app.stop().await;
}

#[tokio::test]
async fn the_example_subscriber_prints_per_tenant_totals() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (a, _) = app.create_tenant("A").await;
    let (b, _) = app.create_tenant("B").await;
    let (key_a, _) = app.issue_key(&a, json!({})).await;
    let (key_b, _) = app.issue_key(&b, json!({})).await;
    let gateway = app.platform_key("gateway").await;
    let records = vec![record("1", &key_a, 10, 0), record("2", &key_a, 5, 0), record("1", &key_b, 1, 1)];
    assert_eq!(post_usage(&app, &gateway, records).await.0, 200);

    let js = stream.js().await;
    let mut out = Vec::new();
    let totals =
        tokenhub::usage::tail::tail(&js, &stream.usage_stream, "billing", false, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&format!("tenant={a} records=2 api_calls=2 llm_tokens=15")), "{text}");
    assert!(text.contains(&format!("tenant={b} records=1 api_calls=1 llm_tokens=2")), "{text}");
    assert_eq!(totals.tenants.len(), 2);
    // The durable consumer continues where it acknowledged: a second run sees only new records.
    assert_eq!(post_usage(&app, &gateway, vec![record("3", &key_a, 1, 0)]).await.0, 200);
    let mut out = Vec::new();
    let totals =
        tokenhub::usage::tail::tail(&js, &stream.usage_stream, "billing", false, &mut out).await.unwrap();
    let expected: BTreeMap<String, u64> = [(a.clone(), 1)].into();
    let got: BTreeMap<String, u64> = totals.tenants.iter().map(|(t, v)| (t.clone(), v.llm_tokens)).collect();
    assert_eq!(got, expected);
    // `--records`: each new record is printed too, as its CloudEvent, before the totals.
    assert_eq!(post_usage(&app, &gateway, vec![record("4", &key_b, 7, 0)]).await.0, 200);
    let mut out = Vec::new();
    tokenhub::usage::tail::tail_printing(&js, &stream.usage_stream, "billing", false, true, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        (event["data"]["key_id"].as_str(), event["data"]["llm_tokens"].as_u64()),
        (Some(key_b.as_str()), Some(7))
    );
    assert!(lines[1].starts_with(&format!("tenant={b} records=1")), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn reading_usage_needs_the_right_principal() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Readers").await;
    let (_, finance) = app.issue_key(&tenant, json!({"role": "tenant_finance"})).await;
    let (_, data) = app.issue_key(&tenant, json!({})).await;
    assert_eq!(get(&app, &finance, "/usage/summary").await.0, 200);
    assert_eq!(get(&app, &data, "/usage/summary").await.0, 403);
    assert_eq!(get(&app, &finance, "/admin/usage").await.0, 403);
    let (status, body) = send(app.admin(Method::GET, "/usage/summary")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("tenant_id_required")));
    app.stop().await;
}

#[tokio::test]
async fn ingest_refuses_during_a_nats_outage_and_converges_after_it() {
    let mut nats = crate::relay::PrivateNats::start();
    let (db, stream) = (TestDb::new(), TestStream::on(nats.url()));
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Outage").await;
    let (key, _) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;
    let before: Vec<Value> = (0..5).map(|i| record(&format!("a{i}"), &key, 10, 0)).collect();
    assert_eq!(post_usage(&app, &gateway, before).await.0, 200);
    wait_counted(&app, &stream).await;

    nats.stop();
    let during: Vec<Value> = (0..5).map(|i| record(&format!("b{i}"), &key, 10, 0)).collect();
    let started = std::time::Instant::now();
    let res = app
        .http
        .post(app.url("/v1/usage"))
        .bearer_auth(&gateway)
        .json(&json!({"records": during}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "not acknowledged, not accepted");
    assert_eq!(res.headers()["retry-after"], "1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "usage_stream_unavailable");
    assert!(started.elapsed() < Duration::from_secs(2), "the gateway is answered at once");

    // The gateway retries after the outage; whatever reached the stream before is not counted twice.
    nats.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let (status, body) = post_usage(&app, &gateway, during.clone()).await;
        if status == 200 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "ingest did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap(), 5);
    wait_counted(&app, &stream).await;
    let (_, summary) = get(&app, &admin, "/usage/summary").await;
    assert_eq!((summary["records"].as_i64(), summary["llm_tokens"].as_i64()), (Some(10), Some(100)));
    app.stop().await;
    drop(stream);
    drop(nats);
}

#[tokio::test]
async fn ids_of_records_too_old_to_repost_are_pruned_and_totals_stay() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Prune").await;
    let (key, _) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;
    // Default USAGE_MAX_AGE_DAYS: 35.
    let at = |days: i64| rfc3339(OffsetDateTime::now_utc() - time::Duration::days(days));
    let mut old = record("old", &key, 10, 0);
    old["timestamp"] = json!(at(34));
    let mut fresh = record("fresh", &key, 10, 0);
    fresh["timestamp"] = json!(at(1));
    assert_eq!(post_usage(&app, &gateway, vec![old.clone(), fresh]).await.0, 200);
    let mut too_old = record("too-old", &key, 10, 0);
    too_old["timestamp"] = json!(at(36));
    let (status, body) = post_usage(&app, &gateway, vec![too_old]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_usage_record")));
    wait_counted(&app, &stream).await;

    // Four days later the 34-day-old record is past the window and its 2-day margin: its id goes, the totals stay.
    let later = OffsetDateTime::now_utc() + time::Duration::days(4);
    let pruned = tokenhub::usage::rollups::prune(&app.pool, later, time::Duration::days(35)).await.unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT record_id FROM usage_records").fetch_all(&app.pool).await.unwrap();
    assert_eq!(left, ["fresh"]);
    let (_, summary) = get(&app, &admin, &format!("/usage/summary?period={}", &at(34)[..7])).await;
    assert!(summary["records"].as_i64().unwrap() >= 1, "{summary}");
    app.stop().await;
}

#[tokio::test]
async fn a_usage_stream_with_other_subjects_is_refused_not_used() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let js = stream.js().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.usage_stream.clone(),
        subjects: vec![format!("{}other.usage.>", stream.prefix)],
        ..Default::default()
    })
    .await
    .unwrap();
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Foreign").await;
    let (key, _) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;
    let (status, body) = post_usage(&app, &gateway, vec![record("r", &key, 1, 1)]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("usage_stream_unavailable")), "{body}");
    let err =
        tokenhub::nats::ensure_usage_stream(&js, &app.app.state.usage.config().clone()).await.unwrap_err();
    assert!(err.to_string().contains("exists with subjects"), "{err}");
    app.stop().await;
}

/// The last 7 and 30 days (today partial) beside calendar months: summaries, days, breakdowns
/// and every tenant's totals sum exactly the records of those days; breakdowns name their keys
/// and sub-accounts (the tenant's own only).
#[tokio::test]
async fn the_last_days_sum_exactly_their_records_and_breakdowns_name_their_keys() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Rolling").await;
    let (key, _) = app.issue_key(&tenant, json!({"name": "nightly-batch"})).await;
    let gateway = app.platform_key("gateway").await;
    let at = |days_ago: i64| {
        (OffsetDateTime::now_utc() - time::Duration::days(days_ago)).format(&Rfc3339).unwrap()
    };
    // (days ago, prompt tokens): one record each.
    let days = [(0, 1), (3, 10), (6, 100), (10, 1_000), (29, 10_000), (33, 100_000)];
    let records: Vec<Value> = days
        .iter()
        .map(|(ago, tokens)| {
            let mut r = record(&format!("r-{ago}"), &key, *tokens, 0);
            r["timestamp"] = json!(at(*ago));
            r
        })
        .collect();
    let (status, answer) = post_usage(&app, &gateway, records).await;
    assert_eq!(status, 200, "{answer}");
    wait_counted(&app, &stream).await;
    let within = |n: i64| days.iter().filter(|(ago, _)| *ago < n).map(|(_, t)| *t as i64).sum::<i64>();
    for (period, n) in [("last-7-days", 7), ("last-30-days", 30)] {
        let (status, summary) = get(&app, &admin, &format!("/usage/summary?period={period}")).await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(
            (summary["period"].as_str(), summary["llm_tokens"].as_i64()),
            (Some(period), Some(within(n)))
        );
        let (_, history) = get(&app, &admin, &format!("/usage/history?period={period}")).await;
        let daily: i64 =
            history["history"].as_array().unwrap().iter().map(|d| d["llm_tokens"].as_i64().unwrap()).sum();
        assert_eq!(daily, within(n), "{period}: {history}");
        let (_, b) = get(&app, &admin, &format!("/usage/breakdown?by=key&period={period}")).await;
        assert_eq!(b["groups"][0]["llm_tokens"].as_i64(), Some(within(n)), "{b}");
        assert_eq!(b["names"][&key], "nightly-batch", "{b}");
        let (status, all) = send(app.admin(Method::GET, &format!("/admin/usage?period={period}"))).await;
        assert_eq!(status, 200, "{all}");
        assert_eq!(all["tenants"][0]["llm_tokens"].as_i64(), Some(within(n)), "{all}");
        // With each tenant's name and effective monthly quota (finance admins cannot list tenants).
        let (_, view) = send(app.admin(Method::GET, &format!("/admin/tenants/{tenant}"))).await;
        assert_eq!(all["names"][&tenant], "Rolling", "{all}");
        assert_eq!(
            all["monthly_token_quotas"].get(&tenant),
            view["limits"].get("monthly_token_quota"),
            "{all} {view}"
        );
    }
    let (status, bad) = get(&app, &admin, "/usage/summary?period=last-8-days").await;
    assert_eq!((status, bad["error"]["code"].as_str()), (422, Some("invalid_period")), "{bad}");
    app.stop().await;
}
