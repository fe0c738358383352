//! Per-minute throttles that protect credentials: failed authentications per client address
//! (after `AUTH_FAILURES_PER_MINUTE` failures, that address gets 429 `rate_limited` before
//! any hashing), and secret reveals per platform key (`PLATFORM_REVEALS_PER_MINUTE`).
//!
//! Fixed one-minute windows in memory, per instance. The maps are pruned of past windows when
//! they grow, so a flood from many addresses costs bounded memory.

use std::net::IpAddr;

use dashmap::DashMap;

/// Entries kept before past windows are pruned.
const PRUNE_ABOVE: usize = 50_000;

/// A fixed-window counter per key.
#[derive(Default)]
struct Windows {
    counts: DashMap<String, (i64, u32)>,
}

impl Windows {
    fn minute(now: i64) -> i64 {
        now.div_euclid(60) * 60
    }

    fn count(&self, key: &str, now: i64) -> u32 {
        let start = Self::minute(now);
        self.counts.get(key).filter(|e| e.0 == start).map(|e| e.1).unwrap_or(0)
    }

    fn add(&self, key: &str, now: i64) -> u32 {
        let start = Self::minute(now);
        if self.counts.len() > PRUNE_ABOVE {
            self.counts.retain(|_, v| v.0 == start);
        }
        let mut entry = self.counts.entry(key.to_string()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

/// Seconds until the current minute ends (at least 1).
fn retry_after(now: i64) -> u64 {
    (Windows::minute(now) + 60 - now).max(1) as u64
}

/// The throttles of one instance.
pub struct Throttles {
    auth_failures_per_minute: u32,
    reveals_per_minute: u32,
    failures: Windows,
    reveals: Windows,
    sign_in_starts_per_minute: u32,
    starts: Windows,
}

impl Throttles {
    /// Throttles with these per-minute limits (0: off).
    pub fn new(auth_failures_per_minute: u32, reveals_per_minute: u32) -> Self {
        Self {
            auth_failures_per_minute,
            reveals_per_minute,
            failures: Windows::default(),
            reveals: Windows::default(),
            sign_in_starts_per_minute: 0,
            starts: Windows::default(),
        }
    }

    /// With at most `per_minute` sign-in starts (OpenID redirects, each a stored login
    /// attempt) per client address (0: off).
    pub fn with_sign_in_starts(mut self, per_minute: u32) -> Self {
        self.sign_in_starts_per_minute = per_minute;
        self
    }

    /// Counts a sign-in start from `ip`; `Err(retry_after)` when over the limit. A start
    /// without a known address counts under one shared name.
    pub fn sign_in_start(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        if self.sign_in_starts_per_minute == 0 {
            return Ok(());
        }
        let now = Self::now();
        let who = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        if self.starts.add(&who, now) > self.sign_in_starts_per_minute {
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
        (limit > 0 && self.failures.count(&ip.to_string(), now) >= limit).then(|| retry_after(now))
    }

    /// Records a failed authentication from `ip`.
    pub fn record_auth_failure(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.failures.add(&ip.to_string(), Self::now());
        }
    }

    /// Counts a reveal by platform key `public_id`; `Err(retry_after)` when over its limit.
    pub fn reveal(&self, public_id: &str) -> Result<(), u64> {
        let now = Self::now();
        if self.reveals_per_minute == 0 {
            return Ok(());
        }
        if self.reveals.add(public_id, now) > self.reveals_per_minute {
            return Err(retry_after(now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_an_address_after_the_limit() {
        let t = Throttles::new(3, 0);
        let ip: Option<IpAddr> = "203.0.113.5".parse().ok();
        for _ in 0..3 {
            assert_eq!(t.auth_blocked(ip), None);
            t.record_auth_failure(ip);
        }
        assert!(t.auth_blocked(ip).is_some());
        assert_eq!(t.auth_blocked("203.0.113.6".parse().ok()), None, "per address");
    }

    #[test]
    fn sign_in_starts_are_counted_per_address() {
        let t = Throttles::new(0, 0).with_sign_in_starts(2);
        let ip: Option<IpAddr> = "203.0.113.5".parse().ok();
        assert!(t.sign_in_start(ip).is_ok() && t.sign_in_start(ip).is_ok());
        assert!(t.sign_in_start(ip).is_err());
        assert!(t.sign_in_start("203.0.113.6".parse().ok()).is_ok());
    }

    #[test]
    fn reveals_are_counted_per_key() {
        let t = Throttles::new(0, 2);
        assert!(t.reveal("a").is_ok() && t.reveal("a").is_ok());
        assert!(t.reveal("a").is_err());
        assert!(t.reveal("b").is_ok());
    }
}
