//! Sub-accounts over HTTP: limits flow down (tenant → sub-account → key), disabling a
//! sub-account stops its keys without touching them, and verification answers with the
//! sub-account and the effective permissions.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

async fn as_tenant(
    app: &TestApp,
    tenant: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.admin(method, path).header("X-Tenant-ID", tenant);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req).await
}

#[tokio::test]
async fn the_hierarchy_is_enforced_and_verification_follows_the_sub_account() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, _) = app.create_tenant("Hier").await; // pro: 100,000,000 tokens a month
    let (other, _) = app.create_tenant("Elsewhere").await;

    let (status, body) = as_tenant(
        &app,
        &tenant,
        Method::POST,
        "/tenant/sub-accounts",
        Some(json!({"name": "too big", "quota_limit": 100_000_001i64})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("quota_exceeds_tenant")));
    let (status, sub) = as_tenant(&app, &tenant, Method::POST, "/tenant/sub-accounts",
        Some(json!({"name": "marketing", "role": "viewer", "quota_limit": 1000, "permissions": ["embeddings", "chat"]}))).await;
    assert_eq!(status, 201, "{sub}");
    let sub_id = sub["sub_account_id"].as_str().unwrap().to_string();
    assert_eq!(sub["permissions"], json!(["chat", "embeddings"]));
    let (_, other_sub) =
        as_tenant(&app, &other, Method::POST, "/tenant/sub-accounts", Some(json!({"name": "x"}))).await;

    let issue = |extra: Value| {
        let mut body = json!({"tenant_id": tenant, "name": "k", "sub_account_id": sub_id});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        app.admin(Method::POST, "/admin/api-keys").json(&body)
    };
    for (extra, code) in [
        (json!({"permissions": ["images"]}), "permissions_exceed_sub_account"),
        (json!({"quota_limit": 1001}), "quota_exceeds_sub_account"),
        (json!({"sub_account_id": other_sub["sub_account_id"]}), "unknown_sub_account"),
        (json!({"sub_account_id": "sub_doesnotexist000000000"}), "unknown_sub_account"),
    ] {
        let (status, body) = send(issue(extra.clone())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some(code)), "{extra}");
    }
    let (status, key) = send(issue(json!({"permissions": ["chat"], "quota_limit": 500}))).await;
    assert_eq!(status, 201, "{key}");
    let (key_id, key) =
        (key["public_id"].as_str().unwrap().to_string(), key["api_key"].as_str().unwrap().to_string());
    let (_, inheriting) = send(issue(json!({}))).await;
    let inheriting = inheriting["api_key"].as_str().unwrap().to_string();

    let answer = app.verify(&gateway, json!({"key": key})).await;
    assert_eq!(answer["code"], "VALID");
    assert_eq!(answer["sub_account_id"], sub_id.as_str());
    assert_eq!(answer["sub_account_role"], "viewer");
    assert_eq!(answer["permissions"], json!(["chat"]));
    assert_eq!(
        app.verify(&gateway, json!({"key": inheriting})).await["permissions"],
        json!(["chat", "embeddings"])
    );

    let (status, body) = send(
        app.admin(Method::PATCH, &format!("/admin/api-keys/{key_id}"))
            .json(&json!({"permissions": ["images"]})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("permissions_exceed_sub_account")));

    // Shrinking the sub-account shrinks its keys' effective permissions.
    let (status, _) = as_tenant(
        &app,
        &tenant,
        Method::PATCH,
        &format!("/tenant/sub-accounts/{sub_id}"),
        Some(json!({"permissions": ["embeddings"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.verify(&gateway, json!({"key": key})).await["permissions"], json!([]));
    assert_eq!(app.verify(&gateway, json!({"key": inheriting})).await["permissions"], json!(["embeddings"]));

    // Disabling stops the keys without touching them; enabling restores them.
    let (status, _) =
        as_tenant(&app, &tenant, Method::POST, &format!("/tenant/sub-accounts/{sub_id}/disable"), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.verify(&gateway, json!({"key": key})).await["code"], "SUB_ACCOUNT_DISABLED");
    let (_, view) = send(app.admin(Method::GET, &format!("/admin/api-keys/{key_id}"))).await;
    assert_eq!(view["status"], "active", "the key itself is untouched");
    let (status, _) =
        as_tenant(&app, &tenant, Method::POST, &format!("/tenant/sub-accounts/{sub_id}/enable"), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.verify(&gateway, json!({"key": key})).await["code"], "VALID");

    let (_, listing) = as_tenant(&app, &tenant, Method::GET, "/tenant/sub-accounts", None).await;
    assert_eq!(listing["data"].as_array().map(Vec::len), Some(1));
    let (status, _) =
        as_tenant(&app, &tenant, Method::DELETE, &format!("/tenant/sub-accounts/{sub_id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.verify(&gateway, json!({"key": key})).await["code"], "SUB_ACCOUNT_DELETED");
    let (status, body) =
        as_tenant(&app, &tenant, Method::POST, &format!("/tenant/sub-accounts/{sub_id}/enable"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("sub_account_deleted")));
    let (status, _) =
        as_tenant(&app, &other, Method::GET, &format!("/tenant/sub-accounts/{sub_id}"), None).await;
    assert_eq!(status, 404, "another tenant's sub-account");
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn a_sub_account_key_with_keys_manage_manages_its_own_sub_account_only() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, _) = app.create_tenant("Delegation").await;
    let (_, sub) = as_tenant(
        &app,
        &tenant,
        Method::POST,
        "/tenant/sub-accounts",
        Some(json!({"name": "team", "permissions": ["keys:manage", "chat", "embeddings"]})),
    )
    .await;
    let sub_id = sub["sub_account_id"].as_str().unwrap().to_string();
    let (_, other_sub) =
        as_tenant(&app, &tenant, Method::POST, "/tenant/sub-accounts", Some(json!({"name": "other"}))).await;
    let (_, manager) = app
        .issue_key(&tenant, json!({"sub_account_id": sub_id, "permissions": ["keys:manage", "chat"]}))
        .await;
    let (outside_id, _) = app.issue_key(&tenant, json!({})).await;
    let post =
        |body: Value| send(app.http.post(app.url("/tenant/api-keys")).bearer_auth(&manager).json(&body));

    let (status, issued) = post(json!({"name": "worker", "permissions": ["chat"]})).await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["sub_account_id"], sub_id.as_str(), "placed under the caller's sub-account");
    let worker_id = issued["public_id"].as_str().unwrap().to_string();
    assert_eq!(app.verify(&gateway, json!({"key": issued["api_key"]})).await["code"], "VALID");

    for (body, expected, code) in [
        (json!({"name": "x", "permissions": ["embeddings"]}), 403, "permissions_exceed_issuer"),
        (json!({"name": "x", "role": "tenant_admin"}), 422, "sub_account_key_not_data"),
        (json!({"name": "x", "sub_account_id": other_sub["sub_account_id"]}), 403, "forbidden"),
    ] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (expected, Some(code)), "{body}");
    }
    let (_, listing) = send(app.http.get(app.url("/tenant/api-keys")).bearer_auth(&manager)).await;
    assert!(
        listing["data"].as_array().unwrap().iter().all(|k| k["sub_account_id"] == sub_id.as_str()),
        "{listing}"
    );
    let (status, _) =
        send(app.http.get(app.url(&format!("/tenant/api-keys/{outside_id}"))).bearer_auth(&manager)).await;
    assert_eq!(status, 404, "keys outside its sub-account do not exist for it");
    let (status, _) =
        send(app.http.delete(app.url(&format!("/tenant/api-keys/{outside_id}"))).bearer_auth(&manager)).await;
    assert_eq!(status, 404);
    let (status, body) = send(
        app.http
            .patch(app.url(&format!("/tenant/api-keys/{worker_id}")))
            .bearer_auth(&manager)
            .json(&json!({"permissions": ["embeddings"]})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("permissions_exceed_issuer")));
    let (status, revoked) =
        send(app.http.delete(app.url(&format!("/tenant/api-keys/{worker_id}"))).bearer_auth(&manager)).await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")));
    let (status, _) = send(app.http.get(app.url("/tenant/sub-accounts")).bearer_auth(&manager)).await;
    assert_eq!(status, 403, "keys only, nothing else");
    app.stop().await;
}
