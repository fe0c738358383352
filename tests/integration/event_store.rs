//! The event store: metadata, immutability, optimistic concurrency, and the global order
//! under concurrent writers that commit out of order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use reqwest::Method;
use serde_json::{json, Value};
use tokenhub::store::PgEventRepository;
use tokenhub_aggregates::tenant::Tenant;

use crate::common::*;

#[tokio::test]
async fn each_event_row_carries_its_metadata() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let res = app
        .admin(Method::POST, "/admin/tenants")
        .header("X-Request-Id", "req-meta-1")
        .header("User-Agent", "portal/1.2")
        .json(&json!({"name": "Meta"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body: Value = res.json().await.unwrap_or_default();
    let id = body["tenant_id"].as_str().unwrap_or_default();
    let row: (i64, String, String, i64, String, String, Option<String>, Value, Value) = sqlx::query_as(
        "SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version, tenant_id, payload, metadata \
         FROM events WHERE aggregate_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (position, agg_type, agg_id, sequence, event_type, version, tenant, payload, meta) = row;
    assert_eq!(position, 1);
    assert_eq!((agg_type.as_str(), agg_id.as_str(), sequence), ("tenant", id, 1));
    assert_eq!((event_type.as_str(), version.as_str()), ("tenant.created", "1"));
    assert_eq!(tenant.as_deref(), Some(id));
    assert_eq!(payload["name"], "Meta");
    assert_eq!(meta["actor_kind"], "super_admin");
    assert_eq!(meta["actor_id"], "master");
    assert_eq!(meta["request_id"], "req-meta-1");
    assert_eq!(meta["source_ip"], "127.0.0.1");
    assert_eq!(meta["user_agent"], "portal/1.2");
    assert!(meta["time"].as_str().is_some_and(|t| t.starts_with("20")));
    // The full key is nowhere in the row; only its hash is.
    let key = body["api_key"].as_str().unwrap_or_default();
    let dump: String = sqlx::query_scalar("SELECT string_agg(e::text, '') FROM events e")
        .fetch_one(&app.pool)
        .await
        .unwrap_or_default();
    assert!(!dump.contains(key) && !dump.contains(&key[20..]), "key secret stored in plain text");
    app.stop().await;
}

/// What a follower that reads only some payloads (the key caches of the instances that do not
/// apply the projections) gets: every event, in order and gap-free, the others' payloads and
/// all metadata as `null`, and the payloads it reads as they were written.
#[tokio::test]
async fn a_follower_reading_some_payloads_still_gets_every_event_in_order() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Partial").await;
    let secret = json!({"key": "PARTIAL_READ", "value": "not-for-the-cache"});
    let (s, _) = send(app.http.post(app.url("/tenant/secrets")).bearer_auth(&admin).json(&secret)).await;
    assert_eq!(s, 200, "a secret (an event the key cache does not read)");
    let key = json!({"tenant_id": tenant, "name": "k"});
    let (s, _) = send(app.admin(Method::POST, "/admin/api-keys").json(&key)).await;
    assert_eq!(s, 201);
    let full = tokenhub_projections::log::read_after(&app.pool, 0, 1_000).await.unwrap_or_default();
    let light = tokenhub_projections::log::read_payloads_after(&app.pool, 0, 1_000, &["tenant", "api_key"])
        .await
        .unwrap_or_default();
    assert!(full.len() >= 3, "{} events", full.len());
    assert_eq!(full.len(), light.len(), "every event is read");
    assert!(full.iter().any(|e| e.aggregate_type == "secret"), "the history holds an event of another type");
    for (f, l) in full.iter().zip(&light) {
        assert_eq!(
            (f.position, &f.event_type, &f.aggregate_id),
            (l.position, &l.event_type, &l.aggregate_id)
        );
        assert_eq!(l.metadata, Value::Null, "no metadata is read");
        if ["tenant", "api_key"].contains(&f.aggregate_type.as_str()) {
            assert_eq!(f.payload, l.payload, "{} is read as written", f.event_type);
        } else {
            assert_eq!(l.payload, Value::Null, "{} is not read", f.event_type);
        }
    }
    let after = light[0].position;
    let rest = tokenhub_projections::log::read_payloads_after(&app.pool, after, 1, &["tenant"])
        .await
        .unwrap_or_default();
    assert_eq!(
        rest.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![after + 1],
        "after a position, a limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn update_delete_and_truncate_on_events_are_refused() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    app.create_tenant("Immutable").await;
    for sql in ["UPDATE events SET payload = '{}'::jsonb", "DELETE FROM events", "TRUNCATE events"] {
        let err = sqlx::query(sql).execute(&app.pool).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("append-only"), "{sql} was not refused: {err}");
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.pool).await.unwrap_or(0);
    assert_eq!(count, 4, "tenant.created, api_key.issued and two role.created are still there");
    app.stop().await;
}

fn event(id: &str, sequence: usize) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: id.into(),
        sequence,
        aggregate_type: "tenant".into(),
        event_type: "tenant.suspended".into(),
        event_version: "1".into(),
        payload: json!({"type": "tenant.suspended", "suspended_at": "2026-01-01T00:00:00Z"}),
        metadata: json!({"tenant_id": id}),
    }
}

