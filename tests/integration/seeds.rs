//! The published tenant API (`shared/seeds/002_…`) sent as written: only host, token and tenant
//! id substituted. Each request must work and answer the documented fields with the
//! documented names (extra fields are allowed).

use serde_json::{json, Value};

use crate::common::*;

/// Sends `body` (raw text, exactly as the document shows it) with the document's headers.
async fn seed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    tenant: &str,
    body: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .header("X-Tenant-ID", tenant);
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn the_tenant_endpoints_document_works_as_written() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, token) = app.create_tenant("Acme Corp").await;
    let t = tenant.as_str();
    use reqwest::Method;

    // POST /tenant/config, byte for byte (lower-case method, no windowSeconds).
    let (s, saved, _) = seed(
        &app,
        Method::POST,
        "/tenant/config",
        &token,
        t,
        Some(
            r#"{
    "routes": [
      {
        "path": "/custom",
        "method": "get",
        "description": "Custom endpoint"
      }
    ],
    "rateLimit": {
      "enabled": true,
      "default": { "max": 500 }
    }
  }"#,
        ),
    )
    .await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(saved["success"], true);
    assert_eq!(saved["message"], "Configuration saved");

    // GET /tenant/config: the document at the top level, the method stored upper-case.
    let (s, config, headers) = seed(&app, Method::GET, "/tenant/config", &token, t, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        config["routes"][0],
        json!({"path": "/custom", "method": "GET", "description": "Custom endpoint"})
    );
    assert_eq!(config["rateLimit"]["default"]["max"], 500);
    assert_eq!(headers["etag"], "\"1\"");

    // Secrets.
    let (s, stored, _) = seed(
        &app,
        Method::POST,
        "/tenant/secrets",
        &token,
        t,
        Some(
            r#"{
    "key": "STRIPE_SECRET_KEY",
    "value": "sk_live_..."
  }"#,
        ),
    )
    .await;
    assert_eq!(
        (s, &stored["success"], &stored["message"]),
        (200, &json!(true), &json!("Secret stored")),
        "{stored}"
    );
    let (s, list, _) = seed(&app, Method::GET, "/tenant/secrets", &token, t, None).await;
    assert_eq!((s, &list["secrets"]), (200, &json!(["STRIPE_SECRET_KEY"])));
    let (s, _, _) = seed(&app, Method::DELETE, "/tenant/secrets/STRIPE_SECRET_KEY", &token, t, None).await;
    assert_eq!(s, 200);

    // Usage and info: the documented fields exist.
    let (s, summary, _) = seed(&app, Method::GET, "/usage/summary", &token, t, None).await;
    assert_eq!(s, 200, "{summary}");
    for field in ["tenant_id", "period", "api_calls", "llm_tokens", "storage_bytes", "bandwidth_bytes"] {
        assert!(summary.get(field).is_some(), "usage summary lacks {field}: {summary}");
    }
    let (s, history, _) = seed(&app, Method::GET, "/usage/history?period=2024-01", &token, t, None).await;
    assert_eq!(s, 200, "{history}");
    assert!(history["history"].is_array(), "{history}");
    let (s, info, _) = seed(&app, Method::GET, "/tenant/info", &token, t, None).await;
    assert_eq!(s, 200);
    for field in ["id", "name", "plan", "createdAt", "limits"] {
        assert!(info.get(field).is_some(), "tenant info lacks {field}: {info}");
    }
    for field in ["apiCalls", "llmTokens", "storage"] {
        assert!(info["limits"].get(field).is_some(), "tenant info limits lack {field}: {info}");
    }
    assert_eq!(info["limits"]["llmTokens"], 100_000_000, "the pro plan's monthly token quota");
    app.stop().await;
}

