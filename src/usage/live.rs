//! Usage counted on every instance within milliseconds. The usage projection's totals reach
//! every instance's key cache a moment after a record is accepted (the usage stream, the
//! rollups, then a refresh every 250 ms); meanwhile a client verifying on one instance and
//! reporting to another would spend far past a quota. So each instance also announces the
//! tokens it accepted on core NATS (`<prefix>.live.usage`, fire-and-forget, no content: tenant,
//! key, sub-account, tokens, time) and adds what the others announce to its quota totals.
//! A lost announcement only delays the count until the projection's totals arrive (the cache
//! keeps the larger of the two); one that arrives after those totals already hold the record
//! counts it twice until the quota's window ends — early refusal, never overshoot.

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

/// This instance's side of the live usage counts.
#[derive(Clone)]
pub struct LiveUsage {
    client: async_nats::Client,
    subject: String,
    from: Arc<str>,
}

impl LiveUsage {
    /// Announces on `<prefix>.live.usage` through `client`.
    pub fn new(client: async_nats::Client, prefix: &str) -> Self {
        Self {
            client,
            subject: format!("{prefix}.live.usage"),
            from: uuid::Uuid::new_v4().simple().to_string().into(),
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
        let Ok(payload) = serde_json::to_vec(&Announcement { from: self.from.to_string(), counts }) else {
            return;
        };
        let (client, subject) = (self.client.clone(), self.subject.clone());
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, payload.into()).await {
                tracing::debug!(error = %e, "live usage not announced; the projection's totals will carry it");
            }
        });
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
