//! Resource limits of a tenant: how much of a named resource each end-user may use per
//! calendar period (UTC), with a per-plan tier overriding the flat limit, and what the gateway
//! should do once it is reached.

use serde::{Deserialize, Serialize};

use super::limits::Plan;

/// Most limits one tenant may define.
pub const MAX_RESOURCE_LIMITS: usize = 100;

/// Largest value of a limit or a tier.
pub const MAX_LIMIT_VALUE: u64 = 1_000_000_000_000_000;

/// A calendar-aligned window, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitPeriod {
    /// From second 0 of the minute.
    Minute,
    /// From minute 0 of the hour.
    Hour,
    /// From midnight UTC.
    Day,
    /// From the first of the month, midnight UTC.
    Month,
}

impl LimitPeriod {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitPeriod::Minute => "minute",
            LimitPeriod::Hour => "hour",
            LimitPeriod::Day => "day",
            LimitPeriod::Month => "month",
        }
    }
}

impl From<crate::api_key::QuotaPeriod> for LimitPeriod {
    fn from(period: crate::api_key::QuotaPeriod) -> Self {
        match period {
            crate::api_key::QuotaPeriod::Day => LimitPeriod::Day,
            crate::api_key::QuotaPeriod::Month => LimitPeriod::Month,
        }
    }
}

/// What happens once a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateAction {
    /// Refuse the use (`check` answers `allowed: false`; `track` is refused).
    #[default]
    Block,
    /// Allow, and say that the limit is passed.
    Warn,
    /// Allow, and say that someone should be told.
    Notify,
}

impl GateAction {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GateAction::Block => "block",
            GateAction::Warn => "warn",
            GateAction::Notify => "notify",
        }
    }
}

/// Per-plan limits; a plan without an entry uses the flat `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    /// Limit on the free plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<u64>,
    /// Limit on the pro plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pro: Option<u64>,
    /// Limit on the enterprise plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<u64>,
}

/// One limit: `resource`/`metric` per `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceLimit {
    /// What is limited, e.g. `images`.
    pub resource: String,
    /// How it is counted, e.g. `count` or `bytes`.
    pub metric: String,
    /// The window.
    pub period: LimitPeriod,
    /// The flat limit.
    pub limit: u64,
    /// Per-plan limits, overriding `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Tiers>,
    /// What to do once reached.
    #[serde(default)]
    pub gate_action: GateAction,
}

impl ResourceLimit {
    /// The limit in force on `plan`.
    pub fn limit_for(&self, plan: Plan) -> u64 {
        let tier = self.tiers.and_then(|t| match plan {
            Plan::Free => t.free,
            Plan::Pro => t.pro,
            Plan::Enterprise => t.enterprise,
        });
        tier.unwrap_or(self.limit)
    }
}

fn valid_name(name: &str) -> bool {
    crate::ids::is_token(name, 64)
}

/// Checks a whole set: names, count, no two limits for the same resource, metric and period.
pub fn validate(limits: &[ResourceLimit]) -> Result<(), String> {
    if limits.len() > MAX_RESOURCE_LIMITS {
        return Err(format!("at most {MAX_RESOURCE_LIMITS} limits"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, l) in limits.iter().enumerate() {
        if !valid_name(&l.resource) {
            return Err(format!("[{i}].resource must be 1 to 64 of [A-Za-z0-9_.:-]"));
        }
        if !valid_name(&l.metric) {
            return Err(format!("[{i}].metric must be 1 to 64 of [A-Za-z0-9_.:-]"));
        }
        let tiers = l.tiers.map(|t| [t.free, t.pro, t.enterprise]).unwrap_or_default();
        if std::iter::once(Some(l.limit)).chain(tiers).flatten().any(|v| v > MAX_LIMIT_VALUE) {
            return Err(format!("[{i}]: limits and tiers must be at most {MAX_LIMIT_VALUE}"));
        }
        if !seen.insert((l.resource.as_str(), l.metric.as_str(), l.period)) {
            return Err(format!("[{i}] repeats {}/{} per {}", l.resource, l.metric, l.period.as_str()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(resource: &str, period: LimitPeriod) -> ResourceLimit {
        ResourceLimit {
            resource: resource.into(),
            metric: "count".into(),
            period,
            limit: 5,
            tiers: Some(Tiers { free: Some(10), pro: Some(100), enterprise: None }),
            gate_action: GateAction::Block,
        }
    }

    #[test]
    fn tier_of_the_plan_overrides_the_flat_limit() {
        let l = limit("images", LimitPeriod::Day);
        assert_eq!(l.limit_for(Plan::Free), 10);
        assert_eq!(l.limit_for(Plan::Pro), 100);
        assert_eq!(l.limit_for(Plan::Enterprise), 5, "no tier: the flat limit");
    }

    #[test]
    fn wire_shape_and_validation() {
        let raw = serde_json::json!([{"resource": "images", "metric": "count", "period": "month",
            "limit": 3, "tiers": {"free": 10, "pro": 100}, "gateAction": "warn"}]);
        let parsed: Vec<ResourceLimit> = serde_json::from_value(raw).unwrap_or_default();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].gate_action, GateAction::Warn);
        assert!(validate(&parsed).is_ok());
        let twice = vec![limit("a", LimitPeriod::Day), limit("a", LimitPeriod::Day)];
        assert!(validate(&twice).is_err());
        assert!(validate(&[limit("a", LimitPeriod::Day), limit("a", LimitPeriod::Hour)]).is_ok());
        assert!(validate(&[limit("bad name", LimitPeriod::Day)]).is_err());
        let mut huge = limit("a", LimitPeriod::Day);
        huge.tiers = Some(Tiers { free: Some(u64::MAX), pro: None, enterprise: None });
        assert!(validate(&[huge]).is_err());
        let bad: Result<Vec<ResourceLimit>, _> = serde_json::from_value(
            serde_json::json!([{"resource": "a", "metric": "b", "period": "week", "limit": 1}]),
        );
        assert!(bad.is_err());
    }
}
