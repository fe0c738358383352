//! Every input has an answer (findings 3, 5, 6): control characters in any string field, query
//! value, path or header get a 4xx naming the place, never a 503 "retry later" or a partial
//! write; a JSON array where an object is expected is 422; a non-ASCII byte inside a key is
//! `MALFORMED`, not a dropped connection. Then every documented operation is sent generated
//! bodies: each gets a 2xx or a documented 4xx, never a 5xx or a hang.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test]
async fn control_characters_and_wrong_shapes_get_a_4xx_naming_the_place() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Inputs").await;

    // Finding 5: a NUL in a body string. The tenant is not suspended (no partial write).
    let (s, body) = send(
        app.admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))
            .json(&json!({"reason": "a\u{0}b"})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("invalid_request")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("$.reason"), "{body}");
    let (_, info) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin)).await;
    assert_eq!(info["status"], "active");
    for (path, body) in [
        ("/tenant/rbac/roles", json!({"name": "r1", "description": "x\u{0}", "permissions": ["read"]})),
        ("/tenant/sub-accounts", json!({"name": "esc\u{1b}[31m"})),
        ("/tenant/secrets", json!({"key": "K", "value": "v\u{0}"})),
        ("/tenant/api-keys", json!({"name": "k", "tags": {"c\u{7}": "x"}})),
    ] {
        let (s, answer) = send(app.http.post(app.url(path)).bearer_auth(&admin).json(&body)).await;
        assert_eq!(s, 422, "{path}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().starts_with("$."), "{path}: {answer}");
    }
    // In query values (filters, cursors), in the audit export too (it answered 200 and was cut off).
    for path in [
        "/audit/events?event_type=%00",
        "/audit/events?cursor=%00",
        "/audit/events/export?actor_id=a%00b",
        "/admin/tenants?cursor=1%00",
        "/admin/api-keys?tag=a%3Db%00",
    ] {
        let (s, answer) = send(app.admin(Method::GET, path)).await;
        assert_eq!((s, answer["error"]["code"].as_str()), (422, Some("invalid_query")), "{path}: {answer}");
    }
    let (s, answer) = send(app.http.get(app.url("/usage/history?model=%00")).bearer_auth(&admin)).await;
    assert_eq!(s, 422, "{answer}");
    // In the path.
    let (s, answer) = send(app.admin(Method::GET, "/admin/tenants/ten_%00")).await;
    assert_eq!((s, answer["error"]["code"].as_str()), (400, Some("invalid_path")), "{answer}");

    // Finding 6: a JSON array where an object is expected creates nothing.
    let before = app.head().await;
    let res = app
        .admin(Method::POST, "/admin/tenants")
        .header("Content-Type", "application/json")
        .body(r#"["ArrayCo"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(app.head().await, before, "nothing was written");

    // Finding 3: a two-byte character at byte 16 of a key, and at every other position.
    let gateway = app.platform_key("gateway").await;
    let (_, key) = app.issue_key(&tenant, json!({})).await;
    for at in [16, 4, 20, 60] {
        let odd = format!("{}é{}", &key[..at], &key[at + 2..]);
        let v = app.verify(&gateway, json!({"key": odd})).await;
        assert_eq!(v["code"], "MALFORMED", "at {at}");
        let (s, _) = send(app.http.get(app.url("/tenant/info")).bearer_auth(&odd)).await;
        assert_eq!(s, 401);
    }

    // A control character in a header, sent raw (clients refuse to build it).
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!("GET /tenant/info HTTP/1.1\r\nHost: x\r\nX-Master-Key: {MASTER}\r\nX-Tenant-ID: ten\x01x\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer)).await;
    let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&status), "answer: {answer:?}");
    app.stop().await;
}

