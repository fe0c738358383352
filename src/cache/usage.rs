//! Usage counters that verification reads: LLM tokens per key and per sub-account (quotas:
//! lifetime, and the current UTC day and month) and the current minute's requests and tokens
//! per key (rate limits).
//!
//! Quota totals come from two sources and the larger wins (`max`): this instance adds what it
//! ingests at once, and a refresher copies the usage projection's totals (which include every
//! instance's records) every [`QUOTA_REFRESH`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use sqlx::PgPool;
use time::{Date, OffsetDateTime, UtcOffset};
use tokenhub_aggregates::api_key::QuotaPeriod;
use tokio_util::sync::CancellationToken;

use super::KeyCache;

/// How often each instance reads the usage projection's quota totals.
pub const QUOTA_REFRESH: Duration = Duration::from_millis(250);

/// The UTC day of `t`, as days since the Unix epoch.
pub fn day_index(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

/// The UTC month of `t`, as `year * 12 + month - 1`.
pub fn month_index(t: OffsetDateTime) -> i64 {
    let t = t.to_offset(UtcOffset::UTC);
    i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1
}

/// Tokens in one calendar window: `(window index, tokens)`; an older window's value is gone
/// once a newer one is seen.
#[derive(Debug, Default)]
struct Window(Mutex<(i64, i64)>);

impl Window {
    fn update(&self, index: i64, f: impl FnOnce(&mut i64)) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if index > w.0 {
            *w = (index, 0);
        }
        if index == w.0 {
            f(&mut w.1);
        }
    }

    fn get(&self, index: i64) -> i64 {
        let w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 == index {
            w.1
        } else {
            0
        }
    }
}

/// LLM tokens of a key or a sub-account: lifetime, current UTC day, current UTC month.
#[derive(Debug, Default)]
pub struct TokenTotals {
    lifetime: AtomicI64,
    day: Window,
    month: Window,
}

/// Which total a projection row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalWindow {
    /// Since the start.
    Lifetime,
    /// The UTC day starting at the date.
    Day(Date),
    /// The UTC month starting at the date.
    Month(Date),
}

impl TokenTotals {
    /// Adds tokens of a record made at `at`.
    pub fn add(&self, tokens: i64, at: OffsetDateTime) {
        self.lifetime.fetch_add(tokens, Ordering::AcqRel);
        self.day.update(day_index(at), |t| *t += tokens);
        self.month.update(month_index(at), |t| *t += tokens);
    }

    /// Raises a total to the projection's value (never lowers it).
    pub fn raise(&self, window: TotalWindow, total: i64) {
        let at = |d: Date| d.midnight().assume_utc();
        match window {
            TotalWindow::Lifetime => {
                self.lifetime.fetch_max(total, Ordering::AcqRel);
            }
            TotalWindow::Day(d) => self.day.update(day_index(at(d)), |t| *t = (*t).max(total)),
            TotalWindow::Month(d) => self.month.update(month_index(at(d)), |t| *t = (*t).max(total)),
        }
    }

    /// Tokens used in the quota window of `period` containing `now` (lifetime when `None`).
    pub fn used(&self, period: Option<QuotaPeriod>, now: OffsetDateTime) -> i64 {
        match period {
            None => self.lifetime.load(Ordering::Acquire),
            Some(QuotaPeriod::Day) => self.day.get(day_index(now)),
            Some(QuotaPeriod::Month) => self.month.get(month_index(now)),
        }
    }
}

/// Counters of one key, shared by every version of its cached entry.
#[derive(Debug, Default)]
pub struct KeyUsage {
    /// LLM tokens (quota).
    pub tokens: TokenTotals,
    /// Verified requests: this instance's lease of the key's per-minute budget.
    pub requests: crate::fleet::leases::Lease,
    /// The minute (Unix seconds / 60) the counter below counts.
    minute: AtomicI64,
    /// Tokens reported to this instance in that minute and not yet added to the fleet's
    /// count (all of them when limits are counted per instance).
    minute_tokens: AtomicU64,
    /// The minute of `fleet_tokens`.
    fleet_minute: AtomicI64,
    /// The fleet's count of the key's tokens in `fleet_minute`, as last read (this instance's
    /// added ones included).
    fleet_tokens: AtomicU64,
}

