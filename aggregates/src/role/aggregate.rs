//! Commands, events, errors and rules of a role (small enough for one file).

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api_key::settings::normalise_permissions;
use crate::error_code::{Code, DomainError};
use crate::sub_account::is_role_name;

/// The aggregate id of role `name` in `tenant_id`.
pub fn role_id(tenant_id: &str, name: &str) -> String {
    format!("{tenant_id}:{name}")
}

/// The roles every new tenant starts with: (name, description, permissions).
pub fn default_roles() -> [(&'static str, &'static str, &'static [&'static str]); 2] {
    [("viewer", "Read-only access", &["read"]), ("admin", "Full access", &["read", "write", "delete"])]
}

/// A command on a role.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    /// Define it (again, after a delete).
    Create {
        /// Tenant.
        tenant_id: String,
        /// Name, `[a-z][a-z0-9_-]{0,31}`.
        name: String,
        /// Description.
        description: String,
        /// Permissions.
        permissions: Vec<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Replace description and permissions.
    Update {
        /// New description (unchanged when `None`).
        description: Option<String>,
        /// New permissions.
        permissions: Vec<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Remove it. The server passes why it is still in use, if it is.
    Delete {
        /// `Some(reason)` when a sub-account or the tenant's default role uses it.
        in_use: Option<RoleInUse>,
        /// When.
        at: OffsetDateTime,
    },
}

/// Why a role cannot be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleInUse {
    /// It is the tenant's default role.
    Default,
    /// A sub-account has it.
    SubAccount,
}

/// An event of a role (wire types `role.<past>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum RoleEvent {
    /// `role.created`
    #[serde(rename = "role.created")]
    Created {
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// Description.
        description: String,
        /// Permissions.
        permissions: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    /// `role.updated`
    #[serde(rename = "role.updated")]
    Updated {
        /// Description.
        description: String,
        /// Permissions.
        permissions: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    /// `role.deleted`
    #[serde(rename = "role.deleted")]
    Deleted {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
    },
}

impl DomainEvent for RoleEvent {
    fn event_type(&self) -> String {
        match self {
            RoleEvent::Created { .. } => "role.created",
            RoleEvent::Updated { .. } => "role.updated",
            RoleEvent::Deleted { .. } => "role.deleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// A refused role command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The name is taken in this tenant.
    #[error("a role with this name exists")]
    AlreadyExists,
    /// No such role.
    #[error("role not found")]
    NotFound,
    /// Bad name.
    #[error("role name must match [a-z][a-z0-9_-]{{0,31}}")]
    InvalidName,
    /// Bad permission.
    #[error("invalid permission '{0}'")]
    InvalidPermission(String),
    /// Description over 500 characters.
    #[error("description is longer than 500 characters")]
    InvalidDescription,
    /// Delete of the default role.
    #[error("the role is the tenant's default role; choose another default first")]
    IsDefault,
    /// Delete of a role a sub-account has.
    #[error("a sub-account has this role; change its role first")]
    UsedBySubAccount,
}

impl DomainError for RoleError {
    fn code(&self) -> Code {
        match self {
            RoleError::AlreadyExists => Code::RoleAlreadyExists,
            RoleError::NotFound => Code::RoleNotFound,
            RoleError::InvalidName => Code::InvalidRole,
            RoleError::InvalidPermission(_) => Code::InvalidListItem,
            RoleError::InvalidDescription => Code::InvalidRequest,
            RoleError::IsDefault => Code::RoleIsDefault,
            RoleError::UsedBySubAccount => Code::RoleInUse,
        }
    }
}

/// The role state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// True while defined.
    pub exists: bool,
    /// Description.
    pub description: String,
}

fn permissions(list: &[String]) -> Result<Vec<String>, RoleError> {
    normalise_permissions(list).map_err(|_| {
        let bad = list.iter().find(|p| normalise_permissions(std::slice::from_ref(*p)).is_err());
        RoleError::InvalidPermission(bad.cloned().unwrap_or_default())
    })
}

fn check_description(d: &str) -> Result<(), RoleError> {
    (d.chars().count() <= 500).then_some(()).ok_or(RoleError::InvalidDescription)
}

impl Role {
    fn decide(&self, command: RoleCommand) -> Result<RoleEvent, RoleError> {
        match command {
            RoleCommand::Create { tenant_id, name, description, permissions: perms, at } => {
                if self.exists {
                    return Err(RoleError::AlreadyExists);
                }
                if !is_role_name(&name) {
                    return Err(RoleError::InvalidName);
                }
                check_description(&description)?;
                Ok(RoleEvent::Created {
                    tenant_id,
                    name,
                    description,
                    permissions: permissions(&perms)?,
                    created_at: at,
                })
            }
            RoleCommand::Update { description, permissions: perms, at } => {
                if !self.exists {
                    return Err(RoleError::NotFound);
                }
                let description = description.unwrap_or_else(|| self.description.clone());
                check_description(&description)?;
                Ok(RoleEvent::Updated { description, permissions: permissions(&perms)?, updated_at: at })
            }
            RoleCommand::Delete { in_use, at } => match (self.exists, in_use) {
                (false, _) => Err(RoleError::NotFound),
                (true, Some(RoleInUse::Default)) => Err(RoleError::IsDefault),
                (true, Some(RoleInUse::SubAccount)) => Err(RoleError::UsedBySubAccount),
                (true, None) => Ok(RoleEvent::Deleted { deleted_at: at }),
            },
        }
    }
}

crate::impl_aggregate!(Role, "role", RoleCommand, RoleEvent, RoleError);

impl Role {
    /// Applies an event to the state (cqrs-es `apply`).
    fn evolve(&mut self, event: RoleEvent) {
        match event {
            RoleEvent::Created { description, .. } | RoleEvent::Updated { description, .. } => {
                self.exists = true;
                self.description = description;
            }
            RoleEvent::Deleted { .. } => *self = Role::default(),
        }
    }
}
