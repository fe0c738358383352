//! The NATS relay against the real server: message shape and id, restart without duplicates,
//! and catch-up after a NATS outage (a private nats-server this test stops and restarts).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn each_event_reaches_nats_once_as_a_cloudevent_with_its_id() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, key) = app.create_tenant("Relayed").await;
    send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))).await;
    app.wait_relayed(Duration::from_secs(10)).await;

    let messages = stream.messages().await;
    let rows: Vec<(i64, uuid::Uuid, String, String)> =
        sqlx::query_as("SELECT position, event_id, event_type, aggregate_type FROM events ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .unwrap_or_default();
    assert_eq!(messages.len(), rows.len());
    assert_eq!(rows.len(), 5, "tenant.created, api_key.issued, 2 × role.created, tenant.suspended");
    for (message, (position, event_id, event_type, aggregate)) in messages.iter().zip(&rows) {
        let msg_id = message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_string());
        assert_eq!(msg_id, Some(event_id.to_string()));
        assert_eq!(
            message.headers.get("Tokenhub-Position").map(|v| v.as_str().to_string()),
            Some(position.to_string())
        );
        let suffix = event_type.rsplit('.').next().unwrap_or_default();
        assert_eq!(
            message.subject.as_str(),
            format!("{}.events.{tenant}.{aggregate}.{suffix}", stream.prefix)
        );
        let text = String::from_utf8_lossy(&message.payload).to_string();
        assert!(!text.contains(&key) && !text.contains("secret_hash"), "no key material on NATS");
        let ce: Value = serde_json::from_str(&text).unwrap_or_default();
        for attr in ["id", "source", "specversion", "type"] {
            assert!(ce[attr].as_str().is_some_and(|s| !s.is_empty()), "CloudEvents requires {attr}");
        }
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], event_id.to_string());
        assert_eq!(ce["type"], format!("tokenhub.{event_type}.v1"));
        assert_eq!(ce["position"], *position);
        assert_eq!(ce["data"]["metadata"]["actor_kind"], "super_admin");
        assert_eq!(ce["data"]["payload"]["type"], event_type.as_str());
    }
    app.stop().await;
}

async fn assert_stream_matches_log(app: &TestApp, stream: &TestStream) {
    let messages = stream.messages().await;
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_string()))
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event delivered twice");
    let events: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events ORDER BY position")
        .fetch_all(&app.pool)
        .await
        .unwrap_or_default();
    let events: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert_eq!(ids, events, "the stream holds the log, in order, once");
}

#[tokio::test]
async fn a_lost_publish_never_leaves_a_gap_or_a_reordering_in_the_stream() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    app.create_tenant("Before").await;
    app.wait_relayed(Duration::from_secs(10)).await;
    // The next tenant's five events go out in one pipelined batch; the second is lost, as a
    // publish whose ack never comes back. Those after it were sent already (finding 10: they
    // were stored, and the restart skipped past them, losing the second for good).
    for lost in [app.head().await + 2, app.head().await + 5 + 1] {
        app.app.relay_faults.at(lost);
        app.create_tenant("During").await;
        app.wait_relayed(Duration::from_secs(15)).await;
        assert_stream_matches_log(&app, &stream).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn relay_restart_after_a_crash_before_its_checkpoint_publishes_nothing_twice() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for i in 0..5 {
        app.create_tenant(&format!("R{i}")).await;
    }
    app.wait_relayed(Duration::from_secs(10)).await;
    app.stop().await;

    // Simulate a crash after publishing but before storing the position: roll it back to 0.
    let pool = db.pool().await;
    sqlx::query("UPDATE checkpoints SET position = 0 WHERE name LIKE 'nats_relay:%'")
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let app = TestApp::start(&db, &stream).await;
    for i in 0..3 {
        app.create_tenant(&format!("S{i}")).await;
    }
    app.wait_relayed(Duration::from_secs(10)).await;
    assert_stream_matches_log(&app, &stream).await;
    app.stop().await;
}