impl KeyUsage {
    fn roll(&self, minute: i64) {
        let seen = self.minute.load(Ordering::Acquire);
        if seen != minute
            && self.minute.compare_exchange(seen, minute, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.minute_tokens.store(0, Ordering::Release);
        }
    }

    /// Tokens reported in the minute of `now`: the fleet's count as last read, and what this
    /// instance has not added to it yet.
    pub fn minute_tokens(&self, now: OffsetDateTime) -> u64 {
        let minute = now.unix_timestamp().div_euclid(60);
        self.roll(minute);
        let fleet = if self.fleet_minute.load(Ordering::Acquire) == minute {
            self.fleet_tokens.load(Ordering::Acquire)
        } else {
            0
        };
        self.minute_tokens.load(Ordering::Acquire) + fleet
    }

    /// Takes the tokens of `minute` not yet added to the fleet's count.
    fn take_unshared(&self, minute: i64) -> u64 {
        self.roll(minute);
        self.minute_tokens.swap(0, Ordering::AcqRel)
    }

    /// Puts back tokens [`KeyUsage::take_unshared`] took (the fleet's count was not reached).
    fn put_back(&self, minute: i64, tokens: u64) {
        if self.minute.load(Ordering::Acquire) == minute {
            self.minute_tokens.fetch_add(tokens, Ordering::AcqRel);
        }
    }

    /// The fleet's count of `minute`, as just read.
    fn set_fleet(&self, minute: i64, tokens: u64) {
        self.fleet_tokens.store(tokens, Ordering::Release);
        self.fleet_minute.store(minute, Ordering::Release);
    }

    /// Adds tokens reported to this instance at `now` to the minute's count.
    fn add_minute_tokens(&self, tokens: u64, now: OffsetDateTime) {
        self.roll(now.unix_timestamp().div_euclid(60));
        self.minute_tokens.fetch_add(tokens, Ordering::AcqRel);
    }
}

/// The counters under `key` in `map`, created on first use (a read lock when they exist).
pub(super) fn shared<K, Q, V>(map: &DashMap<K, Arc<V>>, key: &Q) -> Arc<V>
where
    K: std::borrow::Borrow<Q> + Eq + std::hash::Hash,
    Q: ToOwned<Owned = K> + Eq + std::hash::Hash + ?Sized,
    V: Default,
{
    if let Some(found) = map.get(key) {
        return Arc::clone(found.value());
    }
    Arc::clone(map.entry(key.to_owned()).or_default().value())
}

impl KeyCache {
    /// Counters of the key with this public id (created on first use).
    pub fn key_usage(&self, public_id: &str) -> Option<Arc<KeyUsage>> {
        Some(shared(&self.usage, &super::id_key(public_id)?))
    }

    /// LLM tokens of a sub-account (created on first use).
    pub fn sub_account_usage(&self, sub_account_id: &str) -> Arc<TokenTotals> {
        shared(&self.sub_usage, sub_account_id)
    }

    /// LLM tokens of a tenant (created on first use).
    pub fn tenant_usage(&self, tenant_id: &str) -> Arc<TokenTotals> {
        shared(&self.tenant_usage, tenant_id)
    }

    /// Counts tokens this instance just ingested for a tenant, key and sub-account (a record
    /// made at `at`, reported at `now`).
    pub fn add_ingested(
        &self,
        tenant_id: &str,
        key_id: Option<&str>,
        sub_account_id: Option<&str>,
        tokens: u64,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        self.add_announced(tenant_id, key_id, sub_account_id, tokens, at);
        if let Some(usage) = key_id.and_then(|k| self.key_usage(k)) {
            usage.add_minute_tokens(tokens, now);
            if let Some(key) = key_id.and_then(|k| self.get(k)) {
                self.watch_minute_tokens(&key, now);
            }
        }
    }

