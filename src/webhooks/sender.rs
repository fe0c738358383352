//! The delivery worker: one leader at a time (a PostgreSQL advisory lock on a dedicated
//! connection, like the relay) runs the [`Dispatcher`](super::dispatch::Dispatcher), the
//! notice scans and the attempts. Each endpoint's oldest pending delivery is its only one
//! attempted, so deliveries arrive in order per endpoint; endpoints proceed in parallel,
//! bounded per tenant. An attempt in flight when the process dies is simply made again by
//! the next leader, with the same `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::TenantCommand;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatcher;
use super::sign::{decode_secret, signature};
use super::target::check_url;
use super::{notices, WebhookSettings};
use crate::commands::{execute, CommandMetadata, Commands};
use crate::crypto::data_keys::Keks;
use crate::follow::apply::Apply;

/// Bytes of an answer's body that are kept.
pub const BODY_KEPT: usize = 1024;
const QUOTA_CHECKPOINT: &str = "webhooks:quota_version";

/// What attempts need: the pool, the KEK (to open signing secrets), the client, the settings.
pub struct Sender {
    pool: PgPool,
    keks: Keks,
    client: reqwest::Client,
    settings: WebhookSettings,
}

/// A delivery about to be attempted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    delivery_id: String,
    tenant_id: String,
    endpoint_id: String,
    url: String,
    secret_ref: Option<String>,
    body: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    deadline: OffsetDateTime,
    created_at: OffsetDateTime,
}

/// What one attempt got.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// The HTTP status, if an answer came.
    pub status_code: Option<u16>,
    /// What went wrong (none when the answer was 2xx).
    pub error: Option<String>,
    /// The first 1 KiB of the answer's body.
    #[serde(skip)]
    pub body: Option<String>,
    /// Milliseconds.
    pub latency_ms: u64,
}

