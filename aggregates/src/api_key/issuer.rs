//! Who acts on a key, and the rule that privileges never grow: a sub-account manager (a `data`
//! key of a sub-account holding `keys:manage` itself) acts only on `data` keys of its own
//! sub-account, and every key it issues, changes, rotates or re-enables is confined to its own
//! credential: permissions, quota, expiry, networks, models, key-bound tags and rate limit.
//!
//! The rule lives here, in the aggregate, so every route (issue, patch, rotate, enable,
//! disable, revoke) goes through the one decision and the property tests exercise exactly it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::ApiKeyError;
use super::settings::{KeyOwner, KeyRole, KeySettings};

/// The permission that lets a sub-account key manage its sub-account's keys.
pub const KEYS_MANAGE: &str = "keys:manage";

/// Who issues a command on a key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Issuer {
    /// The super admin, a platform principal, or a tenant admin: the tenant's own rules only.
    #[default]
    Admin,
    /// A sub-account key with `keys:manage`, confined to its own credential.
    SubAccountManager(Box<ManagerCredential>),
}

/// What a sub-account manager holds: its sub-account and its own settings, with its
/// effective permissions (its own, narrowed by its sub-account's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerCredential {
    /// The manager's public id.
    pub public_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its sub-account.
    pub sub_account_id: String,
    /// Its settings; `permissions` are the effective ones.
    pub settings: KeySettings,
}

/// Who disabled a key: a re-enable by a sub-account manager is refused when an admin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledBy {
    /// A tenant admin (or above). Also assumed for disables recorded before this was kept.
    #[default]
    Admin,
    /// A sub-account manager.
    SubAccountManager,
}

fn exceeds(what: impl Into<String>) -> ApiKeyError {
    ApiKeyError::ExceedsIssuer(what.into())
}

fn nets(list: &[String]) -> Vec<IpNet> {
    list.iter().filter_map(|n| n.parse().ok()).collect()
}

