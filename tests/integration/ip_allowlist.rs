//! The tenant IP allowlist: verification and the control API honour it, on top of each key's
//! own list; a tenant admin cannot lock itself out.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn the_tenant_allowlist_gates_verification_and_the_control_api() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--trusted-proxies", "127.0.0.1/32"],
    ))
    .await;
    let gateway = app.platform_key("gateway").await;
    let (tenant, admin) = app.create_tenant("Walled").await;
    let (_, key) = app.issue_key(&tenant, json!({})).await;
    let put = |body: serde_json::Value, from: &str| {
        app.http
            .put(app.url("/tenant/security/ip-allowlist"))
            .bearer_auth(&admin)
            .header("X-Forwarded-For", from)
            .json(&body)
    };

    let (status, body) =
        send(put(json!({"enabled": true, "allowed_ips": ["203.0.113.0/24"]}), "198.51.100.1")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("allowlist_excludes_caller")));
    let (status, _) =
        send(put(json!({"enabled": true, "allowed_ips": ["10.0.0.0/33"]}), "203.0.113.9")).await;
    assert_eq!(status, 422);
    let (status, list) = send(put(
        json!({"enabled": true, "allowed_ips": ["203.0.113.9/24", "2001:db8::/32"]}),
        "203.0.113.9",
    ))
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!({"enabled": true, "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]}));

    let verify = |ip: &str| app.verify(&gateway, json!({"key": key, "ip": ip}));
    assert_eq!(verify("203.0.113.200").await["code"], "VALID");
    assert_eq!(verify("2001:db8::5").await["code"], "VALID");
    assert_eq!(verify("198.51.100.1").await["code"], "IP_NOT_ALLOWED");
    assert_eq!(app.verify(&gateway, json!({"key": key})).await["code"], "IP_NOT_ALLOWED", "no IP given");

    let info = |from: &str| {
        send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin).header("X-Forwarded-For", from))
    };
    assert_eq!(info("203.0.113.9").await.0, 200);
    let (status, body) = info("198.51.100.1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("ip_not_allowed")));
    // The super admin is not a tenant principal and can always repair the list.
    let (status, list) = send(
        app.admin(Method::PUT, "/tenant/security/ip-allowlist")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"enabled": false, "allowed_ips": []})),
    )
    .await;
    assert_eq!((status, list["enabled"].as_bool()), (200, Some(false)));
    assert_eq!(verify("198.51.100.1").await["code"], "VALID");
    app.stop().await;
}
