//! Platform keys bound to tenants and networks (finding 12): a bound gateway acts only for its
//! tenants, suspended tenants' secrets are not revealed, reveals are limited per key, and
//! concurrent reveals of one secret both succeed.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

async fn store_secret(app: &TestApp, admin: &str, name: &str) {
    let (s, body) = send(
        app.http
            .post(app.url("/tenant/secrets"))
            .bearer_auth(admin)
            .json(&json!({"key": name, "value": "v-1"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn a_bound_gateway_acts_only_for_its_tenants_and_networks() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--platform-reveals-per-minute", "3"],
    ))
    .await;
    let (a, a_admin) = app.create_tenant("A").await;
    let (b, b_admin) = app.create_tenant("B").await;
    store_secret(&app, &a_admin, "UPSTREAM").await;
    store_secret(&app, &b_admin, "UPSTREAM").await;
    let (s, gw) = send(
        app.admin(Method::POST, "/admin/platform-keys")
            .json(&json!({"name": "edge-a", "role": "gateway", "tenant_ids": [a]})),
    )
    .await;
    assert_eq!(s, 201, "{gw}");
    assert_eq!(gw["tenant_ids"], json!([a]));
    let gw = gw["api_key"].as_str().unwrap().to_string();
    let (_, a_key) = app.issue_key(&a, json!({})).await;
    let (_, b_key) = app.issue_key(&b, json!({})).await;

    assert_eq!(app.verify(&gw, json!({"key": a_key})).await["code"], "VALID");
    let (s, body) =
        send(app.http.post(app.url("/v1/keys/verify")).bearer_auth(&gw).json(&json!({"key": b_key}))).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("tenant_not_allowed")), "{body}");
    let reveal = |tenant: &str| {
        app.http
            .post(app.url("/tenant/secrets/UPSTREAM/reveal"))
            .bearer_auth(&gw)
            .header("X-Tenant-ID", tenant)
    };
    let (s, body) = send(reveal(&b)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("tenant_not_allowed")), "{body}");
    let (s, body) = send(reveal(&a)).await;
    assert_eq!((s, body["value"].as_str()), (200, Some("v-1")), "{body}");
    // Two concurrent reveals of one secret both succeed (they used to conflict).
    let (x, y) = tokio::join!(send(reveal(&a)), send(reveal(&a)));
    assert_eq!((x.0, y.0), (200, 200), "{} {}", x.1, y.1);
    // Three reveals a minute for this key: the fourth is refused.
    let (s, body) = send(reveal(&a)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");

    // A suspended tenant's secrets are not revealed, not even to the super admin.
    let (s, _) = send(app.admin(Method::POST, &format!("/admin/tenants/{b}/suspend"))).await;
    assert_eq!(s, 200);
    let (s, body) =
        send(app.admin(Method::POST, "/tenant/secrets/UPSTREAM/reveal").header("X-Tenant-ID", &b)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("tenant_suspended")), "{body}");

    // Bound to a network: from anywhere else its calls are refused.
    let (s, netted) = send(
        app.admin(Method::POST, "/admin/platform-keys")
            .json(&json!({"name": "edge-net", "role": "gateway", "allowed_ips": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(s, 201, "{netted}");
    let (s, body) = send(
        app.http
            .post(app.url("/v1/keys/verify"))
            .bearer_auth(netted["api_key"].as_str().unwrap())
            .json(&json!({"key": a_key})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("ip_not_allowed")), "{body}");
    // Tenant keys cannot be bound to tenants.
    let (s, _) = send(
        app.admin(Method::POST, "/admin/api-keys")
            .json(&json!({"tenant_id": a, "name": "k", "tenant_ids": [b]})),
    )
    .await;
    assert_eq!(s, 422);
    app.stop().await;
}