impl Outcome {
    /// True when the endpoint answered 2xx.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Sender {
    /// A sender with its own HTTP client.
    pub fn new(pool: PgPool, keks: Keks, settings: WebhookSettings) -> Result<Self, reqwest::Error> {
        let client = super::target::client(settings.allow_private, settings.timeout)?;
        Ok(Self { pool, keks, client, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    async fn signing_key(&self, tenant: &str, name: &str) -> Result<Vec<u8>, String> {
        let (_, value) = crate::crypto::secrets::open_current(&self.pool, &self.keks, tenant, name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the secret {name} does not exist"))?;
        let text = String::from_utf8(value).map_err(|_| format!("the secret {name} is not text"))?;
        decode_secret(&text)
            .ok_or_else(|| format!("the secret {name} is not a signing secret (whsec_ and base64)"))
    }

    /// Makes one attempt (signing, the checked target, the first 1 KiB of the answer).
    pub async fn send(&self, d: &Due) -> Outcome {
        let started = Instant::now();
        let mut outcome = self.send_inner(d).await;
        outcome.latency_ms = started.elapsed().as_millis() as u64;
        metrics::histogram!("tokenhub_webhook_attempt_seconds").record(started.elapsed().as_secs_f64());
        outcome
    }

    async fn send_inner(&self, d: &Due) -> Outcome {
        let fail = |error: String| Outcome { error: Some(error), ..Outcome::default() };
        if let Err(e) = check_url(&d.url, self.settings.allow_private) {
            return fail(format!("target refused: {e}"));
        }
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let mut request = self
            .client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &d.delivery_id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(name) = &d.secret_ref {
            let signed = self.signing_key(&d.tenant_id, name).await.and_then(|key| {
                signature(&key, &d.delivery_id, timestamp, d.body.as_bytes())
                    .ok_or_else(|| format!("the secret {name} cannot sign"))
            });
            match signed {
                Ok(value) => request = request.header("webhook-signature", value),
                Err(e) => return fail(e),
            }
        }
        let mut response = match request.body(d.body.clone()).send().await {
            Ok(r) => r,
            Err(e) => return fail(describe(&e, self.settings.timeout)),
        };
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < BODY_KEPT {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(BODY_KEPT - kept.len())]),
                _ => break,
            }
        }
        let body = Some(String::from_utf8_lossy(&kept).into_owned());
        let error = match status {
            200..=299 => None,
            300..=399 => Some(format!("answered {status}: redirects are not followed")),
            _ => Some(format!("answered {status}")),
        };
        Outcome { status_code: Some(status), error, body, latency_ms: 0 }
    }

    /// The delay before attempt `n + 1` after `n` failures: doubling from the base, at most an
    /// hour, ±20 % jitter.
    pub fn backoff(&self, failures: i32) -> Duration {
        let exp = failures.clamp(1, 20) as u32 - 1;
        let base =
            self.settings.retry_base.saturating_mul(2u32.saturating_pow(exp)).min(Duration::from_secs(3600));
        base.mul_f64(rand::random_range(0.8..1.2))
    }

    /// Records an attempt and what follows from it; true when the endpoint has failed
    /// everything for `disable_after` and was just marked for disabling.
    pub async fn record(
        &self,
        d: &Due,
        started: OffsetDateTime,
        outcome: &Outcome,
        final_attempt: bool,
    ) -> Result<bool, sqlx::Error> {
        let now = OffsetDateTime::now_utc();
        let attempt = d.attempts + 1;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms, status_code, error, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&d.delivery_id)
        .bind(attempt)
        .bind(started)
        .bind(outcome.latency_ms.min(i32::MAX as u64) as i32)
        .bind(outcome.status_code.map(i32::from))
        .bind(&outcome.error)
        .bind(&outcome.body)
        .execute(&mut *tx)
        .await?;
        let label;
        let mut disable = false;
        if outcome.ok() {
            label = "delivered";
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, attempts = $3, last_status = $4, \
                 last_error = NULL WHERE delivery_id = $1",
            )
            .bind(&d.delivery_id)
            .bind(now)
            .bind(attempt)
            .bind(outcome.status_code.map(i32::from))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE endpoint_id = $1")
                .bind(&d.endpoint_id)
                .execute(&mut *tx)
                .await?;
        } else {
            let give_up = final_attempt || now >= d.deadline;
            label = if give_up { "failed" } else { "retry" };
            let next = now + time::Duration::try_from(self.backoff(attempt)).unwrap_or(time::Duration::HOUR);
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $2, attempts = $3, last_status = $4, last_error = $5, \
                 next_attempt_at = $6 WHERE delivery_id = $1",
            )
            .bind(&d.delivery_id)
            .bind(if give_up { "failed" } else { "pending" })
            .bind(attempt)
            .bind(outcome.status_code.map(i32::from))
            .bind(&outcome.error)
            .bind(next)
            .execute(&mut *tx)
            .await?;
            let failing_since: Option<OffsetDateTime> = sqlx::query_scalar(
                "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2) WHERE endpoint_id = $1 \
                 RETURNING failing_since",
            )
            .bind(&d.endpoint_id)
            .bind(started)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
            let limit =
                time::Duration::try_from(self.settings.disable_after).unwrap_or(time::Duration::DAY * 3);
            if failing_since.is_some_and(|since| now - since >= limit) {
                // Marked once; the tenant.webhook_disabled event does the rest.
                disable = sqlx::query(
                    "UPDATE webhook_endpoints SET disabled_reason = 'disabling' WHERE endpoint_id = $1 \
                     AND disabled_at IS NULL AND disabled_reason IS NULL",
                )
                .bind(&d.endpoint_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
            }
        }
        tx.commit().await?;
        metrics::counter!("tokenhub_webhook_attempts_total", "outcome" => label).increment(1);
        Ok(disable)
    }

    /// Sends `webhook.test` to one of the tenant's configured endpoints now, outside its
    /// queue, once (no retries): the delivery is recorded like any other.
    pub async fn test(
        &self,
        tenant: &str,
        endpoint: &super::Endpoint,
    ) -> Result<(String, Outcome), sqlx::Error> {
        let now = OffsetDateTime::now_utc();
        let id = format!("test:{}", uuid::Uuid::now_v7());
        let body = serde_json::json!({
            "specversion": "1.0", "id": id, "source": format!("/tokenhub/tenant/{tenant}/webhooks"),
            "type": "tokenhub.webhook.test.v1", "subject": endpoint.url, "time": crate::time_fmt::rfc3339(now),
            "datacontenttype": "application/json", "tenantid": tenant, "eventtype": "webhook.test",
            "data": {"message": "A test delivery from TokenHub."},
        })
        .to_string();
        let new = super::store::NewDelivery {
            tenant_id: tenant,
            endpoint,
            event_type: "webhook.test",
            source_id: &id,
            position: None,
            body: &body,
        };
        let mut conn = self.pool.acquire().await?;
        super::store::insert_delivery(&mut conn, &new, now, Duration::from_secs(3600)).await?;
        // Not the worker's to take: due only after this attempt has been recorded.
        let endpoint_id = super::endpoint_id(tenant, &endpoint.url);
        let delivery_id = super::delivery_id(&id, &endpoint_id);
        sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = deadline WHERE delivery_id = $1")
            .bind(&delivery_id)
            .execute(&mut *conn)
            .await?;
        drop(conn);
        let due = Due {
            delivery_id: delivery_id.clone(),
            tenant_id: tenant.to_string(),
            endpoint_id,
            url: endpoint.url.clone(),
            secret_ref: endpoint.secret_ref.clone(),
            body,
            attempts: 0,
            next_attempt_at: now,
            deadline: now,
            created_at: now,
        };
        let outcome = self.send(&due).await;
        self.record(&due, now, &outcome, true).await?;
        Ok((delivery_id, outcome))
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    // The innermost cause says what happened (a refused target, a refused connection).
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("connection failed: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}

/// Runs the worker until `shutdown` (a background task): it leads while it holds the lock,
/// publishing how far it has read the log on `position`.
pub async fn run(
    sender: Arc<Sender>,
    commands: Commands,
    hint: watch::Receiver<i64>,
    position: watch::Sender<i64>,
    shutdown: CancellationToken,
) {
    let pool = sender.pool.clone();
    crate::follow::leading::run(Worker { sender, commands, hint, position }, pool, shutdown).await
}

struct Worker {
    sender: Arc<Sender>,
    commands: Commands,
    hint: watch::Receiver<i64>,
    position: watch::Sender<i64>,
}

type WorkerError = Box<dyn std::error::Error + Send + Sync>;

impl crate::follow::leading::Leading for Worker {
    fn lock_key(&self) -> String {
        "tokenhub_webhooks".to_string()
    }

    fn name(&self) -> &'static str {
        "webhook worker"
    }

    fn remedy(&self) -> &'static str {
        "webhooks are not being delivered: check that PostgreSQL answers; tokenhub_webhook_backlog_age_seconds shows the wait"
    }

    fn progress(&self) -> i64 {
        *self.position.borrow()
    }

    async fn lead(
        &mut self,
        leader: &mut sqlx::PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        self.work(leader, shutdown).await
    }
}

