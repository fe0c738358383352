//! What may be asked of a user. Hashes, sealed secrets, verified TOTP steps and times are
//! computed by the caller; the aggregate decides whether they may be used.

use time::OffsetDateTime;

use super::events::{Membership, SignInMethod};

/// A command on a user.
#[derive(Debug, Clone)]
pub enum UserCommand {
    /// Creates the account, waiting for its invite.
    Invite {
        /// New id (`usr_…`).
        user_id: String,
        /// E-mail as given (normalised here).
        email: String,
        /// Role and scope.
        membership: Membership,
        /// SHA-256 of the invite token.
        invite_token_hash: String,
        /// When the invite stops working.
        invite_expires_at: OffsetDateTime,
        /// Now.
        at: OffsetDateTime,
    },
    /// Accepts the invite whose token hashes to `invite_token_hash`, with a first password.
    AcceptInvite {
        /// SHA-256 of the presented token.
        invite_token_hash: String,
        /// argon2id of the password (the policy was checked by the caller).
        password_hash: String,
        /// Now.
        at: OffsetDateTime,
    },
    /// Activates an invited account through its invite (the token hashing to
    /// `invite_token_hash`), with an OpenID provider that verified the invited e-mail instead
    /// of a password.
    ActivateByProvider {
        /// The provider's name.
        provider: String,
        /// SHA-256 of the presented invite token.
        invite_token_hash: String,
        /// Now.
        at: OffsetDateTime,
    },
    /// Links an OpenID identity (issuer and subject) to the account: from then on that identity
    /// signs in to it. Only the person (signed in) or their invite links one.
    LinkIdentity {
        /// The provider's name.
        provider: String,
        /// The provider's issuer.
        issuer: String,
        /// The subject at that issuer.
        subject: String,
        /// Now.
        at: OffsetDateTime,
    },
    /// Sets a new password.
    SetPassword {
        /// argon2id of the password.
        password_hash: String,
        /// Now.
        at: OffsetDateTime,
    },
    /// Turns TOTP on with a secret whose code for `step` the caller verified.
    ConfirmTotp {
        /// Sealed secret.
        ciphertext: String,
        /// Its nonce.
        nonce: String,
        /// The verified step.
        step: u64,
        /// Hashes of the first recovery codes.
        recovery_code_hashes: Vec<String>,
        /// Now.
        at: OffsetDateTime,
    },
    /// Turns TOTP off (the caller verified the password and a code for `step`).
    RemoveTotp {
        /// The verified step.
        step: u64,
        /// Now.
        at: OffsetDateTime,
    },
    /// Replaces the recovery codes (the caller verified a code for `step`).
    RegenerateRecoveryCodes {
        /// Hashes of the new codes.
        recovery_code_hashes: Vec<String>,
        /// The verified step.
        step: u64,
        /// Now.
        at: OffsetDateTime,
    },
    /// Records a successful sign-in; `step` for a TOTP code (refused if already used),
    /// `recovery_code_hash` for a recovery code (refused unless unspent).
    SignIn {
        /// How it was proven.
        method: SignInMethod,
        /// The verified TOTP step.
        step: Option<u64>,
        /// The hash of the presented recovery code.
        recovery_code_hash: Option<String>,
        /// Now.
        at: OffsetDateTime,
    },
    /// Records a failed sign-in.
    RecordSignInFailure {
        /// `password`, `totp` or `recovery_code`.
        reason: String,
        /// Now.
        at: OffsetDateTime,
    },
    /// Changes the role and scope.
    ChangeRole {
        /// New membership.
        membership: Membership,
        /// Now.
        at: OffsetDateTime,
    },
    /// Disables the user (terminal).
    Disable {
        /// Now.
        at: OffsetDateTime,
    },
    /// Erases a disabled user's secrets: their data key is destroyed, so the sealed password
    /// hashes and TOTP secrets in the log can never be opened again.
    Erase {
        /// Now.
        at: OffsetDateTime,
    },
}
