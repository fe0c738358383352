//! Usage counters that verification reads: lifetime LLM tokens per key and per sub-account
//! (quotas) and the current minute's requests and tokens per key (rate limits).
//!
//! Quota totals come from two sources and the larger wins (`fetch_max`): this instance adds
//! what it ingests at once, and a refresher copies the usage projection's totals (which
//! include every instance's records) every [`QUOTA_REFRESH`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::KeyCache;

/// How often each instance reads the usage projection's quota totals.
pub const QUOTA_REFRESH: Duration = Duration::from_millis(250);

/// Counters of one key, shared by every version of its cached entry.
#[derive(Debug, Default)]
pub struct KeyUsage {
    /// Lifetime LLM tokens.
    pub tokens_used: AtomicI64,
    /// The minute (Unix seconds / 60) the two counters below count.
    minute: AtomicI64,
    /// Verified requests in that minute.
    minute_requests: AtomicU64,
    /// Tokens reported in that minute.
    minute_tokens: AtomicU64,
}

impl KeyUsage {
    fn roll(&self, minute: i64) {
        let seen = self.minute.load(Ordering::Acquire);
        if seen != minute
            && self.minute.compare_exchange(seen, minute, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.minute_requests.store(0, Ordering::Release);
            self.minute_tokens.store(0, Ordering::Release);
        }
    }

    /// Counts a request in the minute of `now` unless `limit` requests were counted already;
    /// true when counted.
    pub fn take_request(&self, now: OffsetDateTime, limit: u32) -> bool {
        self.roll(now.unix_timestamp().div_euclid(60));
        let before = self.minute_requests.fetch_add(1, Ordering::AcqRel);
        if before >= u64::from(limit) {
            self.minute_requests.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Tokens reported in the minute of `now`.
    pub fn minute_tokens(&self, now: OffsetDateTime) -> u64 {
        self.roll(now.unix_timestamp().div_euclid(60));
        self.minute_tokens.load(Ordering::Acquire)
    }

    /// Adds ingested tokens: to the lifetime total and to the current minute.
    pub fn add_tokens(&self, tokens: u64, now: OffsetDateTime) {
        self.roll(now.unix_timestamp().div_euclid(60));
        self.minute_tokens.fetch_add(tokens, Ordering::AcqRel);
        self.tokens_used.fetch_add(tokens as i64, Ordering::AcqRel);
    }
}

/// The Unix second at which the minute of `now` ends (when per-minute limits reset).
pub fn minute_reset(now: OffsetDateTime) -> i64 {
    (now.unix_timestamp().div_euclid(60) + 1) * 60
}

impl KeyCache {
    /// Counters of the key with this public id (created on first use).
    pub fn key_usage(&self, public_id: &str) -> Option<Arc<KeyUsage>> {
        let id = super::id_key(public_id)?;
        Some(Arc::clone(self.usage.entry(id).or_default().value()))
    }

    /// Lifetime LLM tokens of a sub-account (created on first use).
    pub fn sub_account_usage(&self, sub_account_id: &str) -> Arc<AtomicI64> {
        if let Some(found) = self.sub_usage.get(sub_account_id) {
            return Arc::clone(found.value());
        }
        Arc::clone(self.sub_usage.entry(sub_account_id.to_string()).or_default().value())
    }

    /// Counts tokens this instance just ingested for a key and its sub-account.
    pub fn add_ingested(
        &self,
        key_id: Option<&str>,
        sub_account_id: Option<&str>,
        tokens: u64,
        now: OffsetDateTime,
    ) {
        if let Some(usage) = key_id.and_then(|k| self.key_usage(k)) {
            usage.add_tokens(tokens, now);
        }
        if let Some(sub) = sub_account_id {
            self.sub_account_usage(sub).fetch_add(tokens as i64, Ordering::AcqRel);
        }
    }

    /// Reads the quota totals changed after `version`; returns the highest version seen.
    pub async fn refresh_quota_totals(&self, pool: &PgPool, version: i64) -> Result<i64, sqlx::Error> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT scope, subject_id, llm_tokens, version FROM usage_quota_totals \
             WHERE version > $1 ORDER BY version LIMIT 50000",
        )
        .bind(version)
        .fetch_all(pool)
        .await?;
        let mut highest = version;
        for (scope, subject, tokens, v) in rows {
            highest = highest.max(v);
            if scope == "key" {
                if let Some(usage) = self.key_usage(&subject) {
                    usage.tokens_used.fetch_max(tokens, Ordering::AcqRel);
                }
            } else {
                self.sub_account_usage(&subject).fetch_max(tokens, Ordering::AcqRel);
            }
        }
        Ok(highest)
    }
}

/// Keeps the quota totals of `cache` following the usage projection until shutdown.
pub async fn spawn_quota_refresher(cache: Arc<KeyCache>, pool: PgPool, shutdown: CancellationToken) {
    let mut version = 0;
    // The first read completes before serving, so a restart never forgets spent quota.
    loop {
        match cache.refresh_quota_totals(&pool, version).await {
            Ok(v) if v == version => break,
            Ok(v) => version = v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read quota totals");
                break;
            }
        }
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(QUOTA_REFRESH) => {}
            }
            match cache.refresh_quota_totals(&pool, version).await {
                Ok(v) => version = v,
                Err(e) => tracing::warn!(error = %e, "cannot refresh quota totals"),
            }
        }
    });
}