    /// Counts tokens in the quota totals of a tenant, key and sub-account: what another
    /// instance accepted (its live announcement; its tokens per minute reach this instance
    /// through the fleet's count), and the totals part of [`KeyCache::add_ingested`].
    pub fn add_announced(
        &self,
        tenant_id: &str,
        key_id: Option<&str>,
        sub_account_id: Option<&str>,
        tokens: u64,
        at: OffsetDateTime,
    ) {
        if let Some(usage) = key_id.and_then(|k| self.key_usage(k)) {
            usage.tokens.add(tokens as i64, at);
        }
        if let Some(sub) = sub_account_id {
            self.sub_account_usage(sub).add(tokens as i64, at);
        }
        self.tenant_usage(tenant_id).add(tokens as i64, at);
    }

    /// Reads the quota totals changed after `version`; returns the highest version seen.
    pub async fn refresh_quota_totals(&self, pool: &PgPool, version: i64) -> Result<i64, sqlx::Error> {
        let rows: Vec<(String, String, String, Date, i64, i64)> = sqlx::query_as(
            "SELECT scope, subject_id, period, window_start, llm_tokens, version FROM usage_quota_totals \
             WHERE version > $1 ORDER BY version LIMIT 50000",
        )
        .bind(version)
        .fetch_all(pool)
        .await?;
        let mut highest = version;
        for (scope, subject, period, start, tokens, v) in rows {
            highest = highest.max(v);
            let window = match period.as_str() {
                "day" => TotalWindow::Day(start),
                "month" => TotalWindow::Month(start),
                _ => TotalWindow::Lifetime,
            };
            match scope.as_str() {
                "key" => {
                    if let Some(usage) = self.key_usage(&subject) {
                        usage.tokens.raise(window, tokens);
                    }
                }
                "tenant" => self.tenant_usage(&subject).raise(window, tokens),
                _ => self.sub_account_usage(&subject).raise(window, tokens),
            }
        }
        Ok(highest)
    }
}

