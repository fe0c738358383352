//! The rules of a sub-account: created → active ⇄ disabled → deleted (terminal).

use serde::{Deserialize, Serialize};

use super::commands::SubAccountCommand;
use super::error::SubAccountError;
use super::events::{SubAccountChanges, SubAccountEvent};
use super::is_role_name;
use crate::api_key::settings::{normalise_permissions, validate_name};

/// Lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubAccountStatus {
    /// Its keys work.
    Active,
    /// Its keys answer `SUB_ACCOUNT_DISABLED`.
    Disabled,
    /// Terminal.
    Deleted,
}

impl SubAccountStatus {
    /// Name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SubAccountStatus::Active => "active",
            SubAccountStatus::Disabled => "disabled",
            SubAccountStatus::Deleted => "deleted",
        }
    }
}

/// The sub-account state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubAccount {
    /// `None` until created.
    pub status: Option<SubAccountStatus>,
    /// Tenant.
    pub tenant_id: String,
    /// Quota.
    pub quota_limit: Option<i64>,
}

fn check_quota(quota: Option<i64>, tenant_quota: Option<u64>) -> Result<(), SubAccountError> {
    match (quota, tenant_quota) {
        (Some(q), _) if !(0..=crate::MAX_TOKENS).contains(&q) => Err(SubAccountError::InvalidQuota),
        (Some(q), Some(t)) if q as u64 > t => {
            Err(SubAccountError::QuotaExceedsTenant { quota: q, tenant: t })
        }
        _ => Ok(()),
    }
}

fn permissions(list: &[String]) -> Result<Vec<String>, SubAccountError> {
    normalise_permissions(list).map_err(|_| {
        let bad = list.iter().find(|p| normalise_permissions(std::slice::from_ref(*p)).is_err());
        SubAccountError::InvalidPermission(bad.cloned().unwrap_or_default())
    })
}

impl SubAccount {
    fn require_live(&self) -> Result<SubAccountStatus, SubAccountError> {
        match self.status {
            None => Err(SubAccountError::NotFound),
            Some(SubAccountStatus::Deleted) => Err(SubAccountError::Deleted),
            Some(s) => Ok(s),
        }
    }

    fn decide(&self, command: SubAccountCommand) -> Result<SubAccountEvent, SubAccountError> {
        match command {
            SubAccountCommand::Create {
                sub_account_id,
                tenant_id,
                name,
                role,
                quota_limit,
                quota_period,
                permissions: perms,
                tenant_quota,
                at,
            } => {
                if self.status.is_some() {
                    return Err(SubAccountError::AlreadyExists);
                }
                validate_name(&name).map_err(|_| SubAccountError::InvalidName)?;
                if !is_role_name(&role) {
                    return Err(SubAccountError::InvalidRole);
                }
                check_quota(quota_limit, tenant_quota)?;
                Ok(SubAccountEvent::Created {
                    sub_account_id,
                    tenant_id,
                    name: name.trim().to_string(),
                    role,
                    quota_limit,
                    quota_period,
                    permissions: permissions(&perms)?,
                    created_at: at,
                })
            }
            SubAccountCommand::Update { changes, tenant_quota, at } => {
                self.require_live()?;
                if changes == SubAccountChanges::default() {
                    return Err(SubAccountError::EmptyUpdate);
                }
                if let Some(name) = &changes.name {
                    validate_name(name).map_err(|_| SubAccountError::InvalidName)?;
                }
                if changes.role.as_deref().is_some_and(|r| !is_role_name(r)) {
                    return Err(SubAccountError::InvalidRole);
                }
                if let Some(quota) = changes.quota_limit {
                    check_quota(quota, tenant_quota)?;
                }
                let normalised = changes.permissions.as_deref().map(permissions).transpose()?;
                Ok(SubAccountEvent::Updated {
                    changes: SubAccountChanges {
                        name: changes.name.map(|n| n.trim().to_string()),
                        permissions: normalised,
                        ..changes
                    },
                    updated_at: at,
                })
            }
            SubAccountCommand::Disable { at } => match self.require_live()? {
                SubAccountStatus::Disabled => Err(SubAccountError::AlreadyDisabled),
                _ => Ok(SubAccountEvent::Disabled { disabled_at: at }),
            },
            SubAccountCommand::Enable { at } => match self.require_live()? {
                SubAccountStatus::Disabled => Ok(SubAccountEvent::Enabled { enabled_at: at }),
                _ => Err(SubAccountError::NotDisabled),
            },
            SubAccountCommand::Delete { at } => {
                self.require_live()?;
                Ok(SubAccountEvent::Deleted { deleted_at: at })
            }
        }
    }
}

crate::impl_aggregate!(SubAccount, "sub_account", SubAccountCommand, SubAccountEvent, SubAccountError);

impl SubAccount {
    /// Applies an event to the state (cqrs-es `apply`).
    fn evolve(&mut self, event: SubAccountEvent) {
        match event {
            SubAccountEvent::Created { tenant_id, quota_limit, .. } => {
                self.status = Some(SubAccountStatus::Active);
                self.tenant_id = tenant_id;
                self.quota_limit = quota_limit;
            }
            SubAccountEvent::Updated { changes, .. } => {
                if let Some(q) = changes.quota_limit {
                    self.quota_limit = q;
                }
            }
            SubAccountEvent::Disabled { .. } => self.status = Some(SubAccountStatus::Disabled),
            SubAccountEvent::Enabled { .. } => self.status = Some(SubAccountStatus::Active),
            SubAccountEvent::Deleted { .. } => self.status = Some(SubAccountStatus::Deleted),
        }
    }
}
