//! The usage projection: a durable JetStream consumer that turns usage records into rollups
//! (per tenant, sub-account, key, end-user and model; per UTC day and month) and quota totals.
//!
//! Exactly once per record: each batch is one transaction that first inserts the records'
//! `(tenant, id)` into `usage_records`; only the rows that were new are added to the rollups,
//! and each message is acknowledged (explicitly: instances pull from the one consumer in
//! parallel) only after the commit. A redelivered batch (crash before the ack, consumer
//! restart) finds its ids and adds nothing. The consumer's ack floor is also kept in the
//! database, so a consumer deleted by an operator is recreated from there, never from the
//! start of the stream (whose old ids may have been pruned). Batches of several instances are
//! serialised by an advisory lock, so the quota totals' versions commit in order (the
//! refreshers never skip one).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::StreamExt;
use sqlx::PgPool;
use time::{Date, OffsetDateTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::record::UsageEvent;
use crate::nats::{ensure_usage_stream, UsageStreamConfig};

/// Most records per transaction.
pub const BATCH: usize = 1_000;

/// How long JetStream waits for a batch's acknowledgement before redelivering it (after a
/// crash, the records an instance had fetched are counted by another one this much later).
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// Advisory lock serialising rollup batches across instances.
const ROLLUP_LOCK: i64 = 0x7573_6167_6501;

/// One record as the projection needs it.
#[derive(Debug, Clone)]
pub struct Counted {
    /// Stream sequence.
    pub seq: u64,
    /// The record.
    pub event: UsageEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RollupKey {
    tenant_id: String,
    granularity: &'static str,
    bucket: Date,
    sub_account_id: String,
    key_id: String,
    user_id: String,
    model: String,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    records: i64,
    api_calls: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    bandwidth_bytes: i64,
    storage_bytes: i64,
}

/// The `window_start` of lifetime quota totals.
const LIFETIME_START: Date = time::macros::date!(1970 - 01 - 01);

/// Applies records in one transaction; returns how many were new (counted).
pub async fn apply_batch(pool: &PgPool, batch: &[Counted]) -> Result<usize, sqlx::Error> {
    if batch.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ROLLUP_LOCK).execute(&mut *tx).await?;
    // Sorted for a stable lock order.
    let mut ids: Vec<(&str, &str, i64, Date)> = batch
        .iter()
        .map(|c| {
            let d = &c.event;
            (
                d.data.tenant_id.as_str(),
                d.id.as_str(),
                c.seq as i64,
                d.time.to_offset(time::UtcOffset::UTC).date(),
            )
        })
        .collect();
    ids.sort();
    ids.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let new: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO usage_records (tenant_id, record_id, stream_seq, recorded_on) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::date[]) \
         ON CONFLICT DO NOTHING RETURNING tenant_id, record_id",
    )
    .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
    .bind(ids.iter().map(|i| i.1).collect::<Vec<_>>())
    .bind(ids.iter().map(|i| i.2).collect::<Vec<_>>())
    .bind(ids.iter().map(|i| i.3).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut fresh: HashSet<(String, String)> = new.into_iter().collect();
    let mut rollups: BTreeMap<RollupKey, Sums> = BTreeMap::new();
    // (scope, subject, period, window start) → tokens.
    let mut quota: BTreeMap<(&'static str, String, &'static str, Date), i64> = BTreeMap::new();
    let mut counted = 0;
    for c in batch {
        let d = &c.event.data;
        // `remove`: a record twice in one batch counts once.
        if !fresh.remove(&(d.tenant_id.clone(), c.event.id.clone())) {
            continue;
        }
        counted += 1;
        let day = c.event.time.to_offset(time::UtcOffset::UTC).date();
        for (granularity, bucket) in [("day", day), ("month", crate::calendar::month_start(day))] {
            let key = RollupKey {
                tenant_id: d.tenant_id.clone(),
                granularity,
                bucket,
                sub_account_id: d.sub_account_id.clone().unwrap_or_default(),
                key_id: d.key_id.clone().unwrap_or_default(),
                user_id: d.user_id.clone().unwrap_or_default(),
                model: d.model.clone().unwrap_or_default(),
            };
            let sums = rollups.entry(key).or_default();
            sums.records += 1;
            sums.api_calls += d.api_calls as i64;
            sums.prompt_tokens += d.prompt_tokens as i64;
            sums.completion_tokens += d.completion_tokens as i64;
            sums.bandwidth_bytes += d.bandwidth_bytes as i64;
            sums.storage_bytes += d.storage_bytes as i64;
        }
        if d.llm_tokens > 0 {
            let tenant = Some(d.tenant_id.clone());
            let subjects = [("key", &d.key_id), ("sub_account", &d.sub_account_id), ("tenant", &tenant)];
            for (scope, subject) in subjects.into_iter().filter_map(|(s, id)| Some((s, id.as_ref()?))) {
                for (period, start) in
                    [("lifetime", LIFETIME_START), ("day", day), ("month", crate::calendar::month_start(day))]
                {
                    *quota.entry((scope, subject.clone(), period, start)).or_default() += d.llm_tokens as i64;
                }
            }
        }
    }
    if !rollups.is_empty() {
        upsert_rollups(&mut tx, &rollups).await?;
    }
    if !quota.is_empty() {
        sqlx::query(
            "INSERT INTO usage_quota_totals (scope, subject_id, period, window_start, llm_tokens, version) \
             SELECT s, i, p, w, t, nextval('usage_quota_version') \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[]) AS q(s, i, p, w, t) \
             ON CONFLICT (scope, subject_id, period, window_start) DO UPDATE \
             SET llm_tokens = usage_quota_totals.llm_tokens + EXCLUDED.llm_tokens, version = EXCLUDED.version",
        )
        .bind(quota.keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(quota.keys().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .bind(quota.keys().map(|k| k.2).collect::<Vec<_>>())
        .bind(quota.keys().map(|k| k.3).collect::<Vec<_>>())
        .bind(quota.values().copied().collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(counted)
}

async fn upsert_rollups(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rollups: &BTreeMap<RollupKey, Sums>,
) -> Result<(), sqlx::Error> {
    let keys: Vec<&RollupKey> = rollups.keys().collect();
    let sums: Vec<&Sums> = rollups.values().collect();
    sqlx::query(
        "INSERT INTO usage_rollups (tenant_id, granularity, bucket, sub_account_id, key_id, user_id, model, \
           records, api_calls, prompt_tokens, completion_tokens, bandwidth_bytes, storage_bytes) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::text[], $6::text[], $7::text[], \
           $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) \
         ON CONFLICT (tenant_id, granularity, bucket, sub_account_id, key_id, user_id, model) DO UPDATE SET \
           records = usage_rollups.records + EXCLUDED.records, \
           api_calls = usage_rollups.api_calls + EXCLUDED.api_calls, \
           prompt_tokens = usage_rollups.prompt_tokens + EXCLUDED.prompt_tokens, \
           completion_tokens = usage_rollups.completion_tokens + EXCLUDED.completion_tokens, \
           bandwidth_bytes = usage_rollups.bandwidth_bytes + EXCLUDED.bandwidth_bytes, \
           storage_bytes = usage_rollups.storage_bytes + EXCLUDED.storage_bytes",
    )
    .bind(keys.iter().map(|k| k.tenant_id.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.granularity).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.bucket).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.sub_account_id.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.user_id.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.model.as_str()).collect::<Vec<_>>())
    .bind(sums.iter().map(|s| s.records).collect::<Vec<_>>())
    .bind(sums.iter().map(|s| s.api_calls).collect::<Vec<_>>())
    .bind(sums.iter().map(|s| s.prompt_tokens).collect::<Vec<_>>())
    .bind(sums.iter().map(|s| s.completion_tokens).collect::<Vec<_>>())
    .bind(sums.iter().map(|s| s.bandwidth_bytes).collect::<Vec<_>>())
    .bind(sums.iter().map(|s| s.storage_bytes).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The durable consumer's settings; a new consumer starts after `ack_floor`.
pub fn consumer_config(config: &UsageStreamConfig, ack_floor: u64) -> pull::Config {
    pull::Config {
        durable_name: Some(config.consumer.clone()),
        description: Some("TokenHub usage rollups".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: 20_000,
        deliver_policy: if ack_floor == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence { start_sequence: ack_floor + 1 }
        },
        ..Default::default()
    }
}

/// How often the consumer's ack floor is copied to the database.
const FLOOR_EVERY: Duration = Duration::from_secs(5);

/// The ack floor stored for `consumer` (0: none).
pub async fn stored_floor(pool: &PgPool, consumer: &str) -> Result<u64, sqlx::Error> {
    let floor: Option<i64> =
        sqlx::query_scalar("SELECT ack_floor FROM usage_consumer_floors WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(pool)
            .await?;
    Ok(floor.unwrap_or(0).max(0) as u64)
}

async fn store_floor(pool: &PgPool, consumer: &str, floor: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO usage_consumer_floors (consumer, ack_floor) VALUES ($1, $2) \
         ON CONFLICT (consumer) DO UPDATE SET ack_floor = GREATEST(usage_consumer_floors.ack_floor, EXCLUDED.ack_floor)",
    )
    .bind(consumer)
    .bind(floor as i64)
    .execute(pool)
    .await?;
    Ok(())
}

fn raise(applied: &watch::Sender<u64>, seq: u64) {
    applied.send_if_modified(|seen| {
        let newer = seq > *seen;
        if newer {
            *seen = seq;
        }
        newer
    });
}

/// Runs the projection until shutdown, reconnecting after errors. `applied` carries the last
/// stream sequence committed.
pub async fn run(
    pool: PgPool,
    client: async_nats::Client,
    config: UsageStreamConfig,
    applied: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    let js = jetstream::new(client);
    let mut backoff = Duration::from_millis(200);
    loop {
        // Not cancelled mid-batch: a batch being applied is committed and acknowledged before
        // the loop sees the shutdown (at most one fetch expiry, 250 ms, later).
        let result = consume(&pool, &js, &config, &applied, &shutdown).await;
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "usage projection interrupted");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume(
    pool: &PgPool,
    js: &jetstream::Context,
    config: &UsageStreamConfig,
    applied: &watch::Sender<u64>,
    shutdown: &CancellationToken,
) -> Result<(), async_nats::Error> {
    let stream = ensure_usage_stream(js, config).await?;
    let floor = stored_floor(pool, &config.consumer).await?;
    let mut consumer =
        stream.get_or_create_consumer(&config.consumer, consumer_config(config, floor)).await?;
    // Whatever the consumer acknowledged before (another run, another instance) is committed.
    raise(applied, consumer.info().await?.ack_floor.stream_sequence.max(floor));
    let mut floor_copied = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        let mut messages =
            consumer.batch().max_messages(BATCH).expires(Duration::from_millis(250)).messages().await?;
        let (mut batch, mut delivered) = (Vec::new(), Vec::new());
        while let Some(message) = messages.next().await {
            let message = message?;
            let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            match serde_json::from_slice::<UsageEvent>(&message.payload) {
                Ok(event) => batch.push(Counted { seq, event }),
                Err(e) => {
                    metrics::counter!("tokenhub_usage_unreadable_total").increment(1);
                    tracing::error!(seq, error = %e, "unreadable usage record skipped");
                }
            }
            delivered.push((seq, message));
        }
        let Some((seq, last)) = delivered.pop() else { continue };
        let counted = apply_batch(pool, &batch).await?;
        for (_, message) in delivered {
            message.ack().await?;
        }
        // Confirmed: the acks before it on the same connection went out first.
        last.double_ack().await?;
        metrics::counter!("tokenhub_usage_records_counted_total").increment(counted as u64);
        raise(applied, seq);
        if floor_copied.elapsed() >= FLOOR_EVERY {
            let info = consumer.info().await?;
            metrics::gauge!("tokenhub_usage_projection_pending").set(info.num_pending as f64);
            store_floor(pool, &config.consumer, info.ack_floor.stream_sequence).await?;
            floor_copied = tokio::time::Instant::now();
        }
        if counted < batch.len() {
            tracing::debug!(
                duplicates = batch.len() - counted,
                "re-delivered or re-posted usage records skipped"
            );
        }
    }
    store_floor(pool, &config.consumer, consumer.info().await?.ack_floor.stream_sequence).await?;
    Ok(())
}

/// How often the ids of old records are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the ids of records older than `max_age` plus two days (ingest refuses re-posts of
/// those by their timestamp), in batches; returns how many were deleted.
pub async fn prune(pool: &PgPool, now: OffsetDateTime, max_age: time::Duration) -> Result<u64, sqlx::Error> {
    let before = (now - max_age - time::Duration::days(2)).to_offset(time::UtcOffset::UTC).date();
    let mut deleted = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM usage_records WHERE ctid = ANY(ARRAY( \
               SELECT ctid FROM usage_records WHERE recorded_on < $1 LIMIT 10000))",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
        deleted += n;
        if n == 0 {
            return Ok(deleted);
        }
    }
}

/// Prunes old record ids every [`PRUNE_EVERY`] until shutdown.
pub fn spawn_pruner(pool: PgPool, max_age: time::Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match prune(&pool, OffsetDateTime::now_utc(), max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned ids of usage records past USAGE_MAX_AGE_DAYS"),
                Err(e) => tracing::warn!(error = %e, "cannot prune usage record ids"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
            }
        }
    });
}
