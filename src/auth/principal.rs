//! Who is calling: the [`Principal`] a request authenticated as (`src/http/authenticate.rs`
//! resolves it from the headers).

use std::sync::Arc;

use tokenhub_aggregates::api_key::KeyRole;

use crate::auth::denied::Denied;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The master key.
    SuperAdmin,
    /// A tenant key.
    TenantKey {
        /// The key's tenant.
        tenant_id: String,
        /// The key's public id.
        public_id: String,
        /// Its role.
        role: KeyRole,
        /// Its sub-account, for a sub-account key.
        sub_account_id: Option<String>,
        /// Its effective permissions (narrowed to its sub-account's).
        permissions: Vec<String>,
    },
    /// A platform key (gateway, finance admin, auditor).
    PlatformKey {
        /// The key's public id.
        public_id: String,
        /// Its role.
        role: KeyRole,
        /// The tenants it may act for (empty = every tenant), shared with the key cache.
        tenant_ids: Arc<[Box<str>]>,
    },
}

impl Principal {
    /// Checks that this principal may act for `tenant_id`: a platform key bound to tenants
    /// only for those (403 `tenant_not_allowed`).
    pub fn may_act_for(&self, tenant_id: &str) -> Result<(), Denied> {
        match self {
            Principal::PlatformKey { tenant_ids, .. }
                if !tenant_ids.is_empty() && !tenant_ids.iter().any(|t| &**t == tenant_id) =>
            {
                Err(Denied::TenantNotAllowed)
            }
            _ => Ok(()),
        }
    }

    /// (kind, id) recorded as the actor of events.
    pub fn actor(&self) -> (&'static str, String) {
        match self {
            Principal::SuperAdmin => ("super_admin", "master".to_string()),
            Principal::TenantKey { public_id, .. } => ("api_key", public_id.clone()),
            Principal::PlatformKey { public_id, .. } => ("platform_key", public_id.clone()),
        }
    }
}
