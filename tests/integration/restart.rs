//! Restart equivalence (the invariant behind finding 1): a generated history over every
//! aggregate and event type is driven through the HTTP API of the real binary, which is
//! `kill -9`ed and stopped cleanly at several points. After each restart, and on a second
//! instance started later, every key's verify answer and a fixed set of control-API answers
//! are what they were; the in-memory key cache equals a cache replayed from position 0, and
//! every query table equals a rebuild.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::projections::snapshot as table_dump;

/// A client of one running instance, as the super admin.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).header("X-Master-Key", MASTER);
        if let Some(t) = tenant {
            req = req.header("X-Tenant-ID", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req).await
    }

    async fn ok(&self, method: Method, path: &str, tenant: Option<&str>, body: Value) -> Value {
        let (s, answer) = self.call(method.clone(), path, tenant, Some(body)).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {answer}");
        answer
    }
}

/// Removes what legitimately differs between two reads (batched last-use stamps, request ids,
/// window ends computed from the clock).
fn normalise(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for k in ["last_used_at", "request_id", "resets_at", "rate_limit_reset"] {
                    map.remove(k);
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// What a history has produced so far: the tenants and every full key ever handed out.
#[derive(Default)]
struct Ledger {
    tenants: Vec<String>,
    subs: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    full_keys: Vec<String>,
    secrets: Vec<(String, String)>,
}

struct Gen(XorShift);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Drives `steps` generated commands through `api`, recording what they produce.
async fn drive(api: &Api, ledger: &mut Ledger, g: &mut Gen, steps: usize) {
    if ledger.tenants.is_empty() {
        for i in 0..4 {
            let t = api
                .ok(Method::POST, "/admin/tenants", None, json!({"name": format!("R{i}"), "plan": "pro"}))
                .await;
            ledger.tenants.push(t["tenant_id"].as_str().unwrap().to_string());
            ledger.full_keys.push(t["api_key"].as_str().unwrap().to_string());
            ledger.keys.push((
                t["tenant_id"].as_str().unwrap().into(),
                t["public_id"].as_str().unwrap_or_default().into(),
            ));
        }
    }
    for _ in 0..steps {
        let tenant = ledger.tenants[g.below(ledger.tenants.len())].clone();
        let t = Some(tenant.as_str());
        match g.below(14) {
            0 | 1 => {
                let quota = if g.below(2) == 0 { json!(null) } else { json!(500 + g.below(500)) };
                let (s, sub) = api
                    .call(Method::POST, "/tenant/sub-accounts", t, Some(json!({"name": format!("s{}", g.next() % 1000), "permissions": ["chat", "embeddings"], "quota_limit": quota})))
                    .await;
                if s == 201 {
                    ledger.subs.push((tenant.clone(), sub["sub_account_id"].as_str().unwrap().to_string()));
                }
            }
            2..=4 => {
                let mut body = json!({"tenant_id": tenant, "name": format!("k{}", g.next() % 1000)});
                let subs: Vec<&String> =
                    ledger.subs.iter().filter(|(tt, _)| *tt == tenant).map(|(_, s)| s).collect();
                if !subs.is_empty() && g.below(2) == 0 {
                    body["sub_account_id"] = json!(subs[g.below(subs.len())]);
                    body["permissions"] = json!(["chat"]);
                }
                match g.below(5) {
                    0 => body["allowed_ips"] = json!(["10.0.0.0/8"]),
                    1 => body["allowed_models"] = json!(["claude"]),
                    2 => {
                        body["quota_limit"] = json!(100);
                        body["quota_period"] = json!("month");
                    }
                    3 => body["expiration"] = json!("2099-01-01T00:00:00Z"),
                    _ => body["tags"] = json!({"customer_id": format!("c{}", g.below(9))}),
                }
                let (s, k) = api.call(Method::POST, "/admin/api-keys", None, Some(body)).await;
                if s == 201 {
                    ledger.full_keys.push(k["api_key"].as_str().unwrap().to_string());
                    ledger.keys.push((tenant.clone(), k["public_id"].as_str().unwrap().to_string()));
                }
            }
            5..=8 if !ledger.keys.is_empty() => {
                let (kt, id) = ledger.keys[g.below(ledger.keys.len())].clone();
                let kt = Some(kt.as_str());
                let (method, path, body) = match g.below(6) {
                    0 => (Method::POST, format!("/tenant/api-keys/{id}/disable"), None),
                    1 => (Method::POST, format!("/tenant/api-keys/{id}/enable"), None),
                    2 => (Method::DELETE, format!("/tenant/api-keys/{id}"), None),
                    3 => (
                        Method::POST,
                        format!("/tenant/api-keys/{id}/rotate"),
                        Some(json!({"grace_period_seconds": 3600})),
                    ),
                    4 => (Method::POST, format!("/tenant/api-keys/{id}/rotate"), None),
                    _ => (
                        Method::PATCH,
                        format!("/tenant/api-keys/{id}"),
                        Some(json!({"name": format!("p{}", g.below(99)), "quota_limit": 50})),
                    ),
                };
                let (s, answer) = api.call(method, &path, kt, body).await;
                if s == 200 {
                    if let Some(full) = answer["api_key"].as_str() {
                        ledger.full_keys.push(full.to_string());
                    }
                }
            }
            9 if !ledger.subs.is_empty() => {
                let (st, sub) = ledger.subs[g.below(ledger.subs.len())].clone();
                let action = ["disable", "enable", "delete"][g.below(3)];
                let (method, path) = if action == "delete" {
                    (Method::DELETE, format!("/tenant/sub-accounts/{sub}"))
                } else {
                    (Method::POST, format!("/tenant/sub-accounts/{sub}/{action}"))
                };
                api.call(method, &path, Some(&st), None).await;
            }
            10 => {
                let action = ["suspend", "reactivate", "suspend", "reactivate", "delete"][g.below(5)];
                if action == "delete" {
                    api.call(Method::DELETE, &format!("/admin/tenants/{tenant}"), None, None).await;
                } else {
                    api.call(Method::POST, &format!("/admin/tenants/{tenant}/{action}"), None, None).await;
                }
            }
            11 => {
                let on = g.below(2) == 0;
                api.call(
                    Method::PUT,
                    "/tenant/security/ip-allowlist",
                    t,
                    Some(json!({"enabled": on, "allowed_ips": ["127.0.0.0/8", "10.0.0.0/8"]})),
                )
                .await;
            }
            12 => {
                let name = format!("S{}", g.below(4));
                let (s, _) = api
                    .call(Method::POST, "/tenant/secrets", t, Some(json!({"key": name, "value": "v"})))
                    .await;
                if s == 200 {
                    ledger.secrets.push((tenant.clone(), name));
                }
            }
            _ if !ledger.secrets.is_empty() => {
                let (st, name) = ledger.secrets[g.below(ledger.secrets.len())].clone();
                api.call(Method::DELETE, &format!("/tenant/secrets/{name}"), Some(&st), None).await;
            }
            _ => {}
        }
    }
}

/// Everything an outside client can observe about the history.
async fn observe(api: &Api, ledger: &Ledger, gateway: &str) -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    for (i, key) in ledger.full_keys.iter().enumerate() {
        let (s, v) = send(
            api.http
                .post(format!("{}/v1/keys/verify", api.base))
                .bearer_auth(gateway)
                .json(&json!({"key": key, "ip": "127.0.0.1", "model": "gpt-4o"})),
        )
        .await;
        seen.insert(format!("verify {i:03}"), json!([s, normalise(v)]));
        // The same key on the control API (tenant admins, and 401 for everything else).
        let (s, _) = send(api.http.get(format!("{}/tenant/info", api.base)).bearer_auth(key)).await;
        seen.insert(format!("as key {i:03}"), json!(s));
    }
    let (s, v) = api.call(Method::GET, "/admin/tenants?limit=200", None, None).await;
    seen.insert("tenants".into(), json!([s, normalise(v)]));
    for t in &ledger.tenants {
        for path in [
            format!("/admin/api-keys?tenant_id={t}&limit=200"),
            "/tenant/sub-accounts?limit=200".to_string(),
            "/tenant/security/ip-allowlist".to_string(),
            "/tenant/secrets?detail=true".to_string(),
            "/tenant/info".to_string(),
            "/tenant/rbac".to_string(),
        ] {
            let (s, v) = api.call(Method::GET, &path, Some(t), None).await;
            seen.insert(format!("{t} {path}"), json!([s, normalise(v)]));
        }
    }
    seen
}

fn assert_same(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>, when: &str) {
    assert_eq!(before.len(), after.len(), "{when}: different observations");
    for (k, v) in before {
        assert_eq!(Some(v), after.get(k), "{when}: {k} changed");
    }
}

/// The in-process instance's cache equals a replay from 0, and its tables a rebuild.
async fn assert_derived_state_converges(app: &TestApp) {
    app.app.state.readmodels.wait_for_head().await;
    let live = app.app.state.keys.canonical_dump();
    let replayed = tokenhub::cache::KeyCache::replayed(&app.pool).await.unwrap().canonical_dump();
    assert_eq!(live, replayed, "the key cache after a restart differs from a replay of the log");
    let tables = table_dump(&app.pool).await;
    let progress = |_: &str, _: i64, _: i64| {};
    tokenhub_projections::rebuild_all(&app.pool, &tokenhub_projections::all(), &progress).await.unwrap();
    assert_eq!(table_dump(&app.pool).await, tables, "query tables differ from a rebuild");
}

#[tokio::test]
async fn every_answer_survives_kill_9_restarts_and_a_second_instance() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    tokenhub::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut g = Gen(XorShift(0x2545_F491_4F6C_DD1D));
    let mut ledger = Ledger::default();

    // Phase 1 on the binary, then kill -9.
    let mut a = ServerProcess::start(&db, &stream);
    a.wait_ready(&http).await;
    let api = Api { http: http.clone(), base: a.base.clone() };
    let gw =
        api.ok(Method::POST, "/admin/platform-keys", None, json!({"name": "gw", "role": "gateway"})).await;
    let gateway = gw["api_key"].as_str().unwrap().to_string();
    drive(&api, &mut ledger, &mut g, 80).await;
    let before = observe(&api, &ledger, &gateway).await;
    a.kill9();

    // Restart (in process, so its cache can be compared with a replay).
    let app =
        TestApp::start_with(config(&db, &stream, &["--master-api-key", MASTER, "--key-pepper", PEPPER]))
            .await;
    let api = Api { http: http.clone(), base: format!("http://{}", app.addr) };
    assert_same(&before, &observe(&api, &ledger, &gateway).await, "after kill -9");
    assert_derived_state_converges(&app).await;
    app.stop().await;

    // Phase 2 on the binary again, then a clean stop.
    let mut b = ServerProcess::start(&db, &stream);
    b.wait_ready(&http).await;
    let api = Api { http: http.clone(), base: b.base.clone() };
    assert_same(&before, &observe(&api, &ledger, &gateway).await, "after a clean restart");
    drive(&api, &mut ledger, &mut g, 80).await;
    let before = observe(&api, &ledger, &gateway).await;
    // kill -9 in the middle of more writes: what was acknowledged must be there after.
    drive(&api, &mut ledger, &mut g, 10).await;
    let acknowledged = observe(&api, &ledger, &gateway).await;
    b.kill9();
    assert!(before.len() <= acknowledged.len());

    let app =
        TestApp::start_with(config(&db, &stream, &["--master-api-key", MASTER, "--key-pepper", PEPPER]))
            .await;
    let api = Api { http: http.clone(), base: format!("http://{}", app.addr) };
    assert_same(&acknowledged, &observe(&api, &ledger, &gateway).await, "after kill -9 during writes");
    assert_derived_state_converges(&app).await;

    // A second instance started later agrees with the first.
    let mut second = ServerProcess::start(&db, &stream);
    second.wait_ready(&http).await;
    let other = Api { http: http.clone(), base: second.base.clone() };
    assert_same(&acknowledged, &observe(&other, &ledger, &gateway).await, "on a second instance");
    second.terminate();
    app.stop().await;
    assert!(ledger.full_keys.len() > 20, "the history issued keys ({})", ledger.full_keys.len());
}
