//! `tokenhub gateway` against an OpenAI-compatible upstream of the test's own (it records what
//! it was sent): the key's policy before forwarding, the provider's credential from a tenant
//! secret, key-bound tags injected (a header, or TensorZero's `tensorzero::tags`) and never
//! overridable, streaming with the usage chunk asked for and stripped, usage metered once per
//! request onto the NATS usage stream and into the tenant's totals, errors in OpenAI's shape,
//! and no prompt or completion anywhere it could be kept.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// What the upstream received.
#[derive(Default)]
pub(crate) struct Seen {
    requests: Vec<(String, HeaderMap, Value)>,
    /// The bodies as they came, byte for byte.
    raw: Vec<Bytes>,
}

const COMPLETION: &str = "canary-completion-7f3a9";

async fn upstream(seen: Arc<Mutex<Seen>>, path: &'static str, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or_default();
    {
        let mut seen = seen.lock().unwrap();
        seen.requests.push((path.to_string(), headers, body.clone()));
        seen.raw.push(raw);
    }
    if path.ends_with("/embeddings") {
        return axum::Json(
            json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": body["model"], "usage": {"prompt_tokens": 3, "total_tokens": 3}}),
        )
        .into_response();
    }
    // Faults the gateway must answer cleanly.
    match body["model"].as_str() {
        Some("fail500") => {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"message": "boom", "type": "server_error"}})),
            )
                .into_response()
        }
        Some("slow") => {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Some("nousage") => {
            return axum::Json(json!({"id": "c0", "object": "chat.completion", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": "no usage here"}, "finish_reason": "stop"}]}))
            .into_response()
        }
        Some("endless") => {
            // A stream that goes on for a minute: a chunk every 100 ms.
            let chunks = futures::stream::unfold(0, |n| async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (n < 600).then(|| {
                    let chunk = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"more \"}}]}\n\n";
                    (Ok::<_, std::io::Error>(Bytes::from(chunk)), n + 1)
                })
            });
            return ([("content-type", "text/event-stream")], axum::body::Body::from_stream(chunks))
                .into_response();
        }
        Some("cut") => {
            // A stream that stops in the middle: one chunk, then the connection drops.
            let chunks = futures::stream::unfold(0, |n| async move {
                match n {
                    0 => Some((
                        Ok(Bytes::from(
                            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n",
                        )),
                        1,
                    )),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Some((Err(std::io::Error::other("cut")), 2))
                    }
                    _ => None,
                }
            });
            return ([("content-type", "text/event-stream")], axum::body::Body::from_stream(chunks))
                .into_response();
        }
        _ => {}
    }
    // "big": a slow answer of 500 tokens, for the reservations test.
    let big = body["model"] == "big";
    if big {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (prompt_tokens, completion_tokens) = if big { (100, 400) } else { (7, 5) };
    if body["stream"] == true {
        let mut events = String::new();
        for word in ["Hello", " world"] {
            events.push_str(&format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]})
            ));
        }
        if body["stream_options"]["include_usage"] == true {
            events.push_str(&format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}})
            ));
        }
        events.push_str("data: [DONE]\n\n");
        return ([("content-type", "text/event-stream")], events).into_response();
    }
    axum::Json(json!({"id": "c0", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": COMPLETION}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}}))
    .into_response()
}

pub(crate) async fn start_upstream(seen: Arc<Mutex<Seen>>) -> SocketAddr {
    let route = |path: &'static str| {
        let seen = seen.clone();
        post(move |headers: HeaderMap, body: Bytes| upstream(seen.clone(), path, headers, body))
    };
    let app = Router::new()
        .route("/v1/chat/completions", route("/v1/chat/completions"))
        .route("/v1/embeddings", route("/v1/embeddings"))
        .route("/tz/v1/chat/completions", route("/tz/v1/chat/completions"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A server on `db` and `stream` that allows private upstreams, and a tenant named `name` whose
/// one provider (`local`, every model) is the test's upstream: (the server, the tenant id).
pub(crate) async fn with_local_provider(db: &TestDb, stream: &TestStream, name: &str) -> (TestApp, String) {
    let (app, tenant, _) = with_recording_provider(db, stream, name).await;
    (app, tenant)
}

/// [`with_local_provider`], and what its upstream receives.
async fn with_recording_provider(
    db: &TestDb,
    stream: &TestStream,
    name: &str,
) -> (TestApp, String, Arc<Mutex<Seen>>) {
    let app = TestApp::start_with(config(
        db,
        stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant(name).await;
    let config = json!({"providers": [{"name": "local", "kind": "openai",
        "base_url": format!("http://{upstream_addr}/v1"), "models": ["*"]}]});
    let (status, body) =
        send(app.admin(Method::POST, "/tenant/config").header("X-Tenant-ID", &tenant).json(&config)).await;
    assert_eq!(status, 200, "{body}");
    (app, tenant, seen)
}

/// What a gateway process beside [`with_local_provider`]'s server needs: private upstreams
/// and the server's key pepper.
pub(crate) const GATEWAY_ENV: [(&str, &str); 2] = [
    ("GATEWAY_ALLOW_PRIVATE_UPSTREAMS", "true"),
    ("TOKENHUB_KEY_PEPPER", "test-pepper-test-pepper-test-pepper-0000"),
];

pub(crate) async fn start_gateway(app: &TestApp) -> (String, CancellationToken) {
    let (base, stop, _) = start_gateway_with_handle(app).await;
    (base, stop)
}

async fn start_gateway_with_handle(app: &TestApp) -> (String, CancellationToken, tokenhub::gateway::Gateway) {
    let gateway =
        tokenhub::gateway::Gateway::new(app.app.state.clone(), Vec::new(), true, Duration::from_secs(10))
            .expect("client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(tokenhub::gateway::serve(gateway.clone(), listener, stop.clone()));
    (base, stop, gateway)
}

#[tokio::test]
async fn the_gateway_forwards_with_the_keys_policy_tags_and_metering() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant("Gateway").await;
    let as_tenant = |m: Method, p: &str| app.admin(m, p).header("X-Tenant-ID", &tenant);
    let (status, body) = send(
        as_tenant(Method::POST, "/tenant/secrets")
            .json(&json!({"key": "UPSTREAM_KEY", "value": "sk-upstream-secret"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let config = json!({
        "credentials": {"up": {"secret_ref": "UPSTREAM_KEY"}},
        "providers": [
            {"name": "local", "kind": "openai", "base_url": format!("http://{upstream_addr}/v1"), "credential": "up",
             "models": ["gpt-test", "embed-test", "other-model"]},
            {"name": "tz", "kind": "tensorzero", "base_url": format!("http://{upstream_addr}/tz/v1"), "credential": "up",
             "models": ["tz-model"]}
        ]
    });
    let (status, body) = send(as_tenant(Method::POST, "/tenant/config").json(&config)).await;
    assert_eq!(status, 200, "{body}");
    let (public_id, key) = app
        .issue_key(&tenant, json!({"tags": {"customer_id": "acme"}, "allowed_models": ["gpt-test", "embed-test", "tz-model"]}))
        .await;
    let (gateway, stop) = start_gateway(&app).await;
    let http = reqwest::Client::new();
    let prompt = format!("canary-prompt-{}", uuid::Uuid::new_v4().simple());

    // A plain completion: forwarded with the provider's credential and the bound tags.
    let res = http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&key)
        .header("X-TokenHub-Tags", r#"{"customer_id":"spoofed"}"#)
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], COMPLETION);
    {
        let seen = seen.lock().unwrap();
        let (path, headers, body) = seen.requests.last().unwrap();
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(headers["authorization"], "Bearer sk-upstream-secret");
        assert_eq!(
            headers["x-tokenhub-tags"], r#"{"customer_id":"acme"}"#,
            "the bound tags, not the client's"
        );
        assert_eq!(body["messages"][0]["content"], prompt.as_str());
    }
    // Pure forwarding: a body the gateway need not change goes upstream byte for byte (its
    // key order, spacing and number forms as the client wrote them).
    let exact = format!(
        r#"{{ "temperature": 1.0,  "messages": [{{"role": "user", "content": "{prompt}"}}], "model": "gpt-test", "top_p": 1e0 }}"#
    );
    let res = http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .body(exact.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.text().await;
    assert_eq!(seen.lock().unwrap().raw.last().unwrap(), exact.as_bytes(), "the client's bytes");

    // Streaming without asking for usage: the gateway asks, meters, and strips the usage chunk.
    let text = http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(
            &json!({"model": "gpt-test", "stream": true, "messages": [{"role": "user", "content": prompt}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("Hello") && text.contains("[DONE]"), "{text}");
    assert!(!text.contains("\"usage\""), "the client did not ask for the usage chunk: {text}");
    assert_eq!(seen.lock().unwrap().requests.last().unwrap().2["stream_options"]["include_usage"], true);
    // Asking for it, the client gets it.
    let text = http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-test", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"usage\""), "{text}");

    // TensorZero: the tags go in the body, over the client's.
    let res = http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "tz-model", "messages": [{"role": "user", "content": "hi"}],
            "tensorzero::tags": {"customer_id": "spoofed", "trace": "t1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    {
        let seen = seen.lock().unwrap();
        let (path, headers, body) = seen.requests.last().unwrap();
        assert_eq!(path, "/tz/v1/chat/completions");
        assert_eq!(body["tensorzero::tags"], json!({"customer_id": "acme", "trace": "t1"}));
        assert!(headers.get("x-tokenhub-tags").is_none());
    }

    // Embeddings.
    let res = http
        .post(format!("{gateway}/v1/embeddings"))
        .bearer_auth(&key)
        .json(&json!({"model": "embed-test", "input": prompt}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The models this key may use.
    let (status, models) = send(http.get(format!("{gateway}/v1/models")).bearer_auth(&key)).await;
    assert_eq!(status, 200, "{models}");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["embed-test", "gpt-test", "tz-model"]);

    // Refusals, in OpenAI's shape with TokenHub's code.
    let refused = |body: Value, auth: Option<String>| {
        let mut req = http.post(format!("{gateway}/v1/chat/completions")).json(&body);
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        send(req)
    };
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
    let (status, body) = refused(chat("gpt-test"), None).await;
    assert_eq!((status, body["error"]["type"].as_str()), (401, Some("authentication_error")), "{body}");
    let (status, body) = refused(chat("gpt-test"), Some(format!("{key}x"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("MALFORMED")), "{body}");
    let (status, body) = refused(chat("other-model"), Some(key.clone())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("MODEL_NOT_ALLOWED")), "{body}");
    let (open_key_id, open_key) = app.issue_key(&tenant, json!({})).await;
    let (status, body) = refused(chat("no-such-model"), Some(open_key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("model_not_found")), "{body}");
    let _ = open_key_id;
    let (status, body) = refused(json!({"messages": []}), Some(key.clone())).await;
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{body}");
    let admin_key = app.create_tenant("Other").await.1;
    let (status, body) = refused(chat("gpt-test"), Some(admin_key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("data_key_required")), "{body}");

    // Metered: 20 + 20 + 12 + 12 + 20 (tz) + 3 tokens on the key, once each, with the bound tags.
    let summary_has = |want: u64| {
        let app = &app;
        let tenant = tenant.clone();
        async move {
            let (_, s) = send(app.admin(Method::GET, "/usage/summary").header("X-Tenant-ID", &tenant)).await;
            s["llm_tokens"].as_u64() == Some(want)
        }
    };
    assert!(eventually(Duration::from_secs(15), || summary_has(87)).await, "usage reached the totals");
    let records: Vec<Value> = stream
        .messages_of(&stream.usage_stream)
        .await
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    let mine: Vec<&Value> = records.iter().filter(|r| r["data"]["key_id"] == public_id.as_str()).collect();
    assert_eq!(mine.len(), 6, "one record per forwarded request");
    for r in &mine {
        assert_eq!(r["data"]["tags"], json!({"customer_id": "acme"}));
        assert_eq!(r["data"]["status"], 200);
        assert!(r["data"]["latency_ms"].is_u64());
        assert!(r["id"].as_str().unwrap().starts_with("gw_"));
    }

    // Zero data retention: the prompt and the completion are nowhere.
    for m in stream.messages_of(&stream.usage_stream).await.iter().chain(stream.messages().await.iter()) {
        let text = String::from_utf8_lossy(&m.payload);
        assert!(!text.contains(&prompt) && !text.contains(COMPLETION), "content on NATS: {text}");
    }
    let pool = db.pool().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in tables {
        let found: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" t WHERE t::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || $2 || '%'"
        ))
        .bind(&prompt)
        .bind(COMPLETION)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(found, 0, "content kept in table {table}");
    }
    // A gateway that does not allow private upstreams refuses to forward to one, whatever
    // the configuration says.
    let strict =
        tokenhub::gateway::Gateway::new(app.app.state.clone(), Vec::new(), false, Duration::from_secs(10))
            .expect("client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let strict_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tokenhub::gateway::serve(strict, listener, stop.clone()));
    let before = seen.lock().unwrap().requests.len();
    let (status, body) = send(
        http.post(format!("{strict_base}/v1/chat/completions")).bearer_auth(&key).json(&chat("gpt-test")),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("upstream_refused")), "{body}");
    assert_eq!(seen.lock().unwrap().requests.len(), before, "nothing reached the upstream");
    stop.cancel();
    app.stop().await;
}

#[tokio::test]
async fn a_spent_quota_and_a_missing_permission_are_refused_in_openais_shape() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant("Quota").await;
    let as_tenant = |m: Method, p: &str| app.admin(m, p).header("X-Tenant-ID", &tenant);
    let config = json!({"providers": [{"name": "local", "kind": "openai",
        "base_url": format!("http://{upstream_addr}/v1"), "models": ["*"]}]});
    let (status, body) = send(as_tenant(Method::POST, "/tenant/config").json(&config)).await;
    assert_eq!(status, 200, "{body}");
    let (gateway, stop) = start_gateway(&app).await;
    let http = reqwest::Client::new();
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});

    // 20 tokens per answer against a quota of 200; each request reserves its bound (its body's
    // bytes and `max_tokens`), so it is refused once what remains cannot hold that bound.
    let (_, key) = app.issue_key(&tenant, json!({"quota_limit": 200})).await;
    let small = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let mut answered = 0;
    let refusal = loop {
        let (status, body) =
            send(http.post(format!("{gateway}/v1/chat/completions")).bearer_auth(&key).json(&small)).await;
        if status != 200 {
            break (status, body);
        }
        answered += 1;
        assert!(answered <= 10, "the quota binds");
    };
    assert_eq!(refusal.0, 429, "{}", refusal.1);
    assert_eq!(
        (refusal.1["error"]["code"].as_str(), refusal.1["error"]["type"].as_str()),
        (Some("QUOTA_EXCEEDED"), Some("insufficient_quota"))
    );
    assert!(answered * 20 <= 200 && answered >= 5, "{answered} answers");

    // A sub-account allowed only embeddings: its keys may not chat.
    let (status, sub) = send(
        as_tenant(Method::POST, "/tenant/sub-accounts")
            .json(&json!({"name": "emb", "permissions": ["embeddings"]})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let (_, sub_key) = app
        .issue_key(&tenant, json!({"sub_account_id": sub["sub_account_id"], "permissions": ["embeddings"]}))
        .await;
    let (status, body) =
        send(http.post(format!("{gateway}/v1/chat/completions")).bearer_auth(&sub_key).json(&chat)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("permission_denied")), "{body}");
    let (status, body) = send(
        http.post(format!("{gateway}/v1/embeddings"))
            .bearer_auth(&sub_key)
            .json(&json!({"model": "m", "input": "x"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    stop.cancel();
    app.stop().await;
}

/// What the gateway checks and what the upstream reads must be the same request: a body that
/// names a member twice (the gateway could read one value and the upstream the other) is
/// refused before anything is sent, a request asking for `n` choices reserves its
/// `max_tokens` for each of them, and a null field counts as absent.
#[tokio::test]
async fn an_ambiguous_body_is_refused_and_each_of_n_choices_is_reserved() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (app, tenant, seen) = with_recording_provider(&db, &stream, "Ambiguous").await;
    let (gateway, stop) = start_gateway(&app).await;
    let http = reqwest::Client::new();
    let (_, key) = app.issue_key(&tenant, json!({"allowed_models": ["cheap"], "quota_limit": 5000})).await;
    let post = |body: String| {
        http.post(format!("{gateway}/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
    };
    let messages = r#"[{"role": "user", "content": "x"}]"#;
    for body in [
        format!(r#"{{"model": "cheap", "messages": {messages}, "model": "dear"}}"#),
        format!(r#"{{"model": "dear", "messages": {messages}, "model": "cheap"}}"#),
        format!(r#"{{"model": "cheap", "max_tokens": 5, "messages": {messages}, "max_tokens": 100000}}"#),
        format!(r#"{{"model": "cheap", "stream": true, "messages": {messages}, "stream": false}}"#),
        r#"{"model": "cheap", "messages": [{"role": "user", "content": "x", "content": "y"}]}"#.to_string(),
    ] {
        let (status, answer) = send(post(body.clone())).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str(), answer["error"]["type"].as_str()),
            (400, Some("invalid_request"), Some("invalid_request_error")),
            "{body}: {answer}"
        );
    }
    assert!(seen.lock().unwrap().requests.is_empty(), "nothing ambiguous reached the upstream");

    // 600 completion tokens for each of 10 choices cannot fit a 5,000-token quota; for one, they do.
    let asking =
        |n: u32| format!(r#"{{"model": "cheap", "max_tokens": 600, "n": {n}, "messages": {messages}}}"#);
    let (status, answer) = send(post(asking(10))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (429, Some("QUOTA_EXCEEDED")), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("up to 6") && message.contains("5000 left"), "says why: {message}");
    // Both limits named: the larger is reserved, whichever one the upstream honours.
    let both = format!(
        r#"{{"model": "cheap", "max_completion_tokens": 1, "max_tokens": 6000, "messages": {messages}}}"#
    );
    let (status, answer) = send(post(both)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (429, Some("QUOTA_EXCEEDED")), "{answer}");
    let (status, answer) = send(post(asking(0))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_request")), "{answer}");
    let (status, answer) = send(post(asking(1))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(seen.lock().unwrap().requests.len(), 1, "only the request that fits was forwarded");
    // Counts written as decimals go as the integers the gateway counted.
    let decimals = format!(r#"{{"model": "cheap", "n": 2.0, "max_tokens": 5e1, "messages": {messages}}}"#);
    let (status, answer) = send(post(decimals)).await;
    assert_eq!(status, 200, "{answer}");
    let forwarded = seen.lock().unwrap().requests.last().unwrap().2.clone();
    assert_eq!((&forwarded["n"], &forwarded["max_tokens"]), (&json!(2), &json!(50)), "{forwarded}");

    // A null stands for an absent field, as in OpenAI's API: a stream with `stream_options`
    // null is still asked for its usage chunk, which the client does not get.
    let nulls = format!(
        r#"{{"model": "cheap", "stream": true, "stream_options": null, "n": null, "max_tokens": null, "messages": {messages}}}"#
    );
    let res = post(nulls).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("[DONE]") && !text.contains("\"usage\""), "{text}");
    assert_eq!(seen.lock().unwrap().requests.last().unwrap().2["stream_options"]["include_usage"], true);
    stop.cancel();
    app.stop().await;
}

/// 16 concurrent streaming clients against a 5,000-token quota, each answer counting 500
/// tokens: without reservations all 16 would be admitted (8,000 tokens); with them the quota
/// is never exceeded, the refused get `QUOTA_EXCEEDED`, and nothing stays reserved.
#[tokio::test]
async fn concurrent_streams_never_overshoot_a_quota() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (app, tenant) = with_local_provider(&db, &stream, "Reserve").await;
    let (public_id, key) = app.issue_key(&tenant, json!({"quota_limit": 5000})).await;
    let (gateway, stop, handle) = start_gateway_with_handle(&app).await;
    let http = reqwest::Client::new();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (http, gateway, key) = (http.clone(), gateway.clone(), key.clone());
        clients.push(tokio::spawn(async move {
            let res = http
                .post(format!("{gateway}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "big", "stream": true, "max_tokens": 400,
                    "messages": [{"role": "user", "content": "tell me a long story"}]}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            (status, text)
        }));
    }
    let mut served = 0;
    for client in clients {
        let (status, text) = client.await.unwrap();
        match status {
            200 => served += 1,
            429 => assert!(text.contains("QUOTA_EXCEEDED"), "{text}"),
            other => panic!("{other}: {text}"),
        }
    }
    assert!(served >= 8, "as many as fit were served: {served}");
    let used = || async {
        let (_, s) = send(app.admin(Method::GET, "/usage/summary").header("X-Tenant-ID", &tenant)).await;
        s["llm_tokens"].as_i64().unwrap_or(-1)
    };
    assert!(eventually(Duration::from_secs(15), || async { used().await == served * 500 }).await);
    assert!(used().await <= 5000, "overshoot: {} tokens over 5,000", used().await - 5000);
    assert_eq!(handle.reserved(&public_id), 0, "every reservation settled");
    assert_eq!(handle.reserved(&tenant), 0);

    // A client that goes away before the answer: its reservation is released and the request
    // is recorded (HTTP/1 notices the client gone when the answer starts: the stream is then
    // dropped, and with it the upstream request).
    let (other_id, other_key) = app.issue_key(&tenant, json!({"quota_limit": 100000})).await;
    let abandoned = tokio::spawn({
        let (http, gateway) = (http.clone(), gateway.clone());
        async move {
            let _ = http
                .post(format!("{gateway}/v1/chat/completions"))
                .bearer_auth(&other_key)
                .json(&json!({"model": "big", "stream": true, "max_tokens": 400, "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await;
        }
    });
    assert!(eventually(Duration::from_secs(5), || async { handle.reserved(&other_id) > 0 }).await);
    abandoned.abort();
    assert!(
        eventually(Duration::from_secs(5), || async { handle.reserved(&other_id) == 0 }).await,
        "released"
    );
    let recorded = || async {
        stream.messages_of(&stream.usage_stream).await.iter().any(|m| {
            let r: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            r["data"]["key_id"] == other_id.as_str()
        })
    };
    assert!(eventually(Duration::from_secs(10), recorded).await, "the abandoned request is recorded");
    stop.cancel();
    app.stop().await;
}

static PIP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The Python of `tests/openai-sdk/.venv`, with the official `openai` SDK installed (pinned in
/// `tests/openai-sdk/requirements.txt`; `pip install` on first use).
pub(crate) fn sdk_python() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai-sdk");
    let python = dir.join(".venv/bin/python");
    let _guard = PIP.lock().unwrap_or_else(|e| e.into_inner());
    let ready =
        std::process::Command::new(&python).args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if !ready {
        let venv = std::process::Command::new("python3").args(["-m", "venv"]).arg(dir.join(".venv")).status();
        assert!(venv.is_ok_and(|s| s.success()), "python3 -m venv tests/openai-sdk/.venv");
        let pip = std::process::Command::new(dir.join(".venv/bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(dir.join("requirements.txt"))
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install -r tests/openai-sdk/requirements.txt");
    }
    python
}

/// What a client of the official `openai` Python SDK sees: completions, streams, embeddings,
/// the model list, and TokenHub's refusals as the SDK's own errors.
#[tokio::test]
async fn the_official_openai_sdk_works_against_the_gateway() {
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant("Sdk").await;
    let config = json!({"providers": [{"name": "local", "kind": "openai",
        "base_url": format!("http://{upstream_addr}/v1"), "models": ["sdk-model"]}]});
    let (status, body) =
        send(app.admin(Method::POST, "/tenant/config").header("X-Tenant-ID", &tenant).json(&config)).await;
    assert_eq!(status, 200, "{body}");
    let (_, key) = app.issue_key(&tenant, json!({})).await;
    let (_, spent) = app.issue_key(&tenant, json!({"quota_limit": 1})).await;
    let (gateway, stop) = start_gateway(&app).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai-sdk/client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(script)
            .args([format!("{gateway}/v1"), key, "sdk-model".into(), spent])
            .output(),
    )
    .await
    .expect("the SDK client ends")
    .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen_by_sdk: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        seen_by_sdk,
        json!({
            "content": COMPLETION,
            "usage": 20,
            "streamed": "Hello world",
            "embedding": 2,
            "models": ["sdk-model"],
            "wrong_key": {"status": 401, "code": "MALFORMED", "type": "authentication_error"},
            "spent": {"status": 429, "code": "QUOTA_EXCEEDED", "type": "insufficient_quota"},
        })
    );
    stop.cancel();
    app.stop().await;
}

/// `kill -9` of a gateway process in the middle of a request, and a restart: the client gets
/// an error, the restarted gateway serves again, and no reservation of the killed request
/// survives to hold the key's quota.
#[tokio::test]
async fn a_gateway_killed_mid_request_restarts_with_no_reservation_held() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant("Crash").await;
    let config = json!({"providers": [{"name": "local", "kind": "openai",
        "base_url": format!("http://{upstream_addr}/v1"), "models": ["*"]}]});
    let (status, body) =
        send(app.admin(Method::POST, "/tenant/config").header("X-Tenant-ID", &tenant).json(&config)).await;
    assert_eq!(status, 200, "{body}");
    // Room for two 500-token answers (each reserves about 470 tokens), not three.
    let (_, key) = app.issue_key(&tenant, json!({"quota_limit": 1000})).await;
    let env = [
        ("GATEWAY_ALLOW_PRIVATE_UPSTREAMS", "true"),
        ("TOKENHUB_KEY_PEPPER", "test-pepper-test-pepper-test-pepper-0000"),
    ];
    let http = reqwest::Client::new();
    let ready = |base: String| {
        let (http, key) = (http.clone(), key.clone());
        async move {
            for _ in 0..300 {
                let res = http.get(format!("{base}/v1/models")).bearer_auth(&key).send().await;
                if res.is_ok_and(|r| r.status() == 200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the gateway at {base} did not become ready");
        }
    };
    let big = json!({"model": "big", "stream": true, "max_tokens": 400, "messages": [{"role": "user", "content": "x"}]});
    let mut gateway = ServerProcess::gateway(&db, &stream, &env);
    ready(gateway.base.clone()).await;
    let in_flight = tokio::spawn({
        let (http, url, key, big) =
            (http.clone(), format!("{}/v1/chat/completions", gateway.base), key.clone(), big.clone());
        async move { http.post(url).bearer_auth(key).json(&big).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gateway.kill9();
    assert!(in_flight.await.unwrap().is_err(), "the killed request ends in an error");

    let gateway = ServerProcess::gateway(&db, &stream, &env);
    ready(gateway.base.clone()).await;
    // The killed gateway's room in the fleet's quota (its open reservation) is given back
    // once it has been quiet for five seconds (reported every half second by the others).
    let pool = db.pool().await;
    let killed_at = std::time::Instant::now();
    let released = eventually(Duration::from_secs(10), || async {
        let held: i64 =
            sqlx::query_scalar("SELECT coalesce(sum(unspent), 0)::bigint FROM quota_room_holders")
                .fetch_one(&pool)
                .await
                .unwrap();
        held == 0
    })
    .await;
    assert!(released, "the killed gateway's room is given back");
    assert!(
        killed_at.elapsed() < Duration::from_millis(6_500),
        "within the stated time: {:?}",
        killed_at.elapsed()
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = http
            .post(format!("{}/v1/chat/completions", gateway.base))
            .bearer_auth(&key)
            .json(&big)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        let _ = res.text().await;
        // Let the settled tokens reach the key's totals before the next admission.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(statuses, [200, 200, 429], "two answers fit, as if the killed request had never been");

    // Zero data retention in the logs: the gateway logs at debug level, and neither a prompt
    // nor a completion appears in them.
    let (_, other) = app.issue_key(&tenant, json!({})).await;
    let prompt = format!("canary-prompt-{}", uuid::Uuid::new_v4().simple());
    for stream_it in [false, true] {
        let res = http
            .post(format!("{}/v1/chat/completions", gateway.base))
            .bearer_auth(&other)
            .json(&json!({"model": "m", "stream": stream_it, "messages": [{"role": "user", "content": prompt}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
        let _ = res.text().await;
    }
    let mut gateway = gateway;
    let logs = gateway.logs();
    assert!(logs.contains("gateway listening"), "the log is the gateway's: {logs}");
    assert!(!logs.contains(&prompt) && !logs.contains(COMPLETION), "content in the gateway's log");
    drop(gateway);
    app.stop().await;
}

/// What the gateway answers when the upstream fails: a 500 passes through (the upstream's own
/// body), a slow upstream is 504 `upstream_timeout`, a stream cut in the middle ends the
/// client's stream in an error, an answer without `usage` is recorded as unknown (never as
/// zero); each is recorded once with its status.
#[tokio::test]
async fn upstream_faults_are_answered_cleanly_and_recorded_with_their_status() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant("Faults").await;
    let config = json!({"providers": [{"name": "local", "kind": "openai",
        "base_url": format!("http://{upstream_addr}/v1"), "models": ["*"]}]});
    let (status, body) =
        send(app.admin(Method::POST, "/tenant/config").header("X-Tenant-ID", &tenant).json(&config)).await;
    assert_eq!(status, 200, "{body}");
    let (public_id, key) = app.issue_key(&tenant, json!({})).await;
    let gateway =
        tokenhub::gateway::Gateway::new(app.app.state.clone(), Vec::new(), true, Duration::from_secs(1))
            .expect("client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(tokenhub::gateway::serve(gateway, listener, stop.clone()));
    let http = reqwest::Client::new();
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]});

    let (status, body) = send(
        http.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&chat("fail500", false)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (500, Some("boom")),
        "the upstream's 500 passes through"
    );
    let (status, body) =
        send(http.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&chat("slow", false)))
            .await;
    assert_eq!((status, body["error"]["code"].as_str()), (504, Some("upstream_timeout")), "{body}");
    let (status, body) = send(
        http.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&chat("nousage", false)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cut = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat("cut", true))
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    assert!(cut.text().await.is_err(), "a cut stream ends the client's stream in an error");

    let records = || async {
        stream
            .messages_of(&stream.usage_stream)
            .await
            .iter()
            .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
            .filter(|r| r["data"]["key_id"] == public_id.as_str())
            .map(|r| {
                (
                    r["data"]["status"].as_u64().unwrap_or(0),
                    r["data"]["usage_unknown"].as_bool().unwrap_or(false),
                    r["data"]["llm_tokens"].as_u64().unwrap_or(0),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(10), || async { records().await.len() == 4 }).await,
        "{:?}",
        records().await
    );
    let mut got = records().await;
    got.sort();
    assert_eq!(got, [(200, true, 0), (500, false, 0), (502, false, 0), (504, false, 0)]);
    stop.cancel();
    app.stop().await;
}

/// The gateway's authorization matrix: every route of `tokenhub gateway`, called by every kind
/// of credential. Only an active data key of an active tenant passes; no credential, a
/// malformed, unknown, revoked or disabled key is 401 (`authentication_error`); a key that is
/// not a tenant's data key (the tenant's admin key, platform keys, the master key as a bearer)
/// or a suspended tenant's key is 403 (`permission_error`) — all in OpenAI's error shape.
#[tokio::test]
async fn the_gateways_routes_admit_only_a_tenants_active_data_keys() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let providers = |tenant: &str| {
        let config = json!({"providers": [{"name": "local", "kind": "openai",
            "base_url": format!("http://{upstream_addr}/v1"), "models": ["*"]}]});
        app.admin(Method::POST, "/tenant/config").header("X-Tenant-ID", tenant).json(&config)
    };
    let (tenant, admin_key) = app.create_tenant("Matrix").await;
    assert_eq!(send(providers(&tenant)).await.0, 200);
    let (suspended, _) = app.create_tenant("Suspended").await;
    assert_eq!(send(providers(&suspended)).await.0, 200);
    let (_, data_key) = app.issue_key(&tenant, json!({})).await;
    let (revoked_id, revoked) = app.issue_key(&tenant, json!({})).await;
    let (disabled_id, disabled) = app.issue_key(&tenant, json!({})).await;
    let (_, suspended_key) = app.issue_key(&suspended, json!({})).await;
    assert_eq!(send(app.admin(Method::DELETE, &format!("/admin/api-keys/{revoked_id}"))).await.0, 200);
    let (s, body) = send(
        app.http.post(app.url(&format!("/tenant/api-keys/{disabled_id}/disable"))).bearer_auth(&admin_key),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = send(app.admin(Method::POST, &format!("/admin/tenants/{suspended}/suspend"))).await;
    assert_eq!(s, 200, "{body}");
    let gateway_key = app.platform_key("gateway").await;
    let finance_key = app.platform_key("finance_admin").await;
    app.app.state.readmodels.wait_for_head().await;
    let (gateway, stop) = start_gateway(&app).await;
    let http = reqwest::Client::new();

    let unknown = "thk_AAAAAAAAAAAAAAAA_0000000000000000000000000000000000000000000";
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        ("none", None, 401, "authentication_error"),
        ("malformed", Some("not-a-key"), 401, "authentication_error"),
        ("unknown", Some(unknown), 401, "authentication_error"),
        ("revoked", Some(&revoked), 401, "authentication_error"),
        ("disabled", Some(&disabled), 401, "authentication_error"),
        ("master key", Some(MASTER), 401, "authentication_error"),
        ("tenant admin key", Some(&admin_key), 403, "permission_error"),
        ("gateway platform key", Some(&gateway_key), 403, "permission_error"),
        ("finance platform key", Some(&finance_key), 403, "permission_error"),
        ("suspended tenant's key", Some(&suspended_key), 403, "permission_error"),
        ("data key", Some(&data_key), 200, ""),
    ];
    let routes: &[(Method, &str, Value)] = &[
        (
            Method::POST,
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (Method::POST, "/v1/embeddings", json!({"model": "m", "input": "x"})),
        (Method::GET, "/v1/models", Value::Null),
    ];
    let mut wrong = Vec::new();
    for (method, path, body) in routes {
        for (who, key, status, kind) in cases {
            let mut req = http.request(method.clone(), format!("{gateway}{path}"));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            if !body.is_null() {
                req = req.json(body);
            }
            let (got, answer) = send(req).await;
            let got_kind = answer["error"]["type"].as_str().unwrap_or_default();
            if got != *status || (*status != 200 && got_kind != *kind) {
                wrong.push(format!("{method} {path} as {who}: {got} {answer} (expected {status} {kind})"));
            }
            if *status != 200 {
                assert!(answer["error"]["message"].is_string(), "{method} {path} as {who}: {answer}");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    stop.cancel();
    app.stop().await;
}

/// A tenant's `routes` send a gateway path to one of its providers: chat completions to the
/// second provider although the first serves every model, embeddings to the first; a route
/// to a provider that does not serve the model is a 404 naming the route; a route that names
/// no provider of the tenant, or a path the gateway does not serve, is refused when saved.
#[tokio::test]
async fn a_tenants_routes_send_each_gateway_path_to_the_provider_they_name() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
    ))
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_addr = start_upstream(seen.clone()).await;
    let (tenant, _) = app.create_tenant("Routes").await;
    let save = |config: Value| {
        send(app.admin(Method::POST, "/tenant/config").header("X-Tenant-ID", &tenant).json(&config))
    };
    let providers = json!([
        {"name": "first", "kind": "openai", "base_url": format!("http://{upstream_addr}/v1"), "models": ["*"]},
        {"name": "second", "kind": "tensorzero", "base_url": format!("http://{upstream_addr}/tz/v1"), "models": ["*"]},
        {"name": "narrow", "kind": "openai", "base_url": format!("http://{upstream_addr}/v1"), "models": ["only-this"]}
    ]);
    let (status, body) = save(json!({"providers": providers, "routes": [
        {"path": "/v1/chat/completions", "method": "post", "provider": "second"},
        {"path": "/v1/embeddings", "method": "POST", "provider": "first", "description": "embeddings stay on first"}
    ]}))
    .await;
    assert_eq!(status, 200, "{body}");
    // Refused when saved, every problem named by its path.
    let (status, body) = save(json!({"providers": providers, "routes": [
        {"path": "/v1/embeddings", "method": "POST", "provider": "ghost"},
        {"path": "/v1/responses", "method": "POST", "provider": "first"}
    ]}))
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_config")), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("$.routes[0].provider: provider 'ghost' is not in $.providers"), "{message}");
    assert!(message.contains("$.routes[1]: only POST"), "{message}");

    let (_, key) = app.issue_key(&tenant, json!({})).await;
    let (gateway, stop) = start_gateway(&app).await;
    let http = reqwest::Client::new();
    let post =
        |path: &str, body: Value| send(http.post(format!("{gateway}{path}")).bearer_auth(&key).json(&body));
    let chat = json!({"model": "any-model", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post("/v1/chat/completions", chat.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        seen.lock().unwrap().requests.last().unwrap().0,
        "/tz/v1/chat/completions",
        "routed to second"
    );
    let (status, body) = post("/v1/embeddings", json!({"model": "any-model", "input": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen.lock().unwrap().requests.last().unwrap().0, "/v1/embeddings", "routed to first");

    // Embeddings to the narrow provider: its model passes, another is a 404 naming the route.
    let (status, body) = save(json!({"providers": providers, "routes": [
        {"path": "/v1/embeddings", "method": "POST", "provider": "narrow"}
    ]}))
    .await;
    assert_eq!(status, 200, "{body}");
    let before = seen.lock().unwrap().requests.len();
    let refused_in_time = eventually(Duration::from_secs(5), || async {
        post("/v1/embeddings", json!({"model": "any-model", "input": "hi"})).await.0 == 404
    })
    .await;
    assert!(refused_in_time, "the new routes reach the gateway within its refresh");
    let (status, body) = post("/v1/embeddings", json!({"model": "any-model", "input": "hi"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("model_not_found")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'narrow'"), "{body}");
    let (status, body) = post("/v1/embeddings", json!({"model": "only-this", "input": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    // Chat is no longer routed: the first provider serving the model takes it.
    let (status, body) = post("/v1/chat/completions", chat).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen.lock().unwrap().requests.last().unwrap().0, "/v1/chat/completions");
    let forwarded = seen.lock().unwrap().requests.len() - before;
    assert!(forwarded >= 2, "the refused requests never reached an upstream");
    stop.cancel();
    app.stop().await;
}

/// A gateway stopped cleanly (SIGTERM, as in a rolling upgrade) publishes the usage record
/// of every request it answered before it exits: neither the records still gathering for the
/// next publish nor those waiting for NATS (away when they were made, back while the gateway
/// stops) are lost with the process.
#[tokio::test]
async fn a_gateway_stopped_cleanly_publishes_every_record_it_metered() {
    tokenhub::app::install_crypto_provider();
    let mut nats = crate::relay::PrivateNats::start();
    let (db, stream) = (TestDb::new(), TestStream::on(nats.url()));
    let (app, tenant) = with_local_provider(&db, &stream, "Rolling").await;
    let (_, key) = app.issue_key(&tenant, json!({})).await;
    let mut gateway = ServerProcess::gateway(&db, &stream, &GATEWAY_ENV);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gateway.base);
    let ready = eventually(Duration::from_secs(15), || async {
        let res = http.get(format!("{}/v1/models", gateway.base)).bearer_auth(&key).send().await;
        res.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the gateway became ready: {}", gateway.log_so_far());

    let burst = || {
        let requests = (0..16).map(|_| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let res = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "answered whether NATS is there or not");
                res.headers()["x-request-id"].to_str().unwrap().to_string()
            }
        });
        futures::future::join_all(requests)
    };
    // A stream still open when the gateway stops: closed after the drain, and metered.
    let mut endless = http
        .post(url.clone())
        .bearer_auth(&key)
        .json(&json!({"model": "endless", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(endless.status(), 200);
    let mut ids = std::collections::BTreeSet::new();
    ids.insert(endless.headers()["x-request-id"].to_str().unwrap().to_string());
    assert!(endless.chunk().await.unwrap().is_some(), "the stream has begun");
    for _ in 0..4 {
        ids.extend(burst().await);
    }
    // NATS goes away; the next requests are answered and their records wait for it. The
    // gateway is stopped, and NATS comes back while it stops.
    nats.stop();
    ids.extend(burst().await);
    ids.extend(burst().await);
    gateway.sigterm();
    let stopping = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.spawn();
    // The stream goes on through the drain, then ends with the connection.
    let streamed = tokio::spawn(async move {
        let mut chunks = 0;
        while let Ok(Some(_)) = endless.chunk().await {
            chunks += 1;
        }
        chunks
    });
    let stopped = eventually(Duration::from_secs(25), || {
        let exited = gateway.exited();
        async move { exited }
    })
    .await;
    assert!(stopped, "the gateway stopped on SIGTERM: {}", gateway.log_so_far());
    let took = stopping.elapsed();
    assert!(
        took >= tokenhub::app::DRAIN && took < tokenhub::app::DRAIN + Duration::from_secs(5),
        "the open stream was given the drain, then closed: stopped after {took:?}"
    );
    assert!(streamed.await.unwrap() >= 50, "the stream went on while the gateway drained");
    let log = gateway.log_so_far();
    assert!(!log.contains("not published before shutdown"), "{log}");

    let published: Vec<String> = stream
        .messages_of(&stream.usage_stream)
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<String> = published.iter().cloned().collect();
    assert_eq!(unique.len(), published.len(), "each record once");
    let missing: Vec<&String> = ids.difference(&unique).collect();
    assert!(missing.is_empty(), "{} of {} records lost at shutdown: {missing:?}", missing.len(), ids.len());
    app.stop().await;
}
