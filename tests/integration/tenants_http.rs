//! The tenant lifecycle over HTTP, authentication and the error envelope.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn tenant_lifecycle_over_http() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;

    let (status, created) = send(app.admin(Method::POST, "/admin/tenants").json(
        &json!({"name": "MyCompany", "plan": "pro", "region": "eu-west-1", "limits": {"max_api_keys": 7}}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["tenant_id"].as_str().unwrap_or_default().to_string();
    let key = created["api_key"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("ten_") && key.starts_with("thk_"));
    assert_eq!(created["name"], "MyCompany");
    assert!(created["created_at"].is_string());

    // The key works at once (read-your-writes), with either header.
    let (status, info) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&key)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["plan"], "pro");
    assert_eq!(info["limits"]["max_api_keys"], 7);
    assert_eq!(info["limits"]["requests_per_minute"], 1000);
    assert!(info["createdAt"].is_string());
    let (status, _) = send(app.http.get(app.url("/tenant/info")).header("X-API-Key", &key)).await;
    assert_eq!(status, 200);

    let (status, got) = send(app.admin(Method::GET, &format!("/admin/tenants/{id}"))).await;
    assert_eq!((status, got["status"].as_str()), (200, Some("active")));

    let (status, patched) = send(
        app.admin(Method::PATCH, &format!("/admin/tenants/{id}"))
            .json(&json!({"name": "Renamed", "plan": "free"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["limits"]["max_api_keys"], 7, "overrides survive a plan change");
    assert_eq!(patched["limits"]["requests_per_minute"], 60);

    let (status, body) =
        send(app.admin(Method::PATCH, &format!("/admin/tenants/{id}")).json(&json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("empty_update")));

    let (status, body) = send(
        app.admin(Method::POST, &format!("/admin/tenants/{id}/suspend")).json(&json!({"reason": "unpaid"})),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("suspended")));
    let (status, body) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("tenant_suspended")));
    let (status, body) = send(app.admin(Method::POST, &format!("/admin/tenants/{id}/suspend"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("tenant_already_suspended")));

    let (status, _) = send(app.admin(Method::POST, &format!("/admin/tenants/{id}/reactivate"))).await;
    assert_eq!(status, 200);
    let (status, _) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&key)).await;
    assert_eq!(status, 200);
    let (status, body) = send(app.admin(Method::POST, &format!("/admin/tenants/{id}/reactivate"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("tenant_not_suspended")));

    let (status, body) = send(app.admin(Method::DELETE, &format!("/admin/tenants/{id}"))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("deleted")));
    let (status, body) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (status, body) = send(app.admin(Method::DELETE, &format!("/admin/tenants/{id}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("tenant_deleted")));
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn listing_paginates_with_a_cursor_and_filters_by_status() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_tenant(&format!("T{i}")).await.0);
    }
    let (status, page1) = send(app.admin(Method::GET, "/admin/tenants?limit=2")).await;
    assert_eq!(status, 200);
    let cursor = page1["next_cursor"].as_str().unwrap_or_default().to_string();
    let (_, page2) = send(app.admin(Method::GET, &format!("/admin/tenants?limit=2&cursor={cursor}"))).await;
    let cursor = page2["next_cursor"].as_str().unwrap_or_default().to_string();
    let (_, page3) = send(app.admin(Method::GET, &format!("/admin/tenants?limit=2&cursor={cursor}"))).await;
    assert!(page3["next_cursor"].is_null());
    let seen: Vec<String> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p["data"].as_array().cloned().unwrap_or_default())
        .map(|t| t["tenant_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(seen, ids, "every tenant once, oldest first");

    send(app.admin(Method::POST, &format!("/admin/tenants/{}/suspend", ids[1]))).await;
    let (_, suspended) = send(app.admin(Method::GET, "/admin/tenants?status=suspended")).await;
    assert_eq!(suspended["data"].as_array().map(Vec::len), Some(1));
    for bad in ["limit=0", "limit=500", "cursor=abc", "status=gone", "unknown=1"] {
        let (status, body) = send(app.admin(Method::GET, &format!("/admin/tenants?{bad}"))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_query")), "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn authentication_failures_have_stable_codes() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (_, key) = app.create_tenant("A").await;

    let (status, body) = send(app.http.get(app.url("/admin/tenants"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_credentials")));
    let (status, body) = send(app.http.get(app.url("/admin/tenants")).header("X-Master-Key", "wrong")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_master_key")));
    let (status, _) = send(app.http.get(app.url("/admin/tenants")).bearer_auth(MASTER)).await;
    assert_eq!(status, 200, "master key as a bearer token");
    let (status, body) = send(app.http.get(app.url("/admin/tenants")).bearer_auth(&key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    // The last checksum character replaced by a different one (never the same character).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let wrong_checksum = format!("{}{last}", &key[..key.len() - 1]);
    for bad in ["thk_garbage", "nope", &key[..key.len() - 1], &wrong_checksum] {
        let (status, body) = send(app.http.get(app.url("/tenant/info")).bearer_auth(bad)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{bad}");
    }
    // A well-formed key that was never issued.
    let forged = tokenhub::auth::key_format::generate().full;
    let (status, body) = send(app.http.get(app.url("/tenant/info")).header("X-API-Key", forged)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    // The super admin acting on a tenant, and a key naming another tenant.
    let (other_id, _) = app.create_tenant("B").await;
    let (status, body) = send(
        app.http.get(app.url("/tenant/info")).header("X-Master-Key", MASTER).header("X-Tenant-ID", &other_id),
    )
    .await;
    assert_eq!((status, body["id"].as_str()), (200, Some(other_id.as_str())));
    let (status, body) = send(app.http.get(app.url("/tenant/info")).header("X-Master-Key", MASTER)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("tenant_id_required")));
    let (status, body) =
        send(app.http.get(app.url("/tenant/info")).bearer_auth(&key).header("X-Tenant-ID", &other_id)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("tenant_mismatch")));
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_the_envelope_and_writes_nothing() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let before = app.head().await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.admin(Method::POST, "/admin/tenants")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_json",
        ),
        (
            app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "x", "extra": 1})),
            422,
            "invalid_request",
        ),
        (app.admin(Method::POST, "/admin/tenants").json(&json!({"plan": "pro"})), 422, "invalid_request"),
        (
            app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "x", "plan": "gold"})),
            422,
            "invalid_request",
        ),
        (app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "  "})), 422, "invalid_tenant_name"),
        (
            app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "x", "region": "EU"})),
            422,
            "invalid_region",
        ),
        (
            app.admin(Method::POST, "/admin/tenants")
                .json(&json!({"name": "x", "limits": {"requests_per_minute": 0}})),
            422,
            "invalid_limits",
        ),
        (
            app.admin(Method::POST, "/admin/tenants")
                .json(&json!({"name": "x", "limits": {"max_api_keys": -1}})),
            422,
            "invalid_request",
        ),
        (app.admin(Method::POST, "/admin/tenants").body("{\"name\":\"x\"}"), 415, "unsupported_media_type"),
        (
            app.admin(Method::POST, "/admin/tenants").json(&json!({"name": "x".repeat(300_000)})),
            413,
            "payload_too_large",
        ),
        (app.admin(Method::GET, "/admin/tenants/ten_doesnotexist0000000"), 404, "tenant_not_found"),
        (app.admin(Method::GET, "/admin/tenants/garbage"), 404, "tenant_not_found"),
        (app.admin(Method::POST, "/admin/tenants/ten_doesnotexist0000000/suspend"), 404, "tenant_not_found"),
        (app.admin(Method::GET, "/no/such/route"), 404, "route_not_found"),
        (app.admin(Method::PUT, "/admin/tenants"), 405, "method_not_allowed"),
    ];
    for (req, want_status, want_code) in cases {
        let res = req.header("X-Request-Id", "req-abc-123").send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = res.status().as_u16();
        assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-abc-123"));
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!((status, body["error"]["code"].as_str()), (want_status, Some(want_code)), "{body}");
        assert_eq!(body["error"]["request_id"], "req-abc-123");
        assert!(body["error"]["message"].is_string());
    }
    assert_eq!(app.head().await, before, "no refused request wrote an event");
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_docs_are_public() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (status, body) = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(
        (status, body["checks"]["postgres"].as_str(), body["checks"]["nats"].as_str()),
        (200, Some("ok"), Some("ok"))
    );
    let (status, spec) = send(app.http.get(app.url("/openapi.json"))).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/admin/tenants"].is_object());
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap_or_default();
    assert!(html.contains("swagger") && !html.contains("cdn"), "self-contained docs page");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap_or_default().contains("tokenhub_http_requests_total"));
    app.stop().await;
}

