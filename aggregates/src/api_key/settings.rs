//! Key settings and their validation. Lists are normalised (CIDRs canonical, duplicates
//! removed, sorted) so that equal settings are equal events.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ApiKeyError;

/// Prefix reserved for key-bound tags in verification answers and usage events; admins cannot
/// set tag keys under it and client tags under it are dropped.
pub const RESERVED_TAG_PREFIX: &str = "tokenhub.";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Data-plane key: verified by gateways, no control-plane access.
    #[default]
    Data,
    /// Everything in its tenant.
    TenantAdmin,
    /// Its tenant's usage, limits and billing, read only.
    TenantFinance,
    /// Platform: verifies keys, reports usage.
    Gateway,
    /// Platform: usage and billing of all tenants, read only.
    FinanceAdmin,
    /// Platform: the audit log, read only.
    Auditor,
}

impl KeyRole {
    /// Name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Data => "data",
            KeyRole::TenantAdmin => "tenant_admin",
            KeyRole::TenantFinance => "tenant_finance",
            KeyRole::Gateway => "gateway",
            KeyRole::FinanceAdmin => "finance_admin",
            KeyRole::Auditor => "auditor",
        }
    }

    /// True for roles of platform (non-tenant) keys.
    pub fn is_platform(self) -> bool {
        matches!(self, KeyRole::Gateway | KeyRole::FinanceAdmin | KeyRole::Auditor)
    }
}

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyOwner {
    /// A tenant, optionally one of its sub-accounts.
    Tenant {
        /// Tenant id.
        tenant_id: String,
        /// Sub-account id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub_account_id: Option<String>,
    },
    /// The platform operator.
    Platform,
}

impl KeyOwner {
    /// The tenant, for tenant keys.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            KeyOwner::Tenant { tenant_id, .. } => Some(tenant_id),
            KeyOwner::Platform => None,
        }
    }
}

/// Per-key rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimit {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// LLM tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// The window of a periodic quota: calendar-aligned in UTC. No period: a lifetime quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// From midnight UTC.
    Day,
    /// From the first of the month, midnight UTC.
    Month,
}

impl QuotaPeriod {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }
}

/// The mutable settings of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct KeySettings {
    /// LLM-token quota: lifetime, or per `quota_period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_limit: Option<i64>,
    /// The quota's window; `None` = lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_period: Option<QuotaPeriod>,
    /// After this instant the key is `EXPIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Client networks allowed (canonical CIDRs); empty = any.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// Models allowed; empty = any.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// Permissions, e.g. `chat`, `embeddings`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Key-bound tags, injected server-side into verification answers and usage events.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Platform keys only: the tenants it may act for (empty = every tenant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_ids: Vec<String>,
}

/// Most entries in `allowed_ips`, `allowed_models` or `permissions`.
pub const MAX_LIST: usize = 100;
/// Most tags.
pub const MAX_TAGS: usize = 32;

/// Validates a key name.
pub fn validate_name(name: &str) -> Result<(), ApiKeyError> {
    let ok = !name.trim().is_empty() && name.chars().count() <= 128 && !name.chars().any(char::is_control);
    ok.then_some(()).ok_or(ApiKeyError::InvalidName)
}

/// Parses and normalises CIDRs (a bare address is a /32 or /128).
pub fn normalise_ips(ips: &[String]) -> Result<Vec<String>, ApiKeyError> {
    if ips.len() > MAX_LIST {
        return Err(ApiKeyError::TooMany("allowed_ips"));
    }
    let mut nets = Vec::with_capacity(ips.len());
    for raw in ips {
        let raw = raw.trim();
        let net = raw
            .parse::<IpNet>()
            .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| ApiKeyError::InvalidCidr(raw.to_string()))?;
        nets.push(net.trunc());
    }
    nets.sort();
    nets.dedup();
    Ok(nets.iter().map(ToString::to_string).collect())
}

