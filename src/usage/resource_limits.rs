//! Resource limits per end-user: calendar windows (UTC), `check` and `track`.
//!
//! `track` adds to a counter row per (user, limit, window) with one conditional upsert: for a
//! `block` limit the row is only changed while `used + amount <= limit`, under the row lock, so
//! concurrent trackers on any number of instances never push a blocking limit past its value
//! (overshoot 0). A new window is a new row: counts reset on their own.

use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::{GateAction, Plan, ResourceLimit};

use crate::calendar::{window_end, window_start};

/// A tenant's plan and resource limits.
pub async fn load(pool: &PgPool, tenant: &str) -> Result<Option<(Plan, Vec<ResourceLimit>)>, sqlx::Error> {
    tokenhub_projections::read::tenants::resource_limits(pool, tenant).await
}

/// Where one limit stands for one end-user (or the whole tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitUsage {
    /// The limit.
    pub limit: ResourceLimit,
    /// The value in force on the tenant's plan.
    pub effective: u64,
    /// Used in the current window.
    pub current: u64,
    /// When the window ends.
    pub resets_at: OffsetDateTime,
}

/// Current use of `limits`, for `user` (or summed over all users when `None`).
pub async fn usage(
    pool: &PgPool,
    tenant: &str,
    user: Option<&str>,
    plan: Plan,
    limits: &[ResourceLimit],
    now: OffsetDateTime,
) -> Result<Vec<LimitUsage>, sqlx::Error> {
    let mut out = Vec::with_capacity(limits.len());
    for limit in limits {
        let current: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(used), 0)::bigint FROM resource_usage WHERE tenant_id = $1 \
             AND ($2::text IS NULL OR user_id = $2) AND resource = $3 AND metric = $4 AND period = $5 AND window_start = $6",
        )
        .bind(tenant)
        .bind(user)
        .bind(&limit.resource)
        .bind(&limit.metric)
        .bind(limit.period.as_str())
        .bind(window_start(limit.period, now))
        .fetch_one(pool)
        .await?;
        out.push(LimitUsage {
            limit: limit.clone(),
            effective: limit.limit_for(plan),
            current: current.max(0) as u64,
            resets_at: window_end(limit.period, now),
        });
    }
    Ok(out)
}

/// The answer of `check` and `track`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// False when a `block` limit would be passed.
    pub allowed: bool,
    /// The gate action of the deciding limit.
    pub gate_action: GateAction,
    /// The deciding limit's use (after the amount, for a successful `track`).
    pub current: u64,
    /// The deciding limit's value.
    pub limit: u64,
    /// When its window ends.
    pub resets_at: OffsetDateTime,
    /// True when a limit (of any gate action) is passed.
    pub exceeded: bool,
}

/// Decides from the current uses: the deciding limit is the first passed `block` limit, else
/// the first passed one, else the one with least room.
pub fn decide(uses: &[LimitUsage], amount: u64) -> Option<Decision> {
    let over = |u: &&LimitUsage| u.current.saturating_add(amount) > u.effective;
    let deciding = uses
        .iter()
        .find(|u| over(u) && u.limit.gate_action == GateAction::Block)
        .or_else(|| uses.iter().find(over))
        .or_else(|| uses.iter().min_by_key(|u| u.effective.saturating_sub(u.current)))?;
    let exceeded = over(&deciding);
    Some(Decision {
        allowed: !(exceeded && deciding.limit.gate_action == GateAction::Block),
        gate_action: deciding.limit.gate_action,
        current: deciding.current,
        limit: deciding.effective,
        resets_at: deciding.resets_at,
        exceeded,
    })
}

/// The limits on `resource`/`metric`, shortest period first.
pub fn matching<'a>(limits: &'a [ResourceLimit], resource: &str, metric: &str) -> Vec<&'a ResourceLimit> {
    let mut found: Vec<&ResourceLimit> =
        limits.iter().filter(|l| l.resource == resource && l.metric == metric).collect();
    found.sort_by_key(|l| l.period as u8);
    found
}

