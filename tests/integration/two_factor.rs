//! TOTP two-factor, sign-in protection and people management against the real server: codes
//! from an independent implementation (`person::oathtool`, checked against Debian's `oathtool`), the ±1 step window and its edges, replays
//! refused, recovery codes single use, the challenge's tries, per-account lock-out with its
//! `Retry-After` (the same for an unknown address), sessions listed and revoked, password
//! change and disable ending sessions, absolute expiry, tenant-scoped people management,
//! `require_2fa`, and canaries for every secret of a person.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::person::*;

fn code_of(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// Sleeps until the TOTP step of now is at least `step`.
async fn wait_for_step(step: i64) {
    while unix_now() / 30 < step {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn totp_sign_in_window_replay_recovery_codes_and_removal() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Two factor").await;
    let email = "grace@twofactor.test";
    let signed = person(&app, email, "tenant_admin", Some(&tenant)).await;

    // Enrolment material, then a wrong code, then the right one.
    let (s, enrolment) = send(signed.request(&app, Method::POST, "/auth/totp/enroll")).await;
    assert_eq!(s, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/TokenHub:grace%40twofactor.test?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=TokenHub"), "{uri}");
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let wrong = if oathtool(&secret, unix_now()) == "000000" { "111111" } else { "000000" };
    let (s, body) =
        send(signed.request(&app, Method::POST, "/auth/totp/confirm").json(&json!({"code": wrong}))).await;
    assert_eq!((s, code_of(&body)), (422, Some("invalid_totp_code")), "{body}");
    let confirmed_at = unix_now();
    let (s, codes) = send(
        signed
            .request(&app, Method::POST, "/auth/totp/confirm")
            .json(&json!({"code": oathtool(&secret, confirmed_at)})),
    )
    .await;
    assert_eq!(s, 200, "{codes}");
    let recovery: Vec<String> =
        codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(recovery.len(), 10);
    let (s, body) = send(signed.request(&app, Method::POST, "/auth/totp/enroll")).await;
    assert_eq!((s, code_of(&body)), (409, Some("totp_already_enrolled")));

    // The password alone is not a session any more.
    let token = login_mfa_token(&app, email, PASSWORD).await;
    assert!(token.starts_with("thm_"));
    // The confirming code was spent; codes two steps away are outside the window.
    let s0 = confirmed_at / 30;
    let (s, body) =
        login_mfa(&app, &token, json!({"code": oathtool(&secret, confirmed_at)})).await.err().unwrap();
    assert_eq!((s, code_of(&body)), (422, Some("totp_replayed")), "{body}");
    let now = unix_now();
    for far in [now - 60, now + 60] {
        let (s, body) = login_mfa(&app, &token, json!({"code": oathtool(&secret, far)})).await.err().unwrap();
        assert_eq!((s, code_of(&body)), (401, Some("invalid_second_factor")), "{body}");
    }
    // The next step is within the window (now is s0 or later).
    let next = (s0 + 1) * 30;
    let session = login_mfa(&app, &token, json!({"code": oathtool(&secret, next)})).await.unwrap();
    assert_eq!(send(session.request(&app, Method::GET, "/tenant/info")).await.0, 200);
    // The challenge is spent, and that step may not sign in again.
    let (s, body) = login_mfa(&app, &token, json!({"code": oathtool(&secret, next)})).await.err().unwrap();
    assert_eq!((s, code_of(&body)), (401, Some("invalid_mfa_token")), "{body}");
    let token = login_mfa_token(&app, email, PASSWORD).await;
    let (s, body) = login_mfa(&app, &token, json!({"code": oathtool(&secret, next)})).await.err().unwrap();
    assert_eq!((s, code_of(&body)), (422, Some("totp_replayed")), "{body}");

    // A recovery code works once (any case, with or without dashes).
    let first = recovery[0].to_uppercase().replace('-', "");
    login_mfa(&app, &token, json!({"recovery_code": first})).await.unwrap();
    let token = login_mfa_token(&app, email, PASSWORD).await;
    let (s, body) = login_mfa(&app, &token, json!({"recovery_code": recovery[0]})).await.err().unwrap();
    assert_eq!((s, code_of(&body)), (401, Some("invalid_second_factor")), "{body}");
    let (s, body) = login_mfa(&app, &token, json!({})).await.err().unwrap();
    assert_eq!((s, code_of(&body)), (422, Some("invalid_request")), "{body}");

    // New recovery codes need a fresh code; the old ones stop working.
    wait_for_step(s0 + 2).await;
    let fresh = unix_now();
    let (s, body) = send(
        session
            .request(&app, Method::POST, "/auth/recovery-codes")
            .json(&json!({"code": oathtool(&secret, fresh)})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let renewed: Vec<String> =
        body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert!(renewed.iter().all(|c| !recovery.contains(c)));
    let (s, _) = login_mfa(&app, &token, json!({"recovery_code": recovery[1]})).await.err().unwrap();
    assert_eq!(s, 401, "the old set is void");
    login_mfa(&app, &token, json!({"recovery_code": renewed[0]})).await.unwrap();

    // Turning it off needs the password and a code not used before.
    let (s, body) = send(
        session
            .request(&app, Method::DELETE, "/auth/totp")
            .json(&json!({"password": "not the password!", "code": oathtool(&secret, fresh)})),
    )
    .await;
    assert_eq!((s, code_of(&body)), (422, Some("wrong_password")), "{body}");
    let (s, body) = send(
        session
            .request(&app, Method::DELETE, "/auth/totp")
            .json(&json!({"password": PASSWORD, "code": oathtool(&secret, fresh)})),
    )
    .await;
    assert_eq!((s, code_of(&body)), (422, Some("totp_replayed")), "{body}");
    wait_for_step(fresh / 30 + 1).await;
    let (s, body) = send(
        session
            .request(&app, Method::DELETE, "/auth/totp")
            .json(&json!({"password": PASSWORD, "code": oathtool(&secret, unix_now())})),
    )
    .await;
    assert_eq!(s, 204, "{body}");
    login(&app, email, PASSWORD).await.unwrap();

    // The audit trail: enrolment, sign-ins by method, failures, removal — under the person.
    let events: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, metadata->>'actor_email' FROM events WHERE aggregate_type = 'user' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    for expected in [
        "user.totp_enrolled",
        "user.signed_in",
        "user.sign_in_failed",
        "user.recovery_code_used",
        "user.recovery_codes_generated",
        "user.totp_removed",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    assert!(events.iter().skip(1).all(|(_, e)| e.as_deref() == Some(email)), "{events:?}");

    // Canaries: no TOTP secret, recovery code, session or challenge token in plain text in
    // the database or on NATS.
    let dump = std::process::Command::new("pg_dump").arg("--no-owner").arg(&db.url).output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    app.wait_relayed(std::time::Duration::from_secs(10)).await;
    let nats: String = stream
        .messages()
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(nats.contains("user.totp_enrolled"), "the events are on NATS");
    let secret_bytes_hex = {
        let raw = base32_decode(&secret);
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let canaries: Vec<&str> =
        [secret.as_str(), secret_bytes_hex.as_str(), PASSWORD, &session.session, &token]
            .into_iter()
            .chain(recovery.iter().map(String::as_str))
            .chain(renewed.iter().map(String::as_str))
            .collect();
    for canary in canaries {
        assert!(!dump.contains(canary), "{canary} in the database");
        assert!(!nats.contains(canary), "{canary} on NATS");
    }
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_lock_the_account_alike_for_unknown_addresses() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Locks").await;
    let email = "locked@locks.test";
    person(&app, email, "tenant_viewer", Some(&tenant)).await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(app.url("/auth/login"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, code_of(&body).map(str::to_string), retry)
        }
    };
    for who in [email, "nobody@locks.test"] {
        for _ in 0..5 {
            let (s, code, _) = attempt(who, "wrong password, long enough").await;
            assert_eq!((s, code.as_deref()), (401, Some("invalid_credentials")), "{who}");
        }
        // Locked now, even with the right password, with the back-off in Retry-After.
        let (s, code, retry) = attempt(who, PASSWORD).await;
        assert_eq!((s, code.as_deref()), (429, Some("sign_in_locked")), "{who}");
        assert!(retry.is_some_and(|r| (1..=15).contains(&r)), "{who}: {retry:?}");
    }
    // When the lock is over, the next failure doubles it.
    sqlx::query("UPDATE sign_in_locks SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (s, _, _) = attempt(email, "wrong password, long enough").await;
    assert_eq!(s, 401);
    let (s, code, retry) = attempt(email, PASSWORD).await;
    assert_eq!((s, code.as_deref()), (429, Some("sign_in_locked")));
    assert!(retry.is_some_and(|r| (16..=30).contains(&r)), "{retry:?}");
    // Once it is over, the right password signs in and forgets the failures.
    sqlx::query("UPDATE sign_in_locks SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    login(&app, email, PASSWORD).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sign_in_locks WHERE failures > 0 AND subject LIKE 'usr_%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(left, 1, "only the unknown address still has failures");
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_revoked_and_ended_by_password_change_disable_and_expiry() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Sessions").await;
    let email = "ses@sessions.test";
    let first = person(&app, email, "tenant_admin", Some(&tenant)).await;
    let second = login(&app, email, PASSWORD).await.unwrap();
    let third = login(&app, email, PASSWORD).await.unwrap();
    let other = person(&app, "other@sessions.test", "tenant_viewer", Some(&tenant)).await;

    let (s, list) = send(first.request(&app, Method::GET, "/auth/sessions")).await;
    assert_eq!(s, 200, "{list}");
    let list = list["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let second_id = sessions_of(&app, &second).await.into_iter().find(|s| s["current"] == true).unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Another person cannot end it; its owner can.
    let path = format!("/auth/sessions/{second_id}");
    let (s, body) = send(other.request(&app, Method::DELETE, &path)).await;
    assert_eq!((s, code_of(&body)), (404, Some("session_not_found")));
    let (s, body) =
        send(app.http.delete(app.url(&path)).header("Cookie", &first.cookie).header("X-CSRF-Token", "nope"))
            .await;
    assert_eq!((s, code_of(&body)), (403, Some("csrf_failed")));
    assert_eq!(send(first.request(&app, Method::DELETE, &path)).await.0, 204);
    assert_eq!(send(second.request(&app, Method::GET, "/auth/me")).await.0, 401);
    assert_eq!(send(first.request(&app, Method::DELETE, "/auth/sessions/zz")).await.0, 404);

    // A password change ends the other sessions, keeps this one.
    let (s, body) = send(first.request(&app, Method::POST, "/auth/password").json(&json!({
        "current_password": "wrong wrong wrong", "new_password": "a much newer passphrase"
    })))
    .await;
    assert_eq!((s, code_of(&body)), (422, Some("wrong_password")));
    let (s, body) = send(first.request(&app, Method::POST, "/auth/password").json(&json!({
        "current_password": PASSWORD, "new_password": "qwerty123456"
    })))
    .await;
    assert_eq!((s, code_of(&body)), (422, Some("weak_password")));
    let (s, body) = send(first.request(&app, Method::POST, "/auth/password").json(&json!({
        "current_password": PASSWORD, "new_password": "a much newer passphrase"
    })))
    .await;
    assert_eq!((s, body["sessions_ended"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(send(third.request(&app, Method::GET, "/auth/me")).await.0, 401);
    assert_eq!(send(first.request(&app, Method::GET, "/auth/me")).await.0, 200);
    assert_eq!(login(&app, email, PASSWORD).await.err().unwrap().0, 401);
    login(&app, email, "a much newer passphrase").await.unwrap();

    // Absolute lifetime.
    sqlx::query("UPDATE user_sessions SET absolute_expires = now() - interval '1 second' WHERE id_hash = sha256($1::bytea)")
        .bind(other.session.as_bytes())
        .execute(&app.pool)
        .await
        .unwrap();
    let (s, body) = send(other.request(&app, Method::GET, "/auth/me")).await;
    assert_eq!((s, code_of(&body)), (401, Some("invalid_session")));
    // Ended sessions are pruned (the server does it every 10 minutes).
    let pruned =
        tokenhub::store::sessions::prune(&app.pool, std::time::Duration::from_secs(1800)).await.unwrap();
    assert!(pruned >= 1);
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM user_sessions WHERE id_hash = sha256($1::bytea)")
            .bind(other.session.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
    assert_eq!(send(first.request(&app, Method::GET, "/auth/me")).await.0, 200, "live sessions stay");

    // Disabling ends every session at once.
    let me: Value = send(first.request(&app, Method::GET, "/auth/me")).await.1;
    let (s, _) =
        send(app.admin(Method::DELETE, &format!("/admin/users/{}", me["user_id"].as_str().unwrap()))).await;
    assert_eq!(s, 204);
    let (s, body) = send(first.request(&app, Method::GET, "/auth/me")).await;
    assert_eq!((s, code_of(&body)), (401, Some("invalid_session")));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM user_sessions WHERE user_id = $1")
        .bind(me["user_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(login(&app, email, "a much newer passphrase").await.err().unwrap().0, 401);
    app.stop().await;
}

async fn sessions_of(app: &TestApp, signed: &Signed) -> Vec<Value> {
    let (s, list) = send(signed.request(app, Method::GET, "/auth/sessions")).await;
    assert_eq!(s, 200, "{list}");
    list["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn tenant_admins_manage_only_their_tenants_people_and_can_require_2fa() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin_key) = app.create_tenant("Managed").await;
    let (other, _) = app.create_tenant("Elsewhere").await;
    let admin = person(&app, "boss@managed.test", "tenant_admin", Some(&tenant)).await;
    let outsider =
        invite(&app, json!({"email": "out@elsewhere.test", "role": "tenant_admin", "tenant_id": other}))
            .await;
    let _ = outsider;
    let (s, platform) = send(
        app.admin(Method::POST, "/admin/users")
            .json(&json!({"email": "root@platform.test", "role": "auditor"})),
    )
    .await;
    assert_eq!(s, 201);

    // Tenant roles only, in the admin's own tenant.
    let (s, body) = send(
        admin
            .request(&app, Method::POST, "/tenant/users")
            .json(&json!({"email": "x@managed.test", "role": "super_admin"})),
    )
    .await;
    assert_eq!((s, code_of(&body)), (422, Some("invalid_request")), "{body}");
    let (s, body) = send(
        admin
            .request(&app, Method::POST, "/tenant/users")
            .json(&json!({"email": "viewer@managed.test", "role": "tenant_viewer", "tenant_id": other})),
    )
    .await;
    assert_eq!(s, 422, "no tenant_id field: {body}");
    let (s, invited) = send(
        admin
            .request(&app, Method::POST, "/tenant/users")
            .json(&json!({"email": "viewer@managed.test", "role": "tenant_viewer"})),
    )
    .await;
    assert_eq!(s, 201, "{invited}");
    let viewer_id = invited["user_id"].as_str().unwrap().to_string();
    let token = invited["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(accept(&app, &token, PASSWORD).await.0, 200);

    // A tenant-admin key manages the same people (one decision table).
    let (s, list) = send(app.http.get(app.url("/tenant/users")).bearer_auth(&admin_key)).await;
    assert_eq!(s, 200, "{list}");
    let emails: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["boss@managed.test", "viewer@managed.test"]);
    for foreign in [platform["user_id"].as_str().unwrap(), "usr_nosuchuser0000000000"] {
        let path = format!("/tenant/users/{foreign}");
        for method in [Method::GET, Method::DELETE] {
            let (s, body) = send(admin.request(&app, method.clone(), &path)).await;
            assert_eq!((s, code_of(&body)), (404, Some("user_not_found")), "{method} {foreign}");
        }
        let (s, _) =
            send(admin.request(&app, Method::PATCH, &path).json(&json!({"role": "tenant_admin"}))).await;
        assert_eq!(s, 404);
    }
    let (s, changed) = send(
        admin
            .request(&app, Method::PATCH, &format!("/tenant/users/{viewer_id}"))
            .json(&json!({"role": "tenant_finance"})),
    )
    .await;
    assert_eq!((s, changed["role"].as_str()), (200, Some("tenant_finance")), "{changed}");

    // require_2fa: the tenant's people must enrol before acting; enrolment itself still works.
    let viewer = login(&app, "viewer@managed.test", PASSWORD).await.unwrap();
    assert_eq!(send(viewer.request(&app, Method::GET, "/tenant/info")).await.0, 200);
    let (s, body) = send(
        admin.request(&app, Method::PUT, "/tenant/security/two-factor").json(&json!({"require_2fa": true})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = send(viewer.request(&app, Method::GET, "/tenant/info")).await;
    assert_eq!((s, code_of(&body)), (403, Some("second_factor_enrolment_required")), "{body}");
    let (s, me) = send(viewer.request(&app, Method::GET, "/auth/me")).await;
    assert_eq!((s, me["totp_enrolment_required"].as_bool()), (200, Some(true)));
    enrol(&app, &viewer).await;
    assert_eq!(send(viewer.request(&app, Method::GET, "/tenant/info")).await.0, 200);
    // The admin who turned it on is one of the tenant's people too.
    let (s, body) = send(admin.request(&app, Method::GET, "/tenant/users")).await;
    assert_eq!((s, code_of(&body)), (403, Some("second_factor_enrolment_required")));
    enrol(&app, &admin).await;
    let (s, policy) =
        send(app.http.get(app.url("/tenant/security/two-factor")).bearer_auth(&admin_key)).await;
    assert_eq!((s, policy["require_2fa"].as_bool()), (200, Some(true)));

    // Disabled by their tenant admin: the account is over.
    assert_eq!(send(admin.request(&app, Method::DELETE, &format!("/tenant/users/{viewer_id}"))).await.0, 204);
    assert_eq!(send(viewer.request(&app, Method::GET, "/auth/me")).await.0, 401);
    let (s, got) = send(admin.request(&app, Method::GET, &format!("/tenant/users/{viewer_id}"))).await;
    assert_eq!((s, got["status"].as_str()), (200, Some("disabled")));
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}

#[tokio::test]
async fn step_up_checks_with_a_stolen_session_share_the_sign_in_lock_out_and_are_audited() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Step up").await;
    let email = "stolen@stepup.test";
    let signed = person(&app, email, "tenant_admin", Some(&tenant)).await;
    let (secret, _, _) = enrol(&app, &signed).await;
    let signed = {
        let token = login_mfa_token(&app, email, PASSWORD).await;
        wait_for_step(unix_now() / 30 + 1).await;
        login_mfa(&app, &token, json!({"code": oathtool(&secret, unix_now())})).await.unwrap()
    };
    // Each step-up route, guessed at: every wrong answer counts against the account.
    let guesses: [(Method, &str, Value); 3] = [
        (
            Method::POST,
            "/auth/password",
            json!({"current_password": "a wrong guess here", "new_password": "another long passphrase 42"}),
        ),
        (Method::DELETE, "/auth/totp", json!({"password": "a wrong guess here", "code": "000000"})),
        (Method::POST, "/auth/recovery-codes", json!({"code": "000000"})),
    ];
    let mut answers = Vec::new();
    for i in 0..6 {
        let (method, path, body) = &guesses[i % 3];
        let (s, answer) = send(signed.request(&app, method.clone(), path).json(body)).await;
        answers.push((s, code_of(&answer).map(str::to_string)));
    }
    assert!(answers[..5].iter().all(|(s, _)| *s == 422), "{answers:?}");
    assert_eq!(answers[5], (429, Some("sign_in_locked".to_string())), "{answers:?}");
    // The lock is the account's: sign-in with the right password waits too.
    let err = login(&app, email, PASSWORD).await.err().unwrap();
    assert_eq!((err.0, code_of(&err.1)), (429, Some("sign_in_locked")));
    let failures: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'reason' FROM events WHERE event_type = 'user.sign_in_failed' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(failures.iter().filter(|r| r.as_str() == "step_up_password").count() >= 3, "{failures:?}");
    assert!(failures.iter().any(|r| r == "step_up_totp"), "{failures:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_persons_secrets_are_sealed_in_the_log_and_erasure_leaves_none_that_opens() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Erasure").await;
    let email = "eve@erasure.test";
    let signed = person(&app, email, "tenant_admin", Some(&tenant)).await;
    let (_, me) = send(signed.request(&app, Method::GET, "/auth/me")).await;
    let user_id = me["user_id"].as_str().unwrap().to_string();
    // A second password (the first is superseded) and TOTP.
    let (s, body) = send(
        signed
            .request(&app, Method::POST, "/auth/password")
            .json(&json!({"current_password": PASSWORD, "new_password": "a much newer passphrase"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let signed = login(&app, email, "a much newer passphrase").await.unwrap();
    let (secret, _, _) = enrol(&app, &signed).await;

    // No password hash in the log or the tables in the clear: sealed under the person's key.
    let hashes: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'password_hash' FROM events WHERE aggregate_id = $1 AND payload ? 'password_hash' \
         AND payload->>'password_hash' IS NOT NULL",
    )
    .bind(&user_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(hashes.len(), 2, "the first and the superseded password");
    assert!(hashes.iter().all(|h| h.starts_with("sealed:v1:") && !h.contains("argon2")), "{hashes:?}");
    let dump = |db: &TestDb| {
        let out = std::process::Command::new("pg_dump").arg("--no-owner").arg(&db.url).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(!dump(&db).contains("$argon2id$"), "a password hash in the clear");

    // Erasure needs a disabled person; then the key is gone and nothing sealed opens.
    let (s, body) = send(app.admin(Method::POST, &format!("/admin/users/{user_id}/erase"))).await;
    assert_eq!((s, code_of(&body)), (409, Some("user_not_disabled")), "{body}");
    assert_eq!(send(app.admin(Method::DELETE, &format!("/admin/users/{user_id}"))).await.0, 204);
    let (s, body) = send(app.admin(Method::POST, &format!("/admin/users/{user_id}/erase"))).await;
    assert_eq!(s, 204, "{body}");
    let (s, body) = send(app.admin(Method::POST, &format!("/admin/users/{user_id}/erase"))).await;
    assert_eq!((s, code_of(&body)), (409, Some("user_erased")), "{body}");
    let key: (Option<Vec<u8>>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT wrapped, destroyed_at FROM tenant_data_keys WHERE tenant_id = $1")
            .bind(&user_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(key.0.is_none() && key.1.is_some(), "the person's data key is destroyed");
    let state = &app.app.state;
    let dek = tokenhub::crypto::data_keys::existing_dek(&state.pool, &state.keks, &user_id).await.unwrap();
    assert!(dek.is_none(), "nothing opens the sealed hashes and the TOTP secret any more");
    let dump = dump(&db);
    assert!(!dump.contains("$argon2id$") && !dump.contains(&secret), "erasure left a secret readable");
    let err = login(&app, email, "a much newer passphrase").await.err().unwrap();
    assert_eq!(err.0, 401);
    assert_audit_matches_its_schema(&app.url("")).await;
    app.stop().await;
}
