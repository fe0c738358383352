//! Webhook delivery against a receiver in the test (on 127.0.0.1, so the servers here allow
//! private targets unless the test is about refusing them). Signatures are checked with the
//! Standard Webhooks reference library (`standardwebhooks`), not with our code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tokenhub::config::Config;

use crate::common::{config, eventually, send, ServerProcess, TestApp, TestDb, TestStream, MASTER};
use crate::usage::{post_usage, record, wait_counted};

/// What the receiver does with the next requests.
#[derive(Debug, Clone)]
enum Mode {
    Ok,
    /// Answers 500 to the next n requests, then 200.
    FailNext(u32),
    /// Answers 503 to everything.
    Down,
    /// Waits this long before answering 200.
    Slow(Duration),
    /// Answers 302 to another path.
    Redirect,
}

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    status: u16,
}

impl Hit {
    fn id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_string()
    }
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn event_type(&self) -> String {
        self.event()["eventtype"].as_str().unwrap_or_default().to_string()
    }
}

#[derive(Clone)]
struct Receiver {
    url: String,
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let (h, m) = (hits.clone(), mode.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: bytes::Bytes| {
            let (hits, mode) = (h.clone(), m.clone());
            async move {
                let now = mode.lock().unwrap().clone();
                let (status, wait) = match now {
                    Mode::Ok => (200, None),
                    Mode::FailNext(n) => {
                        *mode.lock().unwrap() = if n <= 1 { Mode::Ok } else { Mode::FailNext(n - 1) };
                        (500, None)
                    }
                    Mode::Down => (503, None),
                    Mode::Slow(d) => (200, Some(d)),
                    Mode::Redirect => (302, None),
                };
                if let Some(d) = wait {
                    tokio::time::sleep(d).await;
                }
                hits.lock().unwrap().push(Hit {
                    path: uri.path().to_string(),
                    headers: headers.clone(),
                    body: body.to_vec(),
                    status,
                });
                let mut res: Response =
                    (StatusCode::from_u16(status).unwrap(), format!("receiver says {status}"))
                        .into_response();
                if status == 302 {
                    res.headers_mut().insert("location", "/elsewhere".parse().unwrap());
                }
                res
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url: format!("http://127.0.0.1:{port}/hook"), port, hits, mode }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Delivered (answered 2xx) hits of `event_type`, in arrival order.
    fn delivered(&self, event_type: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.status == 200 && h.event_type() == event_type).collect()
    }
}

/// A fresh `whsec_` secret.
fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Checks `hit` with the Standard Webhooks reference library.
fn verify(secret: &str, hit: &Hit) {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    wh.verify(&hit.body, &hit.headers).unwrap_or_else(|e| panic!("signature of {}: {e:?}", hit.id()));
}

fn fast(db: &TestDb, stream: &TestStream, extra: &[&str]) -> Config {
    let mut args = vec![
        "--master-api-key",
        MASTER,
        "--webhook-retry-base-ms",
        "50",
        "--webhook-timeout-ms",
        "1000",
        "--webhook-notice-interval-ms",
        "200",
    ];
    args.extend_from_slice(extra);
    config(db, stream, &args)
}

fn private(db: &TestDb, stream: &TestStream) -> Config {
    fast(db, stream, &["--webhook-allow-private-targets", "true"])
}

/// A tenant whose configuration sends `events` to `url`, signed with a new secret.
async fn tenant_with_hook(
    base: &str,
    http: &reqwest::Client,
    urls: &[&str],
    events: &[&str],
) -> (String, String, String) {
    let (status, t) = send(
        http.post(format!("{base}/admin/tenants"))
            .header("X-Master-Key", MASTER)
            .json(&json!({"name": "Hooked", "plan": "pro"})),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let (tenant, admin) =
        (t["tenant_id"].as_str().unwrap().to_string(), t["api_key"].as_str().unwrap().to_string());
    let secret = new_secret();
    let (status, body) = send(
        http.post(format!("{base}/tenant/secrets"))
            .bearer_auth(&admin)
            .json(&json!({"key": "HOOK_SECRET", "value": secret})),
    )
    .await;
    assert!(status < 300, "{body}");
    let hooks: Vec<Value> =
        urls.iter().map(|u| json!({"url": u, "events": events, "secret_ref": "HOOK_SECRET"})).collect();
    let (status, body) = send(
        http.post(format!("{base}/tenant/config")).bearer_auth(&admin).json(&json!({"webhooks": hooks})),
    )
    .await;
    assert!(status < 300, "{body}");
    (tenant, admin, secret)
}

async fn issue(base: &str, http: &reqwest::Client, tenant: &str, name: &str) -> String {
    let (status, k) = send(
        http.post(format!("{base}/admin/api-keys"))
            .header("X-Master-Key", MASTER)
            .json(&json!({"tenant_id": tenant, "name": name})),
    )
    .await;
    assert_eq!(status, 201, "{k}");
    k["public_id"].as_str().unwrap().to_string()
}

async fn deliveries(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (status, page) =
        send(app.http.get(app.url(&format!("/tenant/webhooks/deliveries?{query}"))).bearer_auth(admin)).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

async fn detail(app: &TestApp, admin: &str, id: &str) -> Value {
    let (status, d) =
        send(app.http.get(app.url(&format!("/tenant/webhooks/deliveries/{id}"))).bearer_auth(admin)).await;
    assert_eq!(status, 200, "{d}");
    d
}

/// Waits until the delivery of `event_type` (the newest) satisfies `f`.
async fn wait_delivery(
    app: &TestApp,
    admin: &str,
    event_type: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        if let Some(d) = deliveries(app, admin, &format!("event_type={event_type}")).await.into_iter().next()
        {
            let full = detail(app, admin, d["delivery_id"].as_str().unwrap()).await;
            if f(&full) {
                return full;
            }
            last = full;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{event_type}: {what} did not happen: {last}");
}

#[tokio::test]
async fn deliveries_are_signed_retried_in_order_and_never_follow_redirects() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(private(&db, &stream)).await;
    let rx = Receiver::start().await;
    let base = app.url("");
    let (tenant, admin, secret) = tenant_with_hook(&base, &app.http, &[&rx.url], &["api_key.*"]).await;

    // Fails the first three attempts: the fourth gets through, with the same webhook-id.
    rx.set(Mode::FailNext(3));
    let first = issue(&base, &app.http, &tenant, "first").await;
    assert!(
        eventually(Duration::from_secs(15), || async { !rx.delivered("api_key.issued").is_empty() }).await
    );
    let hits = rx.hits();
    assert_eq!(hits.iter().map(|h| h.status).collect::<Vec<_>>(), [500, 500, 500, 200]);
    assert!(hits.iter().all(|h| h.id() == hits[0].id()), "one webhook-id for every attempt");
    for h in &hits {
        verify(&secret, h);
        assert_eq!(h.event()["data"]["payload"]["public_id"], first.as_str());
        assert!(
            !String::from_utf8_lossy(&h.body).contains("secret_hash"),
            "the body is redacted like the relay's"
        );
    }
    let d = wait_delivery(&app, &admin, "api_key.issued", "delivered", |d| d["status"] == "delivered").await;
    assert_eq!(d["delivery_id"].as_str(), Some(hits[0].id().as_str()));
    let attempts = d["attempts_made"].as_array().unwrap();
    assert_eq!(
        attempts.iter().map(|a| a["status_code"].as_i64().unwrap()).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    assert_eq!(attempts[0]["response_body"], "receiver says 500");
    assert!(attempts.iter().all(|a| a["latency_ms"].is_i64() && a["started_at"].is_string()));

    // Down for a while: only the oldest is attempted; afterwards everything, in order.
    rx.set(Mode::Down);
    let before = rx.hits().len();
    for i in 0..4 {
        issue(&base, &app.http, &tenant, &format!("batch-{i}")).await;
    }
    let (status, _) = send(app.admin(Method::DELETE, &format!("/admin/api-keys/{first}"))).await;
    assert_eq!(status, 200);
    assert!(eventually(Duration::from_secs(10), || async { rx.hits().len() >= before + 3 }).await);
    let while_down: Vec<String> = rx.hits()[before..].iter().map(Hit::id).collect();
    assert!(while_down.iter().all(|id| *id == while_down[0]), "one delivery at a time per endpoint");
    rx.set(Mode::Ok);
    assert!(
        eventually(Duration::from_secs(20), || async {
            rx.delivered("api_key.issued").len() == 5 && rx.delivered("api_key.revoked").len() == 1
        })
        .await
    );
    let positions: Vec<i64> = rx
        .hits()
        .iter()
        .filter(|h| h.status == 200)
        .map(|h| h.event()["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in log order: {positions:?}");

    // Slow: the attempt times out (1 s here) and is made again.
    rx.set(Mode::Slow(Duration::from_millis(1500)));
    issue(&base, &app.http, &tenant, "slow").await;
    let d = wait_delivery(&app, &admin, "api_key.issued", "a timeout", |d| {
        d["attempts_made"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["error"].as_str().is_some_and(|e| e.contains("no answer within 1 s")))
    })
    .await;
    assert_eq!(d["attempts_made"][0]["status_code"], Value::Null);
    rx.set(Mode::Ok);
    wait_delivery(&app, &admin, "api_key.issued", "delivered after the timeout", |d| {
        d["status"] == "delivered"
    })
    .await;

    // A redirect is an answer, not a way elsewhere.
    rx.set(Mode::Redirect);
    issue(&base, &app.http, &tenant, "redirected").await;
    let d = wait_delivery(&app, &admin, "api_key.issued", "a 302", |d| d["last_status"] == 302).await;
    assert!(d["last_error"].as_str().unwrap().contains("redirects are not followed"), "{d}");
    rx.set(Mode::Ok);
    wait_delivery(&app, &admin, "api_key.issued", "delivered after the redirect", |d| {
        d["status"] == "delivered"
    })
    .await;
    assert!(rx.hits().iter().all(|h| h.path == "/hook"), "nothing reached the redirect's target");

    // A test send, answered at once; a URL that is not configured is refused.
    let (status, t) = send(
        app.http.post(app.url("/tenant/webhooks/test")).bearer_auth(&admin).json(&json!({"url": rx.url})),
    )
    .await;
    assert_eq!((status, &t["delivered"], &t["status_code"]), (200, &json!(true), &json!(200)), "{t}");
    let test_hit = rx.hits().into_iter().find(|h| h.event_type() == "webhook.test").unwrap();
    verify(&secret, &test_hit);
    let (status, t) = send(
        app.http
            .post(app.url("/tenant/webhooks/test"))
            .bearer_auth(&admin)
            .json(&json!({"url": "http://127.0.0.1:9/x"})),
    )
    .await;
    assert_eq!((status, t["error"]["code"].as_str()), (422, Some("webhook_not_configured")));

    // Another tenant sees none of it; filters and paging work.
    let (_, other) = app.create_tenant("Other").await;
    let id = test_hit.id();
    let (status, _) =
        send(app.http.get(app.url(&format!("/tenant/webhooks/deliveries/{id}"))).bearer_auth(&other)).await;
    assert_eq!(status, 404);
    assert!(deliveries(&app, &other, "").await.is_empty());
    let page = deliveries(&app, &admin, "limit=2").await;
    assert_eq!(page.len(), 2);
    assert!(deliveries(&app, &admin, "status=pending").await.is_empty());
    for bad in ["status=lost", "limit=0", "cursor=x", "bogus=1"] {
        let (status, body) =
            send(app.http.get(app.url(&format!("/tenant/webhooks/deliveries?{bad}"))).bearer_auth(&admin))
                .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    app.stop().await;
}

/// The machine's own host name (resolving to one of its addresses, which are internal here).
fn own_host_name() -> String {
    let out = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn internal_targets_are_refused_at_save_time_and_at_delivery_time() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let host = own_host_name();
    let resolved: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host.as_str(), 443)).await.unwrap().collect();
    assert!(
        resolved.iter().any(|a| tokenhub_aggregates::tenant::config::is_internal_address(a.ip())),
        "{host} resolves to {resolved:?}"
    );

    // Without the setting, the configuration is refused for each.
    let app = TestApp::start_with(fast(&db, &stream, &[])).await;
    let (_, admin) = app.create_tenant("Careful").await;
    for url in [
        "https://127.0.0.1/h".to_string(),
        "https://10.0.0.1/h".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://localhost/h".to_string(),
        format!("https://{host}/h"),
        // The forms a hand list missed: decided by the IANA registries now.
        "https://[::127.0.0.1]/h".to_string(),
        "https://[::ffff:10.0.0.1]/h".to_string(),
        "https://[64:ff9b::7f00:1]/h".to_string(),
        "https://[2002:7f00:1::1]/h".to_string(),
        "https://[fec0::1]/h".to_string(),
        "https://[2001:db8::1]/h".to_string(),
        "https://198.18.0.1/h".to_string(),
    ] {
        let config = json!({"webhooks": [{"url": url, "events": ["*"]}]});
        let (status, body) =
            send(app.http.post(app.url("/tenant/config")).bearer_auth(&admin).json(&config)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_config")), "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("$.webhooks[0].url"), "{body}");
    }
    app.stop().await;

    // Saved while the operator allowed it; delivered by a server that does not.
    let rx = Receiver::start().await;
    let port = rx.port;
    let literal = format!("https://127.0.0.1:{port}/hook");
    let named = format!("https://{host}:{port}/hook");
    let app = TestApp::start_with(private(&db, &stream)).await;
    let base = app.url("");
    let (tenant, admin, _) =
        tenant_with_hook(&base, &app.http, &[&literal, &named], &["api_key.issued"]).await;
    app.stop().await;
    let app = TestApp::start_with(fast(&db, &stream, &[])).await;
    issue(&app.url(""), &app.http, &tenant, "k").await;
    for url in [&literal, &named] {
        let found = eventually(Duration::from_secs(10), || async {
            deliveries(&app, &admin, "event_type=api_key.issued")
                .await
                .iter()
                .any(|d| d["url"] == url.as_str() && d["attempts"].as_i64().unwrap_or(0) >= 1)
        })
        .await;
        assert!(found, "{url} attempted");
    }
    for d in deliveries(&app, &admin, "event_type=api_key.issued").await {
        let error = d["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("internal address"), "{}: {error}", d["url"]);
        assert_eq!(d["last_status"], Value::Null);
    }
    assert!(rx.hits().is_empty(), "nothing reached the receiver");
    app.stop().await;
}

#[tokio::test]
async fn a_quota_crossing_sends_one_notice_per_threshold_and_expiry_is_announced() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(private(&db, &stream)).await;
    let rx = Receiver::start().await;
    let base = app.url("");
    let (tenant, _admin, secret) = tenant_with_hook(
        &base,
        &app.http,
        &[&rx.url],
        &["quota.threshold", "api_key.expiring", "rate_limit.*"],
    )
    .await;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(12);
    let (key, _) = app
        .issue_key(&tenant, json!({"quota_limit": 1000, "expiration": tokenhub::time_fmt::rfc3339(expires)}))
        .await;
    let gateway = app.platform_key("gateway").await;
    let thresholds = || {
        rx.delivered("quota.threshold")
            .iter()
            .filter(|h| h.event()["data"]["scope"] == "key")
            .map(|h| h.event()["data"]["threshold_percent"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };

    assert_eq!(post_usage(&app, &gateway, vec![record("q-1", &key, 500, 0)]).await.0, 200);
    wait_counted(&app, &stream).await;
    assert!(
        eventually(Duration::from_secs(10), || async { thresholds() == [50] }).await,
        "{:?}",
        thresholds()
    );
    // Crossing 80 % sends exactly one notice.
    assert_eq!(post_usage(&app, &gateway, vec![record("q-2", &key, 300, 50)]).await.0, 200);
    wait_counted(&app, &stream).await;
    assert!(
        eventually(Duration::from_secs(10), || async { thresholds() == [50, 80] }).await,
        "{:?}",
        thresholds()
    );
    assert_eq!(post_usage(&app, &gateway, vec![record("q-3", &key, 10, 0)]).await.0, 200);
    wait_counted(&app, &stream).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(thresholds(), [50, 80], "no repeat below the next threshold");
    let hit = rx.delivered("quota.threshold").pop().unwrap();
    verify(&secret, &hit);
    assert_eq!(hit.event()["data"]["used"], 850);

    // The key expires within a day: one notice (the 1-day one; the 7-day step is passed over).
    assert!(
        eventually(Duration::from_secs(10), || async { !rx.delivered("api_key.expiring").is_empty() }).await
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let expiring = rx.delivered("api_key.expiring");
    assert_eq!(expiring.len(), 1);
    assert_eq!(expiring[0].event()["data"]["within"], "1d");
    assert_eq!(expiring[0].event()["data"]["public_id"], key.as_str());

    // A key refused for its rate limit: one notice, however many refusals in the minute.
    let (limited, full) = app.issue_key(&tenant, json!({"rate_limit": {"requests_per_minute": 2}})).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (_, v) = send(app.admin(Method::POST, "/v1/keys/verify").json(&json!({"key": full}))).await;
        codes.push(v["code"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(codes.iter().filter(|c| *c == "RATE_LIMITED").count(), 4, "{codes:?}");
    assert!(
        eventually(Duration::from_secs(10), || async { !rx.delivered("rate_limit.exceeded").is_empty() })
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let limited_hits = rx.delivered("rate_limit.exceeded");
    assert_eq!(limited_hits.len(), 1, "at most one a minute");
    assert_eq!(limited_hits[0].event()["data"]["public_id"], limited.as_str());
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled_then_enabled_again() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(fast(
        &db,
        &stream,
        &["--webhook-allow-private-targets", "true", "--webhook-disable-after-seconds", "1"],
    ))
    .await;
    let rx = Receiver::start().await;
    rx.set(Mode::Down);
    let base = app.url("");
    let (tenant, admin, _) = tenant_with_hook(&base, &app.http, &[&rx.url], &["api_key.issued"]).await;
    issue(&base, &app.http, &tenant, "first").await;
    let endpoints = || async {
        let (_, e) = send(app.http.get(app.url("/tenant/webhooks/endpoints")).bearer_auth(&admin)).await;
        e["data"].as_array().cloned().unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(15), || async {
            endpoints().await.iter().any(|e| e["disabled_at"].is_string())
        })
        .await
    );
    let endpoint = endpoints().await[0].clone();
    assert!(endpoint["disabled_reason"].as_str().unwrap().contains("every attempt failed"), "{endpoint}");
    // An event on the record, by the server itself, and a notice in the delivery list.
    let (_, audit) = send(app.admin(Method::GET, "/audit/events?event_type=tenant.webhook_disabled")).await;
    let event = &audit["data"][0];
    assert_eq!(
        (event["actor"]["kind"].as_str(), event["tenant_id"].as_str()),
        (Some("system"), Some(tenant.as_str()))
    );
    let all = deliveries(&app, &admin, "").await;
    assert!(all.iter().all(|d| d["status"] == "failed"), "{all:?}");
    assert!(all.iter().any(|d| d["last_error"].as_str().is_some_and(|e| e.starts_with("endpoint disabled"))));

    // Nothing more is sent while it is disabled.
    let attempts = rx.hits().len();
    issue(&base, &app.http, &tenant, "while-disabled").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits().len(), attempts);

    // Enabled again: new events flow, and a failed delivery can be retried.
    rx.set(Mode::Ok);
    let id = endpoint["endpoint_id"].as_str().unwrap();
    let (status, _) =
        send(app.http.post(app.url(&format!("/tenant/webhooks/endpoints/{id}/enable"))).bearer_auth(&admin))
            .await;
    assert_eq!(status, 204);
    assert!(
        eventually(Duration::from_secs(5), || async { endpoints().await[0]["disabled_at"].is_null() }).await
    );
    issue(&base, &app.http, &tenant, "after").await;
    assert!(
        eventually(Duration::from_secs(10), || async { rx.delivered("api_key.issued").len() == 1 }).await
    );
    let failed = deliveries(&app, &admin, "status=failed&event_type=api_key.issued").await;
    let failed_id = failed[0]["delivery_id"].as_str().unwrap();
    let (status, d) = send(
        app.http.post(app.url(&format!("/tenant/webhooks/deliveries/{failed_id}/retry"))).bearer_auth(&admin),
    )
    .await;
    assert_eq!((status, d["status"].as_str()), (202, Some("pending")), "{d}");
    assert!(
        eventually(Duration::from_secs(10), || async { rx.delivered("api_key.issued").len() == 2 }).await
    );
    app.stop().await;
}

#[tokio::test]
async fn a_kill_mid_backlog_loses_nothing_and_repeats_only_with_the_same_id() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let http = reqwest::Client::new();
    let env = [
        ("MASTER_API_KEY", MASTER),
        ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
    ];
    let mut server = ServerProcess::start_with(&db, &stream, &env);
    server.wait_ready(&http).await;
    let rx = Receiver::start().await;
    rx.set(Mode::Slow(Duration::from_millis(100)));
    let (tenant, _, secret) = tenant_with_hook(&server.base, &http, &[&rx.url], &["api_key.issued"]).await;
    let mut issued = Vec::new();
    for i in 0..20 {
        issued.push(issue(&server.base, &http, &tenant, &format!("k{i}")).await);
    }
    assert!(eventually(Duration::from_secs(10), || async { rx.hits().len() >= 4 }).await);
    server.kill9();
    let after_kill = rx.hits().len();
    assert!(after_kill < 20, "the kill came mid-backlog ({after_kill} sent)");

    let mut server = ServerProcess::start_with(&db, &stream, &env);
    server.wait_ready(&http).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            let mut ids: Vec<String> = rx.delivered("api_key.issued").iter().map(Hit::id).collect();
            ids.sort();
            ids.dedup();
            ids.len() == 20
        })
        .await,
        "{} delivered",
        rx.delivered("api_key.issued").len()
    );
    // Every key's event arrived; a repeat carries the same webhook-id and the same body.
    let hits = rx.delivered("api_key.issued");
    let mut by_id: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    for h in &hits {
        verify(&secret, h);
        let body = by_id.entry(h.id()).or_insert_with(|| h.body.clone());
        assert_eq!(*body, h.body, "a repeat is the same message");
    }
    let keys: std::collections::BTreeSet<String> = hits
        .iter()
        .map(|h| h.event()["data"]["payload"]["public_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, issued.iter().cloned().collect());
    // In order: first arrivals follow the log.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<i64> = hits
        .iter()
        .filter(|h| seen.insert(h.id()))
        .map(|h| h.event()["position"].as_i64().unwrap())
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
    // The deliveries are what the log gives: one per event, however often the process died.
    let pool = db.pool().await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE event_type = 'api_key.issued'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(count, 20);

    // Replayed from position 0 (deliveries and checkpoint gone), the log gives the same
    // deliveries: the same ids, endpoints and bytes.
    let snapshot = || async {
        sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT delivery_id, endpoint_id, event_type, body FROM webhook_deliveries ORDER BY delivery_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = snapshot().await;
    server.kill9();
    sqlx::query("DELETE FROM webhook_attempts").execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM webhook_deliveries").execute(&pool).await.unwrap();
    sqlx::query("UPDATE checkpoints SET position = 0 WHERE name = 'webhooks'").execute(&pool).await.unwrap();
    let mut server = ServerProcess::start_with(&db, &stream, &env);
    server.wait_ready(&http).await;
    assert!(eventually(Duration::from_secs(15), || async { snapshot().await.len() == before.len() }).await);
    assert_eq!(snapshot().await, before);
    let _ = server.logs();
}

#[tokio::test]
async fn numbers_have_documented_bounds_and_one_tenants_data_never_stops_anothers_deliveries() {
    use crate::usage::{post_usage, record, wait_counted};
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(private(&db, &stream)).await;
    let rx = Receiver::start().await;
    let base = app.url("");
    let (odd, odd_admin, _) = tenant_with_hook(&base, &app.http, &[&rx.url], &["quota.threshold"]).await;
    let (other, _, _) = tenant_with_hook(&base, &app.http, &[&rx.url], &["api_key.*"]).await;

    // Every quota has one documented maximum, 10^15: above it is 422, at it is taken.
    const MAX: i64 = 1_000_000_000_000_000;
    for (over, at) in [(MAX + 1, MAX), (i64::MAX, MAX)] {
        let patch = |q: i64| {
            app.admin(Method::PATCH, &format!("/admin/tenants/{odd}"))
                .json(&json!({"limits": {"monthly_token_quota": q}}))
        };
        assert_eq!(send(patch(over)).await.0, 422);
        assert_eq!(send(patch(at)).await.0, 200);
    }
    let (s, body) = send(
        app.admin(Method::PATCH, &format!("/admin/tenants/{odd}"))
            .json(&json!({"limits": {"monthly_token_quota": 18446744073709551615u64}})),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    let (s, _) = send(
        app.admin(Method::POST, "/admin/api-keys")
            .json(&json!({"tenant_id": odd, "name": "big", "quota_limit": MAX + 1})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = send(
        app.http
            .post(app.url("/tenant/sub-accounts"))
            .bearer_auth(&odd_admin)
            .json(&json!({"name": "big", "quota_limit": MAX + 1})),
    )
    .await;
    assert_eq!(s, 422);
    // At the bounds, a key's quota flows through verify, usage, rollups and notices.
    let (key, full) = app.issue_key(&odd, json!({"quota_limit": MAX})).await;
    let gateway = app.platform_key("gateway").await;
    let big = 1_000_000_000_000u64;
    assert_eq!(post_usage(&app, &gateway, vec![record("b-1", &key, big, big)]).await.0, 200);
    wait_counted(&app, &stream).await;
    let verdict = app.verify(&gateway, json!({"key": full})).await;
    assert_eq!(verdict["code"], "VALID", "{verdict}");
    assert_eq!(verdict["quota"]["remaining"].as_i64(), Some(MAX - 2 * big as i64), "{verdict}");

    // A value from before the bound, still in a derived table: it must not stop the worker.
    sqlx::query("UPDATE tenants SET limits = jsonb_set(limits, '{monthly_token_quota}', '18446744073709551615') WHERE tenant_id = $1")
        .bind(&odd)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(post_usage(&app, &gateway, vec![record("b-2", &key, 10, 10)]).await.0, 200);
    wait_counted(&app, &stream).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Another tenant's deliveries go on.
    issue(&base, &app.http, &other, "after").await;
    assert!(
        eventually(Duration::from_secs(10), || async { !rx.delivered("api_key.issued").is_empty() }).await,
        "another tenant's delivery stayed pending"
    );
    app.stop().await;
}
