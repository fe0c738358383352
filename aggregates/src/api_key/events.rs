//! What happened to an API key. A permanent contract (wire types `api_key.<past>`).

use std::collections::BTreeMap;

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::issuer::DisabledBy;
use super::settings::{KeyOwner, KeyRole, KeySettings, QuotaPeriod, RateLimit};

fn is_admin(by: &DisabledBy) -> bool {
    *by == DisabledBy::Admin
}
use crate::serde_util::double_option;

/// The fields an update changes; `None` = unchanged. For nullable fields, `Some(None)` clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct KeyChanges {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New quota (or cleared).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
    pub quota_limit: Option<Option<i64>>,
    /// New quota period (or cleared: lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
    pub quota_period: Option<Option<QuotaPeriod>>,
    /// New expiry (or cleared).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_opt_time")]
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// New allowed networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    /// New allowed models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// New permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// New key-bound tags (replaces all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// New rate limit (or cleared).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
    pub rate_limit: Option<Option<RateLimit>>,
}

impl KeyChanges {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == KeyChanges::default()
    }

    /// `settings` with these changes applied.
    pub fn apply_to(&self, settings: &KeySettings) -> KeySettings {
        let mut s = settings.clone();
        if let Some(q) = self.quota_limit {
            s.quota_limit = q;
        }
        if let Some(p) = self.quota_period {
            s.quota_period = p;
        }
        if let Some(e) = self.expires_at {
            s.expires_at = e;
        }
        if let Some(ips) = &self.allowed_ips {
            s.allowed_ips = ips.clone();
        }
        if let Some(m) = &self.allowed_models {
            s.allowed_models = m.clone();
        }
        if let Some(p) = &self.permissions {
            s.permissions = p.clone();
        }
        if let Some(t) = &self.tags {
            s.tags = t.clone();
        }
        if let Some(r) = self.rate_limit {
            s.rate_limit = r;
        }
        s
    }
}

mod opt_opt_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(v: &Option<Option<OffsetDateTime>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(Some(t)) => time::serde::rfc3339::serialize(t, s),
            _ => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "time::serde::rfc3339::option")] Option<OffsetDateTime>);
        Wrap::deserialize(d).map(|Wrap(t)| Some(t))
    }
}

/// An event of the `ApiKey` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum ApiKeyEvent {
    /// `api_key.issued`
    #[serde(rename = "api_key.issued")]
    Issued {
        /// Public id.
        public_id: String,
        /// Owner.
        owner: KeyOwner,
        /// Role.
        role: KeyRole,
        /// Name.
        name: String,
        /// Hex HMAC of the full key. Never exported.
        #[schema(ignore)]
        secret_hash: String,
        /// Settings, normalised.
        settings: KeySettings,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
    },
    /// `api_key.updated`
    #[serde(rename = "api_key.updated")]
    Updated {
        /// What changed (normalised).
        changes: KeyChanges,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    /// `api_key.disabled`
    #[serde(rename = "api_key.disabled")]
    Disabled {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        disabled_at: OffsetDateTime,
        /// Who: a sub-account manager may not re-enable what an admin disabled. Absent in
        /// events recorded before it was kept (read as `admin`, the safe side).
        #[serde(default, skip_serializing_if = "is_admin")]
        by: DisabledBy,
    },
    /// `api_key.enabled`
    #[serde(rename = "api_key.enabled")]
    Enabled {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        enabled_at: OffsetDateTime,
    },
    /// `api_key.rotated`
    #[serde(rename = "api_key.rotated")]
    Rotated {
        /// Hash of the new key. Never exported.
        #[schema(ignore)]
        secret_hash: String,
        /// Hash of the replaced key, valid until `previous_valid_until`. Never exported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(ignore)]
        previous_secret_hash: Option<String>,
        /// End of the grace period (none: the old key stopped at once).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
        previous_valid_until: Option<OffsetDateTime>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        rotated_at: OffsetDateTime,
    },
    /// `api_key.revoked`
    #[serde(rename = "api_key.revoked")]
    Revoked {
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        revoked_at: OffsetDateTime,
    },
}

impl DomainEvent for ApiKeyEvent {
    fn event_type(&self) -> String {
        match self {
            ApiKeyEvent::Issued { .. } => "api_key.issued",
            ApiKeyEvent::Updated { .. } => "api_key.updated",
            ApiKeyEvent::Disabled { .. } => "api_key.disabled",
            ApiKeyEvent::Enabled { .. } => "api_key.enabled",
            ApiKeyEvent::Rotated { .. } => "api_key.rotated",
            ApiKeyEvent::Revoked { .. } => "api_key.revoked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
