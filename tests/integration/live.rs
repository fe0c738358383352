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

/// Reads a stream until it ends; how long that took from `since`, or `None` when it was still
/// open after 3 s.
async fn ended_after(mut res: reqwest::Response, since: Instant) -> Option<Duration> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), res.chunk()).await {
            Ok(Ok(Some(_))) | Err(_) => continue,
            Ok(Ok(None)) | Ok(Err(_)) => return Some(since.elapsed()),
        }
    }
    None
}

#[tokio::test]
async fn open_streams_end_within_a_second_once_the_facts_that_admitted_them_no_longer_hold() {
    use crate::person::{accept, invite, login, PASSWORD};
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--trusted-proxies", "127.0.0.1/32"],
    ))
    .await;
    let (tenant, admin) = app.create_tenant("Facts").await;
    let person = |email: &'static str, role: &'static str| {
        let (app, tenant) = (&app, tenant.clone());
        async move {
            let token = invite(app, json!({"email": email, "role": role, "tenant_id": tenant})).await;
            assert_eq!(accept(app, &token, PASSWORD).await.0, 200);
            let signed = login(app, email, PASSWORD).await.unwrap();
            let (_, me) = send(signed.request(app, Method::GET, "/auth/me")).await;
            (me["user_id"].as_str().unwrap().to_string(), signed)
        }
    };
    let open_key = |key: String| {
        let app = &app;
        async move {
            let res =
                app.http.get(app.url("/tenant/audit/events/stream")).bearer_auth(&key).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res
        }
    };
    let open_person = |signed: &crate::person::Signed| {
        let req = signed.request(&app, Method::GET, "/tenant/audit/events/stream");
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res
        }
    };
    let as_admin =
        |method: Method, path: String| app.http.request(method, app.url(&path)).bearer_auth(&admin);
    let mut ends = Vec::new();

    // A key revoked, a key disabled, a key rotated with no grace.
    for (what, change) in [("revoked", ""), ("disabled", "/disable"), ("rotated", "/rotate")] {
        let (public_id, key) = app.issue_key(&tenant, json!({"name": what, "role": "tenant_admin"})).await;
        let res = open_key(key).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let path = format!("/tenant/api-keys/{public_id}{change}");
        let req =
            if change.is_empty() { as_admin(Method::DELETE, path) } else { as_admin(Method::POST, path) };
        let req = if change == "/rotate" { req.json(&json!({"grace_period_seconds": 0})) } else { req };
        let (s, body) = send(req).await;
        assert!(s == 200 || s == 201, "{what}: {s} {body}");
        ends.push((what, ended_after(res, started).await));
    }

    // A person signed out, disabled, lowered to a role that may not read the audit log.
    let (_, out) = person("out@facts.test", "tenant_admin").await;
    let res = open_person(&out).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(send(out.request(&app, Method::POST, "/auth/logout")).await.0, 204);
    ends.push(("signed out", ended_after(res, started).await));
    for (what, email) in [("person disabled", "gone@facts.test"), ("person lowered", "low@facts.test")] {
        let (user_id, signed) = person(email, "tenant_admin").await;
        let res = open_person(&signed).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let path = format!("/tenant/users/{user_id}");
        let req = if what == "person disabled" {
            as_admin(Method::DELETE, path)
        } else {
            as_admin(Method::PATCH, path).json(&json!({"role": "tenant_viewer"}))
        };
        let (s, body) = send(req).await;
        assert!(s == 200 || s == 204, "{what}: {s} {body}");
        ends.push((what, ended_after(res, started).await));
    }

    // The allowlist stops including the client, then the tenant is suspended: both kinds of
    // principal, every stream.
    let (_, watcher) = person("watch@facts.test", "tenant_admin").await;
    let (_, key) = app.issue_key(&tenant, json!({"name": "watcher", "role": "tenant_admin"})).await;
    let streams = [open_key(key.clone()).await, open_person(&watcher).await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (s, _) = send(
        app.admin(Method::PUT, "/tenant/security/ip-allowlist")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"enabled": true, "allowed_ips": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(s, 200);
    for (res, what) in streams.into_iter().zip(["key outside allowlist", "person outside allowlist"]) {
        ends.push((what, ended_after(res, started).await));
    }
    let (s, _) = send(
        app.admin(Method::PUT, "/tenant/security/ip-allowlist")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"enabled": false, "allowed_ips": []})),
    )
    .await;
    assert_eq!(s, 200);
    let streams = [open_key(key).await, open_person(&watcher).await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))).await.0, 200);
    for (res, what) in streams.into_iter().zip(["key of a suspended tenant", "person of a suspended tenant"])
    {
        ends.push((what, ended_after(res, started).await));
    }

    // A platform auditor's whole-log stream ends with its key.
    let auditor = app.platform_key("auditor").await;
    let res = app.http.get(app.url("/audit/events/stream")).bearer_auth(&auditor).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let auditor_id = auditor.split('_').nth(1).unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (s, body) = send(app.admin(Method::DELETE, &format!("/admin/platform-keys/{auditor_id}"))).await;
    assert_eq!(s, 200, "{body}");
    ends.push(("auditor key revoked", ended_after(res, started).await));

    for (what, ended) in &ends {
        assert!(
            ended.is_some_and(|d| d < Duration::from_secs(1)),
            "{what}: the stream ended after {ended:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn streams_are_capped_per_principal_and_per_server_and_give_their_place_back() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--live-streams-per-principal", "3", "--live-streams-max", "5"],
    ))
    .await;
    let (_, admin) = app.create_tenant("Capped").await;
    let (_, other) = app.create_tenant("Capped too").await;
    let open = |key: &str| app.http.get(app.url("/tenant/audit/events/stream")).bearer_auth(key).send();
    let mut held = Vec::new();
    for _ in 0..3 {
        let res = open(&admin).await.unwrap();
        assert_eq!(res.status(), 200);
        held.push(res);
    }
    let (s, body) = send(app.http.get(app.url("/tenant/audit/events/stream")).bearer_auth(&admin)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (429, Some("too_many_streams")), "{body}");
    for _ in 0..2 {
        let res = open(&other).await.unwrap();
        assert_eq!(res.status(), 200);
        held.push(res);
    }
    let (s, body) = send(app.http.get(app.url("/tenant/audit/events/stream")).bearer_auth(&other)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("too_many_streams")),
        "the server's cap: {body}"
    );
    // A client that leaves gives its place back.
    held.truncate(2);
    assert!(eventually(Duration::from_secs(3), || async { app.app.state.live.open_streams() == 2 }).await);
    let res = open(&admin).await.unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}
