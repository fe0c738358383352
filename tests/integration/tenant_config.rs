//! Tenant configuration: validated with JSON paths, versioned by events, history and rollback.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn configuration_is_validated_versioned_and_rolled_back() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (_, admin) = app.create_tenant("Configured").await;
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(path)).bearer_auth(&admin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        send(req)
    };
    call(Method::POST, "/tenant/secrets", Some(json!({"key": "STRIPE_SECRET_KEY", "value": "sk"}))).await;

    let (status, empty) = call(Method::GET, "/tenant/config", None).await;
    assert_eq!((status, empty), (200, json!({})), "the document itself; the version is the ETag");

    let v1 = json!({
        "routes": [{"path": "/v1/chat", "method": "POST", "description": "chat"}],
        "credentials": {"stripe": {"secret_ref": "STRIPE_SECRET_KEY"}},
        "rateLimit": {"enabled": true, "default": {"max": 100, "windowSeconds": 60}},
        "webhooks": [{"url": "https://hooks.example.com/t", "events": ["api_key.revoked"], "secret_ref": "STRIPE_SECRET_KEY"}]
    });
    let (status, saved) = call(Method::POST, "/tenant/config", Some(v1.clone())).await;
    assert_eq!((status, saved["version"].as_i64()), (200, Some(1)), "{saved}");
    let v2 = json!({"cache": {"enabled": true, "ttlSeconds": 300}});
    let (_, saved) = call(Method::POST, "/tenant/config", Some(v2.clone())).await;
    assert_eq!(saved, json!({"success": true, "message": "Configuration saved", "version": 2}));
    let (_, current) = call(Method::GET, "/tenant/config", None).await;
    assert_eq!(current, v2);

    let before = app.head().await;
    let (status, body) = call(
        Method::POST,
        "/tenant/config",
        Some(json!({
            "routes": [{"path": "/a", "method": "FETCH"}, {"path": "/a", "method": "GET"}, {"path": "/a", "method": "GET"}],
            "credentials": {"jira": {"secret_ref": "JIRA_API_TOKEN"}},
            "webhooks": [{"url": "http://hooks.example.com", "events": ["x"]}],
            "typo": 1
        })),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_config")));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for path in
        ["$.typo", "$.routes[0].method", "$.routes[2]", "$.credentials.jira.secret_ref", "$.webhooks[0].url"]
    {
        assert!(message.contains(path), "{path} missing from: {message}");
    }
    assert_eq!(app.head().await, before, "nothing written");

    let (_, history) = call(Method::GET, "/tenant/config/history", None).await;
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["config"], v1);
    assert_eq!(versions[0]["actor"]["kind"], "api_key");
    assert!(versions[0]["saved_at"].is_string());

    let (status, rolled) = call(Method::POST, "/tenant/config/rollback", Some(json!({"version": 1}))).await;
    assert_eq!(rolled, json!({"success": true, "message": "Configuration saved", "version": 3}), "{status}");
    let (_, current) = call(Method::GET, "/tenant/config", None).await;
    assert_eq!(current, v1);
    let (status, body) = call(Method::POST, "/tenant/config/rollback", Some(json!({"version": 9}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("config_version_not_found")));

    // A rollback is validated again: the secret it names is gone now.
    call(Method::DELETE, "/tenant/secrets/STRIPE_SECRET_KEY", None).await;
    let (status, body) = call(Method::POST, "/tenant/config/rollback", Some(json!({"version": 1}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_config")));
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}
