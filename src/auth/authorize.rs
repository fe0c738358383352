//! The one authorization decision, pure: [`authorize`] decides from the principal and the
//! [`Action`] alone. Every protected route declares its action by taking the
//! `Authorized<requires::X>` extractor (`src/http/authorized.rs`), which authenticates, calls
//! this, and resolves the tenant acted on for tenant-scoped actions.
//!
//! | principal | may |
//! |---|---|
//! | super admin (master key) | everything; `/tenant/...` with `X-Tenant-ID` |
//! | platform `gateway` | verify keys, report usage; RBAC checks, secret reveals and resource tracking for a tenant named in `X-Tenant-ID` |
//! | platform `auditor` | read, export and verify the audit log |
//! | platform `finance_admin` | read usage: every tenant's (`/admin/usage`), one tenant's with `X-Tenant-ID` |
//! | tenant `tenant_admin` | everything in its tenant |
//! | tenant `tenant_finance` | read its tenant, its usage and its resource limits |
//! | tenant `data` under a sub-account, with `keys:manage` | the keys of its own sub-account |
//! | tenant `data` otherwise | nothing on the control API |

use tokenhub_aggregates::api_key::KeyRole;

use crate::auth::denied::Denied;
use crate::auth::principal::Principal;

pub use tokenhub_aggregates::api_key::KEYS_MANAGE;

