//! Usage counted on every instance within milliseconds. The usage projection's totals reach
//! every instance's key cache a moment after a record is accepted (the usage stream, the
//! rollups, then a refresh every 250 ms); meanwhile a client verifying on one instance and
//! reporting to another would spend far past a quota. So each instance also announces the
//! tokens it accepted on core NATS (`<prefix>.live.usage`, fire-and-forget, no content: tenant,
//! key, sub-account, tokens, time) and adds what the others announce to its quota totals.
//! A lost announcement only delays the count until the projection's totals arrive (the cache
//! keeps the larger of the two); one that arrives after those totals already hold the record
//! counts it twice until the quota's window ends — early refusal, never overshoot.
//!
//! At most one announcement goes out per [`GATHER`]: the first count after a quiet moment is
//! announced at once, those that follow within the interval together at its end. At thousands
//! of records a second (every gateway request is one) an announcement per record cost NATS and
//! every instance more than the request itself.

use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::cache::KeyCache;
use crate::usage::record::UsageEvent;

/// One record's count.
#[derive(Debug, Serialize, Deserialize)]
struct Count {
    /// Tenant.
    t: String,
    /// Key (public id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// Sub-account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    /// LLM tokens.
    n: u64,
    /// When the usage happened (Unix seconds).
    a: i64,
}

/// What an instance announces.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    /// The announcing instance (it skips its own).
    from: String,
    counts: Vec<Count>,
}

/// The least time between two announcements of an instance.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Counts not announced yet.
#[derive(Default)]
struct Waiting {
    counts: Vec<Count>,
    /// When the last announcement went out.
    last: Option<std::time::Instant>,
    /// An announcement is due at the end of the interval (it takes what waits then).
    due: bool,
}

/// Most counts one announcement carries (the rest go in the next).
const MOST_COUNTS: usize = 4_096;

/// This instance's side of the live usage counts.
#[derive(Clone)]
pub struct LiveUsage {
    client: async_nats::Client,
    subject: String,
    from: Arc<str>,
    /// Counts waiting for the next announcement.
    waiting: Arc<std::sync::Mutex<Waiting>>,
}

impl LiveUsage {
    /// Announces on `<prefix>.live.usage` through `client`.
    pub fn new(client: async_nats::Client, prefix: &str) -> Self {
        Self {
            client,
            subject: format!("{prefix}.live.usage"),
            from: uuid::Uuid::new_v4().simple().to_string().into(),
            waiting: Arc::default(),
        }
    }

    /// Announces the tokens of `events` (accepted here, already counted here).
    pub fn share<'a>(&self, events: impl IntoIterator<Item = &'a UsageEvent>) {
        let counts: Vec<Count> = events
            .into_iter()
            .filter(|e| e.data.llm_tokens > 0)
            .map(|e| Count {
                t: e.data.tenant_id.clone(),
                k: e.data.key_id.clone(),
                s: e.data.sub_account_id.clone(),
                n: e.data.llm_tokens,
                a: e.time.unix_timestamp(),
            })
            .collect();
        if counts.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let (ready, wait) = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.counts.extend(counts);
            if waiting.due {
                return; // the announcement due at the interval's end takes these too
            }
            match waiting.last.map(|last| last + GATHER).filter(|next| *next > now) {
                // Within the interval: announced together at its end.
                Some(next) => {
                    waiting.due = true;
                    (Vec::new(), Some(next - now))
                }
                None => {
                    waiting.last = Some(now);
                    (std::mem::take(&mut waiting.counts), None)
                }
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut counts = ready;
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
                let mut waiting = this.waiting.lock().unwrap_or_else(|e| e.into_inner());
                waiting.due = false;
                waiting.last = Some(std::time::Instant::now());
                counts = std::mem::take(&mut waiting.counts);
            }
            this.announce(counts).await;
        });
    }

    async fn announce(&self, counts: Vec<Count>) {
        let mut counts = counts.into_iter().peekable();
        while counts.peek().is_some() {
            let part: Vec<Count> = counts.by_ref().take(MOST_COUNTS).collect();
            let Ok(payload) = serde_json::to_vec(&Announcement { from: self.from.to_string(), counts: part })
            else {
                return;
            };
            if let Err(e) = self.client.publish(self.subject.clone(), payload.into()).await {
                tracing::debug!(error = %e, "live usage not announced; the projection's totals will carry it");
            }
        }
    }

    /// Adds what the other instances announce to `cache` until `shutdown`.
    pub async fn follow(self, cache: Arc<KeyCache>, shutdown: CancellationToken) {
        let mut messages = loop {
            match self.client.subscribe(self.subject.clone()).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to live usage; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(message) = message else { return };
            let Ok(announced) = serde_json::from_slice::<Announcement>(&message.payload) else { continue };
            if *announced.from == *self.from {
                continue;
            }
            for c in announced.counts {
                let at =
                    OffsetDateTime::from_unix_timestamp(c.a).unwrap_or_else(|_| OffsetDateTime::now_utc());
                cache.add_announced(&c.t, c.k.as_deref(), c.s.as_deref(), c.n, at);
            }
        }
    }
}
