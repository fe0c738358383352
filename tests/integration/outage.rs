//! A PostgreSQL outage, made real by a TCP proxy between the server and PostgreSQL that drops
//! every connection and refuses new ones: requests that need the database fail fast (503 within
//! half a second once it is known down), verification and usage reports go on (memory and
//! JetStream), and once the database is back the usage totals are exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::usage::{post_usage, record, wait_counted};

/// A TCP proxy to `target` that can be cut (every open connection dropped, new ones closed at
/// once) and restored.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (c, o) = (cut.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                o.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { port, cut, open, accept }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn during_a_database_outage_requests_fail_fast_and_usage_is_still_taken_exactly() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let _ = db.pool().await; // created and reachable directly
    let url = url::Url::parse(&db.url).unwrap();
    let proxy = Proxy::start(format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))).await;
    let mut through = url.clone();
    through.set_port(Some(proxy.port)).unwrap();
    let mut cfg = config(&db, &stream, &["--master-api-key", MASTER]);
    cfg.database_url = through.to_string();
    let app = TestApp::start_with(cfg).await;
    let (tenant, admin) = app.create_tenant("Outage").await;
    let (key, full) = app.issue_key(&tenant, json!({})).await;
    let gateway = app.platform_key("gateway").await;
    assert_eq!(send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin)).await.0, 200);

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Known down: a request that needs the database is answered within half a second.
    for _ in 0..3 {
        let started = Instant::now();
        let (s, body) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin)).await;
        let took = started.elapsed();
        assert_eq!((s, body["error"]["code"].as_str()), (503, Some("service_unavailable")), "{body}");
        assert!(took < Duration::from_millis(800), "answered after {took:?}");
    }
    // Verification and usage go on.
    assert_eq!(app.verify(&gateway, json!({"key": full})).await["code"], "VALID");
    let mut sent = 0u64;
    for i in 0..10 {
        let (s, body) = post_usage(&app, &gateway, vec![record(&format!("o-{i}"), &key, 100, 10)]).await;
        assert_eq!(s, 200, "usage during the outage: {body}");
        sent += 110;
    }
    // A re-post during the outage is not counted twice.
    assert_eq!(post_usage(&app, &gateway, vec![record("o-3", &key, 100, 10)]).await.0, 200);

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(15), || async {
            send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin)).await.0 == 200
        })
        .await,
        "the server recovers when the database is back"
    );
    wait_counted(&app, &stream).await;
    let (s, summary) = send(app.admin(Method::GET, "/usage/summary").header("X-Tenant-ID", &tenant)).await;
    assert_eq!(s, 200, "{summary}");
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records WHERE tenant_id = $1")
        .bind(&tenant)
        .fetch_one(&db.pool().await)
        .await
        .unwrap();
    assert_eq!(counted, 10, "every record once: {summary}");
    assert!(summary.to_string().contains(&sent.to_string()), "exact totals ({sent} tokens): {summary}");
    app.stop().await;
}

/// The pool hands out a connection used within the last second without a check (a round
/// trip saved on every acquire under load), and checks one idle for longer: a connection the
/// database dropped while it sat idle is replaced, not handed out to fail a query.
#[tokio::test]
async fn a_connection_idle_over_a_second_is_checked_before_it_is_handed_out() {
    let db = TestDb::new();
    let _ = db.pool().await; // created and migrated
    let pool = tokenhub::store::connect(&db.url, 1).await.unwrap();
    let other = db.pool().await;
    let backend = || async { sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&pool).await };
    let first = backend().await.unwrap();
    assert_eq!(backend().await.unwrap(), first, "one connection, kept");
    let killed: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(first).fetch_one(&other).await.unwrap();
    assert!(killed);
    tokio::time::sleep(tokenhub::store::CHECK_IDLE_AFTER + Duration::from_millis(300)).await;
    let second = tokio::time::timeout(Duration::from_secs(10), backend())
        .await
        .expect("answered in time")
        .expect("the dropped connection was replaced before the query");
    assert_ne!(second, first);
}