/// Adds `amount` to every matching limit of `user`, all or nothing: refused (nothing added)
/// when a `block` limit would be passed. Returns the decision, with `current` after the add.
pub async fn track(
    pool: &PgPool,
    tenant: &str,
    user: &str,
    plan: Plan,
    limits: &[&ResourceLimit],
    amount: u64,
    now: OffsetDateTime,
) -> Result<Decision, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut uses = Vec::with_capacity(limits.len());
    let mut refused: Option<LimitUsage> = None;
    for limit in limits {
        let effective = limit.limit_for(plan);
        let block = limit.gate_action == GateAction::Block;
        let start = window_start(limit.period, now);
        let resets_at = window_end(limit.period, now);
        if block && amount > effective {
            let current = current_use(&mut tx, tenant, user, limit, start).await?;
            refused = Some(LimitUsage { limit: (*limit).clone(), effective, current, resets_at });
            break;
        }
        let after: Option<i64> = sqlx::query_scalar(
            "INSERT INTO resource_usage (tenant_id, user_id, resource, metric, period, window_start, used) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, user_id, resource, metric, period, window_start) \
             DO UPDATE SET used = resource_usage.used + EXCLUDED.used \
             WHERE NOT $8 OR resource_usage.used + EXCLUDED.used <= $9 \
             RETURNING used",
        )
        .bind(tenant)
        .bind(user)
        .bind(&limit.resource)
        .bind(&limit.metric)
        .bind(limit.period.as_str())
        .bind(start)
        .bind(amount as i64)
        .bind(block)
        .bind(effective as i64)
        .fetch_optional(&mut *tx)
        .await?;
        match after {
            Some(used) => uses.push(LimitUsage {
                limit: (*limit).clone(),
                effective,
                current: used.max(0) as u64,
                resets_at,
            }),
            None => {
                let current = current_use(&mut tx, tenant, user, limit, start).await?;
                refused = Some(LimitUsage { limit: (*limit).clone(), effective, current, resets_at });
                break;
            }
        }
    }
    if let Some(refused) = refused {
        tx.rollback().await?;
        return Ok(Decision {
            allowed: false,
            gate_action: GateAction::Block,
            current: refused.current,
            limit: refused.effective,
            resets_at: refused.resets_at,
            exceeded: true,
        });
    }
    tx.commit().await?;
    // After the add: a limit is passed when used > limit.
    let decision = decide(&uses, 0).unwrap_or(Decision {
        allowed: true,
        gate_action: GateAction::Block,
        current: 0,
        limit: 0,
        resets_at: now,
        exceeded: false,
    });
    Ok(Decision { allowed: true, ..decision })
}

async fn current_use(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &str,
    user: &str,
    limit: &ResourceLimit,
    start: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT used FROM resource_usage WHERE tenant_id = $1 AND user_id = $2 AND resource = $3 \
         AND metric = $4 AND period = $5 AND window_start = $6",
    )
    .bind(tenant)
    .bind(user)
    .bind(&limit.resource)
    .bind(&limit.metric)
    .bind(limit.period.as_str())
    .bind(start)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(used.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use tokenhub_aggregates::tenant::LimitPeriod;

    use super::*;

    fn usage_of(gate: GateAction, current: u64, effective: u64) -> LimitUsage {
        LimitUsage {
            limit: ResourceLimit {
                resource: "r".into(),
                metric: "m".into(),
                period: LimitPeriod::Day,
                limit: effective,
                tiers: None,
                gate_action: gate,
            },
            effective,
            current,
            resets_at: datetime!(2026-01-02 00:00 UTC),
        }
    }

    #[test]
    fn decision_by_gate_action() {
        let d = decide(&[usage_of(GateAction::Block, 9, 10)], 1);
        assert!(d.as_ref().is_some_and(|d| d.allowed && !d.exceeded));
        let d = decide(&[usage_of(GateAction::Block, 9, 10)], 2);
        assert!(d.as_ref().is_some_and(|d| !d.allowed && d.exceeded));
        let d = decide(&[usage_of(GateAction::Warn, 9, 10)], 2);
        assert!(d.as_ref().is_some_and(|d| d.allowed && d.exceeded && d.gate_action == GateAction::Warn));
        let d = decide(&[usage_of(GateAction::Notify, 0, 10), usage_of(GateAction::Block, 10, 10)], 1);
        assert!(d.as_ref().is_some_and(|d| !d.allowed && d.gate_action == GateAction::Block));
        assert!(decide(&[], 1).is_none());
    }
}
