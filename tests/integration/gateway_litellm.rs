//! `tokenhub gateway` between two programs nobody here wrote: the official `openai` Python SDK
//! as the client and LiteLLM's proxy (PyPI, pinned in `tests/litellm/requirements.txt`) as the
//! upstream, with models that answer with a mock response. The gateway sends the proxy's
//! master key from a tenant secret, meters what the proxy reports, and keeps nothing of the
//! content.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::gateway::{sdk_python, start_gateway};

/// The completion LiteLLM's mock model answers (`tests/litellm/config.yaml`).
const LITELLM_COMPLETION: &str = "litellm-canary-completion-4c1d";

static PIP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `tests/litellm/.venv/bin/litellm`, installed on first use (CI installs it beforehand).
fn litellm_bin() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/litellm");
    let bin = dir.join(".venv/bin/litellm");
    let _guard = PIP.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.exists() {
        let venv = std::process::Command::new("python3").args(["-m", "venv"]).arg(dir.join(".venv")).status();
        assert!(venv.is_ok_and(|s| s.success()), "python3 -m venv tests/litellm/.venv");
        let pip = std::process::Command::new(dir.join(".venv/bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(dir.join("requirements.txt"))
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install -r tests/litellm/requirements.txt");
    }
    bin
}

/// A running LiteLLM proxy; killed when dropped.
struct LiteLlm {
    child: tokio::process::Child,
    base: String,
    log: std::path::PathBuf,
}

impl LiteLlm {
    async fn start(master_key: &str) -> Self {
        let bin = tokio::task::spawn_blocking(litellm_bin).await.unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/litellm/config.yaml");
        let log = std::env::temp_dir().join(format!("litellm-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", "1"])
            .env("LITELLM_MASTER_KEY", master_key)
            // The model cost map from the package, not from the network.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("litellm starts");
        let base = format!("http://127.0.0.1:{port}");
        let mut proxy = Self { child, base, log };
        let http = reqwest::Client::new();
        let live = eventually(Duration::from_secs(90), || {
            let url = format!("{}/health/liveliness", proxy.base);
            let http = http.clone();
            async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        if !live || proxy.child.try_wait().ok().flatten().is_some() {
            panic!("LiteLLM did not start: {}", std::fs::read_to_string(&proxy.log).unwrap_or_default());
        }
        proxy
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The SDK's completion, stream, embedding, model list and refusals, through the gateway to
/// LiteLLM: the proxy's own answers come back, each forwarded request is metered once with
/// the key-bound tags from what LiteLLM reported, and the content is in no table and on no
/// stream.
#[tokio::test]
async fn the_openai_sdk_through_the_gateway_to_litellm() {
    let (python, master) = (tokio::task::spawn_blocking(sdk_python).await.unwrap(), "sk-litellm-test-9b2e");
    let (db, stream) = (TestDb::new(), TestStream::new());
    let (app, litellm) = tokio::join!(
        TestApp::start_with(config(
            &db,
            &stream,
            &["--master-api-key", MASTER, "--gateway-allow-private-upstreams", "true"],
        )),
        LiteLlm::start(master)
    );
    let (tenant, _) = app.create_tenant("LiteLLM user").await;
    let as_tenant = |m: Method, p: &str| app.admin(m, p).header("X-Tenant-ID", &tenant);
    let (status, body) = send(
        as_tenant(Method::POST, "/tenant/secrets").json(&json!({"key": "LITELLM_KEY", "value": master})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let config = json!({
        "credentials": {"litellm": {"secret_ref": "LITELLM_KEY"}},
        "providers": [{"name": "litellm", "kind": "openai", "base_url": format!("{}/v1", litellm.base),
            "credential": "litellm", "models": ["mock-chat", "mock-embed"]}]
    });
    let (status, body) = send(as_tenant(Method::POST, "/tenant/config").json(&config)).await;
    assert_eq!(status, 200, "{body}");
    let (public_id, key) = app.issue_key(&tenant, json!({"tags": {"customer_id": "acme"}})).await;
    let (_, spent) = app.issue_key(&tenant, json!({"quota_limit": 1})).await;
    let (gateway, stop) = start_gateway(&app).await;

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai-sdk/client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(python)
            .arg(script)
            .args([format!("{gateway}/v1"), key, "mock-chat".into(), spent, "mock-embed".into()])
            .output(),
    )
    .await
    .expect("the SDK client ends")
    .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen_by_sdk: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(seen_by_sdk["content"], LITELLM_COMPLETION, "{seen_by_sdk}");
    assert_eq!(seen_by_sdk["streamed"], LITELLM_COMPLETION, "{seen_by_sdk}");
    assert!(seen_by_sdk["usage"].as_u64().is_some_and(|n| n > 0), "{seen_by_sdk}");
    assert_eq!(seen_by_sdk["embedding"], 2, "{seen_by_sdk}");
    assert_eq!(seen_by_sdk["models"], json!(["mock-chat", "mock-embed"]));
    assert_eq!(
        seen_by_sdk["wrong_key"],
        json!({"status": 401, "code": "MALFORMED", "type": "authentication_error"})
    );
    assert_eq!(
        seen_by_sdk["spent"],
        json!({"status": 429, "code": "QUOTA_EXCEEDED", "type": "insufficient_quota"})
    );

    // Metered once per forwarded request (completion, stream, embedding), from LiteLLM's usage.
    let records = || async {
        stream
            .messages_of(&stream.usage_stream)
            .await
            .iter()
            .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap())
            .filter(|r| r["data"]["key_id"] == public_id.as_str())
            .collect::<Vec<Value>>()
    };
    assert!(eventually(Duration::from_secs(15), || async { records().await.len() >= 3 }).await);
    let mine = records().await;
    assert_eq!(mine.len(), 3, "one record per forwarded request: {mine:?}");
    let mut models: Vec<&str> = mine.iter().filter_map(|r| r["data"]["model"].as_str()).collect();
    models.sort_unstable();
    assert_eq!(models, ["mock-chat", "mock-chat", "mock-embed"]);
    for r in &mine {
        assert_eq!(r["data"]["tags"], json!({"customer_id": "acme"}), "{r}");
        assert_eq!(r["data"]["status"], 200, "{r}");
        assert_ne!(r["data"]["usage_unknown"], true, "LiteLLM reports usage: {r}");
    }
    let chat_tokens: u64 = mine
        .iter()
        .filter(|r| r["data"]["model"] == "mock-chat")
        .filter_map(|r| r["data"]["llm_tokens"].as_u64())
        .sum();
    assert!(chat_tokens > 0, "tokens counted from LiteLLM's usage: {mine:?}");

    // Nothing of the content kept: not on either stream, not in any table.
    for m in stream.messages_of(&stream.usage_stream).await.iter().chain(stream.messages().await.iter()) {
        assert!(!String::from_utf8_lossy(&m.payload).contains(LITELLM_COMPLETION), "content on NATS");
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
            "SELECT count(*) FROM \"{table}\" t WHERE t::text LIKE '%' || $1 || '%'"
        ))
        .bind(LITELLM_COMPLETION)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(found, 0, "content kept in table {table}");
    }
    stop.cancel();
    app.stop().await;
    drop(litellm);
}
