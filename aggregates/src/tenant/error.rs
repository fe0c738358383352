//! Why a tenant command was refused.

use crate::error_code::{Code, DomainError};

/// A refused tenant command. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// Create on an id that already has events.
    #[error("tenant already exists")]
    AlreadyExists,
    /// Any command but create on an id without events.
    #[error("tenant not found")]
    NotFound,
    /// The tenant was deleted; it accepts no further command.
    #[error("tenant is deleted")]
    Deleted,
    /// Suspend on a suspended tenant.
    #[error("tenant is already suspended")]
    AlreadySuspended,
    /// Reactivate on an active tenant.
    #[error("tenant is not suspended")]
    NotSuspended,
    /// Name empty, too long or with control characters.
    #[error("name must be 1 to 128 characters, without control characters")]
    InvalidName,
    /// Region not of the form `[a-z0-9-]{1,32}`.
    #[error("region must be 1 to 32 lowercase letters, digits or dashes")]
    InvalidRegion,
    /// A limit out of range.
    #[error("invalid limits: {0}")]
    InvalidLimits(&'static str),
    /// A default role name of the wrong shape.
    #[error("role must match [a-z][a-z0-9_-]{{0,31}}")]
    InvalidRole,
    /// A network that does not parse.
    #[error("'{0}' is not an IPv4 or IPv6 address or CIDR")]
    InvalidCidr(String),
    /// An enabled allowlist without networks would refuse every request.
    #[error("an enabled allowlist needs at least one network")]
    EmptyAllowlist,
    /// The configuration breaks the schema; the message names each field's JSON path.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A resource limit set that breaks the rules; the message names the entry.
    #[error("invalid resource limits: {0}")]
    InvalidResourceLimits(String),
    /// An update that changes nothing.
    #[error("the update sets no field")]
    EmptyUpdate,
}

impl DomainError for TenantError {
    fn code(&self) -> Code {
        match self {
            TenantError::AlreadyExists => Code::TenantAlreadyExists,
            TenantError::NotFound => Code::TenantNotFound,
            TenantError::Deleted => Code::TenantDeleted,
            TenantError::AlreadySuspended => Code::TenantAlreadySuspended,
            TenantError::NotSuspended => Code::TenantNotSuspended,
            TenantError::InvalidName => Code::InvalidTenantName,
            TenantError::InvalidRegion => Code::InvalidRegion,
            TenantError::InvalidLimits(_) => Code::InvalidLimits,
            TenantError::InvalidRole => Code::InvalidRole,
            TenantError::InvalidCidr(_) => Code::InvalidCidr,
            TenantError::EmptyAllowlist => Code::EmptyAllowlist,
            TenantError::InvalidConfig(_) => Code::InvalidConfig,
            TenantError::InvalidResourceLimits(_) => Code::InvalidResourceLimits,
            TenantError::EmptyUpdate => Code::EmptyUpdate,
        }
    }
}
