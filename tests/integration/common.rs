//! Test harness: each test gets its own database, its own NATS stream and subject prefix, and
//! an in-process server on 127.0.0.1:0. Everything is removed on drop, even after a panic.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use sqlx::{Connection, PgPool};
use tokenhub::app::App;
use tokenhub::cli::Cli;
use tokenhub::config::Config;

/// KEK used by tests (base64 of 32 bytes).
pub const TEST_KEK: &str = "dGVzdC1rZWstdGVzdC1rZWstdGVzdC1rZWstMDAwMDA=";

/// Master key used by tests.
pub const MASTER: &str = "test-master-key-0123456789-abcdefghijkl";

/// Admin URL of the test PostgreSQL (`TEST_DATABASE_URL`).
pub fn pg_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// URL of the shared test NATS (`TEST_NATS_URL`).
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

fn url_with_db(name: &str) -> String {
    let base = pg_admin_url();
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..].find('/').map(|i| i + after_scheme).unwrap_or(base.len());
    format!("{}/{name}", &base[..host_end])
}

/// Runs `f` on a fresh runtime in a new thread (usable from `Drop`).
fn block_on_side<F: Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(f);
        }
    })
    .join();
}

/// A database of one test.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// A name; the database itself is created by the app (create-if-missing).
    pub fn new() -> Self {
        let name = format!("tokenhub_test_{}", unique());
        let url = url_with_db(&name);
        Self { name, url }
    }

    /// A pool on it (after the app created it).
    pub async fn pool(&self) -> PgPool {
        tokenhub::store::connect(&self.url, 10).await.unwrap_or_else(|e| panic!("connect test db: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on_side(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

/// A NATS stream name and subject prefix of one test.
pub struct TestStream {
    /// Stream.
    pub stream: String,
    /// Prefix.
    pub prefix: String,
    /// The usage stream.
    pub usage_stream: String,
    /// Server URL.
    pub url: String,
}

impl TestStream {
    /// Fresh names on the shared server.
    pub fn new() -> Self {
        Self::on(nats_url())
    }

    /// Fresh names on the server at `url`.
    pub fn on(url: String) -> Self {
        let id = unique();
        Self {
            stream: format!("TEST_{id}"),
            prefix: format!("t{id}"),
            usage_stream: format!("TEST_{id}_USAGE"),
            url,
        }
    }

    /// A JetStream context on the server.
    pub async fn js(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(&self.url).await.unwrap_or_else(|e| panic!("nats: {e}"));
        async_nats::jetstream::new(client)
    }

    /// Every message of the stream, in order.
    pub async fn messages(&self) -> Vec<async_nats::jetstream::message::StreamMessage> {
        self.messages_of(&self.stream).await
    }

    /// Every message of the stream `name`, in order.
    pub async fn messages_of(&self, name: &str) -> Vec<async_nats::jetstream::message::StreamMessage> {
        let js = self.js().await;
        let mut stream = js.get_stream(name).await.unwrap_or_else(|e| panic!("stream: {e}"));
        let last = stream.info().await.map(|i| i.state.last_sequence).unwrap_or(0);
        let mut out = Vec::new();
        for seq in 1..=last {
            if let Ok(m) = stream.get_raw_message(seq).await {
                out.push(m);
            }
        }
        out
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let (url, streams) = (self.url.clone(), [self.stream.clone(), self.usage_stream.clone()]);
        block_on_side(async move {
            if let Ok(Ok(client)) =
                tokio::time::timeout(Duration::from_secs(2), async_nats::connect(&url)).await
            {
                let js = async_nats::jetstream::new(client);
                for stream in streams {
                    let _ = js.delete_stream(&stream).await;
                }
            }
        });
    }
}

/// Builds a config for `db` and `stream`; `extra` adds flags.
pub fn config(db: &TestDb, stream: &TestStream, extra: &[&str]) -> Config {
    let mut args = vec![
        "tokenhub".to_string(),
        "--database-url".into(),
        db.url.clone(),
        "--nats-url".into(),
        stream.url.clone(),
        "--nats-events-stream".into(),
        stream.stream.clone(),
        "--nats-subject-prefix".into(),
        stream.prefix.clone(),
        "--nats-usage-stream".into(),
        stream.usage_stream.clone(),
    ];
    // Defaults a test may override in `extra`. Many tests send wrong credentials on purpose;
    // the throttle has its own test.
    for (flag, value) in [
        ("--key-pepper", "test-pepper-test-pepper-test-pepper-0000"),
        ("--kek", TEST_KEK),
        ("--database-max-connections", "8"),
        ("--auth-failures-per-minute", "0"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("serve".into());
    Cli::try_parse_from(args).unwrap_or_else(|e| panic!("config: {e}")).config
}

/// A running server.
pub struct TestApp {
    /// Address.
    pub addr: SocketAddr,
    /// The app's handles.
    pub app: App,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Pool on the test database.
    pub pool: PgPool,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    /// Starts a server with the master key `MASTER` configured.
    pub async fn start(db: &TestDb, stream: &TestStream) -> Self {
        Self::start_with(config(db, stream, &["--master-api-key", MASTER])).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(config: Config) -> Self {
        tokenhub::telemetry::init_logging("warn", false);
        let app = App::build(&config).await.unwrap_or_else(|e| panic!("start: {e}"));
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        let (state, token, tls) = (app.state.clone(), app.shutdown.clone(), app.tls.clone());
        let server = tokio::spawn(async move {
            let _ = tokenhub::app::serve_http(state, token, listener, tls).await;
        });
        let pool = app.state.pool.clone();
        Self { addr, app, http: reqwest::Client::new(), pool, server }
    }

    /// Stops background tasks and the server.
    pub async fn stop(self) {
        self.app.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        self.app.drain().await;
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the master key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).header("X-Master-Key", MASTER)
    }

    /// Creates a tenant; returns (tenant_id, api_key).
    pub async fn create_tenant(&self, name: &str) -> (String, String) {
        let res = self
            .admin(reqwest::Method::POST, "/admin/tenants")
            .json(&serde_json::json!({"name": name, "plan": "pro"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request: {e}"));
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap_or_default();
        (
            body["tenant_id"].as_str().unwrap_or_default().into(),
            body["api_key"].as_str().unwrap_or_default().into(),
        )
    }

    /// Head of the event log.
    pub async fn head(&self) -> i64 {
        tokenhub_projections::log::head_position(&self.pool).await.unwrap_or(-1)
    }

    /// Waits until the relay published everything committed so far.
    pub async fn wait_relayed(&self, timeout: Duration) {
        let head = self.head().await;
        let mut rx = self.app.relay_position.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= head)).await.is_ok();
        assert!(reached, "relay did not reach {head} within {timeout:?} (at {})", *rx.borrow());
    }
}

/// Sends and decodes: (status, JSON body).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap_or_else(|e| panic!("request: {e}"));
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Issues a platform key with `role`; returns the full key.
    pub async fn platform_key(&self, role: &str) -> String {
        let (status, body) = send(
            self.admin(reqwest::Method::POST, "/admin/platform-keys")
                .json(&serde_json::json!({"name": "gw", "role": role})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["api_key"].as_str().unwrap_or_default().to_string()
    }

    /// Verifies `body` with `gateway_key`; returns the answer.
    pub async fn verify(&self, gateway_key: &str, body: Value) -> Value {
        let (status, answer) =
            send(self.http.post(self.url("/v1/keys/verify")).bearer_auth(gateway_key).json(&body)).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Issues a key in `tenant` through the admin API; returns (public_id, full key).
    pub async fn issue_key(&self, tenant: &str, extra: Value) -> (String, String) {
        let mut body = serde_json::json!({"tenant_id": tenant, "name": "k"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, answer) = send(self.admin(reqwest::Method::POST, "/admin/api-keys").json(&body)).await;
        assert_eq!(status, 201, "{answer}");
        (
            answer["public_id"].as_str().unwrap_or_default().into(),
            answer["api_key"].as_str().unwrap_or_default().into(),
        )
    }
}

/// Key pepper of server processes.
pub const PEPPER: &str = "two-instance-pepper-two-instance-pepper";

/// A `tokenhub serve` process (the real binary) on a test database and stream, logging at
/// debug level to a file; killed with SIGKILL on drop.
pub struct ServerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log: std::path::PathBuf,
}

impl ServerProcess {
    /// Starts the binary with the master key `MASTER` (not waiting for it).
    pub fn start(db: &TestDb, stream: &TestStream) -> Self {
        Self::start_with(db, stream, &[("MASTER_API_KEY", MASTER)])
    }

    /// Starts the binary with `env` added (an empty value removes a variable).
    pub fn start_with(db: &TestDb, stream: &TestStream, env: &[(&str, &str)]) -> Self {
        Self::spawn(db, stream, "serve", env)
    }

    /// Starts `tokenhub gateway` on a free port (`base` is the gateway's address).
    pub fn gateway(db: &TestDb, stream: &TestStream, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let mut env = env.to_vec();
        env.push(("GATEWAY_LISTEN_ADDR", &listen));
        let mut process = Self::spawn(db, stream, "gateway", &env);
        process.base = format!("http://{listen}");
        process
    }

    fn spawn(db: &TestDb, stream: &TestStream, subcommand: &str, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::env::temp_dir().join(format!("tokenhub-{port}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tokenhub"));
        command
            .arg(subcommand)
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", &stream.url)
            .env("NATS_EVENTS_STREAM", &stream.stream)
            .env("NATS_SUBJECT_PREFIX", &stream.prefix)
            .env("NATS_USAGE_STREAM", &stream.usage_stream)
            .env("TOKENHUB_KEY_PEPPER", PEPPER)
            .env("TOKENHUB_KEK", TEST_KEK)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("LOG_LEVEL", "debug")
            .env_remove("MASTER_API_KEY")
            .env_remove("MASTER_API_KEY_HASH");
        for (k, v) in env {
            if v.is_empty() {
                command.env_remove(k);
            } else {
                command.env(k, v);
            }
        }
        let child =
            command.stdout(std::process::Stdio::null()).stderr(file).spawn().expect("tokenhub binary starts");
        Self { child, base: format!("http://127.0.0.1:{port}"), log }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, http: &reqwest::Client) {
        for _ in 0..300 {
            if let Ok(res) = http.get(format!("{}/readyz", self.base)).send().await {
                if res.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server {} did not become ready", self.base);
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Its log so far (it keeps running).
    pub fn log_so_far(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it (SIGKILL) and returns its log.
    pub fn logs(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl ServerProcess {
    /// `kill -9`: no shutdown, no flush, no checkpoint.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a clean stop) and returns at once.
    pub fn sigterm(&self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
    }

    /// A clean stop (SIGTERM), waiting up to 15 s.
    pub fn terminate(&mut self) {
        self.sigterm();
        for _ in 0..150 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill9();
    }
}

/// A small deterministic generator for generated histories and inputs (xorshift64: the same
/// sequence every run, so a failure reproduces).
pub struct XorShift(pub u64);

impl XorShift {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Reads the whole audit log through `GET /audit/events` (as the master key) and checks every
/// record against the published schema of `AuditItem` (its payload typed per event type);
/// returns the event types seen. Any field an event gains without its schema fails here.
pub async fn assert_audit_matches_its_schema(base: &str) -> std::collections::BTreeSet<String> {
    // A client of its own: a test's client may hold a session cookie.
    let http = reqwest::Client::new();
    let mut doc: Value =
        serde_json::from_str(&tokenhub::http::openapi::document_json()).expect("the document");
    doc["$ref"] = Value::from("#/components/schemas/AuditItem");
    let validator = jsonschema::draft202012::new(&doc).expect("the schema compiles");
    let (mut seen, mut cursor) = (std::collections::BTreeSet::new(), 0_i64);
    loop {
        let res = http
            .get(format!("{base}/audit/events?limit=1000&cursor={cursor}"))
            .header("X-Master-Key", MASTER)
            .send()
            .await
            .expect("audit page");
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.expect("json");
        for item in page["data"].as_array().expect("data") {
            let errors: Vec<String> =
                validator.iter_errors(item).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(
                errors.is_empty(),
                "{} does not match its schema: {errors:?}\n{item}",
                item["event_type"]
            );
            // The check can fail: the same record with another event type's fields does not pass.
            let mut wrong = item.clone();
            wrong["payload"]["type"] = Value::from("tenant.created");
            if item["event_type"] != "tenant.created" {
                assert!(!validator.is_valid(&wrong), "a mislabelled payload passes: {wrong}");
            }
            seen.insert(item["event_type"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = next,
            None => return seen,
        }
    }
}
