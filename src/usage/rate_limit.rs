//! The per-tenant rate limit of the control API. The ceiling is `DEFAULT_RATE_LIMIT` requests
//! per minute, or the super admin's `requests_per_minute` override of the tenant. The tenant
//! configuration's `rateLimit` (`{"enabled", "default": {"max", "windowSeconds"}}`) adds a
//! limit of its own that is counted beside the ceiling, so it can only lower it: `enabled:
//! false` or a larger `max` leaves the ceiling in force. Fixed windows aligned on the Unix epoch, counted in
//! memory from leases of the fleet's count ([`crate::fleet::leases`]): N instances together
//! admit the limit once, not N times.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::fleet::leases::{Lease, Leaser, Take};

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

/// The limits on one tenant: the ceiling (the super admin's override, else the default) and
/// the tenant configuration's own `rateLimit`. Both are counted and both must allow a request,
/// so a tenant's own setting can only lower its limit, never lift it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantRates {
    /// The operator's ceiling (`None`: unlimited).
    pub ceiling: Option<Rate>,
    /// The tenant's own, stricter limit (`None`: none).
    pub own: Option<Rate>,
}

/// Counts control-API requests per tenant.
pub struct TenantRateLimiter {
    default: Rate,
    overrides: DashMap<String, TenantRates>,
    /// Per tenant, the leases of its two limits (the ceiling, its own).
    windows: DashMap<String, Arc<[Lease; 2]>>,
    leaser: Leaser,
}

fn usable(rate: Option<Rate>) -> Option<Rate> {
    rate.filter(|r| r.max > 0 && r.window > 0)
}

impl TenantRateLimiter {
    /// A limiter with `default_per_minute` (0: unlimited).
    pub fn new(default_per_minute: u32) -> Self {
        Self {
            default: Rate { max: default_per_minute, window: 60 },
            overrides: DashMap::new(),
            windows: DashMap::new(),
            leaser: Leaser::default(),
        }
    }

    /// The same limiter counting from the fleet's leases (`leaser`).
    pub fn with_leaser(mut self, leaser: Leaser) -> Self {
        self.leaser = leaser;
        self
    }

    fn rates_of(&self, tenant: &str) -> [Option<Rate>; 2] {
        let rates = match self.overrides.get(tenant) {
            Some(r) => *r.value(),
            None => TenantRates { ceiling: Some(self.default), own: None },
        };
        [usable(rates.ceiling), usable(rates.own)]
    }

    /// Counts one request of `tenant` at Unix second `now`; `None` when the tenant has no limit.
    /// The request counts against both limits only when both allow it; the answer describes
    /// the limit that binds (the refusing one, else the one with fewer requests left). With
    /// `own` false only the operator's ceiling applies: the routes that read and change the
    /// tenant's own `rateLimit` are never blocked by it (a tenant cannot lock itself out).
    pub async fn hit(&self, tenant: &str, now: i64, own: bool) -> Option<RateInfo> {
        let mut rates = self.rates_of(tenant);
        if !own {
            rates[1] = None;
        }
        if rates.iter().all(Option::is_none) {
            return None;
        }
        let leases = match self.windows.get(tenant) {
            Some(l) => Arc::clone(l.value()),
            None => Arc::clone(self.windows.entry(tenant.to_string()).or_default().value()),
        };
        let mut infos: [Option<RateInfo>; 2] = [None, None];
        let mut taken: [Option<i64>; 2] = [None, None];
        for (i, rate) in rates.iter().enumerate() {
            let Some(rate) = rate else { continue };
            let window = i64::from(rate.window);
            let start = now.div_euclid(window) * window;
            let scope = || format!("tenant:{tenant}:{}:{}/{}", ["ceiling", "own"][i], rate.max, rate.window);
            let (allowed, remaining) =
                match self.leaser.take(&leases[i], scope, u64::from(rate.max), start).await {
                    Take::Admitted { remaining } => (true, remaining.min(u64::from(u32::MAX)) as u32),
                    Take::Refused | Take::NeedsLease => (false, 0),
                };
            if allowed {
                taken[i] = Some(start);
            }
            infos[i] = Some(RateInfo {
                limit: rate.max,
                remaining,
                reset_in: (start + window - now).max(1) as u64,
                allowed,
            });
        }
        let allowed = infos.iter().flatten().all(|i| i.allowed);
        if !allowed {
            // Counted against both only when both allow it.
            for (i, start) in taken.iter().enumerate() {
                if let Some(start) = start {
                    leases[i].give_back(*start);
                    if let Some(info) = &mut infos[i] {
                        info.remaining = info.remaining.saturating_add(1);
                    }
                }
            }
        }
        infos
            .into_iter()
            .flatten()
            .min_by_key(|i| (i.allowed, i.remaining))
            .map(|i| RateInfo { allowed, ..i })
    }

    /// Forgets the leases of windows that ended before Unix second `before` (the refresher
    /// calls it, so the map holds only tenants active lately).
    pub fn forget_before(&self, before: i64) {
        self.windows.retain(|_, leases| leases.iter().any(|l| l.current(before)));
    }

