//! The verification decision: pure, in memory, no IO.
//!
//! Order of checks: format → public id → secret (current, or the previous one inside its
//! rotation grace period) → key status → tenant status → expiry → client IP → model.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::KeyStatus;
use tokenhub_aggregates::tenant::TenantStatus;

use super::{CachedKey, KeyCache};
use crate::auth::hashing::KeyHasher;
use crate::auth::key_format;

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
}

impl VerifyCode {
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
}

impl KeyCache {
    /// Verifies `input` at `now`. On `VALID`, stamps the key's `last_used`.
    pub fn verify(&self, hasher: &KeyHasher, input: VerifyInput<'_>, now: OffsetDateTime) -> Verdict {
        let verdict = |code, key| Verdict { code, key };
        let Ok(public_id) = key_format::parse(input.key) else { return verdict(VerifyCode::Malformed, None) };
        let Some(key) = self.get(public_id) else { return verdict(VerifyCode::NotFound, None) };
        let presented = hasher.hash_bytes(input.key);
        let current: bool = presented.ct_eq(&key.hash).into();
        let previous =
            key.previous.is_some_and(|(hash, until)| now < until && bool::from(presented.ct_eq(&hash)));
        if !current && !previous {
            return verdict(VerifyCode::NotFound, None);
        }
        let code = match key.record.status {
            KeyStatus::Revoked => VerifyCode::Revoked,
            KeyStatus::Disabled => VerifyCode::Disabled,
            KeyStatus::Active => self.check_active(&key, input, now),
        };
        if code == VerifyCode::Valid {
            key.last_used.store(now.unix_timestamp(), Ordering::Relaxed);
        }
        verdict(code, Some(key))
    }

    fn check_active(&self, key: &CachedKey, input: VerifyInput<'_>, now: OffsetDateTime) -> VerifyCode {
        if let Some(tenant) = &key.record.tenant_id {
            match self.tenant_status(tenant) {
                Some(TenantStatus::Active) => {}
                Some(TenantStatus::Suspended) => return VerifyCode::TenantSuspended,
                Some(TenantStatus::Deleted) | None => return VerifyCode::TenantDeleted,
            }
        }
        if key.record.settings.expires_at.is_some_and(|at| now >= at) {
            return VerifyCode::Expired;
        }
        if !key.nets.is_empty() && !input.ip.is_some_and(|ip| key.nets.iter().any(|n| n.contains(&ip))) {
            return VerifyCode::IpNotAllowed;
        }
        let models = &key.record.settings.allowed_models;
        if let Some(model) = input.model {
            if !models.is_empty() && !models.iter().any(|m| m == model) {
                return VerifyCode::ModelNotAllowed;
            }
        }
        VerifyCode::Valid
    }
}