/// A private nats-server with JetStream on a free port, storing in a temp folder.
pub struct PrivateNats {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

pub fn nats_server_bin() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
            .unwrap_or_else(|| "nats-server".into())
    })
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let dir =
            std::env::temp_dir().join(format!("tokenhub-nats-{port}-{}", uuid::Uuid::new_v4().simple()));
        let mut nats = Self { child: None, port, dir };
        nats.spawn();
        nats
    }

    pub fn spawn(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("private nats-server did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn commands_work_during_a_nats_outage_and_the_relay_catches_up() {
    let mut nats = PrivateNats::start();
    let (db, stream) = (TestDb::new(), TestStream::on(nats.url()));
    let app = TestApp::start(&db, &stream).await;
    app.create_tenant("Before").await;
    app.wait_relayed(Duration::from_secs(10)).await;

    nats.stop();
    assert!(
        eventually(Duration::from_secs(10), || async {
            send(app.http.get(app.url("/readyz"))).await.0 == 503
        })
        .await,
        "readyz reports the outage"
    );
    let started = std::time::Instant::now();
    for i in 0..3 {
        app.create_tenant(&format!("During{i}")).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "commands do not wait for NATS");
    let published = *app.app.relay_position.borrow();
    assert!(published < app.head().await, "nothing relayed while NATS is down");

    nats.spawn();
    app.wait_relayed(Duration::from_secs(30)).await;
    assert_stream_matches_log(&app, &stream).await;
    let (status, _) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(status, 200);
    app.stop().await;
    drop(stream);
    drop(nats);
}

#[tokio::test]
async fn events_tail_prints_the_stream() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, key) = app.create_tenant("Tail").await;
    app.wait_relayed(Duration::from_secs(10)).await;
    let output = Command::new(env!("CARGO_BIN_EXE_tokenhub"))
        .args(["events", "tail"])
        .env("NATS_URL", &stream.url)
        .env("NATS_EVENTS_STREAM", &stream.stream)
        .env("LOG_LEVEL", "error")
        .output()
        .expect("tokenhub runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as i64, app.head().await);
    assert!(
        lines[0].starts_with(&format!("{}.events.{tenant}.tenant.created Nats-Msg-Id=", stream.prefix)),
        "{}",
        lines[0]
    );
    assert!(!text.contains(&key[21..]));
    let last = Command::new(env!("CARGO_BIN_EXE_tokenhub"))
        .args(["events", "tail", "--last", "1"])
        .env("NATS_URL", &stream.url)
        .env("NATS_EVENTS_STREAM", &stream.stream)
        .output()
        .expect("tokenhub runs");
    assert_eq!(String::from_utf8_lossy(&last.stdout).lines().count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_of_another_database_is_refused_not_skipped() {
    let stream = TestStream::new();
    let (db_a, db_b) = (TestDb::new(), TestDb::new());
    let a = TestApp::start(&db_a, &stream).await;
    for i in 0..3 {
        a.create_tenant(&format!("A{i}")).await;
    }
    a.wait_relayed(Duration::from_secs(10)).await;
    a.stop().await;
    let in_stream = stream.messages().await.len();

    // A second, empty database pointed at the same stream must not skip its own events.
    let b = TestApp::start_with(config(
        &db_b,
        &stream,
        &["--master-api-key", MASTER, "--relay-stuck-after-seconds", "1"],
    ))
    .await;
    b.create_tenant("B").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*b.app.relay_position.borrow(), 0, "nothing relayed, nothing skipped");
    assert_eq!(stream.messages().await.len(), in_stream);
    // Still refused once this log has grown past the stream's last position.
    for i in 0..3 {
        b.create_tenant(&format!("B{i}")).await;
    }
    assert!(b.head().await > in_stream as i64);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*b.app.relay_position.borrow(), 0, "nothing relayed, nothing skipped");
    assert_eq!(stream.messages().await.len(), in_stream);
    // Not silent: /readyz names the stuck relay, the metric shows the backlog.
    let (status, ready) = send(b.http.get(b.url("/readyz"))).await;
    assert_eq!((status, ready["checks"]["relay"].as_str()), (503, Some("stuck")), "{ready}");
    let metrics = b.http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let lag = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tokenhub_relay_lag_events "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(lag.is_some_and(|l| l >= 4.0), "{lag:?}");
    b.stop().await;
}

/// The events stream purged under a running relay (or a replica that lost its data): the relay
/// does not stop for good; it goes on from its checkpoint and the next events reach the stream.
#[tokio::test]
async fn a_purged_events_stream_does_not_stop_the_relay() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    app.create_tenant("Before").await;
    app.wait_relayed(Duration::from_secs(10)).await;
    // Purged while the relay runs, and again while no instance runs (the next start finds
    // an empty stream whose sequence has moved on).
    let js = stream.js().await;
    js.get_stream(&stream.stream).await.unwrap().purge().await.unwrap();
    app.create_tenant("Between").await;
    app.wait_relayed(Duration::from_secs(15)).await;
    app.stop().await;
    js.get_stream(&stream.stream).await.unwrap().purge().await.unwrap();
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("After").await;
    app.wait_relayed(Duration::from_secs(15)).await;
    let types: Vec<String> = stream
        .messages()
        .await
        .iter()
        .filter_map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
        .filter(|e| {
            e["data"]["tenant_id"] == tenant.as_str()
                || e["subject"].as_str().is_some_and(|s| s.contains(&tenant))
        })
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect();
    assert!(!types.is_empty(), "the events after the purge reached the stream");
    app.stop().await;
}

