//! The verification decision: pure, in memory, no IO.
//!
//! Order of checks: format → public id → secret (current, or the previous one inside its
//! rotation grace period) → key status → tenant status → expiry → client IP → model →
//! quota (key, then sub-account) → per-minute rate (requests, then tokens).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{KeyStatus, QuotaPeriod};
use tokenhub_aggregates::sub_account::SubAccountStatus;
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_projections::sub_accounts::SubAccountRecord;

use super::usage::TokenTotals;
use super::{CachedKey, KeyCache, TenantGate};
use crate::auth::hashing::KeyHasher;
use crate::auth::key_format;
use crate::fleet::leases::Take;
use tokenhub_aggregates::api_key::{KEYS_MANAGE, RESERVED_TAG_PREFIX};

/// The answer code of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCode {
    /// The key may be used.
    Valid,
    /// Not a TokenHub key (shape or checksum).
    Malformed,
    /// Unknown public id, or a wrong secret.
    NotFound,
    /// Disabled by an admin.
    Disabled,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// The client IP is outside the key's networks.
    IpNotAllowed,
    /// The model is not in the key's list.
    ModelNotAllowed,
    /// The tenant is suspended.
    TenantSuspended,
    /// The tenant is deleted.
    TenantDeleted,
    /// The key's sub-account is disabled.
    SubAccountDisabled,
    /// The key's sub-account is deleted.
    SubAccountDeleted,
    /// The key's or its sub-account's LLM-token quota is spent.
    QuotaExceeded,
    /// The key's requests or tokens per minute are used up until the minute ends.
    RateLimited,
}

impl VerifyCode {
    /// Every code, in declaration order (`code as usize` is its index).
    pub const ALL: [VerifyCode; 14] = [
        VerifyCode::Valid,
        VerifyCode::Malformed,
        VerifyCode::NotFound,
        VerifyCode::Disabled,
        VerifyCode::Revoked,
        VerifyCode::Expired,
        VerifyCode::IpNotAllowed,
        VerifyCode::ModelNotAllowed,
        VerifyCode::TenantSuspended,
        VerifyCode::TenantDeleted,
        VerifyCode::SubAccountDisabled,
        VerifyCode::SubAccountDeleted,
        VerifyCode::QuotaExceeded,
        VerifyCode::RateLimited,
    ];

    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::Malformed => "MALFORMED",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::IpNotAllowed => "IP_NOT_ALLOWED",
            VerifyCode::ModelNotAllowed => "MODEL_NOT_ALLOWED",
            VerifyCode::TenantSuspended => "TENANT_SUSPENDED",
            VerifyCode::TenantDeleted => "TENANT_DELETED",
            VerifyCode::SubAccountDisabled => "SUB_ACCOUNT_DISABLED",
            VerifyCode::SubAccountDeleted => "SUB_ACCOUNT_DELETED",
            VerifyCode::QuotaExceeded => "QUOTA_EXCEEDED",
            VerifyCode::RateLimited => "RATE_LIMITED",
        }
    }
}

/// What a gateway asks.
#[derive(Debug, Clone, Copy)]
pub struct VerifyInput<'a> {
    /// The full key.
    pub key: &'a str,
    /// Client IP; when the key has an IP list, a missing IP is refused.
    pub ip: Option<IpAddr>,
    /// Model; checked when given and the key has a model list.
    pub model: Option<&'a str>,
}

/// The outcome, with the key when it was identified.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The code.
    pub code: VerifyCode,
    /// The key, once its secret matched.
    pub key: Option<Arc<CachedKey>>,
    /// The key's sub-account, when it has one.
    pub sub_account: Option<Arc<SubAccountRecord>>,
    /// The tightest of the key's, its sub-account's and its tenant's monthly quotas, when any.
    pub quota: Option<QuotaStatus>,
    /// `RATE_LIMITED` only because this instance's lease of the key's requests per minute (this
    /// many) is used up: [`KeyCache::verify_counted`] leases more and verifies again.
    pub lease_needed: Option<u32>,
}

/// Where a key stands against its per-minute limits.
enum Rate {
    Within,
    Over,
    NeedsLease(u32),
}

/// Where a quota stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    /// Whose quota: the key's or its sub-account's.
    pub scope: QuotaScope,
    /// LLM tokens allowed.
    pub limit: i64,
    /// LLM tokens used.
    pub used: i64,
    /// `limit - used`, never below 0.
    pub remaining: i64,
    /// The quota's window (`None`: lifetime); it resets at the window's end.
    pub period: Option<QuotaPeriod>,
}