fn normalise_list(
    items: &[String],
    field: &'static str,
    valid: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ApiKeyError> {
    if items.len() > MAX_LIST {
        return Err(ApiKeyError::TooMany(field));
    }
    let mut out: Vec<String> = items.iter().map(|s| s.trim().to_string()).collect();
    if let Some(bad) = out.iter().find(|s| !valid(s)) {
        return Err(ApiKeyError::InvalidListItem { field, value: bad.clone() });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Validates and normalises allowed models.
pub fn normalise_models(models: &[String]) -> Result<Vec<String>, ApiKeyError> {
    normalise_list(models, "allowed_models", |m| {
        !m.is_empty() && m.len() <= 128 && !m.chars().any(|c| c.is_control() || c.is_whitespace())
    })
}

/// Validates and normalises permissions (`[a-z][a-z0-9_:.-]{0,63}`).
pub fn normalise_permissions(permissions: &[String]) -> Result<Vec<String>, ApiKeyError> {
    normalise_list(permissions, "permissions", |p| {
        let mut bytes = p.bytes();
        p.len() <= 64
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b':' | b'.' | b'-')
            })
    })
}

/// Validates tags: at most 32, keys `[A-Za-z0-9_.-]{1,64}` outside the reserved namespace,
/// values at most 256 characters.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiKeyError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiKeyError::TooMany("tags"));
    }
    for (k, v) in tags {
        if k.starts_with(RESERVED_TAG_PREFIX) {
            return Err(ApiKeyError::ReservedTagKey(k.clone()));
        }
        let key_ok = (1..=64).contains(&k.len())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !key_ok || v.chars().count() > 256 || v.chars().any(char::is_control) {
            return Err(ApiKeyError::InvalidTag(k.clone()));
        }
    }
    Ok(())
}

/// Validates a quota.
pub fn validate_quota(quota: Option<i64>) -> Result<(), ApiKeyError> {
    match quota {
        Some(q) if !(0..=crate::MAX_TOKENS).contains(&q) => Err(ApiKeyError::InvalidQuota),
        _ => Ok(()),
    }
}

/// Validates an expiry against the command time.
pub fn validate_expiry(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Result<(), ApiKeyError> {
    match expires_at {
        Some(t) if t <= now => Err(ApiKeyError::ExpiryInPast),
        _ => Ok(()),
    }
}

/// Validates a rate limit (each set value at least 1).
pub fn validate_rate_limit(limit: Option<RateLimit>) -> Result<(), ApiKeyError> {
    match limit {
        Some(RateLimit { requests_per_minute: Some(0), .. })
        | Some(RateLimit { tokens_per_minute: Some(0), .. }) => Err(ApiKeyError::InvalidRateLimit),
        _ => Ok(()),
    }
}

impl KeySettings {
    /// Validates every field and returns the normalised settings.
    pub fn validated(self, now: OffsetDateTime) -> Result<KeySettings, ApiKeyError> {
        validate_quota(self.quota_limit)?;
        validate_expiry(self.expires_at, now)?;
        validate_tags(&self.tags)?;
        validate_rate_limit(self.rate_limit)?;
        Ok(KeySettings {
            tenant_ids: normalise_list(&self.tenant_ids, "tenant_ids", crate::ids::is_tenant_id)?,
            allowed_ips: normalise_ips(&self.allowed_ips)?,
            allowed_models: normalise_models(&self.allowed_models)?,
            permissions: normalise_permissions(&self.permissions)?,
            ..self
        })
    }
}

/// What a key under a sub-account may not exceed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentLimits {
    /// The sub-account's permissions: a key's must be a subset.
    pub permissions: Vec<String>,
    /// The sub-account's quota: a key's may not be larger.
    pub quota_limit: Option<i64>,
}

impl ParentLimits {
    /// Checks a key's (normalised) permissions and quota against the sub-account's.
    pub fn check(&self, permissions: &[String], quota: Option<i64>) -> Result<(), ApiKeyError> {
        let extra: Vec<String> =
            permissions.iter().filter(|p| !self.permissions.contains(p)).cloned().collect();
        if !extra.is_empty() {
            return Err(ApiKeyError::PermissionsExceedSubAccount(extra.join(", ")));
        }
        match (quota, self.quota_limit) {
            (Some(q), Some(max)) if q > max => {
                Err(ApiKeyError::QuotaExceedsSubAccount { quota: q, sub_account: max })
            }
            _ => Ok(()),
        }
    }
}
