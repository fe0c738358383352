//! One policy for every principal: generated over every tenant operation of the OpenAPI
//! document × role (tenant admin, tenant finance) × tenant state (active, suspended, deleted)
//! × network (inside, outside the tenant's IP allowlist) × credential state (live, disabled,
//! revoked / signed out, role lowered). A person must get exactly the answer a key of the same
//! role gets (the same status; the same code for every 403 and 429), and no refusal may
//! change state (the log's head stays where it was).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::person::{accept, invite, login, Signed, PASSWORD};

/// Inside the tenant's allowlist (10.0.0.0/8) and outside it, as seen through the trusted
/// proxy (the tests' loopback).
const INSIDE: &str = "10.1.2.3";
const OUTSIDE: &str = "192.0.2.7";

/// A caller: a key or a person's session.
enum Caller<'a> {
    Key(&'a str),
    Person(&'a Signed),
}

impl Caller<'_> {
    fn request(&self, app: &TestApp, method: Method, path: &str, from: &str) -> reqwest::RequestBuilder {
        let req = match self {
            Caller::Key(key) => app.http.request(method, app.url(path)).bearer_auth(key),
            Caller::Person(signed) => signed.request(app, method, path),
        };
        req.header("X-Forwarded-For", from)
    }
}

/// Every operation on one tenant's data in the document: (method, path with its parameters
/// filled with ids that exist nowhere, so that an admitted write changes nothing either).
fn tenant_operations() -> Vec<(Method, String)> {
    let doc: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !(path.starts_with("/tenant/") || path.starts_with("/usage/")) || path.ends_with("/stream") {
            continue;
        }
        let filled = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "nothing_here_0" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((method, filled.clone()));
        }
    }
    assert!(ops.len() > 40, "the document lists the tenant operations: {}", ops.len());
    ops
}

/// A tenant person of `role`, signed in.
async fn tenant_person(app: &TestApp, email: &str, role: &str, tenant: &str) -> (String, Signed) {
    let token = invite(app, json!({"email": email, "role": role, "tenant_id": tenant})).await;
    assert_eq!(accept(app, &token, PASSWORD).await.0, 200);
    let signed = login(app, email, PASSWORD).await.unwrap_or_else(|e| panic!("login {email}: {e:?}"));
    let (_, me) = send(signed.request(app, Method::GET, "/auth/me")).await;
    (me["user_id"].as_str().unwrap().to_string(), signed)
}

/// The comparable part of an answer: its status, and its code when it is a refusal other
/// than 401 (a dead key and a dead session name their own credential).
fn answer(status: u16, body: &Value) -> (u16, Option<String>) {
    let code =
        (status == 403 || status == 429).then(|| body["error"]["code"].as_str().unwrap_or("").to_string());
    (status, code)
}

/// Calls every operation as `key` and as `person` from `from`; asserts they are answered
/// alike and that refusals write nothing. Returns the number of refusals.
async fn compare(
    app: &TestApp,
    ops: &[(Method, String)],
    key: &str,
    person: &Signed,
    from: &str,
    what: &str,
) -> usize {
    let mut refused = 0;
    for (method, path) in ops {
        let mut answers = Vec::new();
        for caller in [Caller::Key(key), Caller::Person(person)] {
            let before = app.head().await;
            let req = caller.request(app, method.clone(), path, from);
            let req =
                if matches!(*method, Method::GET | Method::DELETE) { req } else { req.json(&json!({})) };
            let (status, body) = send(req).await;
            assert!(status < 500, "{what}: {method} {path} answered {status}: {body}");
            if status == 401 || status == 403 || status == 429 {
                refused += 1;
                assert_eq!(app.head().await, before, "{what}: the refused {method} {path} wrote an event");
            }
            answers.push(answer(status, &body));
        }
        let refusal = |a: &(u16, Option<String>)| matches!(a.0, 401 | 403 | 429);
        if refusal(&answers[0]) || refusal(&answers[1]) {
            assert_eq!(
                answers[0], answers[1],
                "{what}: {method} {path}: key {:?}, person {:?}",
                answers[0], answers[1]
            );
        }
    }
    refused
}

