//! What happened to a sub-account (wire types `sub_account.<past>`).

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api_key::QuotaPeriod;
use crate::serde_util::double_option;

/// Fields an update changes; `None` = unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct SubAccountChanges {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New quota, or `Some(None)` to clear.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
    pub quota_limit: Option<Option<i64>>,
    /// New quota period, or `Some(None)` for a lifetime quota.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
    pub quota_period: Option<Option<QuotaPeriod>>,
    /// New permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// An event of the `SubAccount` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum SubAccountEvent {
    /// `sub_account.created`
    #[serde(rename = "sub_account.created")]
    Created {
        /// Id.
        sub_account_id: String,
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// Role.
        role: String,
        /// Quota.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota_limit: Option<i64>,
        /// The quota's window; absent = lifetime.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota_period: Option<QuotaPeriod>,
        /// Permissions (sorted, unique).
        permissions: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    /// `sub_account.updated`
    #[serde(rename = "sub_account.updated")]
    Updated {
        /// Changes.
        changes: SubAccountChanges,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    /// `sub_account.disabled`
    #[serde(rename = "sub_account.disabled")]
    Disabled {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        disabled_at: OffsetDateTime,
    },
    /// `sub_account.enabled`
    #[serde(rename = "sub_account.enabled")]
    Enabled {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        enabled_at: OffsetDateTime,
    },
    /// `sub_account.deleted`
    #[serde(rename = "sub_account.deleted")]
    Deleted {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
    },
}

impl DomainEvent for SubAccountEvent {
    fn event_type(&self) -> String {
        match self {
            SubAccountEvent::Created { .. } => "sub_account.created",
            SubAccountEvent::Updated { .. } => "sub_account.updated",
            SubAccountEvent::Disabled { .. } => "sub_account.disabled",
            SubAccountEvent::Enabled { .. } => "sub_account.enabled",
            SubAccountEvent::Deleted { .. } => "sub_account.deleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