struct Gen(XorShift);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn string(&mut self) -> Value {
        let odd = [
            "",
            " ",
            "a\u{0}b",
            "\u{1b}[2J",
            "é",
            "👩‍💻",
            "x".repeat(300).as_str(),
            "ten_abcdefghij0123456789",
            "thk_",
            "../../etc",
            "'; DROP TABLE events; --",
            "GET",
            "get",
            "2026-01-01T00:00:00Z",
            "not-a-date",
            "127.0.0.1",
            "::1",
            "999.1.1.1/99",
            "chat",
            "keys:manage",
            "TENANT",
            "pro",
            "enterprise",
            "data",
            "tenant_admin",
            "gateway",
            "block",
            "month",
            "https://example.com/h",
            "http://169.254.169.254/",
        ]
        .map(String::from);
        json!(odd[self.below(odd.len() as u64) as usize].clone())
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 5 } else { 8 }) {
            0 => json!(null),
            1 => json!(self.below(2) == 0),
            2 => {
                [json!(0), json!(-1), json!(1), json!(1.5), json!(i64::MAX), json!(u64::MAX), json!(-9.9e300)]
                    [self.below(7) as usize]
                    .clone()
            }
            3 | 4 => self.string(),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => self.object(depth + 1),
        }
    }

    fn object(&mut self, depth: u32) -> Value {
        let fields = [
            "name",
            "plan",
            "region",
            "tenant_id",
            "role",
            "sub_account_id",
            "permissions",
            "quota_limit",
            "quota_period",
            "expiration",
            "expires_at",
            "allowed_ips",
            "allowed_models",
            "tags",
            "rate_limit",
            "requests_per_minute",
            "key",
            "value",
            "reason",
            "description",
            "enabled",
            "defaultRole",
            "default_role",
            "routes",
            "credentials",
            "webhooks",
            "cache",
            "rateLimit",
            "records",
            "id",
            "api_calls",
            "prompt_tokens",
            "timestamp",
            "model",
            "userId",
            "resource",
            "metric",
            "amount",
            "version",
            "grace_period_seconds",
            "limits",
            "status",
            "ip",
            "ip_whitelist",
            "security",
            "tenant_ids",
            "x",
        ];
        let mut map = serde_json::Map::new();
        for _ in 0..self.below(6) {
            let k = fields[self.below(fields.len() as u64) as usize];
            map.insert(k.to_string(), self.value(depth));
        }
        Value::Object(map)
    }
}

#[tokio::test]
async fn every_operation_answers_generated_bodies_with_a_2xx_or_4xx() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, _) = app.create_tenant("Fuzzed").await;
    let (public_id, _) = app.issue_key(&tenant, json!({})).await;
    let spec: Value = serde_json::from_str(&tokenhub::http::openapi::document_json()).unwrap();
    let mut g = Gen(XorShift(0xD1B5_4A32_D192_ED03));
    let mut sent = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let concrete = path
                .replace("{id}", &tenant)
                .replace("{public_id}", &public_id)
                .replace("{name}", "viewer")
                .replace("{key}", "TARGET");
            for i in 0..25 {
                let body = match i % 5 {
                    0 => g.value(0),
                    _ => g.object(0),
                };
                let req = app
                    .admin(method.parse().unwrap(), &concrete)
                    .header("X-Tenant-ID", &tenant)
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
                let res = tokio::time::timeout(Duration::from_secs(10), req.send())
                    .await
                    .unwrap_or_else(|_| panic!("{method} {concrete} hung on {body}"))
                    .unwrap_or_else(|e| panic!("{method} {concrete}: connection failed on {body}: {e}"));
                let status = res.status().as_u16();
                assert!(
                    status < 500,
                    "{method} {concrete} answered {status} to {body}: {}",
                    res.text().await.unwrap_or_default()
                );
                sent += 1;
            }
        }
    }
    assert!(sent > 300, "{sent}");
    app.stop().await;
}

