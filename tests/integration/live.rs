//! Live audit streams (server-sent events fed by the event log): a revocation reaches an open
//! stream within a second, redacted like `/audit/events`; a tenant's stream carries only its
//! own events; a client resumes from `Last-Event-ID` without losing or repeating one.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Reads `data:` records from an event stream until `want` of them arrived (or 5 s passed).
async fn read_events(mut res: reqwest::Response, want: usize) -> Vec<(i64, Value)> {
    let (mut buffer, mut events) = (String::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < want && Instant::now() < deadline {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(500), res.chunk()).await else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id: ")).and_then(|v| v.parse().ok());
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, serde_json::from_str(data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn a_revocation_reaches_open_streams_within_a_second_and_tenants_see_only_theirs() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Live").await;
    let (_, other_admin) = app.create_tenant("Elsewhere").await;
    let (public_id, _) = app.issue_key(&tenant, json!({"name": "watched"})).await;

    let platform = app.admin(Method::GET, "/audit/events/stream").send().await.unwrap();
    assert_eq!(platform.status(), 200);
    assert_eq!(platform.headers()["content-type"], "text/event-stream");
    let own = app.http.get(app.url("/tenant/audit/events/stream")).bearer_auth(&admin).send().await.unwrap();
    let others =
        app.http.get(app.url("/tenant/audit/events/stream")).bearer_auth(&other_admin).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let (s, _) =
        send(app.http.delete(app.url(&format!("/tenant/api-keys/{public_id}"))).bearer_auth(&admin)).await;
    assert_eq!(s, 200);
    let seen = read_events(own, 1).await;
    let lag = started.elapsed();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1["event_type"], "api_key.revoked");
    assert!(lag < Duration::from_secs(1), "{lag:?}");
    let everything = read_events(platform, 1).await;
    assert_eq!(everything[0].1["aggregate_id"], public_id);
    assert!(read_events(others, 1).await.is_empty(), "another tenant's event leaked");

    // Redacted like the audit list: no key hash in the stream.
    let history =
        read_events(app.admin(Method::GET, "/audit/events/stream?cursor=0").send().await.unwrap(), 4).await;
    let issued = history.iter().find(|(_, e)| e["event_type"] == "api_key.issued").unwrap();
    let text = issued.1.to_string();
    assert!(!text.contains("key_hash") && !text.contains("secret_hash"), "{text}");

    // Resuming from Last-Event-ID: the next event, exactly once.
    let at = history[2].0;
    let resumed = app.admin(Method::GET, "/audit/events/stream").header("Last-Event-ID", at.to_string());
    let resumed = read_events(resumed.send().await.unwrap(), history.len() - 3).await;
    let positions: Vec<i64> = resumed.iter().map(|(p, _)| *p).collect();
    let expected: Vec<i64> = history[3..].iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, expected);
    app.stop().await;
}
