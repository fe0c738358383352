//! Privileges never grow. A sub-account manager (a data key of a sub-account holding
//! `keys:manage` itself) is driven through every key-management route, against keys of every
//! kind, with generated bodies; no answer may return or enable a credential broader than its
//! own (role, permissions, quota, expiry, networks, models, tags, rate limit). Finding 2 of
//! the trust issue is the first case below.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

struct World {
    app: TestApp,
    tenant: String,
    admin: String,
    sub: String,
    manager: String,
    manager_id: String,
}

const MANAGER_EXPIRY: &str = "2099-01-01T00:00:00Z";

async fn world() -> (TestDb, TestStream, World) {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Escalation").await;
    let post = |path: &str, body: Value| send(app.http.post(app.url(path)).bearer_auth(&admin).json(&body));
    let (s, sub) = post(
        "/tenant/sub-accounts",
        json!({"name": "team", "permissions": ["keys:manage", "chat", "embeddings"]}),
    )
    .await;
    assert_eq!(s, 201, "{sub}");
    let sub = sub["sub_account_id"].as_str().unwrap().to_string();
    let (s, m) = post(
        "/tenant/api-keys",
        json!({"name": "manager", "sub_account_id": sub, "permissions": ["keys:manage", "chat"],
               "quota_limit": 1000, "quota_period": "month", "expiration": MANAGER_EXPIRY,
               "allowed_ips": ["127.0.0.0/8"], "allowed_models": ["gpt-4o"],
               "tags": {"customer_id": "acme"}, "rate_limit": {"requests_per_minute": 10000}}),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    let world = World {
        tenant,
        admin,
        sub,
        manager: m["api_key"].as_str().unwrap().to_string(),
        manager_id: m["public_id"].as_str().unwrap().to_string(),
        app,
    };
    (db, stream, world)
}

impl World {
    fn as_manager(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.http.request(method, self.app.url(path)).bearer_auth(&self.manager)
    }

    fn as_admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.http.request(method, self.app.url(path)).bearer_auth(&self.admin)
    }

    async fn admin_key(&self, body: Value) -> (String, String) {
        let (s, k) = send(self.as_admin(Method::POST, "/tenant/api-keys").json(&body)).await;
        assert_eq!(s, 201, "{k}");
        (k["public_id"].as_str().unwrap().into(), k["api_key"].as_str().unwrap().into())
    }
}

/// True when key view `k` is no broader than the manager's own credential.
fn within_manager(k: &Value, sub: &str) -> Result<(), String> {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    if k["role"] != "data" {
        return Err(format!("role {}", k["role"]));
    }
    if k["sub_account_id"] != sub {
        return Err(format!("sub-account {}", k["sub_account_id"]));
    }
    let perms = strs(&k["permissions"]);
    if perms.is_empty() || perms.iter().any(|p| p != "keys:manage" && p != "chat") {
        return Err(format!("permissions {perms:?}"));
    }
    if k["quota_limit"].as_i64().is_none_or(|q| q > 1000) || k["quota_period"] != "month" {
        return Err(format!("quota {} {}", k["quota_limit"], k["quota_period"]));
    }
    if k["expiration"].as_str().is_none_or(|e| e > MANAGER_EXPIRY) {
        return Err(format!("expiration {}", k["expiration"]));
    }
    let ips = strs(&k["allowed_ips"]);
    let inside = |net: &str| {
        net.parse::<ipnet::IpNet>()
            .is_ok_and(|n| "127.0.0.0/8".parse::<ipnet::IpNet>().is_ok_and(|m| m.contains(&n)))
    };
    if ips.is_empty() || !ips.iter().all(|n| inside(n)) {
        return Err(format!("allowed_ips {ips:?}"));
    }
    let models = strs(&k["allowed_models"]);
    if models != ["gpt-4o"] {
        return Err(format!("allowed_models {models:?}"));
    }
    if k["tags"]["customer_id"] != "acme" {
        return Err(format!("tags {}", k["tags"]));
    }
    if k["rate_limit"]["requests_per_minute"].as_u64().is_none_or(|r| r > 10000) {
        return Err(format!("rate_limit {}", k["rate_limit"]));
    }
    Ok(())
}

