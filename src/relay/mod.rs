//! The NATS relay: publishes every event of the log, in global order, to JetStream.
//!
//! - Each event is published with its event id as `Nats-Msg-Id` (JetStream drops a repeat
//!   inside the duplicate window) and its position in the `Tokenhub-Position` header.
//! - The relay's position in `checkpoints` advances only after JetStream acknowledged.
//! - On start it also reads the last message of the stream and skips past its position, so a
//!   crash between publish and checkpoint never re-publishes, even after the duplicate window.
//! - Publishes are pipelined, yet the stream can never hold event k+1 without event k: every
//!   publish but the first after a start carries `Nats-Expected-Last-Msg-Id` = the id of the
//!   event before it, so JetStream refuses k+1 unless k is its last message. If k's publish
//!   or ack fails, k+1 (and everything after) is refused, the relay restarts from the stream's
//!   last message, and publishes k again. Skipping past the stream's last position is safe
//!   only because of this.
//! - One instance relays at a time (a PostgreSQL advisory lock held on a dedicated
//!   connection); others wait and take over if it dies.
//! - If NATS is down, commands keep working; the relay retries and catches up.

pub mod cloudevent;
pub mod republish;

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::nats::{ensure_events_stream, EventsStreamConfig};

/// Header carrying the event's global position.
pub const POSITION_HEADER: &str = "Tokenhub-Position";
/// Events published before awaiting their acks.
pub const BATCH: i64 = 256;

/// The relay task.
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    config: EventsStreamConfig,
    hint: watch::Receiver<i64>,
    published: watch::Sender<i64>,
    faults: DropPublish,
}

/// Fault injection for tests: the relay "loses" the publish of one position once (it is not
/// sent and its ack counts as failed), as a network failure would.
#[derive(Clone, Default)]
pub struct DropPublish(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl DropPublish {
    /// Loses the next publish of `position`.
    pub fn at(&self, position: i64) {
        self.0.store(position, std::sync::atomic::Ordering::SeqCst);
    }

    /// True (once) when the publish of `position` is to be lost.
    fn take(&self, position: i64) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.0.compare_exchange(position, 0, SeqCst, SeqCst).is_ok()
    }
}

pub(crate) type RelayError = Box<dyn std::error::Error + Send + Sync>;

/// How far the relay is behind the log: (events not yet on NATS, age of the oldest of them).
/// Any instance can tell, leader or not.
pub async fn lag(pool: &PgPool, checkpoint: &str) -> Result<(i64, Duration), sqlx::Error> {
    let (behind, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT greatest(h.position - coalesce(c.position, 0), 0), \
                extract(epoch FROM now() - e.recorded_at)::float8 \
         FROM event_log_head h \
         LEFT JOIN checkpoints c ON c.name = $1 \
         LEFT JOIN events e ON e.position = coalesce(c.position, 0) + 1",
    )
    .bind(checkpoint)
    .fetch_one(pool)
    .await?;
    let age = if behind > 0 { oldest.unwrap_or(0.0).max(0.0) } else { 0.0 };
    metrics::gauge!("tokenhub_relay_lag_events").set(behind as f64);
    metrics::gauge!("tokenhub_relay_lag_seconds").set(age);
    Ok((behind, Duration::from_secs_f64(age)))
}

impl Relay {
    /// A relay publishing to `config` through `client`; `hint` wakes it when events commit.
    pub fn new(
        pool: PgPool,
        client: async_nats::Client,
        config: EventsStreamConfig,
        hint: watch::Receiver<i64>,
    ) -> (Self, watch::Receiver<i64>) {
        let (published, rx) = watch::channel(0);
        let js = jetstream::new(client);
        (Self { pool, js, config, hint, published, faults: DropPublish::default() }, rx)
    }

    /// The fault-injection handle (tests).
    pub fn drop_publish(&self) -> DropPublish {
        self.faults.clone()
    }

    fn checkpoint_name(&self) -> String {
        crate::nats::relay_checkpoint(&self.config.stream)
    }

