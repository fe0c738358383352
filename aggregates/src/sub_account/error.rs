//! Why a sub-account command was refused.

use crate::error_code::{Code, DomainError};

/// A refused sub-account command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubAccountError {
    /// Create on an existing id.
    #[error("sub-account already exists")]
    AlreadyExists,
    /// Unknown id.
    #[error("sub-account not found")]
    NotFound,
    /// Deleted sub-accounts accept no command.
    #[error("sub-account is deleted")]
    Deleted,
    /// Disable on a disabled sub-account.
    #[error("sub-account is already disabled")]
    AlreadyDisabled,
    /// Enable on an active sub-account.
    #[error("sub-account is not disabled")]
    NotDisabled,
    /// Bad name.
    #[error("name must be 1 to 128 characters, without control characters")]
    InvalidName,
    /// Bad role name.
    #[error("role must match [a-z][a-z0-9_-]{{0,31}}")]
    InvalidRole,
    /// Quota below 0 or above [`crate::MAX_TOKENS`].
    #[error("quota_limit must be between 0 and 1000000000000000")]
    InvalidQuota,
    /// Quota above the tenant's monthly token quota.
    #[error("quota_limit {quota} exceeds the tenant's monthly token quota {tenant}")]
    QuotaExceedsTenant {
        /// Asked.
        quota: i64,
        /// Tenant limit.
        tenant: u64,
    },
    /// A malformed permission.
    #[error("invalid permission '{0}'")]
    InvalidPermission(String),
    /// An update that sets nothing.
    #[error("the update sets no field")]
    EmptyUpdate,
}

impl DomainError for SubAccountError {
    fn code(&self) -> Code {
        match self {
            SubAccountError::AlreadyExists => Code::SubAccountAlreadyExists,
            SubAccountError::NotFound => Code::SubAccountNotFound,
            SubAccountError::Deleted => Code::SubAccountDeleted,
            SubAccountError::AlreadyDisabled => Code::SubAccountAlreadyDisabled,
            SubAccountError::NotDisabled => Code::SubAccountNotDisabled,
            SubAccountError::InvalidName => Code::InvalidSubAccountName,
            SubAccountError::InvalidRole => Code::InvalidRole,
            SubAccountError::InvalidQuota => Code::InvalidQuota,
            SubAccountError::QuotaExceedsTenant { .. } => Code::QuotaExceedsTenant,
            SubAccountError::InvalidPermission(_) => Code::InvalidListItem,
            SubAccountError::EmptyUpdate => Code::EmptyUpdate,
        }
    }
}
