//! What callers may ask of a tenant. Times and ids are supplied by the caller (the server),
//! keeping the aggregate deterministic.

use time::OffsetDateTime;

use super::limits::{Plan, TenantLimits};

/// A command on the `Tenant` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    /// Create the tenant (its first tenant-admin key is an `ApiKey` committed with it).
    Create {
        /// The new id, `ten_…`.
        tenant_id: String,
        /// Display name.
        name: String,
        /// Plan.
        plan: Plan,
        /// Region the tenant's traffic is served from.
        region: String,
        /// Explicit limit overrides.
        limits: TenantLimits,
        /// When.
        at: OffsetDateTime,
    },
    /// Change name, plan or limit overrides; at least one must be given.
    Update {
        /// New name.
        name: Option<String>,
        /// New plan.
        plan: Option<Plan>,
        /// Limit overrides to set (merged into the current ones).
        limits: Option<TenantLimits>,
        /// When.
        at: OffsetDateTime,
    },
    /// Stop the tenant's keys from working.
    Suspend {
        /// Free text for the audit log.
        reason: Option<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Undo a suspension.
    Reactivate {
        /// When.
        at: OffsetDateTime,
    },
    /// Change the RBAC settings; at least one field. The server checks that the default role
    /// exists.
    ConfigureRbac {
        /// Turn RBAC on or off.
        enabled: Option<bool>,
        /// New default role.
        default_role: Option<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Turn the tenant's IP allowlist on or off and set its networks.
    SetIpAllowlist {
        /// On or off.
        enabled: bool,
        /// Networks (CIDR or address, IPv4 or IPv6).
        allowed_ips: Vec<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Stop delivering webhooks to `url` (the delivery worker, after days of failures).
    DisableWebhook {
        /// The endpoint's URL.
        url: String,
        /// Why.
        reason: String,
        /// When.
        at: OffsetDateTime,
    },
    /// Resume delivering webhooks to `url`.
    EnableWebhook {
        /// The endpoint's URL.
        url: String,
        /// When.
        at: OffsetDateTime,
    },
    /// Require (or stop requiring) TOTP of the tenant's people before they act.
    SetTwoFactorPolicy {
        /// On or off.
        require_2fa: bool,
        /// When.
        at: OffsetDateTime,
    },
    /// Save a new version of the tenant configuration (validated here).
    SaveConfig {
        /// The document.
        config: serde_json::Value,
        /// Names of the tenant's existing secrets (for `secret_ref` checks).
        secrets: Vec<String>,
        /// The operator lets webhooks target internal addresses (`WEBHOOK_ALLOW_PRIVATE_TARGETS`).
        allow_private_webhooks: bool,
        /// When.
        at: OffsetDateTime,
    },
    /// Replace the tenant's resource limits.
    SetResourceLimits {
        /// The whole set.
        limits: Vec<super::resource_limits::ResourceLimit>,
        /// When.
        at: OffsetDateTime,
    },
    /// Terminal: the tenant and its keys stop working for good.
    Delete {
        /// When.
        at: OffsetDateTime,
    },
}
