//! The `User` aggregate: a person who operates TokenHub, with one membership (platform-wide
//! or in one tenant), a password, an optional TOTP second factor and its recovery codes.
//!
//! Pure like the others: hashes, sealed secrets, ids and times come in through commands; the
//! HTTP layer hashes passwords (argon2id), seals the TOTP secret and checks TOTP codes, and
//! this aggregate decides what may happen (an invite is used once and expires, a TOTP step is
//! never accepted twice, a recovery code works once, a disabled user does nothing).
//!
//! Routes: `src/http/people.rs` (invites, passwords, sign-in, sessions); TOTP and OIDC are next.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{User, UserStatus};
pub use commands::UserCommand;
pub use error::UserError;
pub use events::{Membership, SignInMethod, UserEvent};

/// Prefix of user ids.
pub const USER_ID_PREFIX: &str = "usr_";

/// Platform roles of users (the same names as the platform keys' and the master key's).
pub const PLATFORM_ROLES: &[&str] = &["super_admin", "finance_admin", "auditor"];

/// Tenant roles of users.
pub const TENANT_ROLES: &[&str] = &["tenant_admin", "tenant_finance", "tenant_viewer"];

/// The e-mail as stored: trimmed and lower-cased (one account per address, case-insensitive),
/// or `None` when it is not a plausible address (`local@domain.tld`, at most 254 characters,
/// no spaces or control characters).
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then_some(email)
}
