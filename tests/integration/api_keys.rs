//! API keys over HTTP: issue, read, update, rotate, disable, revoke; every verification code;
//! tags; tenant isolation; platform keys; last_used_at; no key in the database or on NATS.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn admin_issues_a_key_with_the_requested_shape_and_never_shows_it_again() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Acme").await;
    let expiration = "2099-01-01T00:00:00Z";
    let (status, issued) = send(app.admin(Method::POST, "/admin/api-keys").json(&json!({
        "tenant_id": tenant, "name": "prod", "tags": {"customer_id": "acme-corp", "env": "prod"},
        "expiration": expiration, "quota_limit": 1000000, "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"],
        "allowed_models": ["gpt-4o"], "permissions": ["chat", "embeddings"],
        "rate_limit": {"requests_per_minute": 600}
    })))
    .await;
    assert_eq!(status, 201, "{issued}");
    let key = issued["api_key"].as_str().unwrap_or_default().to_string();
    let public_id = issued["public_id"].as_str().unwrap_or_default().to_string();
    assert!(key.starts_with(&format!("thk_{public_id}_")));
    assert_eq!(issued["tags"]["customer_id"], "acme-corp");
    assert_eq!(issued["expiration"], expiration);
    assert_eq!(issued["quota_limit"], 1000000);
    assert_eq!(issued["status"], "active");
    assert!(issued["created_at"].is_string());
    assert!(issued.get("secret_hash").is_none());

    // The answer (the projection's fold of the key's events) is what the key reads back as.
    let (_, read_back) = send(app.admin(Method::GET, &format!("/admin/api-keys/{public_id}"))).await;
    let mut answered = issued.clone();
    answered.as_object_mut().unwrap().remove("api_key");
    assert_eq!(answered, read_back);

    for path in [format!("/admin/api-keys/{public_id}"), format!("/admin/api-keys?tenant_id={tenant}")] {
        let res = app.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        assert!(!text.contains(&key[20..]) && !text.contains("hash"), "{path} leaks key material: {text}");
    }
    let (_, by_tag) = send(app.admin(Method::GET, "/admin/api-keys?tag=customer_id=acme-corp")).await;
    assert_eq!(by_tag["data"].as_array().map(Vec::len), Some(1));
    let (_, none) = send(app.admin(Method::GET, "/admin/api-keys?tag=customer_id=other")).await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));

    let (status, patched) = send(
        app.admin(Method::PATCH, &format!("/admin/api-keys/{public_id}"))
            .json(&json!({"expiration": null, "allowed_models": [], "name": "renamed"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched["expiration"].is_null());
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["allowed_models"], json!([]));

    let cases = [
        (json!({"tenant_id": tenant, "name": "x", "allowed_ips": ["10.0.0.0/33"]}), 422, "invalid_cidr"),
        (
            json!({"tenant_id": tenant, "name": "x", "expiration": "2020-01-01T00:00:00Z"}),
            422,
            "expiry_in_past",
        ),
        (json!({"tenant_id": tenant, "name": "x", "quota_limit": -1}), 422, "invalid_quota"),
        (
            json!({"tenant_id": tenant, "name": "x", "tags": {"tokenhub.customer_id": "x"}}),
            422,
            "reserved_tag_key",
        ),
        (json!({"tenant_id": tenant, "name": "x", "bogus": 1}), 422, "invalid_request"),
        (json!({"name": "x"}), 422, "invalid_request"),
        (json!({"tenant_id": "ten_doesnotexist00000000", "name": "x"}), 404, "tenant_not_found"),
    ];
    let before = app.head().await;
    for (body, want_status, want_code) in cases {
        let (status, answer) = send(app.admin(Method::POST, "/admin/api-keys").json(&body)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (want_status, Some(want_code)), "{body}");
    }
    assert_eq!(app.head().await, before, "refused issues wrote nothing");

    // Plan limits: an enterprise tenant has no key cap; a tenant capped at 2 keys gets 409.
    let (_, big) =
        send(app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "Big", "plan": "enterprise"})))
            .await;
    let big = big["tenant_id"].as_str().unwrap().to_string();
    app.issue_key(&big, json!({})).await;
    let (_, small) = send(
        app.admin(Method::POST, "/admin/tenants")
            .json(&json!({"name": "Small", "limits": {"max_api_keys": 2}})),
    )
    .await;
    let small = small["tenant_id"].as_str().unwrap().to_string();
    app.issue_key(&small, json!({})).await;
    let (status, answer) =
        send(app.admin(Method::POST, "/admin/api-keys").json(&json!({"tenant_id": small, "name": "third"})))
            .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("api_key_limit_reached")),
        "admin key + 1 = 2"
    );
    // A revoked key frees its place; the count is the cache's, so it must follow revocations.
    let (_, keys) = send(app.admin(Method::GET, &format!("/admin/api-keys?tenant_id={small}"))).await;
    let second = keys["data"].as_array().unwrap().iter().find(|k| k["role"] == "data").unwrap().clone();
    let revoke = format!("/admin/api-keys/{}", second["public_id"].as_str().unwrap());
    assert_eq!(send(app.admin(Method::DELETE, &revoke)).await.0, 200);
    let third = json!({"tenant_id": small, "name": "third"});
    assert_eq!(send(app.admin(Method::POST, "/admin/api-keys").json(&third)).await.0, 201);
    let (status, _) = send(app.admin(Method::POST, "/admin/api-keys").json(&third)).await;
    assert_eq!(status, 409, "full again");
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn verification_answers_every_code() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, _) = app.create_tenant("Codes").await;

    let (_, plain) =
        app.issue_key(&tenant, json!({"tags": {"customer_id": "acme-corp"}, "permissions": ["chat"]})).await;
    let valid = app.verify(&gateway, json!({"key": plain, "tags": {"customer_id": "spoof", "tokenhub.customer_id": "spoof", "trace": "t1"}})).await;
    assert_eq!((valid["valid"].as_bool(), code(&valid)), (Some(true), "VALID"));
    assert_eq!(valid["tenant_id"], tenant.as_str());
    assert_eq!(valid["role"], "data");
    assert_eq!(valid["permissions"], json!(["chat"]));
    assert_eq!(
        valid["tags"],
        json!({"customer_id": "acme-corp", "tokenhub.customer_id": "acme-corp", "trace": "t1"})
    );

    assert_eq!(code(&app.verify(&gateway, json!({"key": "thk_garbage"})).await), "MALFORMED");
    let unknown = tokenhub::auth::key_format::generate().full;
    assert_eq!(code(&app.verify(&gateway, json!({"key": unknown})).await), "NOT_FOUND");

    let (_, ipkey) =
        app.issue_key(&tenant, json!({"allowed_ips": ["203.0.113.0/24", "2001:db8::/48"]})).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": ipkey, "ip": "203.0.113.255"})).await), "VALID");
    assert_eq!(
        code(&app.verify(&gateway, json!({"key": ipkey, "ip": "203.0.114.0"})).await),
        "IP_NOT_ALLOWED"
    );
    assert_eq!(code(&app.verify(&gateway, json!({"key": ipkey, "ip": "2001:db8:0:ffff::1"})).await), "VALID");
    assert_eq!(
        code(&app.verify(&gateway, json!({"key": ipkey, "ip": "2001:db8:1::1"})).await),
        "IP_NOT_ALLOWED"
    );
    let (status, bad_ip) = send(
        app.http
            .post(app.url("/v1/keys/verify"))
            .bearer_auth(&gateway)
            .json(&json!({"key": ipkey, "ip": "nope"})),
    )
    .await;
    assert_eq!((status, bad_ip["error"]["code"].as_str()), (422, Some("invalid_request")));

    let (_, modelkey) = app.issue_key(&tenant, json!({"allowed_models": ["gpt-4o"]})).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": modelkey, "model": "gpt-4o"})).await), "VALID");
    assert_eq!(
        code(&app.verify(&gateway, json!({"key": modelkey, "model": "o1"})).await),
        "MODEL_NOT_ALLOWED"
    );

    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, expiring) = app.issue_key(&tenant, json!({"expiration": soon})).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": expiring})).await), "VALID");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": expiring})).await), "EXPIRED");

    let (id, disabled) = app.issue_key(&tenant, json!({})).await;
    let (status, _) = send(
        app.admin(Method::POST, &format!("/tenant/api-keys/{id}/disable")).header("X-Tenant-ID", &tenant),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(code(&app.verify(&gateway, json!({"key": disabled})).await), "DISABLED");
    send(app.admin(Method::POST, &format!("/tenant/api-keys/{id}/enable")).header("X-Tenant-ID", &tenant))
        .await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": disabled})).await), "VALID");
    send(app.admin(Method::DELETE, &format!("/admin/api-keys/{id}"))).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": disabled})).await), "REVOKED");

    send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": plain})).await), "TENANT_SUSPENDED");
    send(app.admin(Method::DELETE, &format!("/admin/tenants/{tenant}"))).await;
    assert_eq!(code(&app.verify(&gateway, json!({"key": plain})).await), "TENANT_DELETED");

    // Who may verify: gateways and the master key; not tenant keys.
    let (_, tenant_admin) = app.create_tenant("Other").await;
    let (status, body) = send(
        app.http.post(app.url("/v1/keys/verify")).bearer_auth(&tenant_admin).json(&json!({"key": plain})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = send(
        app.http.post(app.url("/v1/keys/verify")).header("X-Master-Key", MASTER).json(&json!({"key": plain})),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn rotation_with_and_without_grace() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, admin_key) = app.create_tenant("Rotate").await;
    let (id, old) = app.issue_key(&tenant, json!({})).await;

    let (status, rotated) =
        send(app.http.post(app.url(&format!("/tenant/api-keys/{id}/rotate"))).bearer_auth(&admin_key)).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["api_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rotated["public_id"], id.as_str());
    assert_eq!(
        code(&app.verify(&gateway, json!({"key": old})).await),
        "NOT_FOUND",
        "no grace: old key stops at once"
    );
    assert_eq!(code(&app.verify(&gateway, json!({"key": new})).await), "VALID");

    let (status, graced) = send(
        app.http
            .post(app.url(&format!("/tenant/api-keys/{id}/rotate")))
            .bearer_auth(&admin_key)
            .json(&json!({"grace_period_seconds": 3600})),
    )
    .await;
    assert_eq!(status, 200);
    let newest = graced["api_key"].as_str().unwrap().to_string();
    assert!(graced["previous_key_valid_until"].is_string());
    assert_eq!(code(&app.verify(&gateway, json!({"key": new})).await), "VALID", "inside the grace period");
    assert_eq!(code(&app.verify(&gateway, json!({"key": newest})).await), "VALID");
    let (status, body) = send(
        app.http
            .post(app.url(&format!("/tenant/api-keys/{id}/rotate")))
            .bearer_auth(&admin_key)
            .json(&json!({"grace_period_seconds": 4000000})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_grace_period")));
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_key_is_always_404() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (a, a_admin) = app.create_tenant("A").await;
    let (b, b_admin) = app.create_tenant("B").await;
    let (b_key_id, _) = app.issue_key(&b, json!({})).await;
    let (_, a_own) =
        send(app.http.post(app.url("/tenant/api-keys")).bearer_auth(&a_admin).json(&json!({"name": "mine"})))
            .await;
    assert_eq!(a_own["tenant_id"], a.as_str());

    let requests = vec![
        app.http.get(app.url(&format!("/tenant/api-keys/{b_key_id}"))),
        app.http.patch(app.url(&format!("/tenant/api-keys/{b_key_id}"))).json(&json!({"name": "x"})),
        app.http.delete(app.url(&format!("/tenant/api-keys/{b_key_id}"))),
        app.http.post(app.url(&format!("/tenant/api-keys/{b_key_id}/disable"))),
        app.http.post(app.url(&format!("/tenant/api-keys/{b_key_id}/enable"))),
        app.http.post(app.url(&format!("/tenant/api-keys/{b_key_id}/rotate"))),
    ];
    let before = app.head().await;
    for req in requests {
        let res = req.bearer_auth(&a_admin).send().await.unwrap();
        assert_eq!(res.status(), 404);
        let text = res.text().await.unwrap();
        assert!(text.contains("api_key_not_found") && !text.contains(&b), "{text}");
    }
    assert_eq!(app.head().await, before);
    let (_, listing) = send(app.http.get(app.url("/tenant/api-keys")).bearer_auth(&a_admin)).await;
    let tenants: Vec<&str> =
        listing["data"].as_array().unwrap().iter().map(|k| k["tenant_id"].as_str().unwrap()).collect();
    assert!(tenants.iter().all(|t| *t == a), "{listing}");
    let (_, filtered) =
        send(app.http.get(app.url(&format!("/tenant/api-keys?tenant_id={b}"))).bearer_auth(&a_admin)).await;
    assert!(filtered["data"].as_array().unwrap().iter().all(|k| k["tenant_id"] == a.as_str()));
    let (status, _) =
        send(app.http.get(app.url("/tenant/info")).bearer_auth(&b_admin).header("X-Tenant-ID", &a)).await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn platform_keys_and_roles() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let auditor = app.platform_key("auditor").await;
    let (tenant, _) = app.create_tenant("Roles").await;
    let (_, data_key) = app.issue_key(&tenant, json!({})).await;

    let (_, listing) = send(app.admin(Method::GET, "/admin/platform-keys")).await;
    assert_eq!(listing["data"].as_array().map(Vec::len), Some(2));
    let (status, _) =
        send(app.http.post(app.url("/v1/keys/verify")).bearer_auth(&auditor).json(&json!({"key": data_key})))
            .await;
    assert_eq!(status, 403, "only gateways verify");
    let (status, body) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&data_key)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "data keys have no control access"
    );
    let (status, _) = send(app.http.get(app.url("/admin/tenants")).bearer_auth(&gateway)).await;
    assert_eq!(status, 403);

    let gateway_id = &gateway[4..20];
    let (status, revoked) =
        send(app.admin(Method::DELETE, &format!("/admin/platform-keys/{gateway_id}"))).await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")));
    let (status, body) =
        send(app.http.post(app.url("/v1/keys/verify")).bearer_auth(&gateway).json(&json!({"key": data_key})))
            .await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (tenant_key_id, _) = app.issue_key(&tenant, json!({})).await;
    let (status, _) = send(app.admin(Method::DELETE, &format!("/admin/platform-keys/{tenant_key_id}"))).await;
    assert_eq!(status, 404, "a tenant key is not a platform key");
    app.stop().await;
}

#[tokio::test]
async fn last_used_at_is_written_in_batches() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, _) = app.create_tenant("Usage").await;
    let (id, key) = app.issue_key(&tenant, json!({})).await;
    let (_, before) = send(app.admin(Method::GET, &format!("/admin/api-keys/{id}"))).await;
    assert!(before["last_used_at"].is_null());
    for _ in 0..5 {
        app.verify(&gateway, json!({"key": key})).await;
    }
    let events_before = app.head().await;
    // A write that fails leaves the stamps to the next flush.
    sqlx::query("ALTER TABLE api_key_last_used RENAME TO api_key_last_used_away")
        .execute(&app.pool)
        .await
        .unwrap();
    let failed = tokenhub::cache::last_used::flush(&app.app.state.keys, &app.pool).await;
    sqlx::query("ALTER TABLE api_key_last_used_away RENAME TO api_key_last_used")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(failed.is_err(), "the table was away");
    let flushed = tokenhub::cache::last_used::flush(&app.app.state.keys, &app.pool).await.unwrap();
    assert_eq!(flushed, 2, "the data key and the gateway key, after the failed write");
    let (_, after) = send(app.admin(Method::GET, &format!("/admin/api-keys/{id}"))).await;
    assert!(after["last_used_at"].is_string(), "{after}");
    assert_eq!(app.head().await, events_before, "verifications write no event");
    app.stop().await;
}

#[tokio::test]
async fn a_canary_key_is_never_stored_or_published_in_plain_text() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin_key) = app.create_tenant("Canary").await;
    let (id, key) = app.issue_key(&tenant, json!({"tags": {"customer_id": "acme"}})).await;
    let (_, rotated) = send(
        app.http
            .post(app.url(&format!("/tenant/api-keys/{id}/rotate")))
            .bearer_auth(&admin_key)
            .json(&json!({"grace_period_seconds": 60})),
    )
    .await;
    let rotated = rotated["api_key"].as_str().unwrap().to_string();
    // Answers kept for Idempotency-Key retries hold keys shown once: sealed, never plain.
    let (_, idem_tenant) = send(
        app.admin(Method::POST, "/admin/tenants")
            .header("Idempotency-Key", "canary-tenant")
            .json(&json!({"name": "Canary two", "plan": "pro"})),
    )
    .await;
    let idem_tenant_key = idem_tenant["api_key"].as_str().unwrap().to_string();
    let (_, idem_key) = send(
        app.http
            .post(app.url("/tenant/api-keys"))
            .bearer_auth(&admin_key)
            .header("Idempotency-Key", "canary-key")
            .json(&json!({"name": "idem"})),
    )
    .await;
    let idem_key = idem_key["api_key"].as_str().unwrap().to_string();
    let kept: (i64,) = sqlx::query_as("SELECT count(*) FROM idempotency_requests WHERE answer IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept.0, 2, "both answers are kept");
    app.wait_relayed(Duration::from_secs(10)).await;

    let dump =
        std::process::Command::new("pg_dump").arg("--no-owner").arg(&db.url).output().expect("pg_dump runs");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    assert!(dump.contains(&id), "the dump is real (holds the public id)");
    let messages: String =
        stream.messages().await.iter().map(|m| String::from_utf8_lossy(&m.payload).to_string()).collect();
    assert!(messages.contains(&id));
    for canary in [&key, &rotated, &admin_key, &idem_tenant_key, &idem_key] {
        let secret = &canary[21..];
        assert!(!dump.contains(secret), "key secret in the database dump");
        assert!(!messages.contains(secret), "key secret on NATS");
    }
    assert!(!messages.contains("secret_hash"), "hashes stay in the database");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_of_keys_is_issued_all_or_nothing() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Bulk").await;
    let (other, _) = app.create_tenant("Bulk two").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM api_keys WHERE name LIKE 'bulk-%'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let keys: Vec<Value> = (0..300)
        .map(|i| json!({"tenant_id": if i % 2 == 0 { &tenant } else { &other }, "name": format!("bulk-{i}"), "tags": {"n": i.to_string()}}))
        .collect();
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": keys}))).await;
    assert_eq!(status, 201, "{body}");
    let issued = body["keys"].as_array().unwrap();
    assert_eq!(issued.len(), 300);
    let mut ids = HashSet::new();
    for (i, k) in issued.iter().enumerate() {
        assert_eq!(k["name"], format!("bulk-{i}"), "in the request's order");
        assert!(ids.insert(k["public_id"].as_str().unwrap().to_string()), "every key once");
    }
    for k in [&issued[0], &issued[150], &issued[299]] {
        let (_, read_back) =
            send(app.admin(Method::GET, &format!("/admin/api-keys/{}", k["public_id"].as_str().unwrap())))
                .await;
        let mut answered = k.clone();
        answered.as_object_mut().unwrap().remove("api_key");
        assert_eq!(answered, read_back, "a batch's answer is what each key reads back as");
    }
    assert_eq!(count().await, 300);
    // Each works at once.
    for k in [&issued[0], &issued[299]] {
        let (_, v) =
            send(app.admin(Method::POST, "/v1/keys/verify").json(&json!({"key": k["api_key"]}))).await;
        assert_eq!(v["code"], "VALID", "{v}");
    }
    // One bad key refuses the whole batch, naming it; nothing is stored.
    let mut bad: Vec<Value> =
        (0..5).map(|i| json!({"tenant_id": tenant, "name": format!("bulk-x{i}")})).collect();
    bad[3]["allowed_ips"] = json!(["not-a-network"]);
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": bad}))).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (422, "invalid_cidr"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("keys[3]"), "{body}");
    let (status, body) = send(
        app.admin(Method::POST, "/admin/api-keys:batch")
            .json(&json!({"keys": [{"tenant_id": tenant, "name": "bulk-y"}, {"tenant_id": "ten_missing", "name": "bulk-z"}]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap_or_default()),
        (404, "tenant_not_found"),
        "{body}"
    );
    assert_eq!(count().await, 300, "a refused batch stores nothing");
    // Bounds: none, more than 1,000, a missing tenant id; the plan's key limit for the batch as a whole.
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": []}))).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (422, "empty_batch"));
    let many: Vec<Value> = (0..1001).map(|_| json!({"tenant_id": tenant, "name": "k"})).collect();
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": many}))).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (422, "batch_too_large"));
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": [{"name": "x"}]}))).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (422, "invalid_request"));
    let (status, limited) =
        send(app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "Small", "plan": "free"}))).await;
    assert_eq!(status, 201);
    let small = limited["tenant_id"].as_str().unwrap();
    let eleven: Vec<Value> =
        (0..11).map(|i| json!({"tenant_id": small, "name": format!("bulk-s{i}")})).collect();
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": eleven}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap_or_default()),
        (409, "api_key_limit_reached"),
        "{body}"
    );
    // Tenant admins use the single route.
    let (_, admin) = app.create_tenant("Not bulk").await;
    let (status, _) = send(
        app.http
            .post(app.url("/admin/api-keys:batch"))
            .bearer_auth(&admin)
            .json(&json!({"keys": [{"tenant_id": tenant, "name": "k"}]})),
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}