impl ManagerCredential {
    /// Fills what a new key leaves open with the manager's own restriction, so a key issued
    /// without a quota, expiry, network list or model list inherits the manager's.
    pub fn confine_defaults(&self, wanted: &mut KeySettings) {
        let own = &self.settings;
        if wanted.permissions.is_empty() {
            wanted.permissions = own.permissions.iter().filter(|p| *p != KEYS_MANAGE).cloned().collect();
        }
        if wanted.quota_limit.is_none() && own.quota_limit.is_some() {
            wanted.quota_limit = own.quota_limit;
            wanted.quota_period = own.quota_period;
        }
        if wanted.expires_at.is_none() {
            wanted.expires_at = own.expires_at;
        }
        if wanted.allowed_ips.is_empty() {
            wanted.allowed_ips = own.allowed_ips.clone();
        }
        if wanted.allowed_models.is_empty() {
            wanted.allowed_models = own.allowed_models.clone();
        }
        for (k, v) in &own.tags {
            wanted.tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if wanted.rate_limit.is_none() {
            wanted.rate_limit = own.rate_limit;
        }
    }

    /// Checks that a key of `owner` with `role` is one this manager may act on at all.
    pub fn check_scope(&self, owner: &KeyOwner, role: KeyRole) -> Result<(), ApiKeyError> {
        let in_scope = matches!(owner, KeyOwner::Tenant { tenant_id, sub_account_id: Some(sub) }
            if *tenant_id == self.tenant_id && *sub == self.sub_account_id);
        if !in_scope || role != KeyRole::Data {
            return Err(ApiKeyError::OutsideIssuerScope);
        }
        Ok(())
    }

    /// Checks that `key` (normalised settings) is no broader than the manager's credential.
    pub fn check_within(&self, key: &KeySettings) -> Result<(), ApiKeyError> {
        let own = &self.settings;
        if key.permissions.is_empty() {
            // An empty list means "the sub-account's permissions", which may be more than the
            // manager's own.
            return Err(exceeds("permissions: name them; an empty list would mean all of the sub-account's"));
        }
        if let Some(extra) = key.permissions.iter().find(|p| !own.permissions.contains(p)) {
            return Err(exceeds(format!("the calling key does not hold '{extra}'")));
        }
        if let Some(max) = own.quota_limit {
            match key.quota_limit {
                None => {
                    return Err(exceeds("quota_limit: the calling key has a quota; the new key needs one"))
                }
                Some(q) if q > max => {
                    return Err(exceeds(format!("quota_limit {q} exceeds the calling key's {max}")))
                }
                Some(_) if key.quota_period != own.quota_period => {
                    return Err(exceeds("quota_period must be the calling key's"));
                }
                Some(_) => {}
            }
        }
        if let Some(end) = own.expires_at {
            if key.expires_at.is_none_or(|e| e > end) {
                return Err(exceeds("expiration: the new key must expire no later than the calling key"));
            }
        }
        if !own.allowed_ips.is_empty() {
            let mine = nets(&own.allowed_ips);
            let theirs = nets(&key.allowed_ips);
            if theirs.is_empty() || !theirs.iter().all(|t| mine.iter().any(|m| m.contains(t))) {
                return Err(exceeds("allowed_ips: every network must lie inside the calling key's"));
            }
        }
        if !own.allowed_models.is_empty()
            && (key.allowed_models.is_empty()
                || !key.allowed_models.iter().all(|m| own.allowed_models.contains(m)))
        {
            return Err(exceeds("allowed_models: only models the calling key may use"));
        }
        if let Some((k, _)) = own.tags.iter().find(|(k, v)| key.tags.get(*k) != Some(*v)) {
            return Err(exceeds(format!("tags: the calling key's tag '{k}' must be kept")));
        }
        if let Some(limit) = own.rate_limit {
            let theirs = key.rate_limit.unwrap_or_default();
            let wider = |mine: Option<u64>, new: Option<u64>| mine.is_some_and(|m| new.is_none_or(|n| n > m));
            if wider(limit.requests_per_minute.map(u64::from), theirs.requests_per_minute.map(u64::from))
                || wider(limit.tokens_per_minute, theirs.tokens_per_minute)
            {
                return Err(exceeds("rate_limit: no higher than the calling key's"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::api_key::settings::{QuotaPeriod, RateLimit};

    fn manager(settings: KeySettings) -> ManagerCredential {
        ManagerCredential {
            public_id: "m".into(),
            tenant_id: "ten_a".into(),
            sub_account_id: "sub_a".into(),
            settings,
        }
    }

    fn arb_settings() -> impl Strategy<Value = KeySettings> {
        let perms = proptest::sample::subsequence(vec!["chat", "embeddings", "keys:manage", "images"], 0..=4);
        let ips = proptest::sample::subsequence(
            vec!["10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24", "0.0.0.0/0"],
            0..=2,
        );
        let models = proptest::sample::subsequence(vec!["gpt-4o", "gpt-4o-mini", "claude"], 0..=2);
        let tags = proptest::sample::subsequence(
            vec![("customer_id", "acme"), ("customer_id", "evil"), ("team", "x")],
            0..=2,
        );
        (
            perms,
            proptest::option::of(0i64..1000),
            proptest::option::of(proptest::sample::select(vec![QuotaPeriod::Day, QuotaPeriod::Month])),
            proptest::option::of(0i64..3),
            ips,
            models,
            tags,
            proptest::option::of((proptest::option::of(1u32..100), proptest::option::of(1u64..100))),
        )
            .prop_map(|(perms, quota, period, expiry, ips, models, tags, rate)| KeySettings {
                permissions: perms.into_iter().map(String::from).collect(),
                quota_limit: quota,
                quota_period: quota.and(period),
                expires_at: expiry.map(|d| datetime!(2030-01-01 0:00 UTC) + time::Duration::days(d)),
                allowed_ips: ips.into_iter().map(String::from).collect(),
                allowed_models: models.into_iter().map(String::from).collect(),
                tags: tags
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                rate_limit: rate.map(|(r, t)| RateLimit { requests_per_minute: r, tokens_per_minute: t }),
                tenant_ids: Vec::new(),
            })
    }

    /// A verification-level reading of "broader": some request this key would allow that the
    /// manager's own key would not.
    fn broader(key: &KeySettings, own: &KeySettings) -> bool {
        let ip_ok = |list: &[String], ip: &str| {
            let ip: std::net::IpAddr = ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            list.is_empty() || nets(list).iter().any(|n| n.contains(&ip))
        };
        let probe_ips = ["10.2.3.4", "10.1.2.3", "192.168.1.9", "8.8.8.8"];
        let model_ok = |list: &[String], m: &str| list.is_empty() || list.iter().any(|x| x == m);
        key.permissions.is_empty()
            || key.permissions.iter().any(|p| !own.permissions.contains(p))
            || probe_ips.iter().any(|ip| ip_ok(&key.allowed_ips, ip) && !ip_ok(&own.allowed_ips, ip))
            || ["gpt-4o", "gpt-4o-mini", "claude", "other"]
                .iter()
                .any(|m| model_ok(&key.allowed_models, m) && !model_ok(&own.allowed_models, m))
            || own.quota_limit.is_some_and(|q| key.quota_limit.is_none_or(|k| k > q))
            || own.expires_at.is_some_and(|e| key.expires_at.is_none_or(|k| k > e))
            || own.tags.iter().any(|(k, v)| key.tags.get(k) != Some(v))
    }

    proptest! {
        /// Whatever a manager asks for, what passes the check is never broader than itself.
        #[test]
        fn what_passes_is_never_broader_than_the_manager(own in arb_settings(), wanted in arb_settings()) {
            let m = manager(own.clone());
            if m.check_within(&wanted).is_ok() {
                prop_assert!(!broader(&wanted, &own), "{wanted:?} passed but is broader than {own:?}");
            }
        }

        /// Defaults filled from the manager, then checked, never give a broader key; and when
        /// the manager names any permission besides `keys:manage`, an empty request passes.
        #[test]
        fn defaults_come_from_the_manager(own in arb_settings(), wanted in arb_settings()) {
            let m = manager(own.clone());
            let mut filled = wanted;
            m.confine_defaults(&mut filled);
            if m.check_within(&filled).is_ok() {
                prop_assert!(!broader(&filled, &own));
            }
            let mut empty = KeySettings::default();
            m.confine_defaults(&mut empty);
            if own.permissions.iter().any(|p| p != KEYS_MANAGE) {
                prop_assert!(m.check_within(&empty).is_ok(), "{empty:?} from {own:?}");
            }
        }
    }

    #[test]
    fn scope_is_own_sub_account_data_keys_only() {
        let m = manager(KeySettings::default());
        let own = KeyOwner::Tenant { tenant_id: "ten_a".into(), sub_account_id: Some("sub_a".into()) };
        let sibling = KeyOwner::Tenant { tenant_id: "ten_a".into(), sub_account_id: Some("sub_b".into()) };
        let tenant = KeyOwner::Tenant { tenant_id: "ten_a".into(), sub_account_id: None };
        assert!(m.check_scope(&own, KeyRole::Data).is_ok());
        assert!(m.check_scope(&own, KeyRole::TenantAdmin).is_err());
        assert!(m.check_scope(&sibling, KeyRole::Data).is_err());
        assert!(m.check_scope(&tenant, KeyRole::Data).is_err());
        assert!(m.check_scope(&KeyOwner::Platform, KeyRole::Gateway).is_err());
    }
}
