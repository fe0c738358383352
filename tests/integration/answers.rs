//! What answers carry beyond their bodies: no cache may store one (keys shown once, revealed
//! secrets, invite links), the docs page has a Content-Security-Policy, `/tenant/info` states
//! the limit its `RateLimit-*` headers count, a key's `expires_at` reads back, and a key over
//! its own rate limit on the control API is told 429, not 401.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn answers_are_never_cached_and_say_what_is_enforced() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let res = app
        .admin(Method::POST, "/admin/tenants")
        .json(&json!({"name": "Answers", "plan": "free"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store", "a key shown once");
    let created: serde_json::Value = res.json().await.unwrap();
    let (tenant, admin) = (created["tenant_id"].as_str().unwrap(), created["api_key"].as_str().unwrap());
    let (s, _) = send(
        app.http
            .post(app.url("/tenant/secrets"))
            .bearer_auth(admin)
            .json(&json!({"key": "K", "value": "v-1"})),
    )
    .await;
    assert!(s < 300);
    let reveal = app.http.post(app.url("/tenant/secrets/K/reveal")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(reveal.status(), 200);
    assert_eq!(reveal.headers()["cache-control"], "no-store", "a revealed secret");

    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    let csp = docs.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");

    // The limit /tenant/info states is the one the headers count.
    let info = app.http.get(app.url("/tenant/info")).bearer_auth(admin).send().await.unwrap();
    let header: u64 = info.headers()["ratelimit-limit"].to_str().unwrap().parse().unwrap();
    let body: serde_json::Value = info.json().await.unwrap();
    assert_eq!(body["limits"]["apiCalls"].as_u64(), Some(header), "{body}");
    assert_eq!(body["limits"]["requests_per_minute"].as_u64(), Some(header), "{body}");

    // `expires_at` is taken and read back.
    let at = tokenhub::time_fmt::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(3));
    let (s, key) = send(
        app.http
            .post(app.url("/tenant/api-keys"))
            .bearer_auth(admin)
            .json(&json!({"name": "x", "expires_at": at})),
    )
    .await;
    assert_eq!(s, 201, "{key}");
    let id = key["public_id"].as_str().unwrap();
    let (_, read) = send(app.http.get(app.url(&format!("/tenant/api-keys/{id}"))).bearer_auth(admin)).await;
    assert_eq!(read["expires_at"], json!(at), "{read}");
    assert_eq!(read["expiration"], json!(at), "{read}");

    // A tenant key over its own per-minute limit: 429 with Retry-After, not 401.
    let (_, limited) = app
        .issue_key(tenant, json!({"role": "tenant_admin", "rate_limit": {"requests_per_minute": 2}}))
        .await;
    let mut last = (0, json!(null), None);
    for _ in 0..3 {
        let res = app.http.get(app.url("/tenant/info")).bearer_auth(&limited).send().await.unwrap();
        let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        last = (res.status().as_u16(), res.json().await.unwrap(), retry);
    }
    assert_eq!((last.0, last.1["error"]["code"].as_str()), (429, Some("rate_limited")), "{:?}", last.1);
    assert!(last.2.is_some(), "Retry-After");
    app.stop().await;
}

#[tokio::test]
async fn invite_tokens_never_reach_the_logs_and_openid_starts_are_throttled() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let mut server = ServerProcess::start_with(
        &db,
        &stream,
        &[("MASTER_API_KEY", MASTER), ("OIDC_STARTS_PER_MINUTE", "3"), ("OIDC_PROVIDERS", "")],
    );
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let (s, created) = send(
        http.post(format!("{}/admin/tenants", server.base))
            .header("X-Master-Key", MASTER)
            .json(&json!({"name": "Logs", "plan": "pro"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, invite) =
        send(http.post(format!("{}/admin/users", server.base)).header("X-Master-Key", MASTER).json(
            &json!({"email": "logs@answers.test", "role": "tenant_admin", "tenant_id": created["tenant_id"]}),
        ))
        .await;
    assert_eq!(s, 201, "{invite}");
    let token = invite["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let (s, _) = send(
        http.post(format!("{}/auth/invites/{token}/accept", server.base))
            .json(&json!({"password": crate::person::PASSWORD})),
    )
    .await;
    assert_eq!(s, 200);
    // Starts are counted before the provider is even looked up.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            http.get(format!("{}/auth/oidc/nobody/start", server.base))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    let logs = server.logs();
    assert!(logs.contains("/auth/invites/{token}/accept"), "the request was logged at debug level");
    assert!(!logs.contains(&token), "the invite token reached the log");
}