#[tokio::test]
async fn the_isolation_and_security_documents_objects_are_accepted() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, token) = app.create_tenant("Acme Corp").await;
    let t = tenant.as_str();
    use reqwest::Method;
    // The roles the document's sub-accounts name.
    for role in ["developer", "product"] {
        let body = format!(r#"{{"name": "{role}", "permissions": ["chat", "embeddings"]}}"#);
        assert_eq!(seed(&app, Method::POST, "/tenant/rbac/roles", &token, t, Some(&body)).await.0, 201);
    }
    // 000: a sub-account object as written (its `id` is assigned by the server).
    let (s, sub, _) = seed(
        &app,
        Method::POST,
        "/tenant/sub-accounts",
        &token,
        t,
        Some(
            r#"{
      "id": "sub_001",
      "name": "Development Team",
      "role": "developer",
      "quota_limit": 1000000,
      "permissions": ["chat", "embeddings"]
    }"#,
        ),
    )
    .await;
    assert_eq!(s, 201, "{sub}");
    assert!(sub["id"].as_str().is_some_and(|id| id.starts_with("sub_")), "{sub}");
    assert_eq!(sub["id"], sub["sub_account_id"]);

    // 000: the key object. Its expiry (2025-12-31) is in the past here, and an expired key
    // cannot be issued; with only the year changed it is accepted as written.
    let key = r#"{
      "id": "key_001",
      "name": "Production Key",
      "status": "active",
      "quota_limit": 1000000,
      "expires_at": "2025-12-31T23:59:59Z",
      "allowed_ips": ["203.0.113.0/24"],
      "allowed_models": ["gpt-4o", "gpt-4o-mini"]
    }"#;
    let (s, body, _) = seed(&app, Method::POST, "/tenant/api-keys", &token, t, Some(key)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("expiry_in_past")), "{body}");
    let (s, issued, _) =
        seed(&app, Method::POST, "/tenant/api-keys", &token, t, Some(&key.replace("2025-", "2099-"))).await;
    assert_eq!(s, 201, "{issued}");
    assert_eq!(issued["id"], issued["public_id"]);
    assert_eq!(issued["status"], "active");
    assert_eq!(issued["expiration"], "2099-12-31T23:59:59Z");
    assert_eq!(issued["allowed_ips"], json!(["203.0.113.0/24"]));
    let (s, _, _) = seed(
        &app,
        Method::POST,
        "/tenant/api-keys",
        &token,
        t,
        Some(r#"{"name": "x", "status": "revoked"}"#),
    )
    .await;
    assert_eq!(s, 422, "a new key is active");

    // 001: the security document, on the IP allowlist route (as the super admin: the list
    // does not contain this test's address, and a tenant key may not lock itself out).
    let (s, list, _) = seed(
        &app,
        Method::PUT,
        "/tenant/security/ip-allowlist",
        MASTER,
        t,
        Some(
            r#"{
  "security": {
    "ip_whitelist": {
      "enabled": true,
      "allowed_ips": [
        "203.0.113.0/24",
        "198.51.100.0/24"
      ]
    }
  }
}"#,
        ),
    )
    .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list, json!({"enabled": true, "allowed_ips": ["198.51.100.0/24", "203.0.113.0/24"]}));
    app.stop().await;
}

/// `003` (tenant setup) and `004` (the key admin API) as written: the tenant creations with
/// `X-Master-Key` and `{"name"}` only, then a key with key-bound tags on `/admin/api-keys`,
/// read, patched and revoked by public id; the answers carry the documented fields.
#[tokio::test]
async fn the_setup_and_key_admin_documents_work_as_written() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let mut tenant = String::new();
    for name in ["MyCompany", "AnotherCompany", "StagingEnvironment"] {
        let res = app
            .http
            .post(app.url("/admin/tenants"))
            .header("X-Master-Key", MASTER)
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"name": "{name}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        for field in ["tenant_id", "api_key", "name", "created_at"] {
            assert!(body.get(field).is_some(), "003 answer has {field}: {body}");
        }
        assert_eq!(body["name"], name);
        tenant = body["tenant_id"].as_str().unwrap().to_string();
    }

    let body = format!(
        r#"{{"tenant_id": "{tenant}", "name": "acme", "tags": {{"customer_id": "acme-corp", "project_id": "proj-a1b2c3", "billing_tier": "premium"}}, "expiration": "2099-12-31T23:59:59Z"}}"#
    );
    let (s, key) = send(
        app.admin(reqwest::Method::POST, "/admin/api-keys")
            .header("Content-Type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(s, 201, "{key}");
    for field in ["api_key", "public_id", "tags", "expiration", "created_at"] {
        assert!(key.get(field).is_some(), "004 answer has {field}: {key}");
    }
    assert_eq!(key["tags"]["customer_id"], "acme-corp");
    let id = key["public_id"].as_str().unwrap();
    let (s, listed) = send(app.admin(reqwest::Method::GET, "/admin/api-keys")).await;
    assert_eq!(s, 200);
    assert!(listed.to_string().contains(id));
    let path = format!("/admin/api-keys/{id}");
    assert_eq!(send(app.admin(reqwest::Method::GET, &path)).await.0, 200);
    let (s, patched) =
        send(app.admin(reqwest::Method::PATCH, &path).json(&json!({"name": "acme prod"}))).await;
    assert_eq!((s, patched["name"].as_str()), (200, Some("acme prod")));
    assert_eq!(send(app.admin(reqwest::Method::DELETE, &path)).await.0, 200);
    app.stop().await;
}