#[tokio::test]
async fn a_sub_account_manager_cannot_take_over_its_tenant() {
    let (_db, _stream, w) = world().await;
    // Only data keys belong to sub-accounts: the tenant-admin key of finding 2 is refused.
    let (s, body) = send(
        w.as_admin(Method::POST, "/tenant/api-keys")
            .json(&json!({"name": "x", "role": "tenant_admin", "sub_account_id": w.sub})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (422, Some("sub_account_key_not_data")), "{body}");

    // The manager cannot rotate the owner's key, nor a broad key of its own sub-account.
    let (owner_id, _) = w.admin_key(json!({"name": "owner2", "role": "tenant_admin"})).await;
    let (wide_id, _) = w.admin_key(json!({"name": "wide", "sub_account_id": w.sub})).await;
    for (target, expected) in [(&owner_id, 404), (&wide_id, 403)] {
        let (s, body) = send(w.as_manager(Method::POST, &format!("/tenant/api-keys/{target}/rotate"))).await;
        assert_eq!(s, expected, "rotate {target}: {body}");
        assert!(body.get("api_key").is_none());
    }
    // Nor strip a sibling's restrictions.
    let (narrow_id, _) = w
        .admin_key(json!({"name": "narrow", "sub_account_id": w.sub, "permissions": ["chat"], "quota_limit": 10,
                          "quota_period": "month", "expiration": "2098-01-01T00:00:00Z", "allowed_ips": ["127.0.0.1"],
                          "allowed_models": ["gpt-4o"], "tags": {"customer_id": "acme"}, "rate_limit": {"requests_per_minute": 5}}))
        .await;
    for strip in [
        json!({"expiration": null}),
        json!({"allowed_ips": []}),
        json!({"quota_limit": null}),
        json!({"allowed_models": []}),
        json!({"tags": {}}),
        json!({"rate_limit": null}),
        json!({"permissions": ["chat", "embeddings"]}),
        json!({"permissions": []}),
    ] {
        let (s, body) =
            send(w.as_manager(Method::PATCH, &format!("/tenant/api-keys/{narrow_id}")).json(&strip)).await;
        assert_eq!(s, 403, "{strip}: {body}");
    }
    // Re-enabling what a tenant admin disabled needs a tenant admin.
    let (s, _) = send(w.as_admin(Method::POST, &format!("/tenant/api-keys/{narrow_id}/disable"))).await;
    assert_eq!(s, 200);
    let (s, body) = send(w.as_manager(Method::POST, &format!("/tenant/api-keys/{narrow_id}/enable"))).await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = send(w.as_admin(Method::POST, &format!("/tenant/api-keys/{narrow_id}/enable"))).await;
    assert_eq!(s, 200);
    // What it disabled itself it may enable again; and it may rotate a key within its own.
    for step in ["disable", "enable", "rotate"] {
        let (s, body) =
            send(w.as_manager(Method::POST, &format!("/tenant/api-keys/{narrow_id}/{step}"))).await;
        assert_eq!(s, 200, "{step}: {body}");
    }
    w.app.stop().await;
}

#[tokio::test]
async fn keys_manage_is_never_inherited_from_the_sub_account() {
    let (_db, _stream, w) = world().await;
    // No permission list of its own: it takes the sub-account's, but not `keys:manage`.
    let (_, plain) = w.admin_key(json!({"name": "plain", "sub_account_id": w.sub})).await;
    let (s, body) = send(w.app.http.get(w.app.url("/tenant/api-keys")).bearer_auth(&plain)).await;
    assert_eq!(s, 403, "{body}");
    w.app.stop().await;
}

struct Gen(XorShift);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn maybe(&mut self, body: &mut serde_json::Map<String, Value>, key: &str, values: &[Value]) {
        if self.next() % 4 == 0 {
            body.insert(key.into(), self.pick(values).clone());
        }
    }

    fn body(&mut self, sub: &str, other_sub: &str) -> Value {
        let mut b = serde_json::Map::new();
        self.maybe(&mut b, "role", &[json!("data"), json!("tenant_admin"), json!("tenant_finance")]);
        self.maybe(&mut b, "sub_account_id", &[json!(sub), json!(other_sub)]);
        self.maybe(
            &mut b,
            "permissions",
            &[
                json!([]),
                json!(["chat"]),
                json!(["chat", "embeddings"]),
                json!(["keys:manage"]),
                json!(["admin"]),
            ],
        );
        self.maybe(&mut b, "quota_limit", &[json!(1), json!(1000), json!(1001), json!(1_000_000_000)]);
        self.maybe(&mut b, "quota_period", &[json!("day"), json!("month")]);
        self.maybe(&mut b, "expiration", &[json!("2050-01-01T00:00:00Z"), json!("2200-01-01T00:00:00Z")]);
        self.maybe(
            &mut b,
            "allowed_ips",
            &[json!([]), json!(["127.0.0.1"]), json!(["0.0.0.0/0"]), json!(["10.0.0.0/8"])],
        );
        self.maybe(&mut b, "allowed_models", &[json!([]), json!(["gpt-4o"]), json!(["gpt-4o", "o1"])]);
        self.maybe(
            &mut b,
            "tags",
            &[
                json!({}),
                json!({"customer_id": "acme"}),
                json!({"customer_id": "evil"}),
                json!({"team": "x"}),
            ],
        );
        self.maybe(
            &mut b,
            "rate_limit",
            &[
                json!({"requests_per_minute": 50}),
                json!({"requests_per_minute": 5000}),
                json!({"requests_per_minute": 20000}),
                json!({"tokens_per_minute": 5}),
            ],
        );
        Value::Object(b)
    }
}