/// Every order and name search of the key listing, paged at odd sizes over generated keys
/// (names that differ only in case or hold `%` and `_`, shared expiries and last uses, none):
/// the pages together hold each matching key exactly once, in the order of one whole page,
/// and that order is the one asked for. Odd `sort`, `q` and cursors are a 422, never a 500.
#[tokio::test]
async fn key_listings_page_through_every_order_and_search_exactly_once() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Listing").await;
    let mut rng = XorShift(0x5eed_1157);
    let words = ["alpha", "Alpha", "ALPHA", "beta", "gam%ma", "del_ta", "delta", "x", "Zeta", "eps\\ilon"];
    let expiries = ["2031-01-01T00:00:00Z", "2031-06-01T12:00:00Z", "2032-02-02T00:00:00Z"];
    let keys: Vec<Value> = (0..90)
        .map(|_| {
            let name = format!("{} {}", words[rng.below(words.len() as u64) as usize], rng.below(4));
            let mut key = json!({"tenant_id": tenant, "name": name});
            if rng.below(3) > 0 {
                key["expires_at"] = json!(expiries[rng.below(3) as usize]);
            }
            key
        })
        .collect();
    let (status, body) =
        send(app.admin(Method::POST, "/admin/api-keys:batch").json(&json!({"keys": keys}))).await;
    assert_eq!(status, 201, "{body}");
    // Last uses (written in batches by verification; here directly): shared times, and none.
    let ids: Vec<String> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["public_id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        if rng.below(3) > 0 {
            sqlx::query("INSERT INTO api_key_last_used (public_id, last_used_at) VALUES ($1, $2)")
                .bind(id)
                .bind(time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + rng.below(4) as i64).unwrap())
                .execute(&app.pool)
                .await
                .unwrap();
        }
    }
    let get =
        |query: String| send(app.admin(Method::GET, &format!("/admin/api-keys?tenant_id={tenant}&{query}")));
    let time_of = |v: &Value| -> Option<time::OffsetDateTime> {
        v.as_str()
            .map(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap())
    };
    let (_, all) = get("limit=200".to_string()).await;
    let names: Vec<String> =
        all["data"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_lowercase()).collect();
    assert_eq!(names.len(), ids.len() + 1, "the generated keys and the tenant's admin key");
    for sort in ["created", "newest", "name", "last_used", "expires"] {
        for q in ["", "alpha", "%", "_", "DEL", "\\", "nothing"] {
            let encoded: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let search = if q.is_empty() { String::new() } else { format!("&q={encoded}") };
            let (status, whole) = get(format!("sort={sort}{search}&limit=200")).await;
            assert_eq!(status, 200, "{whole}");
            let whole: Vec<Value> = whole["data"].as_array().unwrap().clone();
            // The search: exactly the keys whose name contains q, in any case.
            let expected = names.iter().filter(|n| n.contains(&q.to_lowercase())).count();
            assert_eq!(whole.len(), expected, "sort={sort} q={q:?}");
            // The order asked for.
            for pair in whole.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let ordered = match sort {
                    "created" => a["created_at"].as_str() <= b["created_at"].as_str(),
                    "newest" => a["created_at"].as_str() >= b["created_at"].as_str(),
                    "name" => true,
                    "last_used" => match (time_of(&a["last_used_at"]), time_of(&b["last_used_at"])) {
                        (Some(x), Some(y)) => x >= y,
                        (_, None) => true,
                        (None, Some(_)) => false,
                    },
                    _ => match (time_of(&a["expires_at"]), time_of(&b["expires_at"])) {
                        (Some(x), Some(y)) => x <= y,
                        (_, None) => true,
                        (None, Some(_)) => false,
                    },
                };
                assert!(ordered, "sort={sort}: {} before {}", a, b);
            }
            if sort == "name" && whole.len() > 1 {
                // A to Z, any case, as the database's collation orders names.
                let lower: Vec<String> =
                    whole.iter().map(|k| k["name"].as_str().unwrap().to_lowercase()).collect();
                let ordered: bool = sqlx::query_scalar(
                    "SELECT bool_and(lower(a) <= lower(b)) FROM unnest($1::text[], $2::text[]) AS t(a, b)",
                )
                .bind(&lower[..lower.len() - 1])
                .bind(&lower[1..])
                .fetch_one(&app.pool)
                .await
                .unwrap();
                assert!(ordered, "sort=name q={q:?}: {lower:?}");
            }
            // Paged at an odd size: the same keys in the same order, each once.
            let size = 1 + rng.below(9);
            let mut paged: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
                let (status, page) = get(format!("sort={sort}{search}&limit={size}{after}")).await;
                assert_eq!(status, 200, "{page}");
                paged.extend(page["data"].as_array().unwrap().iter().cloned());
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(url::form_urlencoded::byte_serialize(c.as_bytes()).collect()),
                    None => break,
                }
                assert!(paged.len() <= whole.len(), "sort={sort} q={q:?}: paging never ends");
            }
            let id = |v: &Value| v["public_id"].as_str().unwrap().to_string();
            assert_eq!(
                paged.iter().map(id).collect::<Vec<_>>(),
                whole.iter().map(id).collect::<Vec<_>>(),
                "sort={sort} q={q:?} limit={size}"
            );
        }
    }
    for query in [
        "sort=size",
        "sort=",
        "sort=name&cursor=newest.3",
        "sort=name&cursor=name.3.%25%25",
        "sort=last_used&cursor=last_used.1.abc",
        "sort=expires&cursor=expires.-4.",
        "cursor=name.3.YQ",
        "q=%00",
        "q=a%0Ab",
    ] {
        let (status, answer) = get(query.to_string()).await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_query", "{query}");
    }
    let long = "a".repeat(101);
    assert_eq!(get(format!("q={long}")).await.0, 422);
    assert_eq!(get(format!("q={}", &long[..100])).await.0, 200);
    app.stop().await;
}
