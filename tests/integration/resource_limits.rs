//! Resource limits per end-user: settings with tiers by plan, check and track with each gate
//! action, usage per user and per tenant, zero overshoot under concurrent trackers, and every
//! period boundary (calendar windows in UTC).

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use time::macros::datetime;
use tokenhub_aggregates::tenant::{GateAction, LimitPeriod, Plan, ResourceLimit};

use crate::common::*;

async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req).await
}

async fn track(app: &TestApp, key: &str, user: &str, resource: &str, amount: u64) -> (u16, Value) {
    let body = json!({"userId": user, "resource": resource, "metric": "count", "amount": amount});
    call(app, key, Method::POST, "/tenant/limits/resources/track", Some(body)).await
}

#[tokio::test]
async fn limits_with_tiers_gate_actions_check_track_and_usage() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Limits").await; // plan: pro
    let (_, other_admin) = app.create_tenant("Other").await;
    let limits = json!([
        {"resource": "images", "metric": "count", "period": "day", "limit": 5,
         "tiers": {"free": 2, "pro": 3}, "gateAction": "block"},
        {"resource": "tokens", "metric": "count", "period": "month", "limit": 100, "gateAction": "warn"},
        {"resource": "calls", "metric": "count", "period": "minute", "limit": 1000, "gateAction": "notify"}
    ]);
    let (status, saved) =
        call(&app, &admin, Method::PUT, "/tenant/limits/resources", Some(limits.clone())).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved, limits);
    let (_, read) = call(&app, &admin, Method::GET, "/tenant/limits/resources", None).await;
    assert_eq!(read, limits);
    let (_, others) = call(&app, &other_admin, Method::GET, "/tenant/limits/resources", None).await;
    assert_eq!(others, json!([]), "one tenant never sees another's limits");

    // The pro tier (3) overrides the flat limit (5).
    let check = json!({"userId": "alice", "resource": "images", "metric": "count", "amount": 1});
    let (status, answer) =
        call(&app, &admin, Method::POST, "/tenant/limits/resources/check", Some(check.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["gateAction"], "block");
    assert_eq!(answer["usage"], json!({"current": 0, "limit": 3}));
    for n in 1..=3 {
        let (status, answer) = track(&app, &admin, "alice", "images", 1).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["usage"]["current"], n);
    }
    let res = app
        .http
        .post(app.url("/tenant/limits/resources/track"))
        .bearer_auth(&admin)
        .json(&json!({"userId": "alice", "resource": "images", "metric": "count", "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_limit_exceeded");
    let (_, answer) =
        call(&app, &admin, Method::POST, "/tenant/limits/resources/check", Some(check.clone())).await;
    assert_eq!((answer["allowed"].as_bool(), answer["usage"]["current"].as_u64()), (Some(false), Some(3)));
    // Another end-user has their own count.
    assert_eq!(track(&app, &admin, "bob", "images", 2).await.0, 200);

    // warn and notify let the use through and say it passed the limit.
    let (status, warned) = track(&app, &admin, "alice", "tokens", 150).await;
    assert_eq!(status, 200);
    assert_eq!((warned["allowed"].as_bool(), warned["exceeded"].as_bool()), (Some(true), Some(true)));
    assert_eq!(warned["gateAction"], "warn");
    assert_eq!(warned["usage"], json!({"current": 150, "limit": 100}));
    let (_, noted) = track(&app, &admin, "alice", "calls", 1001).await;
    assert_eq!((noted["allowed"].as_bool(), noted["gateAction"].as_str()), (Some(true), Some("notify")));

    // Usage per user and per tenant.
    let (status, usage) =
        call(&app, &admin, Method::GET, "/tenant/limits/resources/usage?userId=alice", None).await;
    assert_eq!(status, 200, "{usage}");
    let images = usage.as_array().unwrap().iter().find(|u| u["resource"] == "images").unwrap();
    assert_eq!(
        (&images["period"], &images["current"], &images["limit"], &images["percentage"], &images["scope"]),
        (&json!("day"), &json!(3), &json!(3), &json!(100.0), &json!("user"))
    );
    let (_, usage) = call(&app, &admin, Method::GET, "/tenant/limits/resources/usage", None).await;
    let images = usage.as_array().unwrap().iter().find(|u| u["resource"] == "images").unwrap();
    assert_eq!((&images["current"], &images["scope"]), (&json!(5), &json!("tenant")));
    let tokens = usage.as_array().unwrap().iter().find(|u| u["resource"] == "tokens").unwrap();
    assert_eq!(tokens["percentage"], 150.0);

    // Moving to the free plan applies its tier at once: bob (2 used) is at the limit of 2.
    let (status, _) =
        send(app.admin(Method::PATCH, &format!("/admin/tenants/{tenant}")).json(&json!({"plan": "free"})))
            .await;
    assert_eq!(status, 200);
    let bob = json!({"userId": "bob", "resource": "images", "metric": "count", "amount": 1});
    let (_, answer) = call(&app, &admin, Method::POST, "/tenant/limits/resources/check", Some(bob)).await;
    assert_eq!((answer["allowed"].as_bool(), answer["usage"]["limit"].as_u64()), (Some(false), Some(2)));

    // Gateways act for a tenant named in X-Tenant-ID.
    let gateway = app.platform_key("gateway").await;
    let (status, answer) = send(
        app.http
            .post(app.url("/tenant/limits/resources/track"))
            .bearer_auth(&gateway)
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"userId": "carol", "resource": "images", "metric": "count"})),
    )
    .await;
    assert_eq!((status, answer["usage"]["current"].as_u64()), (200, Some(1)), "{answer}");

    // Clear errors.
    let unknown = json!({"userId": "alice", "resource": "videos", "metric": "count", "amount": 1});
    let (status, body) =
        call(&app, &admin, Method::POST, "/tenant/limits/resources/track", Some(unknown)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("resource_limit_not_found")));
    let zero = json!({"userId": "alice", "resource": "images", "metric": "count", "amount": 0});
    let (status, body) = call(&app, &admin, Method::POST, "/tenant/limits/resources/track", Some(zero)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_amount")));
    for bad in [
        json!([{"resource": "a", "metric": "b", "period": "week", "limit": 1}]),
        json!([{"resource": "a", "metric": "b", "period": "day", "limit": 1, "gateAction": "explode"}]),
        json!([{"resource": "a", "metric": "b", "period": "day", "limit": -1}]),
    ] {
        let (status, body) = call(&app, &admin, Method::PUT, "/tenant/limits/resources", Some(bad)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_request")), "{body}");
    }
    let twice = json!([{"resource": "a", "metric": "b", "period": "day", "limit": 1},
                       {"resource": "a", "metric": "b", "period": "day", "limit": 2}]);
    let (status, body) = call(&app, &admin, Method::PUT, "/tenant/limits/resources", Some(twice)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_resource_limits")), "{body}");
    let (_, unchanged) = call(&app, &admin, Method::GET, "/tenant/limits/resources", None).await;
    assert_eq!(unchanged, limits, "a refused PUT changes nothing");

    // Every change is in the audit log.
    let (_, audit) =
        call(&app, &admin, Method::GET, "/tenant/audit/events?event_type=tenant.resource_limits_set", None)
            .await;
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_trackers_never_pass_a_blocking_limit() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = Arc::new(TestApp::start(&db, &stream).await);
    let (_, admin) = app.create_tenant("Race").await;
    let limits = json!([
        {"resource": "jobs", "metric": "count", "period": "hour", "limit": 50, "gateAction": "block"},
        {"resource": "jobs", "metric": "count", "period": "month", "limit": 1000, "gateAction": "block"}
    ]);
    let (status, _) = call(&app, &admin, Method::PUT, "/tenant/limits/resources", Some(limits)).await;
    assert_eq!(status, 200);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (app, admin) = (app.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let mut counted = 0;
            for _ in 0..8 {
                match track(&app, &admin, "u", "jobs", 1).await.0 {
                    200 => counted += 1,
                    429 => {}
                    other => panic!("status {other}"),
                }
            }
            counted
        }));
    }
    let mut counted = 0;
    for t in tasks {
        counted += t.await.unwrap();
    }
    assert_eq!(counted, 50, "exactly the limit is counted: no overshoot");
    let (_, usage) = call(&app, &admin, Method::GET, "/tenant/limits/resources/usage?userId=u", None).await;
    let currents: Vec<u64> =
        usage.as_array().unwrap().iter().map(|u| u["current"].as_u64().unwrap()).collect();
    assert_eq!(currents, [50, 50], "refused tracks were not counted against the month either");
    Arc::into_inner(app).unwrap().stop().await;
}