#[tokio::test]
async fn a_stale_write_is_rejected_not_merged() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let repo = PgEventRepository::new(app.pool.clone());
    let first = repo.persist::<Tenant>(&[event("agg1", 1)], None).await;
    assert!(first.is_ok());
    let stale = repo.persist::<Tenant>(&[event("agg1", 2), event("agg1", 1)], None).await;
    assert!(matches!(stale, Err(PersistenceError::OptimisticLockError)), "{stale:?}");
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT position, sequence FROM events ORDER BY position")
        .fetch_all(&app.pool)
        .await
        .unwrap_or_default();
    assert_eq!(rows, vec![(1, 1)], "the refused batch left nothing, and no gap in positions");
    let next = repo.persist::<Tenant>(&[event("agg1", 2)], None).await;
    assert!(next.is_ok());
    let head = app.head().await;
    assert_eq!(head, 2);
    app.stop().await;
}

#[tokio::test]
async fn hash_chain_links_every_event_to_the_previous_one() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    for i in 0..3 {
        app.create_tenant(&format!("C{i}")).await;
    }
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT e.*, lag(hash) OVER (ORDER BY position) AS before FROM events e) x \
         WHERE x.hash <> event_chain_hash(x.prev_hash, ROW(x.position, x.event_id, x.aggregate_type, x.aggregate_id, \
         x.sequence, x.event_type, x.event_version, x.tenant_id, x.payload, x.metadata, x.recorded_at, x.prev_hash, x.hash)::events) \
         OR x.prev_hash <> coalesce(x.before, decode(repeat('00', 32), 'hex'))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap_or(-1);
    assert_eq!(broken, 0);
    app.stop().await;
}

