//! Why a user command was refused.

use crate::error_code::{Code, DomainError};

/// A refused user command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Invite on an existing id.
    #[error("user already exists")]
    AlreadyExists,
    /// Unknown id.
    #[error("user not found")]
    NotFound,
    /// Not a plausible e-mail address.
    #[error("email must be an address local@domain.tld of at most 254 characters")]
    InvalidEmail,
    /// A role that does not exist, or does not fit the scope.
    #[error("platform roles are super_admin, finance_admin, auditor; tenant roles tenant_admin, tenant_finance, tenant_viewer")]
    InvalidRole,
    /// Wrong, used or unknown invite token.
    #[error("the invite is not valid (wrong, or already used)")]
    InviteInvalid,
    /// The invite's 72 hours are over.
    #[error("the invite has expired; ask for a new one")]
    InviteExpired,
    /// The user is invited, not active yet.
    #[error("the user has not accepted the invite yet")]
    NotActive,
    /// Disabled users do nothing.
    #[error("the user is disabled")]
    Disabled,
    /// TOTP is already on.
    #[error("two-factor authentication is already on")]
    TotpAlreadyEnrolled,
    /// TOTP is off.
    #[error("two-factor authentication is not on")]
    TotpNotEnrolled,
    /// A TOTP step at or before the last one used.
    #[error("this code was already used; wait for the next one")]
    TotpReplayed,
    /// A recovery code that is not (or no longer) one of the user's.
    #[error("the recovery code is not valid (wrong, or already used)")]
    RecoveryCodeInvalid,
    /// A sign-in whose method does not fit the user's factors.
    #[error("a second factor is required")]
    SecondFactorRequired,
    /// An identity with an empty or oversized issuer, subject or provider.
    #[error("the provider's identity is not usable (issuer and subject, 1 to 512 characters)")]
    InvalidIdentity,
    /// The identity is linked to this account already.
    #[error("this identity is linked to the account already")]
    IdentityAlreadyLinked,
    /// Only a disabled person is erased.
    #[error("disable the person first")]
    NotDisabled,
    /// Erased already.
    #[error("the person is erased already")]
    Erased,
}

impl DomainError for UserError {
    fn code(&self) -> Code {
        match self {
            UserError::AlreadyExists => Code::UserAlreadyExists,
            UserError::NotFound => Code::UserNotFound,
            UserError::InvalidEmail => Code::InvalidEmail,
            UserError::InvalidRole => Code::InvalidUserRole,
            UserError::InviteInvalid => Code::InviteInvalid,
            UserError::InviteExpired => Code::InviteExpired,
            UserError::NotActive => Code::UserNotActive,
            UserError::Disabled => Code::UserDisabled,
            UserError::TotpAlreadyEnrolled => Code::TotpAlreadyEnrolled,
            UserError::TotpNotEnrolled => Code::TotpNotEnrolled,
            UserError::TotpReplayed => Code::TotpReplayed,
            UserError::RecoveryCodeInvalid => Code::RecoveryCodeInvalid,
            UserError::SecondFactorRequired => Code::SecondFactorRequired,
            UserError::InvalidIdentity => Code::OidcIdentityInvalid,
            UserError::IdentityAlreadyLinked => Code::OidcIdentityInUse,
            UserError::NotDisabled => Code::UserNotDisabled,
            UserError::Erased => Code::UserErased,
        }
    }
}