fn limit(period: LimitPeriod) -> ResourceLimit {
    ResourceLimit {
        resource: "r".into(),
        metric: "count".into(),
        period,
        limit: 1,
        tiers: None,
        gate_action: GateAction::Block,
    }
}

#[tokio::test]
async fn every_period_resets_at_its_utc_calendar_boundary() {
    use tokenhub::usage::resource_limits::track;
    let db = TestDb::new();
    let pool = db.pool().await;
    tokenhub::store::migrate(&pool).await.unwrap();
    let cases = [
        (LimitPeriod::Minute, datetime!(2026-03-31 23:59:59.999 UTC), datetime!(2026-04-01 00:00 UTC)),
        (LimitPeriod::Hour, datetime!(2026-04-01 10:59:59.999 UTC), datetime!(2026-04-01 11:00 UTC)),
        (LimitPeriod::Day, datetime!(2026-04-01 23:59:59.999 UTC), datetime!(2026-04-02 00:00 UTC)),
        (LimitPeriod::Month, datetime!(2024-02-29 23:59:59.999 UTC), datetime!(2024-03-01 00:00 UTC)),
        (LimitPeriod::Month, datetime!(2026-12-31 23:59:59.999 UTC), datetime!(2027-01-01 00:00 UTC)),
    ];
    for (n, (period, last_instant, next_window)) in cases.into_iter().enumerate() {
        let user = format!("user-{n}");
        let l = limit(period);
        let first = track(&pool, "ten_x", &user, Plan::Free, &[&l], 1, last_instant).await.unwrap();
        assert!(first.allowed);
        assert_eq!(first.resets_at, next_window, "{period:?}");
        let again = track(&pool, "ten_x", &user, Plan::Free, &[&l], 1, last_instant).await.unwrap();
        assert!(!again.allowed, "{period:?}: the window is full until its end");
        let next = track(&pool, "ten_x", &user, Plan::Free, &[&l], 1, next_window).await.unwrap();
        assert!(next.allowed, "{period:?}: a new window starts at {next_window}");
        assert_eq!(next.current, 1);
    }
}
