//! `tokenhub events republish`: repairs the events stream from the log after it lost messages
//! (a purge, a replica that lost data). It reads which positions the stream holds (headers
//! only, from each message's `Tokenhub-Position`), then publishes every event of the log the
//! stream lacks, exactly as the relay would (subject, CloudEvent, `Nats-Msg-Id` = event id,
//! position header). Idempotent: a second run finds nothing missing and publishes nothing.
//! Events lost within the stream's duplicate window (JetStream still remembers their ids and
//! drops a new copy as a repeat) are published again once the window has passed (the
//! command waits; TokenHub creates the stream with a 10-minute window).
//! Repaired events arrive after newer ones; consumers order by the position header and
//! recognise repeats by the event id, as they must for any redelivery.
//!
//! Memory: one bit per position of the log (10 million events: 1.25 MB).

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use async_nats::HeaderMap;
use futures::StreamExt;
use sqlx::PgPool;
use tokenhub_projections::log::{head_position, read_after};
use tokenhub_projections::StoredEvent;

use super::{cloudevent, RelayError, POSITION_HEADER};
use crate::nats::EventsStreamConfig;

/// Events read from the log per batch.
const BATCH: i64 = 1_000;

/// What a run found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Events in the log.
    pub in_log: u64,
    /// Of those, already in the stream.
    pub in_stream: u64,
    /// Published now (0 with `dry_run`).
    pub republished: u64,
}

/// The positions the stream holds, as a bit set over `1..=head`.
async fn positions_in_stream(
    js: &jetstream::Context,
    config: &EventsStreamConfig,
    head: i64,
) -> Result<Vec<u64>, RelayError> {
    let mut bits = vec![0u64; (head as usize / 64) + 1];
    let mut stream = crate::nats::ensure_events_stream(js, config).await?;
    let messages = stream.info().await?.state.messages;
    if messages == 0 {
        return Ok(bits);
    }
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            headers_only: true,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let mut seen = 0u64;
    while seen < messages {
        let mut batch =
            consumer.fetch().max_messages(5_000).expires(Duration::from_secs(2)).messages().await?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message?;
            got += 1;
            let position = message
                .headers
                .as_ref()
                .and_then(|h| h.get(POSITION_HEADER))
                .and_then(|v| v.as_str().parse::<i64>().ok());
            if let Some(p) = position.filter(|p| (1..=head).contains(p)) {
                bits[p as usize / 64] |= 1 << (p % 64);
            }
        }
        if got == 0 {
            break; // the rest was removed meanwhile (limits)
        }
        seen += got;
    }
    Ok(bits)
}

/// Publishes every event of the log that the events stream lacks (none with `dry_run`);
/// `progress(done, of)` after every batch of the log.
pub async fn republish(
    pool: &PgPool,
    js: &jetstream::Context,
    config: &EventsStreamConfig,
    dry_run: bool,
    progress: &mut dyn FnMut(i64, i64),
) -> Result<Report, RelayError> {
    let head = head_position(pool).await?;
    let present = positions_in_stream(js, config, head).await?;
    let has = |p: i64| present[p as usize / 64] & (1 << (p % 64)) != 0;
    let mut report = Report::default();
    let mut held_back: Vec<StoredEvent> = Vec::new();
    let mut position = 0;
    loop {
        let events = read_after(pool, position, BATCH).await?;
        let Some(last) = events.last() else { break };
        position = last.position;
        let mut missing = Vec::new();
        for event in events.iter().filter(|e| e.position <= head) {
            report.in_log += 1;
            if has(event.position) {
                report.in_stream += 1;
            } else if !dry_run {
                missing.push(event.clone());
            }
        }
        report.republished += publish_all(js, config, missing, &mut held_back).await?;
        progress(position.min(head), head);
        if position >= head || (events.len() as i64) < BATCH {
            break;
        }
    }
    // Events lost less than a duplicate window ago are dropped by JetStream as repeats of
    // themselves: wait the window out, then publish them again.
    for _ in 0..3 {
        if held_back.is_empty() {
            break;
        }
        let window =
            crate::nats::ensure_events_stream(js, config).await?.info().await?.config.duplicate_window;
        let wait = window + Duration::from_secs(1);
        tracing::warn!(
            events = held_back.len(),
            wait_s = wait.as_secs(),
            "events lost within the stream's duplicate window: waiting it out to publish them again"
        );
        tokio::time::sleep(wait).await;
        let again = std::mem::take(&mut held_back);
        report.republished += publish_all(js, config, again, &mut held_back).await?;
    }
    if !held_back.is_empty() {
        return Err(format!(
            "{} events are still refused as duplicates; run the command again",
            held_back.len()
        )
        .into());
    }
    Ok(report)
}

/// Publishes `events` as the relay does, awaiting their acks together; returns how many the
/// stream stored, and puts those it dropped as duplicates in `held_back`.
async fn publish_all(
    js: &jetstream::Context,
    config: &EventsStreamConfig,
    events: Vec<StoredEvent>,
    held_back: &mut Vec<StoredEvent>,
) -> Result<u64, RelayError> {
    let mut acks = Vec::with_capacity(events.len());
    for event in events {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.event_id.to_string().as_str());
        headers.insert(POSITION_HEADER, event.position.to_string().as_str());
        headers.insert("Content-Type", cloudevent::CONTENT_TYPE);
        let subject = config.subject(event.tenant_id.as_deref(), &event.aggregate_type, &event.event_type);
        let body = cloudevent::to_json_bytes(&event);
        acks.push((js.publish_with_headers(subject, headers, body.into()).await?, event));
    }
    let mut stored = 0;
    for (ack, event) in acks {
        if ack.await?.duplicate {
            held_back.push(event);
        } else {
            stored += 1;
        }
    }
    Ok(stored)
}
