//! Why an API-key command was refused.

use crate::error_code::{Code, DomainError};

/// A refused API-key command. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Issue on an existing id.
    #[error("api key already exists")]
    AlreadyExists,
    /// Any command but issue on an unknown id.
    #[error("api key not found")]
    NotFound,
    /// Revoked keys accept no command.
    #[error("api key is revoked")]
    Revoked,
    /// Disable on a disabled key.
    #[error("api key is already disabled")]
    AlreadyDisabled,
    /// Enable on an active key.
    #[error("api key is not disabled")]
    NotDisabled,
    /// Name empty, too long or with control characters.
    #[error("name must be 1 to 128 characters, without control characters")]
    InvalidName,
    /// A CIDR or address that does not parse.
    #[error("'{0}' is not an IPv4 or IPv6 address or CIDR")]
    InvalidCidr(String),
    /// A bad model or permission.
    #[error("invalid {field} entry '{value}'")]
    InvalidListItem {
        /// Which list.
        field: &'static str,
        /// The entry.
        value: String,
    },
    /// A list over its size limit.
    #[error("too many entries in {0}")]
    TooMany(&'static str),
    /// Expiry not in the future.
    #[error("expiration must be in the future")]
    ExpiryInPast,
    /// Quota below 0 or above [`crate::MAX_TOKENS`].
    #[error("quota_limit must be between 0 and 1000000000000000")]
    InvalidQuota,
    /// Zero rate limit.
    #[error("rate limits must be at least 1")]
    InvalidRateLimit,
    /// Tag key in the reserved namespace.
    #[error("tag key '{0}' is in the reserved namespace 'tokenhub.'")]
    ReservedTagKey(String),
    /// Tag key or value malformed.
    #[error("tag '{0}' is invalid: keys are [A-Za-z0-9_.-]{{1,64}}, values at most 256 characters")]
    InvalidTag(String),
    /// Grace deadline not in the future or beyond 30 days.
    #[error("grace period must end in the future and within 30 days")]
    InvalidGracePeriod,
    /// A platform role on a tenant key, or a tenant role on a platform key.
    #[error("role does not fit the key's owner")]
    InvalidRole,
    /// An update that sets nothing.
    #[error("the update sets no field")]
    EmptyUpdate,
    /// Permissions the sub-account does not have.
    #[error("permissions not held by the sub-account: {0}")]
    PermissionsExceedSubAccount(String),
    /// A sub-account manager asked for more than its own key holds.
    #[error("{0}")]
    ExceedsIssuer(String),
    /// A sub-account manager acted on a key outside its sub-account, or not a data key.
    #[error("a sub-account key acts only on data keys of its own sub-account")]
    OutsideIssuerScope,
    /// A sub-account manager tried to enable a key a tenant admin disabled.
    #[error("a tenant admin disabled this key; only a tenant admin may enable it")]
    DisabledByAdmin,
    /// A key of a sub-account with a role other than `data`.
    #[error("only data keys can belong to a sub-account")]
    SubAccountKeyNotData,
    /// A quota above the sub-account's.
    #[error("quota_limit {quota} exceeds the sub-account's quota {sub_account}")]
    QuotaExceedsSubAccount {
        /// Asked.
        quota: i64,
        /// The sub-account's.
        sub_account: i64,
    },
}

impl DomainError for ApiKeyError {
    fn code(&self) -> Code {
        match self {
            ApiKeyError::AlreadyExists => Code::ApiKeyAlreadyExists,
            ApiKeyError::NotFound => Code::ApiKeyNotFound,
            ApiKeyError::Revoked => Code::ApiKeyRevoked,
            ApiKeyError::AlreadyDisabled => Code::ApiKeyAlreadyDisabled,
            ApiKeyError::NotDisabled => Code::ApiKeyNotDisabled,
            ApiKeyError::InvalidName => Code::InvalidKeyName,
            ApiKeyError::InvalidCidr(_) => Code::InvalidCidr,
            ApiKeyError::InvalidListItem { .. } => Code::InvalidListItem,
            ApiKeyError::TooMany(_) => Code::TooManyEntries,
            ApiKeyError::ExpiryInPast => Code::ExpiryInPast,
            ApiKeyError::InvalidQuota => Code::InvalidQuota,
            ApiKeyError::InvalidRateLimit => Code::InvalidRateLimit,
            ApiKeyError::ReservedTagKey(_) => Code::ReservedTagKey,
            ApiKeyError::InvalidTag(_) => Code::InvalidTag,
            ApiKeyError::InvalidGracePeriod => Code::InvalidGracePeriod,
            ApiKeyError::InvalidRole => Code::InvalidRole,
            ApiKeyError::EmptyUpdate => Code::EmptyUpdate,
            ApiKeyError::PermissionsExceedSubAccount(_) => Code::PermissionsExceedSubAccount,
            ApiKeyError::QuotaExceedsSubAccount { .. } => Code::QuotaExceedsSubAccount,
            ApiKeyError::ExceedsIssuer(_) => Code::PermissionsExceedIssuer,
            ApiKeyError::OutsideIssuerScope | ApiKeyError::DisabledByAdmin => Code::Forbidden,
            ApiKeyError::SubAccountKeyNotData => Code::SubAccountKeyNotData,
        }
    }
}
