//! Why a user command was refused.

use crate::error_code::{DomainError, ErrorKind};

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
    fn code(&self) -> &'static str {
        match self {
            UserError::AlreadyExists => "user_already_exists",
            UserError::NotFound => "user_not_found",
            UserError::InvalidEmail => "invalid_email",
            UserError::InvalidRole => "invalid_user_role",
            UserError::InviteInvalid => "invite_invalid",
            UserError::InviteExpired => "invite_expired",
            UserError::NotActive => "user_not_active",
            UserError::Disabled => "user_disabled",
            UserError::TotpAlreadyEnrolled => "totp_already_enrolled",
            UserError::TotpNotEnrolled => "totp_not_enrolled",
            UserError::TotpReplayed => "totp_replayed",
            UserError::RecoveryCodeInvalid => "recovery_code_invalid",
            UserError::SecondFactorRequired => "second_factor_required",
            UserError::InvalidIdentity => "oidc_identity_invalid",
            UserError::IdentityAlreadyLinked => "oidc_identity_in_use",
            UserError::NotDisabled => "user_not_disabled",
            UserError::Erased => "user_erased",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            UserError::NotFound => ErrorKind::NotFound,
            UserError::AlreadyExists
            | UserError::NotActive
            | UserError::Disabled
            | UserError::TotpAlreadyEnrolled
            | UserError::TotpNotEnrolled
            | UserError::IdentityAlreadyLinked
            | UserError::NotDisabled
            | UserError::Erased => ErrorKind::Conflict,
            _ => ErrorKind::InvalidInput,
        }
    }
}
