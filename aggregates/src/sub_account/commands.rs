//! What callers may ask of a sub-account. The tenant's quota comes in with the command (read
//! by the server from the tenant), so the rule "a sub-account's quota ≤ the tenant's" is
//! decided here.

use time::OffsetDateTime;

use super::events::SubAccountChanges;

/// A command on the `SubAccount` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum SubAccountCommand {
    /// Create it.
    Create {
        /// `sub_…`.
        sub_account_id: String,
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// Role name.
        role: String,
        /// LLM-token quota.
        quota_limit: Option<i64>,
        /// Its window; `None` = lifetime.
        quota_period: Option<crate::api_key::QuotaPeriod>,
        /// Permissions.
        permissions: Vec<String>,
        /// The tenant's monthly token quota, when it has one.
        tenant_quota: Option<u64>,
        /// When.
        at: OffsetDateTime,
    },
    /// Change name, role, quota or permissions.
    Update {
        /// The changes.
        changes: SubAccountChanges,
        /// The tenant's monthly token quota, when it has one.
        tenant_quota: Option<u64>,
        /// When.
        at: OffsetDateTime,
    },
    /// Its keys stop verifying (`SUB_ACCOUNT_DISABLED`) until enabled.
    Disable {
        /// When.
        at: OffsetDateTime,
    },
    /// Undo a disable.
    Enable {
        /// When.
        at: OffsetDateTime,
    },
    /// Terminal; its keys stop verifying.
    Delete {
        /// When.
        at: OffsetDateTime,
    },
}