/// Whose quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// The key's own.
    Key,
    /// Its sub-account's.
    SubAccount,
    /// Its tenant's monthly token quota.
    Tenant,
}

impl QuotaScope {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaScope::Key => "key",
            QuotaScope::SubAccount => "sub_account",
            QuotaScope::Tenant => "tenant",
        }
    }
}

impl Verdict {
    /// The permissions in force: the key's, narrowed to its sub-account's (a key without a
    /// list of its own has its sub-account's).
    pub fn effective_permissions(&self) -> Vec<String> {
        let Some(key) = &self.key else { return Vec::new() };
        let own = key.permissions.iter().map(|p| p.to_string());
        match &self.sub_account {
            None => own.collect(),
            // A key with no list of its own takes its sub-account's, except `keys:manage`: a
            // key manages keys only when that permission is on the key itself.
            Some(sub) if key.permissions.is_empty() => {
                sub.permissions.iter().filter(|p| p.as_str() != KEYS_MANAGE).cloned().collect()
            }
            Some(sub) => own.filter(|p| sub.permissions.contains(p)).collect(),
        }
    }
}

impl TenantGate {
    /// The tenant's own gate, for any of its principals: `VALID` while it is active and `ip`
    /// is inside its allowlist (when it has one).
    pub fn admits(&self, ip: Option<IpAddr>) -> VerifyCode {
        match self.status {
            TenantStatus::Active => {}
            TenantStatus::Suspended => return VerifyCode::TenantSuspended,
            TenantStatus::Deleted => return VerifyCode::TenantDeleted,
        }
        match &self.allowlist {
            Some(nets) if !ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))) => {
                VerifyCode::IpNotAllowed
            }
            _ => VerifyCode::Valid,
        }
    }
}

impl KeyCache {
    /// Verifies `input` at `now`. On `VALID`, stamps the key's `last_used`.
    pub fn verify(&self, hasher: &KeyHasher, input: VerifyInput<'_>, now: OffsetDateTime) -> Verdict {
        self.judge(hasher, input, now, true)
    }

    /// The credential part of [`KeyCache::verify`] alone: secret, key status, tenant state and
    /// networks, sub-account, expiry and model — without counting the request against the
    /// key's rate or reading its quota. What authenticating a caller of the control API
    /// needs (a gateway's own key is not spent by every verify it asks for).
    pub fn admit(&self, hasher: &KeyHasher, input: VerifyInput<'_>, now: OffsetDateTime) -> Verdict {
        self.judge(hasher, input, now, false)
    }

    /// Counts one request of `key` against its per-minute limits (the control API's rate for
    /// a tenant key), leasing from the fleet's count when this instance's share is used up;
    /// false when over either.
    pub async fn take_request(&self, key: &CachedKey, now: OffsetDateTime) -> bool {
        for _ in 0..4 {
            match self.within_rate(key, now) {
                Rate::Within => return true,
                Rate::Over => return false,
                Rate::NeedsLease(rpm) => self.fill_lease(key, rpm, now).await,
            }
        }
        false
    }

    /// [`KeyCache::verify`], leasing from the fleet's count of the key's requests per minute
    /// when this instance's share is used up (then verifying again): what every verifier
    /// calls on the request path (`/v1/keys/verify`, the gateway).
    pub async fn verify_counted(
        &self,
        hasher: &KeyHasher,
        input: VerifyInput<'_>,
        now: OffsetDateTime,
    ) -> Verdict {
        let mut verdict = self.verify(hasher, input, now);
        // Each fill grants, finds the window spent or counts alone: a second verify decides.
        for _ in 0..4 {
            let (Some(rpm), Some(key)) = (verdict.lease_needed, verdict.key.as_ref()) else { break };
            self.fill_lease(key, rpm, now).await;
            verdict = self.verify(hasher, input, now);
        }
        verdict
    }

    async fn fill_lease(&self, key: &CachedKey, rpm: u32, now: OffsetDateTime) {
        let window = now.unix_timestamp().div_euclid(60) * 60;
        let scope = format!("key:{}", key.public_id);
        self.leaser.fill(&key.usage.requests, &scope, u64::from(rpm), window).await;
    }

    /// Whether the tenant `tenant_id` admits a caller from `ip` now: its state and its IP
    /// allowlist — the same check a tenant key passes in [`KeyCache::verify`], for every
    /// other principal of the tenant (people, open streams).
    pub fn tenant_admits(&self, tenant_id: &str, ip: Option<IpAddr>) -> VerifyCode {
        match self.tenants.get(tenant_id) {
            Some(gate) => gate.admits(ip),
            None => VerifyCode::TenantDeleted,
        }
    }

