//! Server limits and credential costs (findings 7 and 8): slow clients are cut off, open
//! connections are capped, excess requests are shed, slow requests time out — each with a
//! clear answer — and junk credentials cost no hashing, or bounded hashing.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Reads until the peer closes or `within` passes; true when it closed.
async fn closed_within(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_connections_are_capped() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--http-header-read-timeout-ms", "400", "--http-max-connections", "4"],
    ))
    .await;
    // A client trickling its headers a byte at a time is cut off after the timeout.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for _ in 0..30 {
            if slow.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    trickle.await;
    assert!(closed_within(&mut slow, Duration::from_secs(1)).await, "the slow client was not cut off");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Four idle connections fill the cap: a fifth is closed at once, and the server answers
    // again as soon as the idle ones are cut off.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_millis(300)).await,
        "a connection over the cap stayed open"
    );
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(2)).await,
            "an idle connection outlived the header timeout"
        );
    }
    let (s, _) = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!(s, 200);
    // A keep-alive connection idling after its request is cut off too.
    let mut kept = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(
        closed_within(&mut kept, Duration::from_secs(2)).await,
        "an idle keep-alive connection stayed open"
    );
    app.stop().await;
}

#[tokio::test]
async fn excess_requests_are_shed_and_slow_ones_time_out_with_503() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app =
        TestApp::start_with(config(&db, &stream, &["--master-api-key", MASTER, "--http-max-in-flight", "1"]))
            .await;
    let calls = (0..24).map(|_| send(app.admin(Method::GET, "/admin/tenants")));
    let answers = futures::future::join_all(calls).await;
    let shed = answers.iter().filter(|(s, b)| *s == 503 && b["error"]["code"] == "overloaded").count();
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 503), "{answers:?}");
    assert!(shed > 0, "24 concurrent requests over a limit of 1: none shed");
    app.stop().await;

    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--http-request-timeout-ms", "1"],
    ))
    .await;
    let mut timed_out = 0;
    // A create waits for its commit (an fsync) and the query tables: always over 1 ms.
    for i in 0..10 {
        let res = app
            .admin(Method::POST, "/admin/tenants")
            .json(&serde_json::json!({"name": format!("slow {i}")}))
            .send()
            .await
            .unwrap();
        if res.status() == 503 {
            assert!(res.headers().contains_key("retry-after"));
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "request_timeout");
            timed_out += 1;
        }
    }
    assert!(timed_out > 0, "a 1 ms request timeout never fired");
    app.stop().await;
}

#[tokio::test]
async fn junk_credentials_cost_no_hashing_and_argon2_is_bounded() {
    // A generated (high-entropy) master key: junk is refused by its shape, before any hash.
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(&db, &stream, &[])).await;
    let started = Instant::now();
    for i in 0..300 {
        let (s, _) = send(app.http.get(app.url("/admin/tenants")).bearer_auth(format!("junk-{i}"))).await;
        assert_eq!(s, 401);
    }
    let per_request = started.elapsed() / 300;
    assert!(per_request < Duration::from_millis(5), "junk costs {per_request:?} per request");
    app.stop().await;

    // A person-chosen key given as an argon2 hash: concurrent junk is answered at once (401,
    // or 503 when both argon2 slots are busy), never queued.
    let (db, stream) = (TestDb::new(), TestStream::new());
    let phc = tokenhub::auth::master::hash_master_key("correct horse battery staple, 32+ chars").unwrap();
    let app = TestApp::start_with(config(&db, &stream, &["--master-api-key-hash", &phc])).await;
    let calls =
        (0..16).map(|i| send(app.http.get(app.url("/admin/tenants")).bearer_auth(format!("guess-{i}"))));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|(s, _)| *s == 401 || *s == 503), "{answers:?}");
    assert!(answers.iter().any(|(s, b)| *s == 503 && b["error"]["code"] == "authentication_busy"));
    app.stop().await;

    // Failed attempts are throttled per address: after the limit, 429 before any check.
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--auth-failures-per-minute", "5"],
    ))
    .await;
    for _ in 0..5 {
        let (s, _) = send(app.http.get(app.url("/admin/tenants")).header("X-Master-Key", "wrong")).await;
        assert_eq!(s, 401);
    }
    let res = app.http.get(app.url("/admin/tenants")).header("X-Master-Key", "wrong").send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    app.stop().await;
}

#[tokio::test]
async fn a_short_master_key_is_a_startup_error() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let result = tokenhub::app::App::build(&config(&db, &stream, &["--master-api-key", "short-key"])).await;
    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("MASTER_API_KEY must be at least 32 characters"), "{error}");
}

#[tokio::test]
async fn a_generated_master_key_goes_to_a_0600_file_when_stderr_is_not_a_terminal() {
    use std::os::unix::fs::PermissionsExt;
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let dir = std::env::temp_dir().join(format!("tokenhub-mk-{}", uuid::Uuid::new_v4().simple()));
    let key_file = dir.join("master-key");
    std::fs::create_dir_all(&dir).unwrap();
    let path = key_file.to_str().unwrap().to_string();
    let mut server = ServerProcess::start_with(&db, &stream, &[("MASTER_KEY_FILE", &path)]);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let text = server.logs();
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_string();
    assert!(tokenhub::auth::master::is_generated_shape(&key), "{key}");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!text.contains(&key), "the key reached the log");
    assert!(text.contains(key_file.to_str().unwrap()), "the log names the file");
    let _ = std::fs::remove_dir_all(&dir);
}
