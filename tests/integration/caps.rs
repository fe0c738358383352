//! Per-tenant caps on what one tenant may write into the shared, append-only log (finding 9
//! and 4): secrets, roles, configuration size and saves per day; the configuration history is
//! paged; concurrent saves and reveals all succeed.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_tenant_cannot_fill_the_log() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &[
            "--master-api-key",
            MASTER,
            "--tenant-max-secrets",
            "2",
            "--tenant-max-roles",
            "3",
            "--tenant-max-config-bytes",
            "200",
            "--tenant-max-config-versions-per-day",
            "6",
        ],
    ))
    .await;
    let (_, admin) = app.create_tenant("Capped").await;
    let post = |path: &str, body: serde_json::Value| {
        send(app.http.post(app.url(path)).bearer_auth(&admin).json(&body))
    };

    for name in ["A", "B"] {
        assert_eq!(post("/tenant/secrets", json!({"key": name, "value": "v"})).await.0, 200);
    }
    assert_eq!(
        post("/tenant/secrets", json!({"key": "A", "value": "v2"})).await.0,
        200,
        "a new version is not a new secret"
    );
    let (s, body) = post("/tenant/secrets", json!({"key": "C", "value": "v"})).await;
    assert_eq!((s, body["error"]["code"].as_str()), (409, Some("secret_limit_reached")), "{body}");

    // Two default roles: one more fits.
    assert_eq!(post("/tenant/rbac/roles", json!({"name": "ops", "permissions": ["read"]})).await.0, 201);
    let (s, body) = post("/tenant/rbac/roles", json!({"name": "more", "permissions": ["read"]})).await;
    assert_eq!((s, body["error"]["code"].as_str()), (409, Some("role_limit_reached")), "{body}");

    let big = json!({"routes": [{"path": "/v1/chat", "method": "POST", "description": "x".repeat(300)}]});
    let (s, body) = post("/tenant/config", big).await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("config_too_large")), "{body}");

    // Concurrent saves each become a version (they used to fail 409 but one).
    let saves =
        (0..4).map(|i| post("/tenant/config", json!({"cache": {"enabled": true, "ttlSeconds": i + 1}})));
    let answers = futures::future::join_all(saves).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let mut versions: Vec<i64> = answers.iter().map(|(_, b)| b["version"].as_i64().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, [1, 2, 3, 4]);

    // The history is paged.
    let (s, page) = send(app.http.get(app.url("/tenant/config/history?limit=3")).bearer_auth(&admin)).await;
    assert_eq!(s, 200);
    assert_eq!(page["versions"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = send(
        app.http.get(app.url(&format!("/tenant/config/history?limit=3&cursor={cursor}"))).bearer_auth(&admin),
    )
    .await;
    assert_eq!(rest["versions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["versions"][0]["version"], 4);
    assert!(rest["next_cursor"].is_null());

    // Six saves per day: two more, then 429 until midnight.
    for _ in 0..2 {
        assert_eq!(post("/tenant/config", json!({})).await.0, 200);
    }
    let res =
        app.http.post(app.url("/tenant/config")).bearer_auth(&admin).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let (s, _) = send(app.admin(Method::GET, "/tenant/config/history?limit=0")).await;
    assert!(s == 422 || s == 400, "{s}");
    app.stop().await;
}
