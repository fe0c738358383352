//! Derived notices: not events of the log but facts about it, raised once per id and delivered
//! like events to the endpoints (in the tenant's current configuration) that asked for them.
//!
//! - `api_key.expiring`: 7 days and 1 day before a key's `expiration` (only the nearer when a
//!   key is issued inside both).
//! - `quota.threshold`: 50 %, 80 %, 100 % of a key's, sub-account's or tenant's LLM-token quota
//!   in its window, once per threshold and window (only the highest when one batch of usage
//!   crosses several), found from the quota totals changed since the last look.
//! - `rate_limit.exceeded`: a key refused with `RATE_LIMITED`, at most once a minute per key
//!   (the id names the minute, so instances agree).

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::store::{insert_delivery, NewDelivery};
use super::WebhookSettings;

/// Raises notice `id` for `tenant` once: records it and its deliveries; true when new.
pub async fn raise(
    pool: &PgPool,
    settings: &WebhookSettings,
    tenant: &str,
    event_type: &str,
    id: &str,
    subject: &str,
    data: Value,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let new = sqlx::query("INSERT INTO webhook_notices (notice_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !new {
        return Ok(false);
    }
    let endpoints = super::store::configured_endpoints(&mut tx, tenant).await?;
    let disabled: Vec<String> = sqlx::query_scalar(
        "SELECT url FROM webhook_endpoints WHERE tenant_id = $1 AND disabled_at IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    let body = json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("/tokenhub/tenant/{tenant}/notices"),
        "type": format!("tokenhub.{event_type}.v1"),
        "subject": subject,
        "time": crate::time_fmt::rfc3339(now),
        "datacontenttype": "application/json",
        "tenantid": tenant,
        "eventtype": event_type,
        "data": data,
    })
    .to_string();
    for endpoint in endpoints {
        if disabled.contains(&endpoint.url) || !endpoint.wants(event_type) {
            continue;
        }
        let d = NewDelivery {
            tenant_id: tenant,
            endpoint: &endpoint,
            event_type,
            source_id: id,
            position: None,
            body: &body,
        };
        insert_delivery(&mut tx, &d, now, settings.retry_for).await?;
    }
    tx.commit().await?;
    metrics::counter!("tokenhub_webhook_notices_total", "type" => event_type.to_string()).increment(1);
    Ok(true)
}

