//! The rules of a user: invited → active → disabled (terminal).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::commands::UserCommand;
use super::error::UserError;
use super::events::{Membership, SignInMethod, UserEvent};
use super::{normalise_email, PLATFORM_ROLES, TENANT_ROLES};

/// Lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Waiting for the invite to be accepted.
    Invited,
    /// Can sign in.
    Active,
    /// Terminal.
    Disabled,
}

/// The user state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct User {
    /// `None` until invited.
    pub status: Option<UserStatus>,
    /// E-mail (normalised).
    pub email: String,
    /// Role and scope.
    pub membership: Option<Membership>,
    /// Hash of the unused invite token (`None` once used).
    pub invite_token_hash: Option<String>,
    /// When the invite expires.
    pub invite_expires_at: Option<OffsetDateTime>,
    /// True while TOTP is on.
    pub totp_enrolled: bool,
    /// The last TOTP step accepted (a step at or before it is a replay).
    pub last_totp_step: Option<u64>,
    /// Hashes of the unspent recovery codes.
    pub recovery_code_hashes: Vec<String>,
    /// The OpenID identities (issuer, subject) linked to the account.
    #[serde(default)]
    pub identities: Vec<(String, String)>,
    /// True once erased.
    #[serde(default)]
    pub erased: bool,
}

