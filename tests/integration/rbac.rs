//! Tenant RBAC over HTTP: default roles, custom roles, refusing to delete a role in use,
//! the default role, and permission checks by a gateway.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn rbac_settings_roles_and_checks() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Rbac").await;
    let (other, other_admin) = app.create_tenant("Else").await;
    let gateway = app.platform_key("gateway").await;
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(path)).bearer_auth(&admin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        send(req)
    };

    let (status, rbac) = call(Method::GET, "/tenant/rbac", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        rbac,
        json!({"enabled": false, "defaultRole": "viewer", "roles": [
            {"name": "admin", "description": "Full access", "permissions": ["delete", "read", "write"]},
            {"name": "viewer", "description": "Read-only access", "permissions": ["read"]}
        ]})
    );

    let (status, role) = call(
        Method::POST,
        "/tenant/rbac/roles",
        Some(json!({"name": "editor", "description": "Edits", "permissions": ["write", "read"]})),
    )
    .await;
    assert_eq!((status, role["permissions"].clone()), (201, json!(["read", "write"])));
    let (status, body) =
        call(Method::POST, "/tenant/rbac/roles", Some(json!({"name": "editor", "permissions": []}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("role_already_exists")));
    let (status, body) =
        call(Method::POST, "/tenant/rbac/roles", Some(json!({"name": "Bad Name", "permissions": []}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_role")));
    // Names are unique per tenant, not globally.
    let (status, _) = send(
        app.http
            .post(app.url("/tenant/rbac/roles"))
            .bearer_auth(&other_admin)
            .json(&json!({"name": "editor", "permissions": ["read"]})),
    )
    .await;
    assert_eq!(status, 201);

    let (status, updated) = call(
        Method::PUT,
        "/tenant/rbac/roles/editor",
        Some(json!({"permissions": ["read", "write", "publish"]})),
    )
    .await;
    assert_eq!((status, updated["description"].as_str()), (200, Some("Edits")));

    let (status, body) = call(Method::PUT, "/tenant/rbac", Some(json!({"defaultRole": "nope"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("unknown_role")));
    let (status, rbac) =
        call(Method::PUT, "/tenant/rbac", Some(json!({"enabled": true, "defaultRole": "editor"}))).await;
    assert_eq!(
        (status, rbac["enabled"].as_bool(), rbac["defaultRole"].as_str()),
        (200, Some(true), Some("editor"))
    );

    // A sub-account without a role gets the default one; an unknown role is refused.
    let (status, sub) =
        call(Method::POST, "/tenant/sub-accounts", Some(json!({"name": "ops", "permissions": ["deploy"]})))
            .await;
    assert_eq!((status, sub["role"].as_str()), (201, Some("editor")));
    let sub_id = sub["sub_account_id"].as_str().unwrap().to_string();
    let (status, body) =
        call(Method::POST, "/tenant/sub-accounts", Some(json!({"name": "x", "role": "ghost"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("unknown_role")));

    let (status, body) = call(Method::DELETE, "/tenant/rbac/roles/editor", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("role_is_default")));
    call(Method::PUT, "/tenant/rbac", Some(json!({"defaultRole": "viewer"}))).await;
    let (status, body) = call(Method::DELETE, "/tenant/rbac/roles/editor", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("role_in_use")));

    // Checks, as a gateway acting for the tenant.
    let check = |body: Value| {
        send(
            app.http
                .post(app.url("/tenant/rbac/check"))
                .bearer_auth(&gateway)
                .header("X-Tenant-ID", &tenant)
                .json(&body),
        )
    };
    assert_eq!(check(json!({"role": "editor", "permission": "publish"})).await.1["allowed"], true);
    assert_eq!(check(json!({"role": "viewer", "permission": "write"})).await.1["allowed"], false);
    assert_eq!(
        check(json!({"sub_account_id": sub_id, "permission": "deploy"})).await.1["allowed"],
        true,
        "its own permission"
    );
    assert_eq!(
        check(json!({"sub_account_id": sub_id, "permission": "publish"})).await.1["allowed"],
        true,
        "from its role"
    );
    assert_eq!(check(json!({"sub_account_id": sub_id, "permission": "delete"})).await.1["allowed"], false);
    let (status, body) = check(json!({"role": "ghost", "permission": "read"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("role_not_found")));
    let (status, _) = check(json!({"role": "viewer", "sub_account_id": sub_id, "permission": "read"})).await;
    assert_eq!(status, 422);
    let (status, _) = send(
        app.http
            .post(app.url("/tenant/rbac/check"))
            .bearer_auth(&other_admin)
            .json(&json!({"sub_account_id": sub_id, "permission": "deploy"})),
    )
    .await;
    assert_eq!(status, 404, "another tenant's sub-account");

    call(Method::POST, &format!("/tenant/sub-accounts/{sub_id}/disable"), None).await;
    assert_eq!(
        check(json!({"sub_account_id": sub_id, "permission": "deploy"})).await.1["allowed"],
        false,
        "disabled"
    );
    call(Method::DELETE, &format!("/tenant/sub-accounts/{sub_id}"), None).await;
    let (status, _) = call(Method::DELETE, "/tenant/rbac/roles/editor", None).await;
    assert_eq!(status, 204, "no longer in use");
    let (_, rbac) = call(Method::GET, "/tenant/rbac", None).await;
    assert_eq!(rbac["roles"].as_array().map(Vec::len), Some(2));
    let _ = other;
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}
