//! The role state and its rules: decide (command → event) and evolve.

use serde::{Deserialize, Serialize};

use super::{RoleCommand, RoleError, RoleEvent, RoleInUse};
use crate::api_key::settings::normalise_permissions;
use crate::sub_account::is_role_name;

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