    /// The control-API requests per minute the tenant is held to: the operator's ceiling (its
    /// override, else `DEFAULT_RATE_LIMIT`), lowered by its own `rateLimit` when that is per
    /// minute or shorter and lower; `None` when unlimited. What `/tenant/info` reports, so
    /// that it says what the `RateLimit-*` headers count.
    pub fn per_minute(&self, tenant: &str) -> Option<u32> {
        let [ceiling, own] = self.rates_of(tenant);
        let own = own.filter(|r| r.window == 60).map(|r| r.max);
        match (ceiling.map(|r| r.max), own) {
            (Some(c), Some(o)) => Some(c.min(o)),
            (c, o) => c.or(o),
        }
    }

    /// Sets a tenant's limits; for tests and the refresher.
    pub fn set_rates(&self, tenant: &str, rates: TenantRates) {
        self.overrides.insert(tenant.to_string(), rates);
    }

    /// Re-reads every tenant's limits: the super admin's `requests_per_minute` override (else
    /// the default) as the ceiling, and the configuration's `rateLimit` as the tenant's own.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let rows = tokenhub_projections::read::tenants::rate_limit_overrides(pool).await?;
        let seen: std::collections::HashSet<&str> = rows.iter().map(|(t, _, _)| t.as_str()).collect();
        self.overrides.retain(|t, _| seen.contains(t.as_str()));
        for (tenant, config, per_minute) in &rows {
            let ceiling = match per_minute {
                Some(max) => Rate { max: (*max).clamp(0, i64::from(u32::MAX)) as u32, window: 60 },
                None => self.default,
            };
            let own = config.as_ref().and_then(|c| parse_config(c, ceiling));
            self.set_rates(tenant, TenantRates { ceiling: Some(ceiling), own });
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
            // Windows are at most a day long (`windowSeconds` ≤ 86,400).
            limiter.forget_before(time::OffsetDateTime::now_utc().unix_timestamp() - 86_400);
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

    #[tokio::test]
    async fn fixed_window_counts_and_resets() {
        let limiter = TenantRateLimiter::new(2);
        let t0 = 1_800_000_000; // a multiple of 60
        let a = limiter.hit("t", t0 + 10, true).await;
        assert_eq!(a, Some(RateInfo { limit: 2, remaining: 1, reset_in: 50, allowed: true }));
        assert!(limiter.hit("t", t0 + 11, true).await.is_some_and(|i| i.allowed && i.remaining == 0));
        assert!(limiter.hit("t", t0 + 12, true).await.is_some_and(|i| !i.allowed && i.reset_in == 48));
        assert!(limiter.hit("other", t0 + 12, true).await.is_some_and(|i| i.allowed), "per tenant");
        assert!(
            limiter.hit("t", t0 + 60, true).await.is_some_and(|i| i.allowed && i.remaining == 1),
            "next window"
        );
    }

    #[tokio::test]
    async fn tenant_configuration_overrides() {
        let default = Rate { max: 100, window: 60 };
        let on = serde_json::json!({"enabled": true, "default": {"max": 5, "windowSeconds": 10}});
        assert_eq!(parse_config(&on, default), Some(Rate { max: 5, window: 10 }));
        assert_eq!(parse_config(&serde_json::json!({"enabled": false}), default), None);
        assert_eq!(parse_config(&serde_json::json!({}), default), Some(default));
        let limiter = TenantRateLimiter::new(0);
        assert_eq!(limiter.hit("t", 0, true).await, None, "0: unlimited");
        limiter.set_rates("t", TenantRates { ceiling: None, own: Some(Rate { max: 1, window: 10 }) });
        assert!(limiter.hit("t", 5, true).await.is_some_and(|i| i.allowed && i.reset_in == 5));
    }

    #[tokio::test]
    async fn the_tenants_own_limit_never_blocks_the_routes_that_change_it() {
        let t0 = 1_800_000_000;
        let limiter = TenantRateLimiter::new(1000);
        let own = Some(Rate { max: 1, window: 65_536 });
        limiter.set_rates("t", TenantRates { ceiling: Some(Rate { max: 5, window: 60 }), own });
        assert!(limiter.hit("t", t0, true).await.is_some_and(|i| i.allowed));
        assert!(
            limiter.hit("t", t0 + 1, true).await.is_some_and(|i| !i.allowed),
            "its own limit binds elsewhere"
        );
        // The configuration routes: only the operator's ceiling counts.
        let mut passed = 0;
        for i in 0..10 {
            passed += usize::from(limiter.hit("t", t0 + 2 + i, false).await.is_some_and(|r| r.allowed));
        }
        assert_eq!(passed, 4, "the ceiling (5, one already spent) still holds");
    }

    #[tokio::test]
    async fn a_tenant_can_only_lower_its_ceiling() {
        let t0 = 1_800_000_000;
        let ceiling = Some(Rate { max: 3, window: 60 });
        // Whatever the tenant's own limit, no more than the ceiling passes in a window.
        for own in [
            None,
            Some(Rate { max: 1_000_000, window: 60 }),
            Some(Rate { max: 10, window: 1 }),
            Some(Rate { max: 2, window: 60 }),
        ] {
            let limiter = TenantRateLimiter::new(1000);
            limiter.set_rates("t", TenantRates { ceiling, own });
            let mut passed = 0;
            for i in 0..100 {
                passed += usize::from(limiter.hit("t", t0 + i % 30, true).await.is_some_and(|r| r.allowed));
            }
            let expected = own.map_or(3, |o| if o.max < 3 { o.max as usize } else { 3 });
            assert_eq!(passed, expected, "own {own:?}");
        }
    }
}