/// Many writers, each holding its transaction open for a random time after inserting, so
/// that commits finish out of order; a reader follows `position > last` concurrently. Every
/// committed event must be read exactly once, in increasing position.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_make_a_reader_skip_an_event() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let pool = app.pool.clone();
    const WRITERS: usize = 12;
    const PER_WRITER: usize = 25;

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut last = 0i64;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = tokenhub_projections::log::read_after(&pool, last, 7).await.unwrap_or_default();
                for e in &batch {
                    seen.push((e.position, e.aggregate_id.clone(), e.sequence));
                    last = e.position;
                }
                if batch.is_empty() {
                    if finished {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = 0;
            for i in 0..PER_WRITER {
                let Ok(mut tx) = pool.begin().await else { continue };
                let id = format!("w{w}");
                let inserted = sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                     VALUES ('test', $1, $2, 'test.happened', '1', '{}'::jsonb, '{}'::jsonb)",
                )
                .bind(&id)
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await;
                assert!(inserted.is_ok(), "{inserted:?}");
                // Hold the transaction open for a while: the adversarial case.
                let pause = (w * 7 + i * 13) % 5;
                tokio::time::sleep(Duration::from_millis(pause as u64)).await;
                if i % 10 == 9 {
                    let _ = tx.rollback().await; // some writers give up
                } else if tx.commit().await.is_ok() {
                    committed += 1;
                }
            }
            committed
        }));
    }
    let mut committed = 0;
    for w in writers {
        committed += w.await.unwrap_or(0);
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap_or_default();

    let all: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT position, aggregate_id, sequence FROM events ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    assert_eq!(all.len(), committed, "every committed event is in the log");
    assert_eq!(seen, all, "the reader saw every committed event exactly once, in order");
    let positions: Vec<i64> = all.iter().map(|r| r.0).collect();
    assert_eq!(positions, (1..=committed as i64).collect::<Vec<_>>(), "positions are gap-free");
    let unique: HashSet<_> = seen.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(unique.len(), seen.len());
    app.stop().await;
}

/// Loads aggregate `id` both ways: through the snapshot store the server uses, and by folding
/// every event (no snapshot).
async fn both_loads<A>(pool: &sqlx::PgPool, id: &str) -> (A, A)
where
    A: cqrs_es::Aggregate,
{
    use cqrs_es::persist::PersistedEventStore;
    use cqrs_es::{AggregateContext, EventStore};
    let repo = PgEventRepository::new(pool.clone());
    let snap = PersistedEventStore::<_, A>::new_snapshot_store(
        repo.clone(),
        tokenhub::store::repository::SNAPSHOT_EVERY,
    );
    let full = PersistedEventStore::<_, A>::new_event_store(repo);
    let mut a = snap.load_aggregate(id).await.unwrap_or_else(|e| panic!("{e}"));
    let mut b = full.load_aggregate(id).await.unwrap_or_else(|e| panic!("{e}"));
    let a = std::mem::take(a.aggregate());
    let b = std::mem::take(b.aggregate());
    (a, b)
}

#[tokio::test]
async fn snapshots_equal_a_full_replay_and_cap_what_a_load_reads() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let (tenant, admin) = app.create_tenant("Snapshotted").await;
    let (key_id, _) = app.issue_key(&tenant, json!({})).await;
    for i in 1..=45 {
        let (s, body) = send(
            app.http
                .post(app.url("/tenant/config"))
                .bearer_auth(&admin)
                .json(&json!({"cache": {"enabled": i % 2 == 0, "ttlSeconds": i}})),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["version"], i, "each save is exactly one version on (no event applied twice)");
        let (s, body) = send(
            app.admin(Method::PATCH, &format!("/admin/api-keys/{key_id}"))
                .json(&json!({"name": format!("k{i}")})),
        )
        .await;
        assert_eq!(s, 200, "{body}");
    }
    let (snap, full) = both_loads::<Tenant>(&app.pool, &tenant).await;
    assert_eq!(snap, full);
    assert_eq!(full.config_version, 45);
    let (snap, full) = both_loads::<tokenhub_aggregates::api_key::ApiKey>(&app.pool, &key_id).await;
    assert_eq!(snap, full);
    assert_eq!(full.name, "k45");
    let snapshots: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, last_sequence FROM aggregate_snapshots ORDER BY aggregate_type",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    // The tenant has 1 + 45 events and the key 1 + 45: the newest snapshots are at 40.
    assert_eq!(snapshots, [("api_key".to_string(), 40), ("tenant".to_string(), 40)]);
    // Snapshots are derived: without them the loads agree too.
    sqlx::query("DELETE FROM aggregate_snapshots").execute(&app.pool).await.unwrap();
    let (snap, full) = both_loads::<Tenant>(&app.pool, &tenant).await;
    assert_eq!(snap, full);
    app.stop().await;
}

