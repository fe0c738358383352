//! From the event log to deliveries. Reads after its checkpoint in position order and, in one
//! transaction per batch, records each event's deliveries and moves the checkpoint: a crash
//! loses nothing and repeats nothing (a delivery's id is derived from the event and the
//! endpoint). The endpoints are those of the tenant's configuration as of the event's
//! position (its latest `tenant.config_saved` before it), so replaying the log from position
//! 0 gives the same deliveries.

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokenhub_projections::StoredEvent;

use super::store::{insert_delivery, NewDelivery};
use super::{endpoint_id, endpoints_of, Endpoint, WebhookSettings};

/// The checkpoint's name.
pub const CHECKPOINT: &str = "webhooks";
/// Events read per transaction.
pub const BATCH: i64 = 256;
/// Aggregates whose events a tenant's webhooks receive (people's events are not sent).
const DELIVERED: &[&str] = &["tenant", "api_key", "sub_account", "role", "secret"];

/// A tenant's webhook setup at the dispatcher's position.
#[derive(Debug, Clone, Default)]
struct TenantHooks {
    endpoints: Vec<Endpoint>,
    disabled: HashSet<String>,
}

/// The log reader: the webhook worker's apply step ([`crate::follow::apply`]).
#[derive(Debug)]
pub struct Dispatcher {
    pool: PgPool,
    settings: WebhookSettings,
    position: i64,
    tenants: HashMap<String, TenantHooks>,
}

impl Dispatcher {
    /// A dispatcher resuming at the stored checkpoint.
    pub async fn resume(pool: &PgPool, settings: WebhookSettings) -> Result<Self, sqlx::Error> {
        let position = crate::follow::checkpoint::load(pool, CHECKPOINT).await?;
        Ok(Self { pool: pool.clone(), settings, position, tenants: HashMap::new() })
    }

    async fn hooks(
        &mut self,
        conn: &mut PgConnection,
        tenant: &str,
        before: i64,
    ) -> Result<&mut TenantHooks, sqlx::Error> {
        if !self.tenants.contains_key(tenant) {
            let config: Option<serde_json::Value> = sqlx::query_scalar(
                "SELECT payload->'config' FROM events WHERE aggregate_type = 'tenant' AND aggregate_id = $1 \
                 AND event_type = 'tenant.config_saved' AND position < $2 ORDER BY position DESC LIMIT 1",
            )
            .bind(tenant)
            .bind(before)
            .fetch_optional(&mut *conn)
            .await?;
            let disabled: Vec<String> = sqlx::query_scalar(
                "SELECT url FROM webhook_endpoints WHERE tenant_id = $1 AND disabled_at IS NOT NULL",
            )
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?;
            let endpoints = config.map(|c| endpoints_of(&c)).unwrap_or_default();
            self.tenants.insert(
                tenant.to_string(),
                TenantHooks { endpoints, disabled: disabled.into_iter().collect() },
            );
        }
        Ok(self.tenants.entry(tenant.to_string()).or_default())
    }