/// Keeps the quota totals of `cache` following the usage projection, and the tenants' monthly
/// quotas following the tenants table, until shutdown.
pub async fn spawn_quota_refresher(cache: Arc<KeyCache>, pool: PgPool, shutdown: CancellationToken) {
    let mut version = 0;
    // The first reads complete before serving, so a restart never forgets spent quota.
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

/// How often an instance adds the tokens reported to it to the fleet's per-minute count of
/// each key with a `tokens_per_minute` limit, and reads the others' (the bound of what other
/// instances may have admitted past the limit: about this long of the key's traffic).
pub const MINUTE_TOKENS_SYNC: Duration = Duration::from_millis(250);

impl KeyCache {
    /// Notes that `key`'s tokens per minute are in use now (verified or reported), so the
    /// fleet's count is kept for it this minute. Only when limits are counted for the fleet.
    pub(super) fn watch_minute_tokens(&self, key: &super::CachedKey, now: OffsetDateTime) {
        let limited = key.rate_limit.is_some_and(|r| r.tokens_per_minute.is_some());
        if !limited || !self.leaser.fleet() {
            return;
        }
        let Some(id) = super::id_key(&key.public_id) else { return };
        let minute = now.unix_timestamp().div_euclid(60);
        if self.minute_watch.get(&id).is_none_or(|m| *m != minute) {
            self.minute_watch.insert(id, minute);
        }
    }

    /// Adds this instance's unshared tokens of the watched keys to the fleet's count of this
    /// minute (`rate_windows`, scope `tpm:<public id>`), and reads the fleet's count back.
    pub async fn sync_minute_tokens(&self, pool: &PgPool, now: OffsetDateTime) -> Result<(), sqlx::Error> {
        let minute = now.unix_timestamp().div_euclid(60);
        self.minute_watch.retain(|_, m| *m == minute);
        let mut watched: Vec<(String, Arc<KeyUsage>)> = self
            .minute_watch
            .iter()
            .filter_map(|e| {
                let usage = Arc::clone(self.usage.get(e.key())?.value());
                Some((format!("tpm:{}", String::from_utf8_lossy(e.key())), usage))
            })
            .collect();
        if watched.is_empty() {
            return Ok(());
        }
        // One lock order for every instance: no deadlock between their upserts.
        watched.sort_by(|a, b| a.0.cmp(&b.0));
        let taken: Vec<u64> = watched.iter().map(|(_, u)| u.take_unshared(minute)).collect();
        let scopes: Vec<&str> = watched.iter().map(|(s, _)| s.as_str()).collect();
        let deltas: Vec<i64> = taken.iter().map(|t| (*t).min(i64::MAX as u64) as i64).collect();
        let counted: Result<Vec<(String, i64)>, sqlx::Error> = sqlx::query_as(
            "INSERT INTO rate_windows (scope, window_start, leased) \
             SELECT s, $2, d FROM unnest($1::text[], $3::bigint[]) AS t(s, d) \
             ON CONFLICT (scope, window_start) DO UPDATE SET leased = rate_windows.leased + EXCLUDED.leased \
             RETURNING scope, leased",
        )
        .bind(&scopes)
        .bind(minute * 60)
        .bind(&deltas)
        .fetch_all(pool)
        .await;
        let counted = match counted {
            Ok(rows) => rows,
            Err(e) => {
                for ((_, usage), tokens) in watched.iter().zip(taken) {
                    usage.put_back(minute, tokens);
                }
                return Err(e);
            }
        };
        let by_scope: std::collections::HashMap<String, i64> = counted.into_iter().collect();
        for (scope, usage) in &watched {
            if let Some(total) = by_scope.get(scope) {
                usage.set_fleet(minute, (*total).max(0) as u64);
            }
        }
        Ok(())
    }
}

/// Keeps the fleet's per-minute token counts of `cache` in step every
/// [`MINUTE_TOKENS_SYNC`] until shutdown.
pub fn spawn_minute_token_sync(cache: Arc<KeyCache>, pool: PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(MINUTE_TOKENS_SYNC) => {}
            }
            if let Err(e) = cache.sync_minute_tokens(&pool, OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %e, "cannot share tokens per minute with the fleet; counted here meanwhile");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn windows_follow_the_utc_calendar() {
        let totals = TokenTotals::default();
        let late = datetime!(2026-01-31 23:59:59 UTC);
        totals.add(10, late);
        assert_eq!(totals.used(None, late), 10);
        assert_eq!(totals.used(Some(QuotaPeriod::Day), late), 10);
        assert_eq!(totals.used(Some(QuotaPeriod::Month), late), 10);
        let next = datetime!(2026-02-01 00:00 UTC);
        assert_eq!(totals.used(Some(QuotaPeriod::Day), next), 0, "a new day starts empty");
        assert_eq!(totals.used(Some(QuotaPeriod::Month), next), 0, "a new month starts empty");
        assert_eq!(totals.used(None, next), 10);
        totals.add(5, next);
        totals.add(7, late); // a late record for the previous day: only lifetime keeps it here
        assert_eq!(totals.used(Some(QuotaPeriod::Day), next), 5);
        assert_eq!(totals.used(None, next), 22);
        totals.raise(TotalWindow::Day(next.date()), 9);
        totals.raise(TotalWindow::Day(next.date()), 3);
        assert_eq!(totals.used(Some(QuotaPeriod::Day), next), 9, "raised, never lowered");
        let window_end = |p: QuotaPeriod, now| crate::calendar::window_end(p.into(), now);
        assert_eq!(window_end(QuotaPeriod::Day, late), next);
        assert_eq!(
            window_end(QuotaPeriod::Month, datetime!(2026-12-10 08:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(month_index(datetime!(2026-03-01 00:30 +01:00)), 2026 * 12 + 1, "UTC: still February");
    }
}
