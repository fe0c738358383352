//! Issue 31, item 6: the pepper and the master key are the fleet's, not the host's. A second
//! instance on the same database with another pepper, or another master key, refuses to start
//! and says why; with the same ones it starts; `FLEET_ADOPT_MASTER_KEY=true` makes a new master
//! key the fleet's, after which an instance with the old one refuses. Gateways (which accept no
//! master key) are not held to it.

use crate::common::*;

const OTHER_MASTER: &str = "another-master-key-another-master-key-0001";

async fn refusal(config: tokenhub::config::Config) -> String {
    match tokenhub::app::App::build(&config).await {
        Ok(_) => panic!("the instance started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn an_instance_with_another_pepper_or_master_key_refuses_to_start() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let first = TestApp::start_with(config(&db, &stream, &["--master-api-key", MASTER])).await;

    let pepper = refusal(config(
        &db,
        &stream,
        &["--master-api-key", MASTER, "--key-pepper", "a-different-pepper-a-different-pepper-00"],
    ))
    .await;
    assert!(pepper.contains("TOKENHUB_KEY_PEPPER differs"), "{pepper}");
    let master = refusal(config(&db, &stream, &["--master-api-key", OTHER_MASTER])).await;
    assert!(master.contains("master key") && master.contains("FLEET_ADOPT_MASTER_KEY"), "{master}");
    // Without a configured key the instance would use the generated one in the database: not
    // the fleet's either.
    let generated = refusal(config(&db, &stream, &[])).await;
    assert!(generated.contains("master key"), "{generated}");

    // The same settings: it joins.
    let second = TestApp::start_with(config(&db, &stream, &["--master-api-key", MASTER])).await;
    second.stop().await;
    // A gateway takes no master key: not held to the server's.
    let mut gateway_config = config(&db, &stream, &[]);
    gateway_config.master_api_key = None;
    match tokenhub::app::App::build_as(&gateway_config, tokenhub::app::Role::Gateway).await {
        // Stopped, so that its followers do not outlive the test's database.
        Ok(gateway) => gateway.drain().await,
        Err(e) => panic!("the gateway refused to start: {e}"),
    }

    // Changing the master key on purpose: one instance adopts it; the old key no longer joins.
    let adopting = TestApp::start_with(config(
        &db,
        &stream,
        &["--master-api-key", OTHER_MASTER, "--fleet-adopt-master-key", "true"],
    ))
    .await;
    let old = refusal(config(&db, &stream, &["--master-api-key", MASTER])).await;
    assert!(old.contains("master key"), "{old}");
    let rejoined = TestApp::start_with(config(&db, &stream, &["--master-api-key", OTHER_MASTER])).await;

    // Nothing of either value is stored: only fingerprints.
    let stored: Vec<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name LIKE 'fleet.%'")
        .fetch_all(&first.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|v| !v.contains(MASTER) && !v.contains(OTHER_MASTER) && !v.contains("pepper")));
    rejoined.stop().await;
    adopting.stop().await;
    first.stop().await;
}
