//! Per-minute throttles that protect credentials: failed authentications per client address
//! (after `AUTH_FAILURES_PER_MINUTE` failures, that address gets 429 `rate_limited` before
//! any hashing), and secret reveals per platform key (`PLATFORM_REVEALS_PER_MINUTE`).
//!
//! Fixed one-minute windows, counted once for the fleet from leases of each window
//! ([`crate::fleet::leases`]; per instance with `FLEET_RATE_LIMITS=false`). A blocked address
//! is known on an instance once it has seen the fleet's budget spent, so across N instances
//! an address gets at most N − 1 tries past the limit per minute. The maps are pruned of past
//! windows when they grow, so a flood from many addresses costs bounded memory.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::fleet::leases::{Lease, Leaser, Take};

/// Entries kept before past windows are pruned.
const PRUNE_ABOVE: usize = 50_000;

/// One lease per name (an address, a key) of one throttle.
struct Windows {
    /// The scope prefix in the fleet's count (`auth_failure`, `reveal`, `sign_in_start`).
    kind: &'static str,
    leases: DashMap<String, Arc<Lease>>,
}

impl Windows {
    fn new(kind: &'static str) -> Self {
        Self { kind, leases: DashMap::new() }
    }

    fn minute(now: i64) -> i64 {
        now.div_euclid(60) * 60
    }

    fn lease(&self, name: &str, now: i64) -> Arc<Lease> {
        if let Some(lease) = self.leases.get(name) {
            return Arc::clone(lease.value());
        }
        if self.leases.len() > PRUNE_ABOVE {
            let start = Self::minute(now);
            self.leases.retain(|_, l| l.current(start));
        }
        Arc::clone(self.leases.entry(name.to_string()).or_default().value())
    }

    /// Counts one for `name`; false when `limit` were counted this minute (fleet-wide).
    async fn take(&self, leaser: &Leaser, name: &str, limit: u32, now: i64) -> bool {
        let lease = self.lease(name, now);
        let scope = || format!("{}:{name}", self.kind);
        matches!(leaser.take(&lease, scope, u64::from(limit), Self::minute(now)).await, Take::Admitted { .. })
    }

    /// Whether `limit` were counted for `name` this minute, as far as this instance knows.
    fn spent(&self, name: &str, limit: u32, now: i64) -> bool {
        self.leases.get(name).is_some_and(|l| l.spent(u64::from(limit), Self::minute(now)))
    }
}

/// Seconds until the current minute ends (at least 1).
fn retry_after(now: i64) -> u64 {
    (Windows::minute(now) + 60 - now).max(1) as u64
}

/// The throttles (counted for the fleet when built [`Throttles::with_leaser`] a database).
pub struct Throttles {
    auth_failures_per_minute: u32,
    reveals_per_minute: u32,
    failures: Windows,
    reveals: Windows,
    sign_in_starts_per_minute: u32,
    starts: Windows,
    leaser: Leaser,
}

impl Throttles {
    /// Throttles with these per-minute limits (0: off).
    pub fn new(auth_failures_per_minute: u32, reveals_per_minute: u32) -> Self {
        Self {
            auth_failures_per_minute,
            reveals_per_minute,
            failures: Windows::new("auth_failure"),
            reveals: Windows::new("reveal"),
            sign_in_starts_per_minute: 0,
            starts: Windows::new("sign_in_start"),
            leaser: Leaser::default(),
        }
    }

    /// With at most `per_minute` sign-in starts (OpenID redirects, each a stored login
    /// attempt) per client address (0: off).
    pub fn with_sign_in_starts(mut self, per_minute: u32) -> Self {
        self.sign_in_starts_per_minute = per_minute;
        self
    }

    /// Counting from the fleet's leases (`leaser`).
    pub fn with_leaser(mut self, leaser: Leaser) -> Self {
        self.leaser = leaser;
        self
    }

    /// Counts a sign-in start from `ip`; `Err(retry_after)` when over the limit. A start
    /// without a known address counts under one shared name.
    pub async fn sign_in_start(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        if self.sign_in_starts_per_minute == 0 {
            return Ok(());
        }
        let now = Self::now();
        let who = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        if !self.starts.take(&self.leaser, &who, self.sign_in_starts_per_minute, now).await {
            return Err(retry_after(now));
        }
        Ok(())
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    /// `Some(retry_after)` when `ip` failed too often this minute.
    pub fn auth_blocked(&self, ip: Option<IpAddr>) -> Option<u64> {
        let (Some(ip), limit) = (ip, self.auth_failures_per_minute) else { return None };
        let now = Self::now();
        (limit > 0 && self.failures.spent(&ip.to_string(), limit, now)).then(|| retry_after(now))
    }

    /// Records a failed authentication from `ip`.
    pub async fn record_auth_failure(&self, ip: Option<IpAddr>) {
        let (Some(ip), limit) = (ip, self.auth_failures_per_minute) else { return };
        if limit > 0 {
            self.failures.take(&self.leaser, &ip.to_string(), limit, Self::now()).await;
        }
    }

    /// Counts a reveal by platform key `public_id`; `Err(retry_after)` when over its limit.
    pub async fn reveal(&self, public_id: &str) -> Result<(), u64> {
        let now = Self::now();
        if self.reveals_per_minute == 0 {
            return Ok(());
        }
        if !self.reveals.take(&self.leaser, public_id, self.reveals_per_minute, now).await {
            return Err(retry_after(now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_block_an_address_after_the_limit() {
        let t = Throttles::new(3, 0);
        let ip: Option<IpAddr> = "203.0.113.5".parse().ok();
        for _ in 0..3 {
            assert_eq!(t.auth_blocked(ip), None);
            t.record_auth_failure(ip).await;
        }
        assert!(t.auth_blocked(ip).is_some());
        assert_eq!(t.auth_blocked("203.0.113.6".parse().ok()), None, "per address");
    }

    #[tokio::test]
    async fn sign_in_starts_are_counted_per_address() {
        let t = Throttles::new(0, 0).with_sign_in_starts(2);
        let ip: Option<IpAddr> = "203.0.113.5".parse().ok();
        assert!(t.sign_in_start(ip).await.is_ok() && t.sign_in_start(ip).await.is_ok());
        assert!(t.sign_in_start(ip).await.is_err());
        assert!(t.sign_in_start("203.0.113.6".parse().ok()).await.is_ok());
    }

    #[tokio::test]
    async fn reveals_are_counted_per_key() {
        let t = Throttles::new(0, 2);
        assert!(t.reveal("a").await.is_ok() && t.reveal("a").await.is_ok());
        assert!(t.reveal("a").await.is_err());
        assert!(t.reveal("b").await.is_ok());
    }
}