    fn judge(
        &self,
        hasher: &KeyHasher,
        input: VerifyInput<'_>,
        now: OffsetDateTime,
        account: bool,
    ) -> Verdict {
        let verdict = |code, key| Verdict { code, key, sub_account: None, quota: None, lease_needed: None };
        let Ok(public_id) = key_format::parse(input.key) else { return verdict(VerifyCode::Malformed, None) };
        let Some(key) = self.get(public_id) else { return verdict(VerifyCode::NotFound, None) };
        let presented = hasher.hash_bytes(input.key);
        let current: bool = presented.ct_eq(&key.hash).into();
        let previous =
            key.previous.is_some_and(|(hash, until)| now < until && bool::from(presented.ct_eq(&hash)));
        if !current && !previous {
            return verdict(VerifyCode::NotFound, None);
        }
        let sub_account = key.sub_account_id.as_deref().and_then(|id| self.sub_account(id));
        // One lookup of the tenant for its status, allowlist and quota.
        let tenant = key.tenant_id.as_deref().and_then(|t| self.tenants.get(t));
        let mut code = match key.status {
            KeyStatus::Revoked => VerifyCode::Revoked,
            KeyStatus::Disabled => VerifyCode::Disabled,
            KeyStatus::Active => {
                Self::check_active(&key, tenant.as_deref(), sub_account.as_deref(), input, now)
            }
        };
        if !account {
            drop(tenant);
            if code == VerifyCode::Valid {
                key.last_used.store(now.unix_timestamp(), Ordering::Relaxed);
            }
            return Verdict { code, key: Some(key), sub_account, quota: None, lease_needed: None };
        }
        let quota = self.quota_of(&key, tenant.as_deref(), sub_account.as_deref(), now);
        // Release the tenant's shard before counting the request.
        drop(tenant);
        if code == VerifyCode::Valid && quota.is_some_and(|q| q.remaining == 0) {
            code = VerifyCode::QuotaExceeded;
        }
        let mut lease_needed = None;
        if code == VerifyCode::Valid {
            match self.within_rate(&key, now) {
                Rate::Within => {}
                Rate::Over => code = VerifyCode::RateLimited,
                Rate::NeedsLease(rpm) => {
                    code = VerifyCode::RateLimited;
                    lease_needed = Some(rpm);
                }
            }
        }
        if code == VerifyCode::Valid {
            key.last_used.store(now.unix_timestamp(), Ordering::Relaxed);
        }
        Verdict { code, key: Some(key), sub_account, quota, lease_needed }
    }

    /// Every quota that binds `key` now — its own, its sub-account's, its tenant's — each with
    /// the id of its owner (the key's public id, the sub-account id, the tenant id): what a
    /// gateway reserves against before it forwards a request.
    pub fn quotas(&self, key: &CachedKey, now: OffsetDateTime) -> Vec<(String, QuotaStatus)> {
        let sub_account = key.sub_account_id.as_deref().and_then(|id| self.sub_account(id));
        let tenant = key.tenant_id.as_deref().and_then(|t| self.tenants.get(t));
        let status = |scope, limit: i64, period: Option<QuotaPeriod>, totals: &TokenTotals| {
            let used = totals.used(period, now);
            QuotaStatus { scope, limit, used, remaining: (limit - used).max(0), period }
        };
        let mut out = Vec::with_capacity(3);
        if let Some(limit) = key.quota_limit {
            out.push((
                key.public_id.to_string(),
                status(QuotaScope::Key, limit, key.quota_period, &key.usage.tokens),
            ));
        }
        if let Some(sub) = sub_account.as_deref() {
            if let Some(limit) = sub.quota_limit {
                let totals = self.sub_account_usage(&sub.sub_account_id);
                out.push((
                    sub.sub_account_id.clone(),
                    status(QuotaScope::SubAccount, limit, sub.quota_period, &totals),
                ));
            }
        }
        if let (Some(gate), Some(tenant_id)) = (tenant.as_deref(), key.tenant_id.as_deref()) {
            if let Some(limit) = gate.quota {
                out.push((
                    tenant_id.to_string(),
                    status(QuotaScope::Tenant, limit, Some(QuotaPeriod::Month), &gate.tokens),
                ));
            }
        }
        out
    }

