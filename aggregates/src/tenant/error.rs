//! Why a tenant command was refused.

use crate::error_code::{DomainError, ErrorKind};

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
    fn code(&self) -> &'static str {
        match self {
            TenantError::AlreadyExists => "tenant_already_exists",
            TenantError::NotFound => "tenant_not_found",
            TenantError::Deleted => "tenant_deleted",
            TenantError::AlreadySuspended => "tenant_already_suspended",
            TenantError::NotSuspended => "tenant_not_suspended",
            TenantError::InvalidName => "invalid_tenant_name",
            TenantError::InvalidRegion => "invalid_region",
            TenantError::InvalidLimits(_) => "invalid_limits",
            TenantError::InvalidRole => "invalid_role",
            TenantError::InvalidCidr(_) => "invalid_cidr",
            TenantError::EmptyAllowlist => "empty_allowlist",
            TenantError::InvalidConfig(_) => "invalid_config",
            TenantError::InvalidResourceLimits(_) => "invalid_resource_limits",
            TenantError::EmptyUpdate => "empty_update",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            TenantError::NotFound => ErrorKind::NotFound,
            TenantError::AlreadyExists
            | TenantError::Deleted
            | TenantError::AlreadySuspended
            | TenantError::NotSuspended => ErrorKind::Conflict,
            TenantError::InvalidName
            | TenantError::InvalidRegion
            | TenantError::InvalidLimits(_)
            | TenantError::InvalidRole
            | TenantError::InvalidCidr(_)
            | TenantError::EmptyAllowlist
            | TenantError::InvalidConfig(_)
            | TenantError::InvalidResourceLimits(_)
            | TenantError::EmptyUpdate => ErrorKind::InvalidInput,
        }
    }
}