/// What the document states and schemathesis checks: one credential per request; an empty
/// query value is refused; an empty `X-Tenant-ID` names no tenant; `null` is "no options";
/// an integral number written as a float (`60.0`) is an integer.
#[tokio::test]
async fn the_documented_input_rules_hold() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Rules").await;

    let (s, body) = send(app.admin(Method::GET, "/tenant/info").bearer_auth(&admin)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("ambiguous_credentials")), "{body}");
    let (s, body) =
        send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin).header("X-API-Key", &admin)).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("ambiguous_credentials")), "{body}");
    // A key and a session cookie, even an empty or unknown one, are two credentials.
    for cookie in ["tokenhub_session=", "tokenhub_session=ths_unknown", "a=b; tokenhub_session=x"] {
        let (s, body) = send(app.admin(Method::GET, "/admin/tenants").header("Cookie", cookie)).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (401, Some("ambiguous_credentials")),
            "{cookie}: {body}"
        );
    }
    let (s, body) = send(app.http.get(app.url("/tenant/info")).header("Cookie", "tokenhub_session=")).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("invalid_session")), "{body}");
    // Other cookies (the CSRF cookie included) are not credentials.
    let (s, _) =
        send(app.admin(Method::GET, "/admin/tenants").header("Cookie", "tokenhub_csrf=x; theme=dark")).await;
    assert_eq!(s, 200);

    let (s, body) = send(app.admin(Method::GET, "/admin/tenants?cursor=")).await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("invalid_query")), "{body}");

    let (s, body) =
        send(app.http.get(app.url("/tenant/info")).bearer_auth(&admin).header("X-Tenant-ID", "")).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("tenant_mismatch")), "{body}");
    let (s, body) = send(app.admin(Method::GET, "/tenant/info").header("X-Tenant-ID", "")).await;
    assert_eq!((s, body["error"]["code"].as_str()), (404, Some("tenant_not_found")), "{body}");

    let (s, body) = send(
        app.admin(Method::POST, &format!("/admin/tenants/{tenant}/suspend"))
            .header("Content-Type", "application/json")
            .body("null"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    send(app.admin(Method::POST, &format!("/admin/tenants/{tenant}/reactivate"))).await;

    let (s, body) = send(
        app.http
            .post(app.url("/tenant/api-keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "floats", "rate_limit": {"requests_per_minute": 60.0}})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = send(
        app.http
            .post(app.url("/tenant/api-keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "fraction", "rate_limit": {"requests_per_minute": 60.5}})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("invalid_request")), "{body}");
    app.stop().await;
}

/// The schema `schema` points to (following `$ref` and `allOf` of one).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    match schema["allOf"].as_array() {
        Some(all) if all.len() == 1 => resolve(doc, &all[0]),
        _ => schema,
    }
}

/// Whether a schema is (or may be, through `oneOf`/`anyOf` or `null`) an object with fields.
fn is_object(doc: &Value, schema: &Value) -> bool {
    let s = resolve(doc, schema);
    s["properties"].is_object()
        || ["oneOf", "anyOf"].iter().any(|k| {
            s[*k]
                .as_array()
                .is_some_and(|alts| alts.iter().any(|a| resolve(doc, a)["properties"].is_object()))
        })
}

/// The paths (as JSON paths) of every object position in `schema`, down to `depth`, with the
/// body that puts an array there (and `{}` along the way).
fn object_positions(doc: &Value, schema: &Value, depth: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if !is_object(doc, schema) || depth == 0 {
        return out;
    }
    out.push(("$".to_string(), json!([1, 2, 3])));
    let s = resolve(doc, schema);
    let Some(props) = s["properties"].as_object() else { return out };
    for (name, prop) in props {
        let mut inner =
            if is_object(doc, prop) { object_positions(doc, prop, depth - 1) } else { Vec::new() };
        // Arrays of objects: an array in the element's place.
        let items = &resolve(doc, prop)["items"];
        if items.is_object() && is_object(doc, items) {
            for (path, body) in object_positions(doc, items, depth - 1) {
                inner.push((path.replacen('$', "$[0]", 1), json!([body])));
            }
        }
        for (path, body) in inner {
            out.push((path.replacen('$', &format!("$.{name}"), 1), json!({ name.clone(): body })));
        }
    }
    out
}

#[tokio::test]
async fn an_array_at_any_object_position_of_any_operation_body_is_refused_and_writes_nothing() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Arrays").await;
    let doc: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            if !schema.is_object() {
                continue;
            }
            let filled = path
                .replace("{id}", &tenant)
                .replace("{public_id}", "nothing_here")
                .replace('{', "x")
                .replace('}', "");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (at, body) in object_positions(&doc, schema, 4) {
                let before = app.head().await;
                let req = if path.starts_with("/tenant/")
                    || path.starts_with("/usage/")
                    || path.starts_with("/auth/")
                {
                    app.http.request(method.clone(), app.url(&filled)).bearer_auth(&admin)
                } else {
                    app.admin(method.clone(), &filled)
                };
                let (s, answer) = send(req.json(&body)).await;
                tried += 1;
                assert!((400..500).contains(&s), "{method} {path} with an array at {at}: {s} {answer}");
                assert_eq!(app.head().await, before, "{method} {path} with an array at {at} wrote");
                if s == 422 {
                    let message = answer["error"]["message"].as_str().unwrap_or_default();
                    assert!(
                        !message.contains("sequence")
                            || message.contains("expected an object")
                            || message.contains("expected a"),
                        "{method} {path} at {at}: {message}"
                    );
                }
            }
        }
    }
    assert!(tried > 40, "only {tried} bodies generated");
    // The finding itself: an array for `limits` sets nothing.
    let (s, answer) = send(
        app.admin(Method::PATCH, &format!("/admin/tenants/{tenant}")).json(&json!({"limits": [5, 6, 7, 8]})),
    )
    .await;
    assert_eq!((s, answer["error"]["code"].as_str()), (422, Some("invalid_request")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("expected an object"), "{answer}");
    app.stop().await;
}