    /// The tightest (least remaining) of the key's, its sub-account's and its tenant's quotas.
    fn quota_of(
        &self,
        key: &CachedKey,
        tenant: Option<&TenantGate>,
        sub_account: Option<&SubAccountRecord>,
        now: OffsetDateTime,
    ) -> Option<QuotaStatus> {
        let status = |scope, limit: i64, period: Option<QuotaPeriod>, totals: &TokenTotals| {
            let used = totals.used(period, now);
            QuotaStatus { scope, limit, used, remaining: (limit - used).max(0), period }
        };
        let own =
            key.quota_limit.map(|limit| status(QuotaScope::Key, limit, key.quota_period, &key.usage.tokens));
        let parent = sub_account.and_then(|sub| {
            let limit = sub.quota_limit?;
            let totals = self.sub_account_usage(&sub.sub_account_id);
            Some(status(QuotaScope::SubAccount, limit, sub.quota_period, &totals))
        });
        let tenant = tenant.and_then(|gate| {
            let limit = gate.quota?;
            Some(status(QuotaScope::Tenant, limit, Some(QuotaPeriod::Month), &gate.tokens))
        });
        // The tightest: least remaining (the narrower scope on a tie).
        [own, parent, tenant]
            .into_iter()
            .flatten()
            .reduce(|a, b| if b.remaining < a.remaining { b } else { a })
    }

    /// Counts the request against the key's per-minute limits; false when over either.
    fn within_rate(&self, key: &CachedKey, now: OffsetDateTime) -> Rate {
        let Some(rate) = key.rate_limit else { return Rate::Within };
        if rate.tokens_per_minute.is_some() {
            self.watch_minute_tokens(key, now);
        }
        if rate.tokens_per_minute.is_some_and(|tpm| key.usage.minute_tokens(now) >= tpm) {
            return Rate::Over;
        }
        let Some(rpm) = rate.requests_per_minute else { return Rate::Within };
        let window = now.unix_timestamp().div_euclid(60) * 60;
        match key.usage.requests.try_take(u64::from(rpm), window) {
            Take::Admitted { .. } => Rate::Within,
            Take::Refused => Rate::Over,
            Take::NeedsLease => Rate::NeedsLease(rpm),
        }
    }

    fn check_active(
        key: &CachedKey,
        tenant: Option<&TenantGate>,
        sub_account: Option<&SubAccountRecord>,
        input: VerifyInput<'_>,
        now: OffsetDateTime,
    ) -> VerifyCode {
        if key.tenant_id.is_some() {
            let Some(gate) = tenant else { return VerifyCode::TenantDeleted };
            // The tenant's state and allowlist apply in addition to the key's own networks.
            let code = gate.admits(input.ip);
            if code != VerifyCode::Valid {
                return code;
            }
        }
        if key.sub_account_id.is_some() {
            match sub_account.map(|s| s.status) {
                Some(SubAccountStatus::Active) => {}
                Some(SubAccountStatus::Disabled) => return VerifyCode::SubAccountDisabled,
                Some(SubAccountStatus::Deleted) | None => return VerifyCode::SubAccountDeleted,
            }
        }
        if key.expires_at.is_some_and(|at| now >= at) {
            return VerifyCode::Expired;
        }
        if !key.nets.is_empty() && !input.ip.is_some_and(|ip| key.nets.iter().any(|n| n.contains(&ip))) {
            return VerifyCode::IpNotAllowed;
        }
        let models = &key.allowed_models;
        if let Some(model) = input.model {
            if !models.is_empty() && !models.iter().any(|m| &**m == model) {
                return VerifyCode::ModelNotAllowed;
            }
        }
        VerifyCode::Valid
    }
}