#[tokio::test]
async fn recorded_at_grows_with_position_even_when_an_older_transaction_commits_last() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let insert = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                  VALUES ('probe', $1, 1, 'probe.made', '1', '{}', '{}')";
    // The early transaction starts (its now() is fixed here), then waits while another commits.
    let mut early = app.pool.begin().await.unwrap();
    sqlx::query("SELECT now()").execute(&mut *early).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    sqlx::query(insert).bind("late-starter").execute(&app.pool).await.unwrap();
    sqlx::query(insert).bind("early-starter").execute(&mut *early).await.unwrap();
    early.commit().await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, (extract(epoch FROM recorded_at) * 1000000)::bigint FROM events \
         WHERE aggregate_type = 'probe' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["late-starter", "early-starter"]);
    assert!(rows[0].1 <= rows[1].1, "recorded_at went backwards with position (finding 11): {rows:?}");
    let backwards: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events a JOIN events b ON b.position = a.position + 1 WHERE b.recorded_at < a.recorded_at",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(backwards, 0);
    app.stop().await;
}

/// The group-commit writer under many concurrent commands: commands on distinct aggregates
/// all land, with gap-free positions, each answered with its own; commands racing on one
/// aggregate's same sequence land once and the rest are refused as stale; a command whose
/// value PostgreSQL refuses fails alone, not its batch.
#[tokio::test]
async fn group_commit_appends_concurrent_commands_in_one_order_and_refuses_only_the_stale() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let head = app.head().await;
    let repo = PgEventRepository::with_group_commit(app.pool.clone(), None);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("gc-{i}");
            tokenhub::store::repository::tracking_writes(async move {
                let outcome = repo.persist::<Tenant>(&[event(&id, 1)], None).await;
                (id, outcome.map(|_| tokenhub::store::repository::last_written()))
            })
            .await
        }));
    }
    // Racing on one aggregate: every writer believes sequence 1 is next.
    for _ in 0..20 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            ("gc-race".to_string(), repo.persist::<Tenant>(&[event("gc-race", 1)], None).await.map(|_| None))
        }));
    }
    // A value PostgreSQL refuses as data (a NUL in jsonb text).
    let bad = {
        let repo = repo.clone();
        tokio::spawn(async move {
            let mut e = event("gc-bad", 1);
            e.payload = json!({"type": "tenant.suspended", "note": "\u{0}"});
            repo.persist::<Tenant>(&[e], None).await
        })
    };
    let mut answered = std::collections::HashMap::new();
    let (mut won, mut stale) = (0, 0);
    for task in tasks {
        let (id, outcome) = task.await.unwrap();
        match (id.as_str(), outcome) {
            ("gc-race", Ok(_)) => won += 1,
            ("gc-race", Err(PersistenceError::OptimisticLockError)) => stale += 1,
            (_, Ok(Some(position))) => {
                answered.insert(id, position);
            }
            (id, other) => panic!("{id}: {other:?}"),
        }
    }
    assert!(bad.await.unwrap().is_err(), "the bad command fails");
    assert_eq!((won, stale), (1, 19));
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT position, aggregate_id FROM events WHERE position > $1 ORDER BY position")
            .bind(head)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 201, "200 distinct and one of the race");
    for (n, (position, id)) in rows.iter().enumerate() {
        assert_eq!(*position, head + 1 + n as i64, "gap-free, in commit order");
        if let Some(answer) = answered.get(id) {
            assert_eq!(answer, position, "{id} was answered with its own position");
        }
    }
    assert_eq!(answered.len(), 200);
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT e.*, lag(hash) OVER (ORDER BY position) AS before FROM events e) x \
         WHERE x.prev_hash <> coalesce(x.before, decode(repeat('00', 32), 'hex'))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(broken, 0, "the chain links every event");
    app.stop().await;
}
