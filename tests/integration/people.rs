//! People (issue 12, first part): invite → accept with a password → sign in → act through the
//! session cookie with the same decision table as keys, audited under the person's id and
//! e-mail; CSRF on cookie changes; the same answer for an unknown e-mail and a wrong
//! password; logout and the idle timeout end a session; no password or session id in plain
//! text in the database.

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::person::*;

#[tokio::test]
async fn a_person_is_invited_sets_a_password_signs_in_and_acts_under_their_name() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let token = invite(&app, json!({"email": "Ada@Example.com", "role": "super_admin"})).await;

    // One account per address, whatever the case.
    let (s, again) = send(
        app.admin(Method::POST, "/admin/users").json(&json!({"email": "ada@example.COM", "role": "auditor"})),
    )
    .await;
    assert_eq!((s, again["error"]["code"].as_str()), (409, Some("user_already_exists")), "{again}");
    let (s, body) = send(
        app.admin(Method::POST, "/admin/users")
            .json(&json!({"email": "x@example.com", "role": "tenant_admin"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "a tenant role needs a tenant"
    );

    // The policy, then the invite works once.
    for weak in ["short", "qwerty123456", "ada@example.com"] {
        let (s, body) = accept(&app, &token, weak).await;
        assert_eq!((s, body["error"]["code"].as_str()), (422, Some("weak_password")), "{weak}: {body}");
    }
    let (s, person) = accept(&app, &token, PASSWORD).await;
    assert_eq!(s, 200, "{person}");
    assert_eq!(person["email"], "ada@example.com");
    let (s, body) = accept(&app, &token, PASSWORD).await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("invite_invalid")));

    // Wrong password and unknown e-mail: one answer.
    let wrong = login(&app, "ada@example.com", "not the password at all").await.err().unwrap();
    let unknown = login(&app, "nobody@example.com", PASSWORD).await.err().unwrap();
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong.1["error"]["code"], unknown.1["error"]["code"]);
    assert_eq!(wrong.1["error"]["message"], unknown.1["error"]["message"]);

    let signed = login(&app, "ADA@example.com", PASSWORD).await.unwrap();
    let (s, me) = send(app.http.get(app.url("/auth/me")).header("Cookie", &signed.cookie)).await;
    assert_eq!((s, me["role"].as_str()), (200, Some("super_admin")), "{me}");
    assert_eq!(me["totp_enrolment_required"], true, "{me}");

    // A platform role acts only once TOTP is on.
    let (s, body) = send(signed.request(&app, Method::GET, "/admin/tenants")).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("second_factor_enrolment_required")),
        "{body}"
    );
    let (secret, _, _) = enrol(&app, &signed).await;

    // A change through the cookie needs the CSRF token.
    let create = || {
        app.http
            .post(app.url("/admin/tenants"))
            .header("Cookie", &signed.cookie)
            .json(&json!({"name": "By Ada"}))
    };
    let (s, body) = send(create()).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("csrf_failed")));
    let (s, body) = send(create().header("X-CSRF-Token", "wrong")).await;
    assert_eq!(s, 403, "{body}");
    let (s, tenant) = send(create().header("X-CSRF-Token", &signed.csrf)).await;
    assert_eq!(s, 201, "{tenant}");
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_string();
    let (actor_kind, actor_id, email): (String, String, String) = sqlx::query_as(
        "SELECT metadata->>'actor_kind', metadata->>'actor_id', metadata->>'actor_email' FROM events \
         WHERE event_type = 'tenant.created' AND aggregate_id = $1",
    )
    .bind(&tenant_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((actor_kind.as_str(), email.as_str()), ("user", "ada@example.com"));
    assert_eq!(actor_id, person["user_id"].as_str().unwrap());
    // The audit log finds what a person did by their e-mail, in any case.
    let (s, by_ada) = send(app.admin(Method::GET, "/audit/events?actor_email=ADA@Example.com")).await;
    assert_eq!(s, 200, "{by_ada}");
    let by_ada = by_ada["data"].as_array().unwrap();
    assert!(by_ada
        .iter()
        .any(|e| e["event_type"] == "tenant.created" && e["aggregate_id"] == tenant_id.as_str()));
    assert!(by_ada.iter().all(|e| e["actor"]["email"] == "ada@example.com"), "{by_ada:?}");
    let (_, by_nobody) = send(app.admin(Method::GET, "/audit/events?actor_email=nobody@example.com")).await;
    assert_eq!(by_nobody["data"].as_array().map(Vec::len), Some(0));
    let signed_in: (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE event_type = 'user.signed_in'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let failed: (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE event_type = 'user.sign_in_failed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((signed_in.0, failed.0), (1, 1), "sign-ins and failures of known accounts are events");

    // Canary: neither the password nor the session id is stored in plain text.
    let dump = std::process::Command::new("pg_dump").arg("--no-owner").arg(&db.url).output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    assert!(dump.contains("ada@example.com"));
    assert!(!dump.contains(PASSWORD) && !dump.contains(&signed.session) && !dump.contains(&signed.csrf));
    assert!(!dump.contains(&secret), "the TOTP secret is sealed");

    // Logout ends it.
    let (s, _) = send(
        app.http
            .post(app.url("/auth/logout"))
            .header("Cookie", &signed.cookie)
            .header("X-CSRF-Token", &signed.csrf),
    )
    .await;
    assert_eq!(s, 204);
    let (s, body) = send(app.http.get(app.url("/auth/me")).header("Cookie", &signed.cookie)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("invalid_session")));
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_person_holds_no_more_than_their_role_and_idle_sessions_end() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("People").await;
    let (other, _) = app.create_tenant("Others").await;
    for (email, role) in [("admin@people.test", "tenant_admin"), ("viewer@people.test", "tenant_viewer")] {
        let token = invite(&app, json!({"email": email, "role": role, "tenant_id": tenant})).await;
        assert_eq!(accept(&app, &token, PASSWORD).await.0, 200);
    }
    let admin = login(&app, "admin@people.test", PASSWORD).await.unwrap();
    let get = |path: &str, who: &Signed| app.http.get(app.url(path)).header("Cookie", &who.cookie);
    assert_eq!(send(get("/tenant/info", &admin)).await.0, 200);
    assert_eq!(
        send(get("/tenant/info", &admin).header("X-Tenant-ID", &other)).await.0,
        403,
        "another tenant"
    );
    assert_eq!(send(get("/admin/tenants", &admin)).await.0, 403, "no platform route");
    let (s, _) = send(
        app.http
            .post(app.url("/tenant/sub-accounts"))
            .header("Cookie", &admin.cookie)
            .header("X-CSRF-Token", &admin.csrf)
            .json(&json!({"name": "team"})),
    )
    .await;
    assert_eq!(s, 201);
    let viewer = login(&app, "viewer@people.test", PASSWORD).await.unwrap();
    assert_eq!(send(get("/tenant/info", &viewer)).await.0, 200);
    let (s, _) = send(
        app.http
            .post(app.url("/tenant/sub-accounts"))
            .header("Cookie", &viewer.cookie)
            .header("X-CSRF-Token", &viewer.csrf)
            .json(&json!({"name": "nope"})),
    )
    .await;
    assert_eq!(s, 403, "a viewer changes nothing");

    // Idle for longer than SESSION_IDLE_MINUTES (30): the session is over.
    sqlx::query("UPDATE user_sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (s, body) = send(get("/tenant/info", &admin)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("invalid_session")));
    app.stop().await;
}

#[tokio::test]
async fn guessable_passwords_are_refused_at_every_place_a_password_is_set() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Strength").await;
    let token =
        invite(&app, json!({"email": "ada@strength.test", "role": "tenant_admin", "tenant_id": tenant}))
            .await;
    for weak in ["password1234", "Winter2026!!", "Tokenhub2026!", "ada@strength.test"] {
        let (s, body) = accept(&app, &token, weak).await;
        assert_eq!((s, body["error"]["code"].as_str()), (422, Some("weak_password")), "{weak}: {body}");
    }
    assert_eq!(accept(&app, &token, PASSWORD).await.0, 200);
    let signed = login(&app, "ada@strength.test", PASSWORD).await.unwrap();
    let (s, body) = send(
        signed
            .request(&app, Method::POST, "/auth/password")
            .json(&json!({"current_password": PASSWORD, "new_password": "Summer2025!!"})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("weak_password")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn anonymous_junk_from_many_addresses_never_exhausts_real_sign_ins() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &[
            "--master-api-key",
            MASTER,
            "--trusted-proxies",
            "127.0.0.1/32",
            "--auth-failures-per-minute",
            "30",
        ],
    ))
    .await;
    let (tenant, _) = app.create_tenant("Flooded").await;
    let token =
        invite(&app, json!({"email": "real@flood.test", "role": "tenant_admin", "tenant_id": tenant})).await;
    assert_eq!(accept(&app, &token, PASSWORD).await.0, 200);

    // 48 workers of junk, spread over 100 addresses (each under the per-address throttle).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..48u64)
        .map(|w| {
            let (http, url, stop, sent, busy) =
                (app.http.clone(), app.url("/auth/login"), stop.clone(), sent.clone(), busy.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let from = format!("198.51.{}.{}", (w + i) % 100, 1 + (i % 200));
                    let body = json!({"email": format!("junk{w}-{i}@nowhere.test"), "password": "not the password at all"});
                    if let Ok(res) = http.post(&url).header("X-Forwarded-For", from).json(&body).send().await {
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if res.status() == 503 {
                            busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut took = Vec::new();
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let res = app
            .http
            .post(app.url("/auth/login"))
            .header("X-Forwarded-For", "203.0.113.10")
            .json(&json!({"email": "real@flood.test", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        took.push((res.status().as_u16(), started.elapsed()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let junk = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(junk > 100, "the flood ran: {junk} requests");
    assert!(
        took.iter().all(|(s, t)| *s == 200 && *t < std::time::Duration::from_secs(2)),
        "real sign-ins during {junk} junk requests ({} answered 503): {took:?}",
        busy.load(std::sync::atomic::Ordering::Relaxed)
    );
    app.stop().await;
}

/// `tokenhub users create` builds the services' context, not a server: it invites, the link
/// works on the server, and the command starts none of the server's workers (no relay or
/// webhook leader, which would compete with a server's).
#[tokio::test]
async fn the_command_line_invites_a_person_without_starting_a_server() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenhub"))
            .args(["users", "create", "--email", "Ops@Example.com", "--role", "auditor"])
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", &stream.url)
            .env("NATS_EVENTS_STREAM", &stream.stream)
            .env("NATS_SUBJECT_PREFIX", &stream.prefix)
            .env("NATS_USAGE_STREAM", &stream.usage_stream)
            .env("TOKENHUB_KEY_PEPPER", PEPPER)
            .env("TOKENHUB_KEK", TEST_KEK)
            .env("PUBLIC_URL", "http://tokenhub.example")
            .env("LOG_LEVEL", "debug")
            .output(),
    )
    .await
    .expect("users create ends within 60 s")
    .expect("tokenhub runs");
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{out}\n{err}");
    for worker in ["relay leading", "webhook worker leading"] {
        assert!(!err.contains(worker), "the command started a worker ({worker}):\n{err}");
    }
    // The server starts after it (the command alone leads nothing), and the link works there.
    tokenhub::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let server = ServerProcess::start(&db, &stream);
    server.wait_ready(&http).await;
    let link = out.split_whitespace().find(|w| w.contains("/invites/")).expect("an invite link");
    let token = link.trim_end_matches('/').rsplit('/').next().unwrap().trim_end_matches("/accept");
    let (s, person) = send(
        http.post(format!("{}/auth/invites/{token}/accept", server.base))
            .json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (s, person["email"].as_str(), person["role"].as_str()),
        (200, Some("ops@example.com"), Some("auditor")),
        "{person}"
    );
}
