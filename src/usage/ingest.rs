//! Publishing usage records to the JetStream usage stream. A record is acknowledged to the
//! gateway only after JetStream acknowledged it; re-posts are recognised by JetStream's
//! de-duplication (`Nats-Msg-Id`, inside its window) and, after that, by the records the
//! usage projection has already counted.

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use sqlx::PgPool;

use super::record::UsageEvent;
use crate::nats::UsageStreamConfig;

/// Why a batch could not be published.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// JetStream did not take or acknowledge a record.
    #[error("usage stream unavailable: {0}")]
    Stream(String),
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: durable in the stream.
    Accepted,
    /// Seen before (same tenant and id): not counted again.
    Duplicate,
}

/// How long the look-up of already counted records may take before it is skipped.
const COUNTED_LOOKUP: std::time::Duration = std::time::Duration::from_millis(200);

/// Publishes usage records.
#[derive(Clone)]
pub struct UsageIngest {
    client: async_nats::Client,
    /// Set once the stream is known to exist with our subjects.
    stream_ready: std::sync::Arc<tokio::sync::OnceCell<()>>,
    js: jetstream::Context,
    config: UsageStreamConfig,
    max_age: time::Duration,
}

impl UsageIngest {
    /// An ingest publishing through `client` to the stream of `config`, accepting records up to
    /// `max_age` old.
    pub fn new(client: async_nats::Client, config: UsageStreamConfig, max_age: time::Duration) -> Self {
        let stream_ready = std::sync::Arc::default();
        Self { js: jetstream::new(client.clone()), client, stream_ready, config, max_age }
    }

    /// How old a record may be (also how long its id is remembered for de-duplication).
    pub fn max_age(&self) -> time::Duration {
        self.max_age
    }

    /// The stream settings.
    pub fn config(&self) -> &UsageStreamConfig {
        &self.config
    }

    /// Publishes records whose ids were made fresh by this process (the gateway's request
    /// ids): no re-post to tell apart, so the counted records are not looked up.
    pub async fn publish_fresh(&self, events: &[UsageEvent]) -> Result<Vec<Outcome>, IngestError> {
        self.publish_checked(events, None).await
    }

    /// Publishes `events` and waits for every acknowledgement; outcomes in input order.
    pub async fn publish(&self, pool: &PgPool, events: &[UsageEvent]) -> Result<Vec<Outcome>, IngestError> {
        self.publish_checked(events, Some(pool)).await
    }

    async fn publish_checked(
        &self,
        events: &[UsageEvent],
        pool: Option<&PgPool>,
    ) -> Result<Vec<Outcome>, IngestError> {
        // Fail fast while disconnected instead of waiting for every acknowledgement to time out.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(IngestError::Stream("not connected to NATS".into()));
        }
        self.stream_ready
            .get_or_try_init(|| async {
                crate::nats::ensure_usage_stream(&self.js, &self.config).await.map(|_| ())
            })
            .await
            .map_err(|e| IngestError::Stream(e.to_string()))?;
        // Re-posts older than JetStream's window are told apart by the counted records; with
        // the database down that look is skipped (the usage projection counts a record once
        // whatever is published), so usage is taken during a database outage.
        let counted = match pool {
            None => vec![false; events.len()],
            Some(pool) => match tokio::time::timeout(COUNTED_LOOKUP, already_counted(pool, events)).await {
                Ok(Ok(counted)) => counted,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "usage: counted records not looked up; JetStream de-duplicates");
                    vec![false; events.len()]
                }
                Err(_) => vec![false; events.len()],
            },
        };
        let mut pending: Vec<Option<PublishAckFuture>> = Vec::with_capacity(events.len());
        for (event, counted) in events.iter().zip(&counted) {
            if *counted {
                pending.push(None);
                continue;
            }
            let payload = serde_json::to_vec(event).map_err(|e| IngestError::Stream(e.to_string()))?;
            let message =
                PublishMessage::build().message_id(event.message_id()).payload(Bytes::from(payload));
            let ack = self
                .js
                .send_publish(self.config.subject(&event.data.tenant_id), message)
                .await
                .map_err(|e| IngestError::Stream(e.to_string()))?;
            pending.push(Some(ack));
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for ack in pending {
            let outcome = match ack {
                None => Outcome::Duplicate,
                Some(ack) => {
                    let ack = ack.await.map_err(|e| IngestError::Stream(e.to_string()))?;
                    if ack.duplicate {
                        Outcome::Duplicate
                    } else {
                        Outcome::Accepted
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

/// For each event: was it counted by the projection already (a re-post after JetStream's
/// de-duplication window)?
async fn already_counted(pool: &PgPool, events: &[UsageEvent]) -> Result<Vec<bool>, sqlx::Error> {
    let tenants: Vec<&str> = events.iter().map(|e| e.data.tenant_id.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let found: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.tenant_id, r.record_id FROM usage_records r \
         JOIN unnest($1::text[], $2::text[]) AS q(tenant_id, record_id) \
           ON r.tenant_id = q.tenant_id AND r.record_id = q.record_id",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let found: std::collections::HashSet<(String, String)> = found.into_iter().collect();
    Ok(events.iter().map(|e| found.contains(&(e.data.tenant_id.clone(), e.id.clone()))).collect())
}
