//! The per-tenant rate limit of the control API: `DEFAULT_RATE_LIMIT` requests per minute, or
//! the super admin's `requests_per_minute` override of the tenant, or (first) the tenant
//! configuration's `rateLimit` (`{"enabled", "default": {"max", "windowSeconds"}}`;
//! `enabled: false` lifts the limit). Fixed windows aligned on the Unix epoch, counted in
//! memory by each instance: with N instances behind a balancer a tenant gets up to N times
//! its limit (see README).

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often tenant overrides are re-read from the tenants table.
pub const OVERRIDE_REFRESH: Duration = Duration::from_secs(2);

/// A limit: `max` requests per `window` seconds (`max` 0: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window.
    pub max: u32,
    /// Window length in seconds.
    pub window: u32,
}

/// Where a tenant stands after one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// The limit.
    pub limit: u32,
    /// Requests left in the window.
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_in: u64,
    /// False when this request is over the limit.
    pub allowed: bool,
}

/// Counts control-API requests per tenant.
pub struct TenantRateLimiter {
    default: Rate,
    overrides: DashMap<String, Option<Rate>>,
    windows: DashMap<String, (i64, u32)>,
}

impl TenantRateLimiter {
    /// A limiter with `default_per_minute` (0: unlimited).
    pub fn new(default_per_minute: u32) -> Self {
        Self {
            default: Rate { max: default_per_minute, window: 60 },
            overrides: DashMap::new(),
            windows: DashMap::new(),
        }
    }

    fn rate_of(&self, tenant: &str) -> Option<Rate> {
        let rate = match self.overrides.get(tenant) {
            Some(over) => *over.value(),
            None => Some(self.default),
        };
        rate.filter(|r| r.max > 0 && r.window > 0)
    }

    /// Counts one request of `tenant` at Unix second `now`; `None` when the tenant has no limit.
    pub fn hit(&self, tenant: &str, now: i64) -> Option<RateInfo> {
        let rate = self.rate_of(tenant)?;
        let window = i64::from(rate.window);
        let start = now.div_euclid(window) * window;
        let mut entry = self.windows.entry(tenant.to_string()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        let allowed = entry.1 < rate.max;
        if allowed {
            entry.1 += 1;
        }
        Some(RateInfo {
            limit: rate.max,
            remaining: rate.max - entry.1,
            reset_in: (start + window - now).max(1) as u64,
            allowed,
        })
    }

    /// Sets a tenant's override (`None` inside: unlimited); for tests and the refresher.
    pub fn set_override(&self, tenant: &str, rate: Option<Rate>) {
        self.overrides.insert(tenant.to_string(), rate);
    }

    /// Re-reads every tenant's limit: the configuration's `rateLimit` when set, else the
    /// super admin's `requests_per_minute` override, else the default.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let rows: Vec<(String, Option<serde_json::Value>, Option<i64>)> = sqlx::query_as(
            "SELECT tenant_id, config -> 'rateLimit', (limit_overrides ->> 'requests_per_minute')::bigint \
             FROM tenants WHERE config ? 'rateLimit' OR limit_overrides ? 'requests_per_minute'",
        )
        .fetch_all(pool)
        .await?;
        let seen: std::collections::HashSet<&str> = rows.iter().map(|(t, _, _)| t.as_str()).collect();
        self.overrides.retain(|t, _| seen.contains(t.as_str()));
        for (tenant, config, per_minute) in &rows {
            let base = match per_minute {
                Some(max) => Rate { max: (*max).clamp(0, i64::from(u32::MAX)) as u32, window: 60 },
                None => self.default,
            };
            let rate = match config {
                Some(config) => parse_config(config, base),
                None => Some(base),
            };
            self.set_override(tenant, rate);
        }
        Ok(())
    }
}

/// The rate a `rateLimit` configuration sets (`None`: unlimited).
pub fn parse_config(config: &serde_json::Value, default: Rate) -> Option<Rate> {
    if config.get("enabled").and_then(|e| e.as_bool()) == Some(false) {
        return None;
    }
    let rule = config.get("default");
    let max =
        rule.and_then(|r| r.get("max")).and_then(|m| m.as_u64()).map(|m| m.min(u64::from(u32::MAX)) as u32);
    let window =
        rule.and_then(|r| r.get("windowSeconds")).and_then(|w| w.as_u64()).map(|w| w.clamp(1, 86_400) as u32);
    Some(Rate { max: max.unwrap_or(default.max), window: window.unwrap_or(default.window) })
}

/// Keeps the overrides of `limiter` following the tenants table until shutdown.
pub fn spawn_refresher(limiter: Arc<TenantRateLimiter>, pool: PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = limiter.refresh(&pool).await {
                tracing::warn!(error = %e, "cannot refresh tenant rate limits");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(OVERRIDE_REFRESH) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_and_resets() {
        let limiter = TenantRateLimiter::new(2);
        let t0 = 1_800_000_000; // a multiple of 60
        let a = limiter.hit("t", t0 + 10);
        assert_eq!(a, Some(RateInfo { limit: 2, remaining: 1, reset_in: 50, allowed: true }));
        assert!(limiter.hit("t", t0 + 11).is_some_and(|i| i.allowed && i.remaining == 0));
        assert!(limiter.hit("t", t0 + 12).is_some_and(|i| !i.allowed && i.reset_in == 48));
        assert!(limiter.hit("other", t0 + 12).is_some_and(|i| i.allowed), "per tenant");
        assert!(limiter.hit("t", t0 + 60).is_some_and(|i| i.allowed && i.remaining == 1), "next window");
    }

    #[test]
    fn tenant_configuration_overrides() {
        let default = Rate { max: 100, window: 60 };
        let on = serde_json::json!({"enabled": true, "default": {"max": 5, "windowSeconds": 10}});
        assert_eq!(parse_config(&on, default), Some(Rate { max: 5, window: 10 }));
        assert_eq!(parse_config(&serde_json::json!({"enabled": false}), default), None);
        assert_eq!(parse_config(&serde_json::json!({}), default), Some(default));
        let limiter = TenantRateLimiter::new(0);
        assert_eq!(limiter.hit("t", 0), None, "0: unlimited");
        limiter.set_override("t", Some(Rate { max: 1, window: 10 }));
        assert!(limiter.hit("t", 5).is_some_and(|i| i.allowed && i.reset_in == 5));
    }
}