#[tokio::test]
async fn generated_requests_never_yield_a_broader_credential() {
    let (_db, _stream, w) = world().await;
    let (s, other) = send(
        w.as_admin(Method::POST, "/tenant/sub-accounts")
            .json(&json!({"name": "sibling", "permissions": ["chat"]})),
    )
    .await;
    assert_eq!(s, 201, "{other}");
    let other_sub = other["sub_account_id"].as_str().unwrap().to_string();
    let mut g = Gen(XorShift(0x9E37_79B9_7F4A_7C15));
    let mut accepted = 0;
    for i in 0..80 {
        let mut body = g.body(&w.sub, &other_sub);
        body["name"] = json!(format!("gen-{i}"));
        let (s, key) = send(w.as_manager(Method::POST, "/tenant/api-keys").json(&body)).await;
        match s {
            201 => {
                accepted += 1;
                within_manager(&key, &w.sub)
                    .unwrap_or_else(|e| panic!("issued {body} → broader key: {e}\n{key}"));
                // Every change to it must keep it within the manager's credential too.
                let id = key["public_id"].as_str().unwrap();
                let mut patch = g.body(&w.sub, &other_sub);
                if let Some(m) = patch.as_object_mut() {
                    m.remove("role");
                    m.remove("sub_account_id");
                }
                if patch.as_object().is_some_and(|m| !m.is_empty()) {
                    let (s, after) =
                        send(w.as_manager(Method::PATCH, &format!("/tenant/api-keys/{id}")).json(&patch))
                            .await;
                    if s == 200 {
                        within_manager(&after, &w.sub)
                            .unwrap_or_else(|e| panic!("patch {patch} → broader key: {e}"));
                    } else {
                        assert!([403, 422].contains(&s), "patch {patch}: {s} {after}");
                    }
                }
                let (s, rotated) =
                    send(w.as_manager(Method::POST, &format!("/tenant/api-keys/{id}/rotate"))).await;
                assert_eq!(s, 200, "{rotated}");
                within_manager(&rotated, &w.sub).unwrap_or_else(|e| panic!("rotation → broader key: {e}"));
            }
            403 | 422 => {}
            other => panic!("issue {body}: unexpected {other} {key}"),
        }
    }
    assert!(accepted >= 5, "the generator should produce some acceptable requests ({accepted})");
    // The manager's own key is unchanged by all of it.
    let (s, own) = send(w.as_admin(Method::GET, &format!("/tenant/api-keys/{}", w.manager_id))).await;
    assert_eq!(s, 200);
    assert_eq!(own["quota_limit"], 1000);
    let _ = &w.tenant;
    w.app.stop().await;
}