impl Worker {
    async fn work(
        &mut self,
        leader: &mut sqlx::PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let pool = self.sender.pool.clone();
        let settings = self.sender.settings.clone();
        let mut dispatcher = Dispatcher::resume(&pool, settings.clone()).await?;
        let mut quota_version = crate::follow::checkpoint::load(&pool, QUOTA_CHECKPOINT).await?;
        tracing::info!(position = dispatcher.position(), "webhook worker leading");
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String)>();
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut per_tenant: HashMap<String, usize> = HashMap::new();
        let mut next_scan = Instant::now();
        let mut next_expiry_scan = Instant::now();
        let mut next_ping = Instant::now() + Duration::from_secs(5);
        loop {
            let read = crate::follow::apply::step(&pool, &mut dispatcher).await?;
            self.position.send_replace(dispatcher.position());
            if Instant::now() >= next_scan {
                // Expiry is looked for less often: it reads every active key with an expiry.
                // Notices never hold up deliveries: a scan that fails (on one tenant's data or
                // the database) is logged and tried again at the next interval.
                if Instant::now() >= next_expiry_scan {
                    if let Err(e) = notices::scan_expiring(&pool, &settings).await {
                        tracing::error!(error = %e, "expiry notices: scan failed; deliveries go on, retried next interval");
                    }
                    next_expiry_scan = Instant::now() + settings.notice_interval * 6;
                }
                let newest = match notices::scan_quota(&pool, &settings, quota_version).await {
                    Ok(newest) => newest,
                    Err(e) => {
                        tracing::error!(error = %e, "quota notices: scan failed; deliveries go on, retried next interval");
                        quota_version
                    }
                };
                if newest > quota_version {
                    quota_version = newest;
                    crate::follow::checkpoint::store(&pool, QUOTA_CHECKPOINT, quota_version).await?;
                }
                next_scan = Instant::now() + settings.notice_interval;
            }
            if Instant::now() >= next_ping {
                // The lock lives on this connection: if it is gone, so is the leadership.
                sqlx::query("SELECT 1").execute(&mut *leader).await?;
                next_ping = Instant::now() + Duration::from_secs(5);
            }
            let wait = self.start_due(&done_tx, &mut in_flight, &mut per_tenant).await?;
            if read as i64 == Dispatcher::BATCH {
                continue;
            }
            let wait =
                wait.min(Duration::from_secs(1)).min(next_scan.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.hint.changed() => tokio::time::sleep(crate::follow::GATHER).await,
                done = done_rx.recv() => {
                    if let Some((endpoint, tenant)) = done { finish(&mut in_flight, &mut per_tenant, &endpoint, &tenant) }
                    while let Ok((endpoint, tenant)) = done_rx.try_recv() {
                        finish(&mut in_flight, &mut per_tenant, &endpoint, &tenant);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts the attempts that are due; how long until the next one is.
    async fn start_due(
        &self,
        done: &mpsc::UnboundedSender<(String, String)>,
        in_flight: &mut HashSet<String>,
        per_tenant: &mut HashMap<String, usize>,
    ) -> Result<Duration, sqlx::Error> {
        // One index probe per endpoint (its oldest pending delivery): the cost follows the
        // number of endpoints, not the size of a backlog.
        let heads: Vec<Due> = sqlx::query_as(
            "SELECT d.delivery_id, d.tenant_id, d.endpoint_id, d.url, d.secret_ref, d.body, \
             d.attempts, d.next_attempt_at, d.deadline, d.created_at \
             FROM webhook_endpoints e CROSS JOIN LATERAL (SELECT * FROM webhook_deliveries w \
               WHERE w.endpoint_id = e.endpoint_id AND w.status = 'pending' ORDER BY w.seq LIMIT 1) d \
             WHERE e.disabled_at IS NULL",
        )
        .fetch_all(&self.sender.pool)
        .await?;
        let now = OffsetDateTime::now_utc();
        let oldest = heads.iter().map(|d| d.created_at).min();
        metrics::gauge!("tokenhub_webhook_backlog_age_seconds")
            .set(oldest.map(|o| (now - o).as_seconds_f64().max(0.0)).unwrap_or(0.0));
        let mut wait = Duration::from_secs(1);
        for d in heads {
            if in_flight.contains(&d.endpoint_id) {
                continue;
            }
            if d.next_attempt_at > now {
                wait = wait.min(Duration::try_from(d.next_attempt_at - now).unwrap_or(wait));
                continue;
            }
            let busy = per_tenant.entry(d.tenant_id.clone()).or_default();
            if *busy >= self.sender.settings.tenant_concurrency {
                continue;
            }
            *busy += 1;
            in_flight.insert(d.endpoint_id.clone());
            let (sender, commands, done) = (self.sender.clone(), self.commands.clone(), done.clone());
            tokio::spawn(async move {
                let started = OffsetDateTime::now_utc();
                let outcome = sender.send(&d).await;
                match sender.record(&d, started, &outcome, false).await {
                    Ok(true) => disable(&commands, &d, &sender.settings).await,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, delivery = %d.delivery_id, "webhook attempt not recorded")
                    }
                }
                let _ = done.send((d.endpoint_id, d.tenant_id));
            });
        }
        Ok(wait)
    }
}

fn finish(
    in_flight: &mut HashSet<String>,
    per_tenant: &mut HashMap<String, usize>,
    endpoint: &str,
    tenant: &str,
) {
    in_flight.remove(endpoint);
    if let Some(n) = per_tenant.get_mut(tenant) {
        *n = n.saturating_sub(1);
    }
}

async fn disable(commands: &Commands, d: &Due, settings: &WebhookSettings) {
    let hours = settings.disable_after.as_secs() / 3600;
    let reason = if hours >= 1 {
        format!("every attempt failed for {hours} hours")
    } else {
        format!("every attempt failed for {} s", settings.disable_after.as_secs())
    };
    let command = TenantCommand::DisableWebhook { url: d.url.clone(), reason, at: OffsetDateTime::now_utc() };
    let meta = CommandMetadata::system("webhooks", Some(&d.tenant_id));
    if let Err(e) = execute(&commands.tenants, &d.tenant_id, command, meta).await {
        tracing::warn!(error = %e, endpoint = %d.endpoint_id, "webhook endpoint not disabled");
    }
}
