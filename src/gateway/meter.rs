//! Metering what the gateway forwarded: one usage record per request (its id is the request
//! id, so it is counted once), through the same path as `POST /v1/usage` — the NATS usage
//! stream and the key cache's counters. Metadata only: never a prompt or a completion.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;

use crate::cache::CachedKey;
use crate::services::Ctx;
use crate::usage::ingest::{Outcome, UsageIngest};
use crate::usage::record::{UsageData, UsageEvent};

/// Token counts an upstream reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

/// What the meter reads of an OpenAI answer or stream chunk; everything else is skipped
/// while parsing, never built.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Metered {
    /// The `usage` object, when there is one.
    #[serde(default)]
    usage: Option<serde_json::Value>,
    /// The `choices` (only how many).
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

impl Metered {
    /// The answer or chunk `json`, when it is a JSON object.
    pub fn of(json: &[u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    /// Its token counts: `usage.prompt_tokens` (required) and `usage.completion_tokens`
    /// (0 when absent).
    pub fn tokens(&self) -> Option<Tokens> {
        let usage = self.usage.as_ref()?;
        let prompt = usage.get("prompt_tokens")?.as_u64()?;
        let completion = usage.get("completion_tokens").and_then(serde_json::Value::as_u64).unwrap_or(0);
        Some(Tokens { prompt, completion })
    }

    /// True for a chunk that carries usage and no choices (the one a stream ends with when
    /// `stream_options.include_usage` asks for it).
    pub fn usage_only(&self) -> bool {
        self.usage.as_ref().is_some_and(|u| !u.is_null()) && self.choices.as_ref().is_some_and(Vec::is_empty)
    }
}

/// Most records one publish carries.
const BATCH: usize = 512;

/// How long records gather before they are published together.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// How often the gathering publisher looks for a flush (or a full batch) while it sleeps.
const PEEK: std::time::Duration = std::time::Duration::from_millis(1);

/// Publishes the gateway's usage records in the background, many per publish (their acks
/// awaited together), retrying while NATS is away: a request never waits for its record. The
/// publisher runs on a thread of its own at a lower priority
/// ([`crate::dedicated::spawn_background`]), so its bursts never take a core from a request
/// in flight; [`Recorder::flush`] waits for what was recorded so far (at shutdown).
#[derive(Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::Sender<Note>,
}

/// What the publisher is sent.
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every note is a record: boxing it would add an allocation per request"
)]
enum Note {
    /// A record to publish.
    Record(UsageEvent),
    /// Answered once every record sent before it is published (or given up on).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Records waiting for the publisher at most (a burst beyond waits off the request's path).
const QUEUE: usize = 65_536;

impl Recorder {
    /// Starts the publisher, on `usage`'s NATS connection.
    pub fn spawn(usage: UsageIngest) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<Note>(QUEUE);
        crate::dedicated::spawn_background("usage-publisher", move || publish_all(usage, rx));
        Self { tx }
    }

    fn record(&self, event: UsageEvent) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(note)) = self.tx.try_send(Note::Record(event))
        {
            // A burst beyond the queue: wait for room off the request's path.
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(note).await;
            });
        }
    }

    /// Waits until every record made before this call is published, at most `within`; false
    /// if some were not (NATS away that long). At shutdown, after the last request ended.
    pub async fn flush(&self, within: std::time::Duration) -> bool {
        let (done, published) = tokio::sync::oneshot::channel();
        let flushed = async { self.tx.send(Note::Flush(done)).await.is_ok() && published.await.is_ok() };
        tokio::time::timeout(within, flushed).await.unwrap_or(false)
    }
}

