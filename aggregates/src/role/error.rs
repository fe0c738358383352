//! Refused role commands.

use crate::error_code::{Code, DomainError};

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