fn check_membership(membership: &Membership) -> Result<(), UserError> {
    let ok = match membership {
        Membership::Platform { role } => PLATFORM_ROLES.contains(&role.as_str()),
        Membership::Tenant { tenant_id, role } => {
            crate::ids::is_tenant_id(tenant_id) && TENANT_ROLES.contains(&role.as_str())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(UserError::InvalidRole)
    }
}

impl User {
    fn require_active(&self) -> Result<(), UserError> {
        match self.status {
            None => Err(UserError::NotFound),
            Some(UserStatus::Invited) => Err(UserError::NotActive),
            Some(UserStatus::Disabled) => Err(UserError::Disabled),
            Some(UserStatus::Active) => Ok(()),
        }
    }

    fn require_fresh_step(&self, step: u64) -> Result<(), UserError> {
        if self.last_totp_step.is_some_and(|last| step <= last) {
            return Err(UserError::TotpReplayed);
        }
        Ok(())
    }

    pub(super) fn decide(&self, command: UserCommand) -> Result<UserEvent, UserError> {
        match command {
            UserCommand::Invite { user_id, email, membership, invite_token_hash, invite_expires_at, at } => {
                if self.status.is_some() {
                    return Err(UserError::AlreadyExists);
                }
                let email = normalise_email(&email).ok_or(UserError::InvalidEmail)?;
                check_membership(&membership)?;
                Ok(UserEvent::Invited {
                    user_id,
                    email,
                    membership,
                    invite_token_hash,
                    invite_expires_at,
                    at,
                })
            }
            UserCommand::AcceptInvite { invite_token_hash, password_hash, at } => {
                match self.status {
                    None => return Err(UserError::NotFound),
                    Some(UserStatus::Disabled) => return Err(UserError::Disabled),
                    Some(UserStatus::Active) => return Err(UserError::InviteInvalid),
                    Some(UserStatus::Invited) => {}
                }
                if self.invite_token_hash.as_deref() != Some(invite_token_hash.as_str()) {
                    return Err(UserError::InviteInvalid);
                }
                if self.invite_expires_at.is_none_or(|expires| at >= expires) {
                    return Err(UserError::InviteExpired);
                }
                Ok(UserEvent::Activated { password_hash: Some(password_hash), provider: None, at })
            }
            UserCommand::ActivateByProvider { provider, invite_token_hash, at } => {
                match self.status {
                    None => return Err(UserError::NotFound),
                    Some(UserStatus::Disabled) => return Err(UserError::Disabled),
                    Some(UserStatus::Active) => return Err(UserError::InviteInvalid),
                    Some(UserStatus::Invited) => {}
                }
                // Only through the invite: an e-mail a provider vouches for is not enough.
                if self.invite_token_hash.as_deref() != Some(invite_token_hash.as_str()) {
                    return Err(UserError::InviteInvalid);
                }
                if self.invite_expires_at.is_none_or(|expires| at >= expires) {
                    return Err(UserError::InviteExpired);
                }
                Ok(UserEvent::Activated { password_hash: None, provider: Some(provider), at })
            }
            UserCommand::LinkIdentity { provider, issuer, subject, at } => {
                self.require_active()?;
                let fits = |s: &str| !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control);
                if !fits(&provider) || !fits(&issuer) || !fits(&subject) {
                    return Err(UserError::InvalidIdentity);
                }
                if self.identities.iter().any(|(i, s)| *i == issuer && *s == subject) {
                    return Err(UserError::IdentityAlreadyLinked);
                }
                Ok(UserEvent::IdentityLinked { provider, issuer, subject, at })
            }
            UserCommand::SetPassword { password_hash, at } => {
                self.require_active()?;
                Ok(UserEvent::PasswordSet { password_hash, at })
            }
            UserCommand::ConfirmTotp { ciphertext, nonce, step, recovery_code_hashes, at } => {
                self.require_active()?;
                if self.totp_enrolled {
                    return Err(UserError::TotpAlreadyEnrolled);
                }
                Ok(UserEvent::TotpEnrolled { ciphertext, nonce, step, recovery_code_hashes, at })
            }
            UserCommand::RemoveTotp { step, at } => {
                self.require_active()?;
                if !self.totp_enrolled {
                    return Err(UserError::TotpNotEnrolled);
                }
                self.require_fresh_step(step)?;
                Ok(UserEvent::TotpRemoved { at })
            }
            UserCommand::RegenerateRecoveryCodes { recovery_code_hashes, step, at } => {
                self.require_active()?;
                if !self.totp_enrolled {
                    return Err(UserError::TotpNotEnrolled);
                }
                self.require_fresh_step(step)?;
                Ok(UserEvent::RecoveryCodesGenerated { recovery_code_hashes, step, at })
            }
            UserCommand::SignIn { method, step, recovery_code_hash, at } => {
                self.require_active()?;
                match (method, self.totp_enrolled) {
                    (SignInMethod::Password, true) => return Err(UserError::SecondFactorRequired),
                    (SignInMethod::PasswordTotp, false) | (SignInMethod::PasswordRecoveryCode, false) => {
                        return Err(UserError::TotpNotEnrolled)
                    }
                    (SignInMethod::PasswordTotp, true) | (SignInMethod::Oidc, true) => {
                        let step = step.ok_or(UserError::SecondFactorRequired)?;
                        self.require_fresh_step(step)?;
                    }
                    (SignInMethod::PasswordRecoveryCode, true) => {
                        let hash = recovery_code_hash.ok_or(UserError::RecoveryCodeInvalid)?;
                        if !self.recovery_code_hashes.contains(&hash) {
                            return Err(UserError::RecoveryCodeInvalid);
                        }
                        return Ok(UserEvent::RecoveryCodeUsed { recovery_code_hash: hash, at });
                    }
                    (SignInMethod::Password, false) | (SignInMethod::Oidc, false) => {}
                }
                Ok(UserEvent::SignedIn { method, step, at })
            }
            UserCommand::RecordSignInFailure { reason, at } => {
                if self.status.is_none() {
                    return Err(UserError::NotFound);
                }
                Ok(UserEvent::SignInFailed { reason, at })
            }
            UserCommand::ChangeRole { membership, at } => {
                if self.status.is_none() {
                    return Err(UserError::NotFound);
                }
                if self.status == Some(UserStatus::Disabled) {
                    return Err(UserError::Disabled);
                }
                check_membership(&membership)?;
                Ok(UserEvent::RoleChanged { membership, at })
            }
            UserCommand::Disable { at } => match self.status {
                None => Err(UserError::NotFound),
                Some(UserStatus::Disabled) => Err(UserError::Disabled),
                Some(_) => Ok(UserEvent::Disabled { at }),
            },
            UserCommand::Erase { at } => match self.status {
                None => Err(UserError::NotFound),
                Some(UserStatus::Disabled) if self.erased => Err(UserError::Erased),
                Some(UserStatus::Disabled) => Ok(UserEvent::Erased { at }),
                Some(_) => Err(UserError::NotDisabled),
            },
        }
    }

    fn evolve(&mut self, event: UserEvent) {
        match event {
            UserEvent::Invited { email, membership, invite_token_hash, invite_expires_at, .. } => {
                self.status = Some(UserStatus::Invited);
                self.email = email;
                self.membership = Some(membership);
                self.invite_token_hash = Some(invite_token_hash);
                self.invite_expires_at = Some(invite_expires_at);
            }
            UserEvent::Activated { .. } => {
                self.status = Some(UserStatus::Active);
                self.invite_token_hash = None;
            }
            UserEvent::IdentityLinked { issuer, subject, .. } => self.identities.push((issuer, subject)),
            UserEvent::Erased { .. } => self.erased = true,
            UserEvent::PasswordSet { .. } | UserEvent::SignInFailed { .. } => {}
            UserEvent::TotpEnrolled { step, recovery_code_hashes, .. } => {
                self.totp_enrolled = true;
                self.last_totp_step = Some(step);
                self.recovery_code_hashes = recovery_code_hashes;
            }
            UserEvent::TotpRemoved { .. } => {
                self.totp_enrolled = false;
                self.recovery_code_hashes.clear();
            }
            UserEvent::RecoveryCodesGenerated { recovery_code_hashes, step, .. } => {
                self.recovery_code_hashes = recovery_code_hashes;
                self.last_totp_step = Some(step);
            }
            UserEvent::RecoveryCodeUsed { recovery_code_hash, .. } => {
                self.recovery_code_hashes.retain(|h| *h != recovery_code_hash);
            }
            UserEvent::SignedIn { step, .. } => {
                if let Some(step) = step {
                    self.last_totp_step = Some(step);
                }
            }
            UserEvent::RoleChanged { membership, .. } => self.membership = Some(membership),
            UserEvent::Disabled { .. } => self.status = Some(UserStatus::Disabled),
        }
    }
}

crate::impl_aggregate!(User, "user", UserCommand, UserEvent, UserError);
