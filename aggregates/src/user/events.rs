//! What happened to a user (wire types `user.<past>`). Hashes and the sealed TOTP secret are
//! in [`crate::redact::SENSITIVE_FIELDS`]: they never leave the event store.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a user's role applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Membership {
    /// Platform-wide: `super_admin`, `finance_admin` or `auditor`.
    Platform {
        /// The role.
        role: String,
    },
    /// In one tenant: `tenant_admin`, `tenant_finance` or `tenant_viewer`.
    Tenant {
        /// The tenant.
        tenant_id: String,
        /// The role.
        role: String,
    },
}

impl Membership {
    /// The role name.
    pub fn role(&self) -> &str {
        match self {
            Membership::Platform { role } | Membership::Tenant { role, .. } => role,
        }
    }

    /// The tenant, for a tenant membership.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Membership::Platform { .. } => None,
            Membership::Tenant { tenant_id, .. } => Some(tenant_id),
        }
    }
}

/// How a sign-in was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Password only (no second factor enrolled).
    Password,
    /// Password and a TOTP code.
    PasswordTotp,
    /// Password and a recovery code.
    PasswordRecoveryCode,
    /// An OpenID provider's verified e-mail (plus TOTP when enrolled).
    Oidc,
}

/// An event of the `User` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum UserEvent {
    /// `user.invited`: an account exists, waiting for its invite to be accepted.
    #[serde(rename = "user.invited")]
    Invited {
        /// Id.
        user_id: String,
        /// E-mail, normalised.
        email: String,
        /// Role and scope.
        membership: Membership,
        /// SHA-256 of the invite token (the token is only in the invite link).
        #[schema(ignore)]
        invite_token_hash: String,
        /// When the invite stops working.
        #[serde(with = "time::serde::rfc3339")]
        invite_expires_at: OffsetDateTime,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.activated`: the invite was accepted with a first password, or by signing in with
    /// an OpenID provider that vouched for the invited e-mail (then without a password).
    #[serde(rename = "user.activated")]
    Activated {
        /// argon2id PHC string of the password (`None` when activated through a provider).
        #[schema(ignore)]
        password_hash: Option<String>,
        /// The OpenID provider that activated it, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.identity_linked`: an OpenID identity signs in to this account from now on.
    #[serde(rename = "user.identity_linked")]
    IdentityLinked {
        /// The provider's name.
        provider: String,
        /// Its issuer.
        issuer: String,
        /// The subject at that issuer.
        subject: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.erased`: the disabled person's data key was destroyed (crypto-shredding): their
    /// sealed password hashes and TOTP secret in this log can never be opened again.
    #[serde(rename = "user.erased")]
    Erased {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.password_set`: a new password (the user's other sessions end).
    #[serde(rename = "user.password_set")]
    PasswordSet {
        /// argon2id PHC string.
        #[schema(ignore)]
        password_hash: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.totp_enrolled`: a confirmed authenticator, and the first recovery codes.
    #[serde(rename = "user.totp_enrolled")]
    TotpEnrolled {
        /// The TOTP secret, sealed under the envelope encryption of secrets.
        #[schema(ignore)]
        ciphertext: String,
        /// Its nonce.
        #[schema(ignore)]
        nonce: String,
        /// The time step of the confirming code (never accepted again).
        step: u64,
        /// SHA-256 of each recovery code.
        #[schema(ignore)]
        recovery_code_hashes: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.totp_removed`: the second factor was turned off.
    #[serde(rename = "user.totp_removed")]
    TotpRemoved {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.recovery_codes_generated`: a new set replaces the old one.
    #[serde(rename = "user.recovery_codes_generated")]
    RecoveryCodesGenerated {
        /// SHA-256 of each code.
        #[schema(ignore)]
        recovery_code_hashes: Vec<String>,
        /// The TOTP step that authorised it (never accepted again).
        step: u64,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.recovery_code_used`: one code is spent.
    #[serde(rename = "user.recovery_code_used")]
    RecoveryCodeUsed {
        /// SHA-256 of the spent code.
        #[schema(ignore)]
        recovery_code_hash: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.role_changed`
    #[serde(rename = "user.role_changed")]
    RoleChanged {
        /// The new role and scope.
        membership: Membership,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.disabled`: terminal; the user's sessions end.
    #[serde(rename = "user.disabled")]
    Disabled {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.signed_in`
    #[serde(rename = "user.signed_in")]
    SignedIn {
        /// How it was proven.
        method: SignInMethod,
        /// The TOTP step used, if any (never accepted again).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// `user.sign_in_failed`: a wrong password or code for this account.
    #[serde(rename = "user.sign_in_failed")]
    SignInFailed {
        /// `password`, `totp` or `recovery_code`.
        reason: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::Invited { .. } => "user.invited",
            UserEvent::Activated { .. } => "user.activated",
            UserEvent::IdentityLinked { .. } => "user.identity_linked",
            UserEvent::Erased { .. } => "user.erased",
            UserEvent::PasswordSet { .. } => "user.password_set",
            UserEvent::TotpEnrolled { .. } => "user.totp_enrolled",
            UserEvent::TotpRemoved { .. } => "user.totp_removed",
            UserEvent::RecoveryCodesGenerated { .. } => "user.recovery_codes_generated",
            UserEvent::RecoveryCodeUsed { .. } => "user.recovery_code_used",
            UserEvent::RoleChanged { .. } => "user.role_changed",
            UserEvent::Disabled { .. } => "user.disabled",
            UserEvent::SignedIn { .. } => "user.signed_in",
            UserEvent::SignInFailed { .. } => "user.sign_in_failed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