#[tokio::test]
async fn the_tenant_list_filters_by_plan_and_searches_names_and_ids() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for (name, plan) in [("Acme Search", "pro"), ("acme_100%", "free"), ("Other", "pro")] {
        let (s, body) = send(
            app.admin(reqwest::Method::POST, "/admin/tenants")
                .json(&serde_json::json!({"name": name, "plan": plan})),
        )
        .await;
        assert_eq!(s, 201, "{body}");
    }
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    let get = |q: &str| send(app.admin(reqwest::Method::GET, &format!("/admin/tenants?{q}")));
    assert_eq!(names(&get("plan=pro").await.1), ["Acme Search", "Other"]);
    assert_eq!(names(&get("q=ACME").await.1), ["Acme Search", "acme_100%"]);
    assert_eq!(names(&get("q=me_1").await.1), ["acme_100%"], "`_` is literal");
    assert_eq!(names(&get("q=%25").await.1), ["acme_100%"], "`%` is literal");
    assert_eq!(names(&get("q=acme&plan=free").await.1), ["acme_100%"]);
    let id = get("q=Other").await.1["data"][0]["tenant_id"].as_str().unwrap().to_string();
    assert_eq!(names(&get(&format!("q={id}")).await.1), ["Other"]);
    let (s, body) = get("plan=gold").await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("invalid_query")));
    app.stop().await;
}