    /// Runs until `shutdown`, leading while it holds the relay's lock, retrying after every
    /// failure ([`crate::follow::leading::run`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let pool = self.pool.clone();
        crate::follow::leading::run(self, pool, shutdown).await
    }

    async fn relay_as_leader(
        &mut self,
        leader: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), RelayError> {
        let mut stream = ensure_events_stream(&self.js, &self.config).await?;
        // The checkpoint is a hint (a restart skips what the stream already holds), so its
        // commits need not wait for the disk.
        sqlx::query("SET synchronous_commit = off").execute(&mut *leader).await?;
        let name = self.checkpoint_name();
        let mut position = crate::follow::checkpoint::load(&mut *leader, &name).await?;
        let state = stream.info().await?.state.clone();
        // An empty stream whose sequence has moved on was purged (or lost its data): nothing
        // to compare with, so the relay goes on from its checkpoint instead of stopping.
        let last = if state.messages > 0 && state.last_sequence > 0 {
            match stream.get_raw_message(state.last_sequence).await {
                Ok(last) => Some(last),
                Err(e) => {
                    tracing::warn!(stream = %self.config.stream, error = %e,
                        "the events stream's last message is gone (purged or lost); the relay goes on from its checkpoint");
                    None
                }
            }
        } else {
            if state.last_sequence > 0 {
                tracing::warn!(stream = %self.config.stream, checkpoint = position,
                    "the events stream is empty (purged?); the relay goes on from its checkpoint");
            }
            None
        };
        if let Some(last) = last {
            let in_stream =
                last.headers.get(POSITION_HEADER).and_then(|v| v.as_str().parse::<i64>().ok()).unwrap_or(0);
            // The stream's last message must be this log's event at that position (same event
            // id); otherwise the stream belongs to another database and skipping ahead would
            // silently drop this log's events.
            let msg_id =
                last.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_string());
            let ours: Option<uuid::Uuid> =
                sqlx::query_scalar("SELECT event_id FROM events WHERE position = $1")
                    .bind(in_stream)
                    .fetch_optional(&self.pool)
                    .await?;
            if ours.map(|id| id.to_string()) != msg_id {
                return Err(format!(
                    "stream {}'s last message (position {in_stream}) is not an event of this database: the stream \
                     belongs to another database; set NATS_EVENTS_STREAM / NATS_SUBJECT_PREFIX per database",
                    self.config.stream
                )
                .into());
            }
            if in_stream > position {
                tracing::info!(checkpoint = position, in_stream, "relay skips events already in the stream");
                position = in_stream;
                crate::follow::checkpoint::store(&mut *leader, &name, position).await?;
            }
        }
        self.published.send_replace(position);
        tracing::info!(position, stream = %self.config.stream, "relay leading");
        // The first publish after a start carries no expectation: the stream's last message
        // was just checked to be this log's event at `position` (or the stream is empty).
        let mut publishing = Publishing { relay: self, leader, checkpoint: name, position, last_id: None };
        let (pool, mut hint) = (publishing.relay.pool.clone(), publishing.relay.hint.clone());
        crate::follow::apply::follow(&pool, &mut publishing, &mut hint, shutdown).await.map_err(|Failed(e)| e)
    }
}

/// The relay's apply step, while it leads: publishes a batch (pipelined, each chained to the
/// one before), then stores how far JetStream acknowledged.
struct Publishing<'a> {
    relay: &'a mut Relay,
    leader: &'a mut PgConnection,
    checkpoint: String,
    position: i64,
    /// The id of the event published last (the next one's expected predecessor).
    last_id: Option<String>,
}

/// A relay failure that is a database error.
struct Failed(RelayError);

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Failed(e.into())
    }
}

impl crate::follow::apply::Apply for Publishing<'_> {
    type Error = Failed;
    const BATCH: i64 = BATCH;

    fn position(&self) -> i64 {
        self.position
    }

    async fn apply(&mut self, events: Vec<tokenhub_projections::StoredEvent>) -> Result<(), Failed> {
        let relay = &mut *self.relay;
        let mut pending: Vec<(i64, Option<PublishAckFuture>)> = Vec::with_capacity(events.len());
        let mut failure: Option<RelayError> = None;
        for event in &events {
            let subject =
                relay.config.subject(event.tenant_id.as_deref(), &event.aggregate_type, &event.event_type);
            let body = cloudevent::to_json_bytes(event);
            let mut message = PublishMessage::build()
                .payload(body.into())
                .message_id(event.event_id.to_string())
                .header(POSITION_HEADER, event.position.to_string().as_str())
                .header("Content-Type", cloudevent::CONTENT_TYPE);
            if let Some(previous) = &self.last_id {
                message = message.expected_last_message_id(previous.as_str());
            }
            self.last_id = Some(event.event_id.to_string());
            let lost = relay.faults.take(event.position);
            if lost {
                pending.push((event.position, None));
                continue;
            }
            match relay.js.send_publish(subject, message).await {
                Ok(ack) => pending.push((event.position, Some(ack))),
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        for (event_position, ack) in pending {
            // Await every ack, even after a failure, so none is left in flight.
            let result = match ack {
                Some(ack) => ack.await.map(|_| ()).map_err(RelayError::from),
                None => Err(format!("publish of position {event_position} lost (injected)").into()),
            };
            match result {
                Ok(()) if failure.is_none() => self.position = event_position,
                Ok(()) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        crate::follow::checkpoint::store(&mut *self.leader, &self.checkpoint, self.position).await?;
        relay.published.send_replace(self.position);
        metrics::gauge!("tokenhub_relay_position").set(self.position as f64);
        match failure {
            Some(e) => Err(Failed(e)),
            None => Ok(()),
        }
    }
}

impl crate::follow::leading::Leading for Relay {
    fn lock_key(&self) -> String {
        format!("tokenhub_relay:{}", self.config.stream)
    }

    fn name(&self) -> &'static str {
        "relay"
    }

    fn remedy(&self) -> &'static str {
        "events are not reaching NATS: check that PostgreSQL and NATS answer and that the events stream belongs to this database (NATS_EVENTS_STREAM, NATS_SUBJECT_PREFIX: one per database); tokenhub_relay_lag_events shows the backlog"
    }

    fn progress(&self) -> i64 {
        *self.published.borrow()
    }

    async fn lead(
        &mut self,
        leader: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), RelayError> {
        self.relay_as_leader(leader, shutdown).await
    }
}