/// Keys expiring within 7 days: `api_key.expiring` at 7 days and at 1 day.
pub async fn scan_expiring(pool: &PgPool, settings: &WebhookSettings) -> Result<(), sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let rows =
        tokenhub_projections::read::api_keys::expiring(pool, now, now + time::Duration::days(7)).await?;
    for (public_id, tenant, expires_at) in rows {
        let left = expires_at - now;
        let steps: &[&str] = if left <= time::Duration::DAY { &["1d", "7d"] } else { &["7d"] };
        let stamp = expires_at.unix_timestamp();
        // The nearest step is sent; the farther one is only marked as done.
        let mut first = true;
        for step in steps {
            let id = format!("api_key.expiring:{public_id}:{stamp}:{step}");
            if first {
                let data = json!({"public_id": public_id, "expiration": crate::time_fmt::rfc3339(expires_at), "within": step});
                raise(pool, settings, &tenant, "api_key.expiring", &id, &public_id, data).await?;
                first = false;
            } else {
                sqlx::query("INSERT INTO webhook_notices (notice_id) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(&id)
                    .execute(pool)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Thresholds of a quota, in percent.
pub const THRESHOLDS: [i64; 3] = [50, 80, 100];

/// Quota totals changed since `after_version`: `quota.threshold` for each newly crossed
/// threshold. Returns the newest version seen.
pub async fn scan_quota(
    pool: &PgPool,
    settings: &WebhookSettings,
    after_version: i64,
) -> Result<i64, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        scope: String,
        subject_id: String,
        period: String,
        window_start: time::Date,
        llm_tokens: i64,
        version: i64,
        tenant_id: Option<String>,
        quota: Option<i64>,
    }
    // Each scope's quota and the window it counts in (lifetime when no period is set).
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT q.scope, q.subject_id, q.period, q.window_start, q.llm_tokens, q.version, \
           CASE q.scope WHEN 'key' THEN k.tenant_id WHEN 'sub_account' THEN s.tenant_id ELSE t.tenant_id END AS tenant_id, \
           CASE q.scope WHEN 'key' THEN least((k.record->'settings'->>'quota_limit')::numeric, 9223372036854775807)::bigint \
                        WHEN 'sub_account' THEN s.quota_limit \
                        ELSE least((t.limits->>'monthly_token_quota')::numeric, 9223372036854775807)::bigint END AS quota \
         FROM usage_quota_totals q \
         LEFT JOIN api_keys k ON q.scope = 'key' AND k.public_id = q.subject_id \
         LEFT JOIN sub_accounts s ON q.scope = 'sub_account' AND s.sub_account_id = q.subject_id \
         LEFT JOIN tenants t ON q.scope = 'tenant' AND t.tenant_id = q.subject_id \
         WHERE q.version > $1 AND q.period = CASE q.scope \
             WHEN 'key' THEN coalesce(k.record->'settings'->>'quota_period', 'lifetime') \
             WHEN 'sub_account' THEN coalesce(s.quota_period, 'lifetime') ELSE 'month' END \
         ORDER BY q.version LIMIT 1000",
    )
    .bind(after_version)
    .fetch_all(pool)
    .await?;
    let mut newest = after_version;
    for row in rows {
        newest = newest.max(row.version);
        let (Some(tenant), Some(quota)) = (row.tenant_id, row.quota) else { continue };
        if quota <= 0 {
            continue;
        }
        let percent = row.llm_tokens.saturating_mul(100) / quota;
        let crossed: Vec<i64> = THRESHOLDS.iter().copied().filter(|t| percent >= *t).collect();
        let Some(&highest) = crossed.last() else { continue };
        let id_of = |t: i64| {
            format!(
                "quota.threshold:{}:{}:{}:{}:{t}",
                row.scope, row.subject_id, row.period, row.window_start
            )
        };
        // Only the highest threshold not yet raised is sent; lower ones are marked as done.
        let done: Vec<String> =
            sqlx::query_scalar("SELECT notice_id FROM webhook_notices WHERE notice_id = ANY($1)")
                .bind(crossed.iter().map(|t| id_of(*t)).collect::<Vec<_>>())
                .fetch_all(pool)
                .await?;
        if done.contains(&id_of(highest)) {
            continue;
        }
        for t in &crossed[..crossed.len() - 1] {
            sqlx::query("INSERT INTO webhook_notices (notice_id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(id_of(*t))
                .execute(pool)
                .await?;
        }
        let data = json!({
            "scope": row.scope, "subject_id": row.subject_id, "threshold_percent": highest,
            "used": row.llm_tokens, "quota": quota, "period": row.period,
            "window_start": row.window_start.to_string(),
        });
        raise(pool, settings, &tenant, "quota.threshold", &id_of(highest), &row.subject_id, data).await?;
    }
    Ok(newest)
}

/// `rate_limit.exceeded` from the verification path: never blocks it (a bounded queue, and
/// one notice per key and minute on each instance before anything is queued).
#[derive(Clone)]
pub struct RateLimitNotices {
    last: Arc<DashMap<String, i64>>,
    tx: mpsc::Sender<(String, String, i64)>,
}

impl RateLimitNotices {
    /// The notices and their queue, whose [`NoticeQueue::run`] raises them.
    pub fn new() -> (Self, NoticeQueue) {
        let (tx, rx) = mpsc::channel::<(String, String, i64)>(1024);
        (Self { last: Arc::new(DashMap::new()), tx }, NoticeQueue(rx))
    }

    /// A key of `tenant` was refused with `RATE_LIMITED` at `now`.
    pub fn exceeded(&self, public_id: &str, tenant: &str, now: OffsetDateTime) {
        let minute = now.unix_timestamp().div_euclid(60);
        let mut fresh = false;
        self.last
            .entry(public_id.to_string())
            .and_modify(|m| {
                if *m < minute {
                    *m = minute;
                    fresh = true;
                }
            })
            .or_insert_with(|| {
                fresh = true;
                minute
            });
        if fresh {
            let _ = self.tx.try_send((public_id.to_string(), tenant.to_string(), minute));
        }
        if self.last.len() > 100_000 {
            self.last.retain(|_, m| *m >= minute);
        }
    }
}

/// The queued `rate_limit.exceeded` notices of [`RateLimitNotices`].
pub struct NoticeQueue(mpsc::Receiver<(String, String, i64)>);

impl NoticeQueue {
    /// Raises the queued notices until `shutdown` (a background task).
    pub async fn run(self, pool: PgPool, settings: WebhookSettings, shutdown: CancellationToken) {
        let mut rx = self.0;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = rx.recv() => next,
            };
            let Some((public_id, tenant, minute)) = next else { return };
            let id = format!("rate_limit.exceeded:{public_id}:{minute}");
            let data = json!({"public_id": public_id, "minute": crate::time_fmt::rfc3339(
                OffsetDateTime::from_unix_timestamp(minute * 60).unwrap_or(OffsetDateTime::UNIX_EPOCH))});
            if let Err(e) =
                raise(&pool, &settings, &tenant, "rate_limit.exceeded", &id, &public_id, data).await
            {
                tracing::warn!(error = %e, "rate_limit.exceeded notice not recorded");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