/// Publishes what `rx` brings until every sender is gone.
async fn publish_all(usage: UsageIngest, mut rx: tokio::sync::mpsc::Receiver<Note>) {
    let mut notes = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut notes, BATCH).await > 0 {
        // Records gather for a moment (unless a batch is full or a flush is asked for): one
        // round of publishes for many records wakes NATS and the ingesting server far less
        // often. The publisher sleeps meanwhile instead of waiting on the queue, so a request
        // that records never wakes its thread (at 10,000 requests a second that was a thread
        // switch each).
        let until = tokio::time::Instant::now() + GATHER;
        loop {
            for note in notes.drain(..) {
                match note {
                    Note::Record(event) => batch.push(event),
                    Note::Flush(done) => flushes.push(done),
                }
            }
            let now = tokio::time::Instant::now();
            if batch.len() >= BATCH || !flushes.is_empty() || now >= until {
                break;
            }
            tokio::time::sleep(PEEK.min(until - now)).await;
            let room = BATCH - batch.len();
            while notes.len() < room {
                match rx.try_recv() {
                    Ok(note) => notes.push(note),
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty() {
            publish_until_done(&usage, &batch).await;
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn publish_until_done(usage: &UsageIngest, batch: &[UsageEvent]) {
    // Retried while NATS is away; a record's id makes a repeat a duplicate.
    for attempt in 0..40u32 {
        match usage.publish_fresh(batch).await {
            Ok(outcomes) => {
                let repeats = outcomes.iter().filter(|o| **o != Outcome::Accepted).count();
                if repeats > 0 {
                    tracing::info!(
                        repeats,
                        "gateway usage records already in the stream (a retried publish)"
                    );
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "cannot publish gateway usage records; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(250 * u64::from(attempt.min(20) + 1)))
                    .await;
            }
        }
    }
    tracing::error!(records = batch.len(), "gateway usage records were not published");
}

/// One forwarded request, to be recorded once it ends (however it ends).
pub struct Meter {
    ctx: Ctx,
    recorder: Recorder,
    id: String,
    key: Arc<CachedKey>,
    model: String,
    started: Instant,
    /// The answer's status (499 while none: the client went away first).
    pub status: u16,
    /// What the upstream reported, when it did.
    pub tokens: Option<Tokens>,
    /// The request's quota reservation, released once what it produced is counted.
    pub reservation: Option<super::reserve::Held>,
    recorded: bool,
}

impl Meter {
    /// A meter for request `id` with `key` on `model`.
    pub fn new(ctx: Ctx, recorder: Recorder, id: String, key: Arc<CachedKey>, model: String) -> Self {
        // 499 (client closed request) until an answer is known: a request whose client went away
        // before the upstream answered is recorded so.
        Self {
            ctx,
            recorder,
            id,
            key,
            model,
            started: Instant::now(),
            status: 499,
            tokens: None,
            reservation: None,
            recorded: false,
        }
    }

    /// Records the request now (in the background); also done on drop.
    pub fn record(mut self) {
        self.spawn_record();
    }

    fn spawn_record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let Some(tenant) = self.key.tenant_id.as_deref().map(str::to_string) else { return };
        let now = OffsetDateTime::now_utc();
        let tokens = self.tokens.unwrap_or_default();
        let tags: BTreeMap<String, String> =
            self.key.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let data = UsageData {
            tenant_id: tenant.clone(),
            key_id: Some(self.key.public_id.to_string()),
            sub_account_id: self.key.sub_account_id.as_deref().map(str::to_string),
            user_id: None,
            model: Some(self.model.clone()),
            api_calls: 1,
            prompt_tokens: tokens.prompt,
            completion_tokens: tokens.completion,
            llm_tokens: tokens.prompt + tokens.completion,
            bandwidth_bytes: 0,
            storage_bytes: 0,
            tags,
            status: Some(self.status),
            latency_ms: Some(self.started.elapsed().as_millis() as u64),
            usage_unknown: self.tokens.is_none() && (200..300).contains(&self.status),
            received_at: now,
        };
        let event = UsageEvent::new(self.id.clone(), now, data);
        // Counted at once, then the reservation released: the tokens are never in neither.
        // (The usage projection's totals, which every instance refreshes from, will include
        // the same record; the cache keeps the larger of the two, so it is not counted twice.)
        event.count_in(&self.ctx.keys, now);
        self.ctx.live_usage.share([&event]);
        if let Some(held) = self.reservation.take() {
            held.settle(event.data.llm_tokens as i64);
        }
        self.recorder.record(event);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.spawn_record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_reads_usage_and_nothing_else() {
        let answer = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let m = Metered::of(answer).expect("an object");
        assert_eq!(m.tokens(), Some(Tokens { prompt: 7, completion: 3 }));
        assert!(!m.usage_only());

        let last_chunk = br#"{"choices":[],"usage":{"prompt_tokens":7}}"#;
        let m = Metered::of(last_chunk).expect("an object");
        assert_eq!(m.tokens(), Some(Tokens { prompt: 7, completion: 0 }));
        assert!(m.usage_only(), "the usage chunk a stream ends with");

        for none in [
            &br#"{"choices":[]}"#[..],
            br#"{"usage":null,"choices":[]}"#,
            br#"{"usage":{"prompt_tokens":-1}}"#,
        ] {
            let m = Metered::of(none).expect("an object");
            assert_eq!(m.tokens(), None, "{}", String::from_utf8_lossy(none));
            assert!(!m.usage_only());
        }
        for odd in [&b"[1,2]"[..], b"not json", b"", br#"{"choices": 5}"#] {
            assert!(
                Metered::of(odd).is_none_or(|m| m.tokens().is_none()),
                "{}",
                String::from_utf8_lossy(odd)
            );
        }
    }
}
