//! What happened to a tenant. A permanent contract: a shipped event is never changed; a new
//! shape is a new `event_version` with an upcaster.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::limits::{Plan, TenantLimits};

/// An event of the `Tenant` aggregate. The wire type is `tenant.<past participle>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum TenantEvent {
    /// `tenant.created`
    #[serde(rename = "tenant.created")]
    Created {
        /// Id.
        tenant_id: String,
        /// Display name.
        name: String,
        /// Plan.
        plan: Plan,
        /// Region.
        region: String,
        /// Explicit limit overrides.
        limits: TenantLimits,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    /// `tenant.updated`: only the fields that changed are set.
    #[serde(rename = "tenant.updated")]
    Updated {
        /// New name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// New plan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<Plan>,
        /// The full set of limit overrides after the update.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<TenantLimits>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    /// `tenant.suspended`
    #[serde(rename = "tenant.suspended")]
    Suspended {
        /// Free text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        suspended_at: OffsetDateTime,
    },
    /// `tenant.reactivated`
    #[serde(rename = "tenant.reactivated")]
    Reactivated {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        reactivated_at: OffsetDateTime,
    },
    /// `tenant.rbac_configured`: the RBAC settings after the change.
    #[serde(rename = "tenant.rbac_configured")]
    RbacConfigured {
        /// RBAC on or off.
        enabled: bool,
        /// Default role of new sub-accounts and end-users.
        default_role: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        configured_at: OffsetDateTime,
    },
    /// `tenant.ip_allowlist_set`: the allowlist after the change.
    #[serde(rename = "tenant.ip_allowlist_set")]
    IpAllowlistSet {
        /// On or off.
        enabled: bool,
        /// Canonical networks.
        allowed_ips: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
    /// `tenant.two_factor_policy_set`: whether the tenant's people must use TOTP.
    #[serde(rename = "tenant.two_factor_policy_set")]
    TwoFactorPolicySet {
        /// On or off.
        require_2fa: bool,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
    /// `tenant.config_saved`: a new version of the configuration.
    #[serde(rename = "tenant.config_saved")]
    ConfigSaved {
        /// Version, from 1.
        version: i64,
        /// The document. (The event store leaves it out when it loads the tenant aggregate,
        /// whose state needs only the version; hence the default.)
        #[serde(default)]
        config: serde_json::Value,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        saved_at: OffsetDateTime,
    },
    /// `tenant.resource_limits_set`: the whole set of resource limits after the change.
    #[serde(rename = "tenant.resource_limits_set")]
    ResourceLimitsSet {
        /// The limits.
        limits: Vec<super::resource_limits::ResourceLimit>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
    /// `tenant.webhook_disabled`: deliveries to this endpoint stop (it failed everything for
    /// too long, or an operator said so) until `tenant.webhook_enabled`.
    #[serde(rename = "tenant.webhook_disabled")]
    WebhookDisabled {
        /// The endpoint's URL, as configured.
        url: String,
        /// Why.
        reason: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        disabled_at: OffsetDateTime,
    },
    /// `tenant.webhook_enabled`: deliveries to a disabled endpoint resume.
    #[serde(rename = "tenant.webhook_enabled")]
    WebhookEnabled {
        /// The endpoint's URL, as configured.
        url: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        enabled_at: OffsetDateTime,
    },
    /// `tenant.deleted`
    #[serde(rename = "tenant.deleted")]
    Deleted {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            TenantEvent::Created { .. } => "tenant.created",
            TenantEvent::Updated { .. } => "tenant.updated",
            TenantEvent::Suspended { .. } => "tenant.suspended",
            TenantEvent::Reactivated { .. } => "tenant.reactivated",
            TenantEvent::RbacConfigured { .. } => "tenant.rbac_configured",
            TenantEvent::IpAllowlistSet { .. } => "tenant.ip_allowlist_set",
            TenantEvent::TwoFactorPolicySet { .. } => "tenant.two_factor_policy_set",
            TenantEvent::ConfigSaved { .. } => "tenant.config_saved",
            TenantEvent::ResourceLimitsSet { .. } => "tenant.resource_limits_set",
            TenantEvent::WebhookDisabled { .. } => "tenant.webhook_disabled",
            TenantEvent::WebhookEnabled { .. } => "tenant.webhook_enabled",
            TenantEvent::Deleted { .. } => "tenant.deleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