/// Merges tags: client tags outside the reserved namespace, then key-bound tags on top, each
/// also under the reserved prefix.
pub fn merge_tags<'a>(
    client: Option<&'a BTreeMap<String, String>>,
    bound: &'a [(Box<str>, Box<str>)],
) -> BTreeMap<Cow<'a, str>, &'a str> {
    let mut tags: BTreeMap<Cow<'a, str>, &'a str> = client
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with(RESERVED_TAG_PREFIX))
        .map(|(k, v)| (Cow::Borrowed(k.as_str()), v.as_str()))
        .collect();
    for (k, v) in bound {
        tags.insert(Cow::Borrowed(k), v);
        tags.insert(Cow::Owned([RESERVED_TAG_PREFIX, k].concat()), v);
    }
    tags
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;
    use time::Duration;
    use tokenhub_aggregates::api_key::{KeyRole, KeySettings};
    use tokenhub_projections::api_keys::KeyRecord;

    use super::*;
    use crate::auth::key_format::{self, GeneratedKey};

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn hasher() -> KeyHasher {
        KeyHasher::new(b"unit-test-pepper-unit-test-pepper")
    }

    fn record(key: &GeneratedKey, settings: KeySettings) -> KeyRecord {
        KeyRecord {
            public_id: key.public_id.clone(),
            tenant_id: Some("ten_A".into()),
            sub_account_id: None,
            role: KeyRole::Data,
            name: "k".into(),
            status: KeyStatus::Active,
            secret_hash: hasher().hash_hex(&key.full),
            previous_secret_hash: None,
            previous_valid_until: None,
            settings,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn cache_with(record: KeyRecord) -> KeyCache {
        let cache = KeyCache::default();
        cache.put_tenant("ten_A".into(), TenantStatus::Active);
        cache.put_key(record);
        cache
    }

    fn check(
        cache: &KeyCache,
        key: &str,
        ip: Option<&str>,
        model: Option<&str>,
        now: OffsetDateTime,
    ) -> VerifyCode {
        let ip = ip.and_then(|i| i.parse().ok());
        cache.verify(&hasher(), VerifyInput { key, ip, model }, now).code
    }

    #[test]
    fn valid_key_is_valid_and_stamped() {
        let key = key_format::generate();
        let cache = cache_with(record(&key, KeySettings::default()));
        assert_eq!(check(&cache, &key.full, None, None, NOW), VerifyCode::Valid);
        let stamped = cache.get(&key.public_id).map(|k| k.last_used.load(Ordering::Relaxed));
        assert_eq!(stamped, Some(NOW.unix_timestamp()));
    }

    #[test]
    fn malformed_unknown_and_wrong_secret() {
        let key = key_format::generate();
        let cache = cache_with(record(&key, KeySettings::default()));
        assert_eq!(check(&cache, "thk_nope", None, None, NOW), VerifyCode::Malformed);
        assert_eq!(check(&cache, &key_format::generate().full, None, None, NOW), VerifyCode::NotFound);
        let same_id_other_secret = key_format::generate_for(&key.public_id);
        assert_eq!(check(&cache, &same_id_other_secret.full, None, None, NOW), VerifyCode::NotFound);
    }

    #[test]
    fn status_codes() {
        let key = key_format::generate();
        for (status, code) in
            [(KeyStatus::Disabled, VerifyCode::Disabled), (KeyStatus::Revoked, VerifyCode::Revoked)]
        {
            let cache = cache_with(KeyRecord { status, ..record(&key, KeySettings::default()) });
            assert_eq!(check(&cache, &key.full, None, None, NOW), code);
        }
        let cache = cache_with(record(&key, KeySettings::default()));
        cache.put_tenant("ten_A".into(), TenantStatus::Suspended);
        assert_eq!(check(&cache, &key.full, None, None, NOW), VerifyCode::TenantSuspended);
        cache.put_tenant("ten_A".into(), TenantStatus::Deleted);
        assert_eq!(check(&cache, &key.full, None, None, NOW), VerifyCode::TenantDeleted);
    }

    #[test]
    fn expiry_boundary_is_exclusive() {
        let key = key_format::generate();
        let cache = cache_with(record(&key, KeySettings { expires_at: Some(NOW), ..Default::default() }));
        assert_eq!(check(&cache, &key.full, None, None, NOW - Duration::nanoseconds(1)), VerifyCode::Valid);
        assert_eq!(check(&cache, &key.full, None, None, NOW), VerifyCode::Expired);
        assert_eq!(check(&cache, &key.full, None, None, NOW + Duration::seconds(1)), VerifyCode::Expired);
    }

    #[test]
    fn ipv4_and_ipv6_cidr_edges() {
        let key = key_format::generate();
        let ips = vec!["10.0.0.0/8".into(), "192.168.1.7/32".into(), "2001:db8::/32".into()];
        let cache = cache_with(record(&key, KeySettings { allowed_ips: ips, ..Default::default() }));
        for (ip, code) in [
            ("10.0.0.0", VerifyCode::Valid),
            ("10.255.255.255", VerifyCode::Valid),
            ("9.255.255.255", VerifyCode::IpNotAllowed),
            ("11.0.0.0", VerifyCode::IpNotAllowed),
            ("192.168.1.7", VerifyCode::Valid),
            ("192.168.1.8", VerifyCode::IpNotAllowed),
            ("2001:db8::", VerifyCode::Valid),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", VerifyCode::Valid),
            ("2001:db9::", VerifyCode::IpNotAllowed),
            ("::ffff:10.0.0.1", VerifyCode::IpNotAllowed),
        ] {
            assert_eq!(check(&cache, &key.full, Some(ip), None, NOW), code, "{ip}");
        }
        assert_eq!(
            check(&cache, &key.full, None, None, NOW),
            VerifyCode::IpNotAllowed,
            "no IP given: refused"
        );
    }

    #[test]
    fn model_list() {
        let key = key_format::generate();
        let models = vec!["gpt-4o".into()];
        let cache = cache_with(record(&key, KeySettings { allowed_models: models, ..Default::default() }));
        assert_eq!(check(&cache, &key.full, None, Some("gpt-4o"), NOW), VerifyCode::Valid);
        assert_eq!(check(&cache, &key.full, None, Some("gpt-4o-mini"), NOW), VerifyCode::ModelNotAllowed);
        assert_eq!(
            check(&cache, &key.full, None, None, NOW),
            VerifyCode::Valid,
            "no model given: not checked"
        );
        let open = cache_with(record(&key, KeySettings::default()));
        assert_eq!(check(&open, &key.full, None, Some("anything"), NOW), VerifyCode::Valid);
    }

    #[test]
    fn previous_secret_works_only_inside_its_grace_period() {
        let old = key_format::generate();
        let new = key_format::generate_for(&old.public_id);
        let rotated = KeyRecord {
            secret_hash: hasher().hash_hex(&new.full),
            previous_secret_hash: Some(hasher().hash_hex(&old.full)),
            previous_valid_until: Some(NOW),
            ..record(&old, KeySettings::default())
        };
        let cache = cache_with(rotated);
        assert_eq!(check(&cache, &new.full, None, None, NOW), VerifyCode::Valid);
        assert_eq!(check(&cache, &old.full, None, None, NOW - Duration::seconds(1)), VerifyCode::Valid);
        assert_eq!(check(&cache, &old.full, None, None, NOW), VerifyCode::NotFound);
    }

    #[test]
    fn sub_account_status_and_effective_permissions() {
        let key = key_format::generate();
        let with_sub = KeyRecord {
            sub_account_id: Some("sub_x".into()),
            ..record(
                &key,
                KeySettings { permissions: vec!["chat".into(), "images".into()], ..Default::default() },
            )
        };
        let cache = cache_with(with_sub);
        assert_eq!(
            check(&cache, &key.full, None, None, NOW),
            VerifyCode::SubAccountDeleted,
            "unknown sub-account"
        );
        let sub = |status, permissions: &[&str]| SubAccountRecord {
            sub_account_id: "sub_x".into(),
            tenant_id: "ten_A".into(),
            status,
            role: "viewer".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            quota_limit: None,
            quota_period: None,
        };
        cache.put_sub_account(sub(SubAccountStatus::Disabled, &["chat"]));
        assert_eq!(check(&cache, &key.full, None, None, NOW), VerifyCode::SubAccountDisabled);
        cache.put_sub_account(sub(SubAccountStatus::Active, &["chat"]));
        let verdict = cache.verify(&hasher(), VerifyInput { key: &key.full, ip: None, model: None }, NOW);
        assert_eq!(verdict.code, VerifyCode::Valid);
        assert_eq!(verdict.effective_permissions(), vec!["chat".to_string()], "shrunk with the sub-account");
    }

    #[test]
    fn every_code_is_listed_at_its_index() {
        for (i, code) in VerifyCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{}", code.as_str());
        }
    }

    #[test]
    fn key_bound_tags_win_and_reserved_client_tags_are_dropped() {
        let bound: Vec<(Box<str>, Box<str>)> = vec![("customer_id".into(), "acme-corp".into())];
        let client = BTreeMap::from([
            ("customer_id".to_string(), "evil".to_string()),
            ("tokenhub.customer_id".to_string(), "evil".to_string()),
            ("tokenhub.other".to_string(), "evil".to_string()),
            ("session".to_string(), "s1".to_string()),
        ]);
        let merged: BTreeMap<String, String> = merge_tags(Some(&client), &bound)
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.to_string()))
            .collect();
        assert_eq!(
            merged,
            BTreeMap::from([
                ("customer_id".to_string(), "acme-corp".to_string()),
                ("session".to_string(), "s1".to_string()),
                ("tokenhub.customer_id".to_string(), "acme-corp".to_string()),
            ])
        );
    }
}
