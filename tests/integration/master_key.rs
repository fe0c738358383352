//! The master key generated on first start, and its rotation.

use clap::Parser;

use crate::common::*;

#[tokio::test]
async fn first_start_generates_a_master_key_and_rotation_replaces_it() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start_with(config(&db, &stream, &[])).await;
    let generated = app.app.generated_master_key.clone().unwrap_or_default();
    assert!(generated.starts_with("thm_"));
    let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE name = 'master_key_hash'")
        .fetch_one(&app.pool)
        .await
        .unwrap_or_default();
    // A generated key has 256 bits: it is stored as an HMAC under the pepper, not argon2.
    assert!(stored.starts_with("hmac-sha256:") && !stored.contains(&generated), "{stored}");

    let (status, _) = send(app.http.get(app.url("/admin/tenants")).bearer_auth(&generated)).await;
    assert_eq!(status, 200);
    let (status, _) = send(app.http.get(app.url("/admin/tenants")).header("X-Master-Key", "thm_wrong")).await;
    assert_eq!(status, 401);

    // A second start on the same database reuses the stored hash and shows nothing.
    let second = TestApp::start_with(config(&db, &stream, &[])).await;
    assert!(second.app.generated_master_key.is_none());
    second.stop().await;

    // `tokenhub master-key rotate`, then the running server reloads.
    let cli = tokenhub::cli::Cli::try_parse_from([
        "tokenhub",
        "--database-url",
        &db.url,
        "--key-pepper",
        "test-pepper-test-pepper-test-pepper-0000",
        "master-key",
        "rotate",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(tokenhub::cli::run(cli).await.is_ok());
    let _ = app.app.state.master.refresh(&app.pool).await;
    let (status, _) = send(app.http.get(app.url("/admin/tenants")).bearer_auth(&generated)).await;
    assert_eq!(status, 401, "the old master key stops working after rotation");
    app.stop().await;
}
