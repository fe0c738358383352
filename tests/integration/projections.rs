//! Query tables: a rebuild from zero gives exactly the tables the live run built.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

/// Every query table, as text rows in key order.
pub async fn snapshot(pool: &PgPool) -> Vec<Vec<String>> {
    let mut tables = Vec::new();
    for sql in [
        "SELECT t::text FROM tenants t ORDER BY tenant_id",
        "SELECT k::text FROM api_keys k ORDER BY public_id",
        "SELECT k::text FROM key_tenants k ORDER BY tenant_id",
        "SELECT k::text FROM key_sub_accounts k ORDER BY sub_account_id",
        "SELECT s::text FROM sub_accounts s ORDER BY sub_account_id",
        "SELECT r::text FROM roles r ORDER BY tenant_id, name",
        "SELECT s::text FROM secrets s ORDER BY tenant_id, name",
    ] {
        tables.push(sqlx::query_scalar(sql).fetch_all(pool).await.unwrap_or_default());
    }
    tables
}

#[tokio::test]
async fn rebuild_from_zero_equals_the_live_tables() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(app.create_tenant(&format!("P{i}")).await.0);
    }
    send(
        app.admin(Method::PATCH, &format!("/admin/tenants/{}", ids[0]))
            .json(&json!({"plan": "enterprise", "limits": {"max_api_keys": 3}})),
    )
    .await;
    send(app.admin(Method::POST, &format!("/admin/tenants/{}/suspend", ids[1]))).await;
    send(app.admin(Method::DELETE, &format!("/admin/tenants/{}", ids[2]))).await;
    send(app.admin(Method::POST, &format!("/admin/tenants/{}/suspend", ids[3]))).await;
    send(app.admin(Method::POST, &format!("/admin/tenants/{}/reactivate", ids[3]))).await;
    let (_, sub) = send(
        app.admin(Method::POST, "/tenant/sub-accounts")
            .header("X-Tenant-ID", &ids[4])
            .json(&json!({"name": "s", "permissions": ["chat"]})),
    )
    .await;
    let sub = sub["sub_account_id"].as_str().unwrap_or_default().to_string();
    send(
        app.admin(Method::POST, &format!("/tenant/sub-accounts/{sub}/disable"))
            .header("X-Tenant-ID", &ids[4]),
    )
    .await;
    send(
        app.admin(Method::POST, "/admin/api-keys")
            .json(&json!({"tenant_id": ids[4], "name": "k", "sub_account_id": sub})),
    )
    .await;
    app.app.state.readmodels.wait_for_head().await;
    // The live tables were built from the batches the writer handed over (not read back), so
    // the comparison below checks those against the log.
    assert!(app.app.state.readmodels.handed_batches() > 0);
    let live = snapshot(&app.pool).await;
    assert_eq!(live[0].len(), 6);
    assert_eq!(live[1].len(), 7);
    assert_eq!(live[4].len(), 1);

    let progress = |_: &str, _: i64, _: i64| {};
    for projection in tokenhub_projections::all() {
        let reached = tokenhub_projections::rebuild(&app.pool, projection.as_ref(), &progress).await;
        assert_eq!(reached.ok(), Some(app.head().await));
    }
    assert_eq!(snapshot(&app.pool).await, live);
    // The CLI's single pass over the log for all projections at once.
    let reached = tokenhub_projections::rebuild_all(&app.pool, &tokenhub_projections::all(), &progress).await;
    assert_eq!(reached.ok(), Some(app.head().await));
    assert_eq!(snapshot(&app.pool).await, live);

    // The CLI path: selecting one projection by name, and an unknown name.
    assert!(tokenhub_projections::select(Some("tenants")).is_ok_and(|p| p.len() == 1));
    assert!(tokenhub_projections::select(Some("nope")).is_err());
    app.stop().await;
}

/// A projection that cannot move (here: its checkpoint row locked by someone else) makes the
/// first command wait out the read-your-writes timeout, then `/readyz` fails and later
/// commands answer without waiting it out; once it moves again, all is well.
#[tokio::test]
async fn a_stuck_projection_fails_readyz_instead_of_slowing_every_command() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--read-your-writes-timeout-ms", "400"],
    ))
    .await;
    let create = |name: &str| app.admin(Method::POST, "/admin/tenants").json(&json!({"name": name}));
    let (status, before) = send(create("Before")).await;
    assert_eq!(status, 201);
    let tenant = before["tenant_id"].as_str().unwrap().to_string();
    let gateway = app.platform_key("gateway").await;
    let (public_id, key) = app.issue_key(&tenant, json!({})).await;
    assert_eq!(app.verify(&gateway, json!({"key": key})).await["code"], "VALID");
    let (status, ready) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!((status, ready["checks"]["projections"].as_str()), (200, Some("ok")));

    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM checkpoints WHERE name = 'tenants' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(send(create("Stuck one")).await.0, 201, "the command is durable and answered");
    assert!(started.elapsed() >= std::time::Duration::from_millis(400), "the first waits the timeout out");
    let (status, ready) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!((status, ready["checks"]["projections"].as_str()), (503, Some("stalled")), "{ready}");
    for name in ["Stuck two", "Stuck three"] {
        let started = std::time::Instant::now();
        assert_eq!(send(create(name)).await.0, 201);
        assert!(started.elapsed() < std::time::Duration::from_millis(300), "{:?}", started.elapsed());
    }
    // The key cache does not depend on the projections: with them stuck (nothing handed over),
    // it reads the log itself, and a revocation still stops verification within the bound.
    let revoked = send(app.admin(Method::DELETE, &format!("/admin/api-keys/{public_id}"))).await.0;
    assert_eq!(revoked, 200);
    let stopped = eventually(std::time::Duration::from_secs(2), || async {
        app.verify(&gateway, json!({"key": key})).await["code"] == "REVOKED"
    })
    .await;
    assert!(stopped, "a revocation reaches verification while the projections are stuck");

    blocker.rollback().await.unwrap();
    let caught_up = eventually(std::time::Duration::from_secs(10), || async {
        send(app.http.get(app.url("/readyz"))).await.0 == 200
    })
    .await;
    assert!(caught_up, "ready again once the projection moves");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 4, "every command made it into the table");
    let status: String = sqlx::query_scalar("SELECT status FROM api_keys WHERE public_id = $1")
        .bind(&public_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "revoked");
    app.stop().await;
}