    /// Records `event`'s deliveries; how many were new.
    async fn handle(&mut self, conn: &mut PgConnection, event: &StoredEvent) -> Result<u64, sqlx::Error> {
        let Some(tenant) = event.tenant_id.clone() else { return Ok(0) };
        if !DELIVERED.contains(&event.aggregate_type.as_str()) {
            return Ok(0);
        }
        // Deliveries follow the endpoints in force before this event (a save's own event goes
        // to the endpoints it replaces, as a revocation goes to those who were listening); an
        // endpoint being disabled gets the event as the notice of why it went quiet.
        let disabling = (event.event_type == "tenant.webhook_disabled")
            .then(|| event.payload["url"].as_str().unwrap_or_default().to_string());
        let hooks = self.hooks(conn, &tenant, event.position).await?;
        let targets: Vec<(Endpoint, bool)> = hooks
            .endpoints
            .iter()
            .filter_map(|endpoint| {
                let is_disabling = disabling.as_deref() == Some(endpoint.url.as_str());
                let wanted = !hooks.disabled.contains(&endpoint.url) && endpoint.wants(&event.event_type);
                (is_disabling || wanted).then(|| (endpoint.clone(), is_disabling))
            })
            .collect();
        match event.event_type.as_str() {
            "tenant.config_saved" => hooks.endpoints = endpoints_of(&event.payload["config"]),
            "tenant.webhook_disabled" | "tenant.webhook_enabled" => {
                let url = event.payload["url"].as_str().unwrap_or_default().to_string();
                let disabled = disabling.is_some();
                if disabled {
                    hooks.disabled.insert(url.clone());
                } else {
                    hooks.disabled.remove(&url);
                }
                set_disabled(conn, &tenant, &url, disabled, event).await?;
            }
            _ => {}
        }
        if targets.is_empty() {
            return Ok(0);
        }
        let body = String::from_utf8(crate::relay::cloudevent::to_json_bytes(event)).unwrap_or_default();
        let source = event.event_id.to_string();
        let now = OffsetDateTime::now_utc();
        let mut created = 0;
        for (endpoint, is_disabling) in &targets {
            let new = NewDelivery {
                tenant_id: &tenant,
                endpoint,
                event_type: &event.event_type,
                source_id: &source,
                position: Some(event.position),
                body: &body,
            };
            if insert_delivery(conn, &new, now, self.settings.retry_for).await? {
                created += 1;
            }
            if *is_disabling {
                // The endpoint's own list shows why it went quiet.
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', last_error = $2 \
                     WHERE delivery_id = $1",
                )
                .bind(super::delivery_id(&source, &endpoint_id(&tenant, &endpoint.url)))
                .bind(format!(
                    "endpoint disabled: {}",
                    event.payload["reason"].as_str().unwrap_or("by an operator")
                ))
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(created)
    }
}

async fn set_disabled(
    conn: &mut PgConnection,
    tenant: &str,
    url: &str,
    disabled: bool,
    event: &StoredEvent,
) -> Result<(), sqlx::Error> {
    let id = endpoint_id(tenant, url);
    sqlx::query(
        "INSERT INTO webhook_endpoints (endpoint_id, tenant_id, url) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(tenant)
    .bind(url)
    .execute(&mut *conn)
    .await?;
    if disabled {
        sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3 WHERE endpoint_id = $1",
        )
        .bind(&id)
        .bind(event.recorded_at)
        .bind(event.payload["reason"].as_str())
        .execute(&mut *conn)
        .await?;
        // What was waiting is given up (each can be retried once the endpoint is enabled).
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint disabled' \
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL \
             WHERE endpoint_id = $1",
        )
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl crate::follow::apply::Apply for Dispatcher {
    type Error = sqlx::Error;
    const BATCH: i64 = BATCH;

    fn position(&self) -> i64 {
        self.position
    }

    /// Records the batch's deliveries, with the checkpoint in the same transaction: a database
    /// crash takes both back together, and the batch is made again with the same ids. After a
    /// failure the cached configurations are forgotten (their changes rolled back).
    async fn apply(&mut self, events: Vec<StoredEvent>) -> Result<(), sqlx::Error> {
        let Some(last) = events.last().map(|e| e.position) else { return Ok(()) };
        let outcome = async {
            let mut tx = self.pool.begin_with(tokenhub_projections::BEGIN_DERIVED).await?;
            let mut created = 0u64;
            for event in &events {
                created += self.handle(&mut tx, event).await?;
            }
            crate::follow::checkpoint::store(&mut *tx, CHECKPOINT, last).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(created)
        }
        .await;
        match outcome {
            Ok(created) => {
                self.position = last;
                metrics::counter!("tokenhub_webhook_deliveries_created_total").increment(created);
                Ok(())
            }
            Err(e) => {
                self.tenants.clear();
                Err(e)
            }
        }
    }
}
