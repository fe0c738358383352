//! The client address: `X-Forwarded-For` is believed only from `TRUSTED_PROXIES`, for the audit
//! metadata and for keys' IP allowlists on the control API.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

async fn source_ip_of_last_event(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT metadata->>'source_ip' FROM events ORDER BY position DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Spoof").await;
    let (_, admin_key) =
        app.issue_key(&tenant, json!({"role": "tenant_admin", "allowed_ips": ["203.0.113.0/24"]})).await;

    let res = app
        .admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))
        .header("X-Forwarded-For", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(source_ip_of_last_event(&app).await, "127.0.0.1", "the peer, not the header");
    send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/reactivate"))).await;

    let (status, body) = send(
        app.http
            .get(app.url("/tenant/info"))
            .bearer_auth(&admin_key)
            .header("X-Forwarded-For", "203.0.113.5"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("ip_not_allowed")),
        "a forged header does not pass the allowlist"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_passes_the_client_address() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--trusted-proxies", "127.0.0.1/32"],
    ))
    .await;
    let (tenant, _) = app.create_tenant("Proxied").await;
    let (_, admin_key) =
        app.issue_key(&tenant, json!({"role": "tenant_admin", "allowed_ips": ["203.0.113.0/24"]})).await;

    let res = app
        .admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))
        .header("X-Forwarded-For", "1.1.1.1, 198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(source_ip_of_last_event(&app).await, "198.51.100.1", "the right-most untrusted address");
    send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/reactivate"))).await;

    let (status, _) = send(
        app.http
            .get(app.url("/tenant/info"))
            .bearer_auth(&admin_key)
            .header("X-Forwarded-For", "203.0.113.5"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        app.http
            .get(app.url("/tenant/info"))
            .bearer_auth(&admin_key)
            .header("X-Forwarded-For", "203.0.114.5"),
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}