/// `NATS_URL` names the nodes of a cluster: with the first one down at start, the instance
/// uses another (a list used to be a startup error, and a single down node stopped it).
#[tokio::test]
async fn a_nats_url_list_with_a_node_down_still_connects() {
    tokenhub::app::install_crypto_provider();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let urls = format!("nats://127.0.0.1:{down},{}", stream.url);
    let server = ServerProcess::start_with(&db, &stream, &[("MASTER_API_KEY", MASTER), ("NATS_URL", &urls)]);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let (status, body) = send(
        http.post(format!("{}/admin/tenants", server.base))
            .header("X-Master-Key", MASTER)
            .json(&serde_json::json!({"name": "Listed"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        eventually(Duration::from_secs(10), || async { !stream.messages().await.is_empty() }).await,
        "events reached the stream through the live node"
    );
}

/// `tokenhub events republish` repairs a stream that lost messages: after a purge and a message
/// deleted in the middle, every event of the log is in the stream again (by position, with its
/// event id), a second run publishes nothing, and the relay goes on publishing new events.
#[tokio::test]
async fn republish_refills_a_stream_that_lost_messages_and_is_idempotent() {
    use tokenhub::relay::republish::republish;
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for name in ["One", "Two", "Three"] {
        app.create_tenant(name).await;
    }
    app.wait_relayed(Duration::from_secs(10)).await;
    let js = stream.js().await;
    let positions = |messages: Vec<async_nats::jetstream::message::StreamMessage>| {
        let mut found: Vec<(i64, String)> = messages
            .iter()
            .map(|m| {
                let h = &m.headers;
                (
                    h.get("Tokenhub-Position").unwrap().as_str().parse::<i64>().unwrap(),
                    h.get("Nats-Msg-Id").unwrap().as_str().to_string(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let before = positions(stream.messages().await);
    assert!(before.len() >= 6, "{before:?}");
    // A short duplicate window, so the copies lost a moment ago can be published again soon.
    let mut settings = js.get_stream(&stream.stream).await.unwrap().info().await.unwrap().config.clone();
    settings.duplicate_window = Duration::from_secs(1);
    js.update_stream(&settings).await.unwrap();
    // Lost: everything (a purge), then new events, then one of them deleted in the middle.
    js.get_stream(&stream.stream).await.unwrap().purge().await.unwrap();
    app.create_tenant("Four").await;
    app.create_tenant("Five").await;
    app.wait_relayed(Duration::from_secs(15)).await;
    let mut s = js.get_stream(&stream.stream).await.unwrap();
    let first = s.info().await.unwrap().state.first_sequence;
    s.delete_message(first + 1).await.unwrap();

    let config = config(&db, &stream, &[]).events_stream();
    let mut ticks = 0;
    let report = republish(&app.pool, &js, &config, true, &mut |_, _| ticks += 1).await.unwrap();
    assert!(report.in_log > report.in_stream && report.republished == 0, "{report:?}");
    let report = republish(&app.pool, &js, &config, false, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.republished, report.in_log - report.in_stream, "{report:?}");
    assert!(ticks > 0, "progress is reported");
    let log: Vec<(i64, String)> =
        sqlx::query_as::<_, (i64, uuid::Uuid)>("SELECT position, event_id FROM events ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(p, id)| (p, id.to_string()))
            .collect();
    assert_eq!(positions(stream.messages().await), log, "every event of the log, once, with its id");
    let again = republish(&app.pool, &js, &config, false, &mut |_, _| {}).await.unwrap();
    assert_eq!((again.republished, again.in_stream), (0, again.in_log), "idempotent");
    // The relay goes on after the repair.
    app.create_tenant("Six").await;
    app.wait_relayed(Duration::from_secs(15)).await;
    let head: i64 =
        sqlx::query_scalar("SELECT max(position) FROM events").fetch_one(&app.pool).await.unwrap();
    let after = positions(stream.messages().await);
    assert!(head > log.len() as i64 && after.len() as i64 == head, "{} messages, head {head}", after.len());
    app.stop().await;
}