/// Declares the actions once: the `Action` enum, `Action::ALL`, `Action::tenant_scoped` (the
/// `tenant` group) and the marker types of [`requires`].
macro_rules! actions {
    (
        platform { $($(#[$pm:meta])* $p:ident,)* }
        tenant { $($(#[$tm:meta])* $t:ident,)* }
    ) => {
        /// What a route does.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action {
            $($(#[$pm])* $p,)*
            $($(#[$tm])* $t,)*
        }

        impl Action {
            /// Every action (the decision table test walks them all).
            pub const ALL: &'static [Action] = &[$(Action::$p,)* $(Action::$t,)*];

            /// True for actions on one tenant (`/tenant/...`).
            pub fn tenant_scoped(self) -> bool {
                matches!(self, $(Action::$t)|*)
            }
        }

        /// Marker types naming the actions, for `Authorized<requires::X>`.
        pub mod requires {
            use super::{Action, Requires};
            $(
                #[doc = concat!("Requires [`Action::", stringify!($p), "`].")]
                #[derive(Debug, Clone, Copy)]
                pub struct $p;
                impl Requires for $p {
                    const ACTION: Action = Action::$p;
                }
            )*
            $(
                #[doc = concat!("Requires [`Action::", stringify!($t), "`].")]
                #[derive(Debug, Clone, Copy)]
                pub struct $t;
                impl Requires for $t {
                    const ACTION: Action = Action::$t;
                }
            )*
        }
    };
}

actions! {
    platform {
        /// Create, read, change and delete tenants.
        ManageTenants,
        /// Manage the keys of any tenant.
        ManageApiKeys,
        /// Manage platform keys.
        ManagePlatformKeys,
        /// Verify keys (gateways).
        VerifyKeys,
        /// Read, export and verify the audit log of all tenants.
        ReadAudit,
        /// Report usage records (gateways).
        ReportUsage,
        /// Read every tenant's usage (finance admins).
        ReadAllUsage,
    }
    tenant {
        /// Read one's own tenant.
        ReadTenant,
        /// Read one's tenant's keys.
        ReadTenantKeys,
        /// Issue and change one's tenant's keys.
        ManageTenantKeys,
        /// Read one's tenant's sub-accounts.
        ReadSubAccounts,
        /// Create and change one's tenant's sub-accounts.
        ManageSubAccounts,
        /// Read one's tenant's RBAC settings and roles.
        ReadRbac,
        /// Change one's tenant's RBAC settings and roles.
        ManageRbac,
        /// Ask whether a role or sub-account has a permission (tenant admins, and gateways acting
        /// for a tenant named in `X-Tenant-ID`).
        CheckRbac,
        /// Read one's tenant's audit log.
        ReadTenantAudit,
        /// Read and set one's tenant's IP allowlist.
        ManageTenantSecurity,
        /// Invite, list, change and disable one's tenant's people (tenant roles only).
        ManageTenantUsers,
        /// List one's tenant's secret names.
        ReadSecrets,
        /// Store and delete one's tenant's secrets.
        ManageSecrets,
        /// Read a secret's value (`secrets:reveal`): tenant admins, and gateways acting for a tenant.
        RevealSecrets,
        /// Read one's tenant's configuration and its history.
        ReadTenantConfig,
        /// Save or roll back one's tenant's configuration.
        ManageTenantConfig,
        /// Read one's tenant's usage (tenant admins and finance, finance admins for any tenant).
        ReadUsage,
        /// Read one's tenant's resource limits and their use.
        ReadResourceLimits,
        /// Set one's tenant's resource limits.
        ManageResourceLimits,
        /// Check and track end-users' resource use (tenant admins, and gateways acting for a
        /// tenant named in `X-Tenant-ID`).
        TrackResources,
    }
}

/// Decides whether `principal` may perform `action`.
pub fn authorize(principal: &Principal, action: Action) -> Result<(), Denied> {
    let allowed = match principal {
        Principal::SuperAdmin => true,
        Principal::PlatformKey { role, .. } => {
            matches!(
                (role, action),
                (
                    KeyRole::Gateway,
                    Action::VerifyKeys
                        | Action::CheckRbac
                        | Action::RevealSecrets
                        | Action::ReportUsage
                        | Action::TrackResources
                ) | (KeyRole::Auditor, Action::ReadAudit)
                    | (KeyRole::FinanceAdmin, Action::ReadAllUsage | Action::ReadUsage)
            )
        }
        Principal::TenantKey { role, sub_account_id, permissions, .. } => match role {
            KeyRole::TenantAdmin => action.tenant_scoped(),
            KeyRole::TenantFinance => {
                matches!(action, Action::ReadTenant | Action::ReadUsage | Action::ReadResourceLimits)
            }
            // A sub-account key with `keys:manage` manages keys of its own sub-account.
            KeyRole::Data => {
                sub_account_id.is_some()
                    && permissions.iter().any(|p| p == KEYS_MANAGE)
                    && matches!(action, Action::ReadTenantKeys | Action::ManageTenantKeys)
            }
            _ => false,
        },
    };
    if allowed {
        Ok(())
    } else {
        tracing::info!(?action, actor = principal.actor().1, "forbidden");
        Err(Denied::Forbidden)
    }
}

/// Declares the action a route needs; implemented by the marker types in [`requires`].
pub trait Requires: Send + Sync + 'static {
    /// The action.
    const ACTION: Action;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: KeyRole) -> Principal {
        if role.is_platform() {
            Principal::PlatformKey {
                public_id: "p".into(),
                role,
                tenant_ids: std::sync::Arc::from(Vec::new()),
            }
        } else {
            Principal::TenantKey {
                tenant_id: "t".into(),
                public_id: "p".into(),
                role,
                sub_account_id: None,
                permissions: vec![],
            }
        }
    }

    #[test]
    fn the_decision_table() {
        use Action::*;
        for &action in Action::ALL {
            assert!(authorize(&Principal::SuperAdmin, action).is_ok());
            assert_eq!(
                authorize(&key(KeyRole::Gateway), action).is_ok(),
                matches!(action, VerifyKeys | CheckRbac | RevealSecrets | ReportUsage | TrackResources)
            );
            assert_eq!(
                authorize(&key(KeyRole::FinanceAdmin), action).is_ok(),
                matches!(action, ReadAllUsage | ReadUsage)
            );
            assert_eq!(authorize(&key(KeyRole::Auditor), action).is_ok(), action == ReadAudit);
            assert_eq!(authorize(&key(KeyRole::TenantAdmin), action).is_ok(), action.tenant_scoped());
            assert_eq!(
                authorize(&key(KeyRole::TenantFinance), action).is_ok(),
                matches!(action, ReadTenant | ReadUsage | ReadResourceLimits)
            );
            assert!(authorize(&key(KeyRole::Data), action).is_err());
            let manager = Principal::TenantKey {
                tenant_id: "t".into(),
                public_id: "p".into(),
                role: KeyRole::Data,
                sub_account_id: Some("sub_x".into()),
                permissions: vec![KEYS_MANAGE.into()],
            };
            assert_eq!(
                authorize(&manager, action).is_ok(),
                matches!(action, ReadTenantKeys | ManageTenantKeys)
            );
        }
    }
}