#[tokio::test]
async fn a_person_is_answered_as_a_key_of_the_same_role_in_every_state_network_and_credential_state() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--trusted-proxies", "127.0.0.1/32"],
    ))
    .await;
    let ops = tenant_operations();
    let (tenant, admin_key) = app.create_tenant("Policy").await;
    let (_, finance_key) = app.issue_key(&tenant, json!({"role": "tenant_finance"})).await;
    let (admin_id, admin) = tenant_person(&app, "admin@policy.test", "tenant_admin", &tenant).await;
    let (_, finance) = tenant_person(&app, "finance@policy.test", "tenant_finance", &tenant).await;
    let (lowered_id, lowered) = tenant_person(&app, "lowered@policy.test", "tenant_admin", &tenant).await;
    let (s, _) = send(
        app.admin(Method::PUT, "/tenant/security/ip-allowlist")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"enabled": true, "allowed_ips": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(s, 200);
    let tenant_path = format!("/admin/tenants/{tenant}");

    // Live credentials, active and suspended tenant, inside and outside the allowlist.
    for suspended in [false, true] {
        if suspended {
            let (s, _) = send(app.admin(Method::POST, &format!("{tenant_path}/suspend"))).await;
            assert_eq!(s, 200);
        }
        for from in [INSIDE, OUTSIDE] {
            let what = format!("suspended={suspended} from={from}");
            let refused = compare(&app, &ops, &admin_key, &admin, from, &format!("admin {what}")).await;
            let expect_all_refused = suspended || from == OUTSIDE;
            assert_eq!(refused == 2 * ops.len(), expect_all_refused, "admin {what}: {refused} refusals");
            compare(&app, &ops, &finance_key, &finance, from, &format!("finance {what}")).await;
        }
    }
    let (s, _) = send(app.admin(Method::POST, &format!("{tenant_path}/reactivate"))).await;
    assert_eq!(s, 200);

    // A person lowered to viewer is answered as a finance key.
    let (s, body) = send(
        app.admin(Method::PATCH, &format!("/admin/users/{lowered_id}"))
            .json(&json!({"role": "tenant_viewer", "tenant_id": tenant})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    compare(&app, &ops, &finance_key, &lowered, INSIDE, "lowered").await;

    // Dead credentials: a disabled key and a disabled person; a revoked key and a person
    // signed out.
    let disabled_key = {
        let (public_id, full) = app.issue_key(&tenant, json!({"name": "disabled"})).await;
        let (s, _) = send(
            app.http
                .post(app.url(&format!("/tenant/api-keys/{public_id}/disable")))
                .bearer_auth(&admin_key)
                .header("X-Forwarded-For", INSIDE),
        )
        .await;
        assert_eq!(s, 200);
        full
    };
    let (s, _) = send(app.admin(Method::DELETE, &format!("/admin/users/{admin_id}"))).await;
    assert_eq!(s, 204);
    let refused = compare(&app, &ops, &disabled_key, &admin, INSIDE, "disabled").await;
    assert_eq!(refused, 2 * ops.len());
    let (s, _) = send(finance.request(&app, Method::POST, "/auth/logout")).await;
    assert_eq!(s, 204);
    let revoked_key = {
        let (public_id, full) =
            app.issue_key(&tenant, json!({"name": "revoked", "role": "tenant_finance"})).await;
        let (s, _) = send(
            app.http
                .delete(app.url(&format!("/tenant/api-keys/{public_id}")))
                .bearer_auth(&admin_key)
                .header("X-Forwarded-For", INSIDE),
        )
        .await;
        assert_eq!(s, 200);
        full
    };
    let refused = compare(&app, &ops, &revoked_key, &finance, INSIDE, "revoked / signed out").await;
    assert_eq!(refused, 2 * ops.len());

    // A deleted tenant: its keys and its people are gone alike, and nobody signs in again.
    // (The helpers sign in from the loopback, outside the allowlist: lift it first.)
    let (s, _) = send(
        app.admin(Method::PUT, "/tenant/security/ip-allowlist")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"enabled": false, "allowed_ips": []})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, survivor) = tenant_person(&app, "survivor@policy.test", "tenant_admin", &tenant).await;
    let (s, _) = send(app.admin(Method::DELETE, &tenant_path)).await;
    assert_eq!(s, 200);
    let refused = compare(&app, &ops, &admin_key, &survivor, INSIDE, "deleted").await;
    assert_eq!(refused, 2 * ops.len());
    let (status, _) = login(&app, "survivor@policy.test", PASSWORD).await.err().unwrap();
    assert_eq!(status, 401, "a deleted tenant's person signs in no more");
    let (s, body) = send(
        app.admin(Method::POST, "/admin/users")
            .json(&json!({"email": "late@policy.test", "role": "tenant_admin", "tenant_id": tenant})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("unknown_tenant")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn people_of_a_suspended_tenant_or_outside_its_networks_cannot_sign_in_and_invites_wait() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--trusted-proxies", "127.0.0.1/32"],
    ))
    .await;
    let (tenant, _) = app.create_tenant("Gate").await;
    let (_, _signed) = tenant_person(&app, "gate@policy.test", "tenant_admin", &tenant).await;
    let pending =
        invite(&app, json!({"email": "pending@policy.test", "role": "tenant_admin", "tenant_id": tenant}))
            .await;
    let login_from = |from: &'static str| {
        app.http
            .post(app.url("/auth/login"))
            .header("X-Forwarded-For", from)
            .json(&json!({"email": "gate@policy.test", "password": PASSWORD}))
    };

    let (s, _) = send(
        app.admin(Method::PUT, "/tenant/security/ip-allowlist")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"enabled": true, "allowed_ips": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = send(login_from(OUTSIDE)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("ip_not_allowed")), "{body}");
    assert_eq!(send(login_from(INSIDE)).await.0, 200);

    let (s, _) = send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))).await;
    assert_eq!(s, 200);
    let (s, body) = send(login_from(INSIDE)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("tenant_suspended")), "{body}");
    let (s, body) = send(
        app.http
            .post(app.url(&format!("/auth/invites/{pending}/accept")))
            .header("X-Forwarded-For", INSIDE)
            .json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("tenant_suspended")), "{body}");

    let (s, _) = send(app.admin(Method::DELETE, &format!("/admin/tenants/{tenant}"))).await;
    assert_eq!(s, 200);
    let (s, body) = send(
        app.http
            .post(app.url(&format!("/auth/invites/{pending}/accept")))
            .header("X-Forwarded-For", INSIDE)
            .json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (422, Some("invite_invalid")),
        "a deleted tenant's invite is void: {body}"
    );
    let (s, body) = send(login_from(INSIDE)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("invalid_credentials")), "{body}");
    app.stop().await;
}
