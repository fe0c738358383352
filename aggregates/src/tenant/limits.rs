//! Plans and tenant limits. A tenant stores only the limits an admin set explicitly
//! (overrides); its effective limits are the plan's defaults with the overrides on top, so a
//! plan change keeps what an admin set by hand.

use serde::{Deserialize, Serialize};

/// A commercial plan. Each has default limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Small default limits.
    #[default]
    Free,
    /// Larger limits.
    Pro,
    /// No key or sub-account caps; high rate limits.
    Enterprise,
}

impl Plan {
    /// The plan's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The plan's default limits.
    pub fn default_limits(self) -> TenantLimits {
        match self {
            Plan::Free => TenantLimits {
                max_api_keys: Some(10),
                max_sub_accounts: Some(3),
                monthly_token_quota: Some(1_000_000),
                requests_per_minute: Some(60),
            },
            Plan::Pro => TenantLimits {
                max_api_keys: Some(500),
                max_sub_accounts: Some(100),
                monthly_token_quota: Some(100_000_000),
                requests_per_minute: Some(1_000),
            },
            Plan::Enterprise => TenantLimits {
                max_api_keys: None,
                max_sub_accounts: None,
                monthly_token_quota: None,
                requests_per_minute: Some(10_000),
            },
        }
    }
}

/// Limits of a tenant. `None` means "not set" in overrides and "unlimited" when effective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct TenantLimits {
    /// Most API keys the tenant may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_api_keys: Option<u32>,
    /// Most sub-accounts the tenant may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sub_accounts: Option<u32>,
    /// LLM tokens per calendar month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_token_quota: Option<u64>,
    /// Control-API requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// Upper bound on `requests_per_minute`, to catch typos such as an extra zero run.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 10_000_000;

impl TenantLimits {
    /// `self` with every field that `overrides` sets replaced.
    pub fn merged_with(self, overrides: TenantLimits) -> TenantLimits {
        TenantLimits {
            max_api_keys: overrides.max_api_keys.or(self.max_api_keys),
            max_sub_accounts: overrides.max_sub_accounts.or(self.max_sub_accounts),
            monthly_token_quota: overrides.monthly_token_quota.or(self.monthly_token_quota),
            requests_per_minute: overrides.requests_per_minute.or(self.requests_per_minute),
        }
    }

    /// The limits in force for `plan` with these overrides.
    pub fn effective(plan: Plan, overrides: TenantLimits) -> TenantLimits {
        plan.default_limits().merged_with(overrides)
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == TenantLimits::default()
    }
}
