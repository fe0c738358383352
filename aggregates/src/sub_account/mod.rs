//! The `SubAccount` aggregate: a department, environment, project or customer inside a tenant,
//! with its own role, permissions and quota. Its keys can never exceed it.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{SubAccount, SubAccountStatus};
pub use commands::SubAccountCommand;
pub use error::SubAccountError;
pub use events::{SubAccountChanges, SubAccountEvent};

/// Prefix of sub-account ids.
pub const SUB_ACCOUNT_ID_PREFIX: &str = "sub_";

/// True when `s` looks like a sub-account id.
pub fn is_sub_account_id(s: &str) -> bool {
    crate::ids::has_id_shape(s, SUB_ACCOUNT_ID_PREFIX)
}

/// Validates a role name: `[a-z][a-z0-9_-]{0,31}`.
pub fn is_role_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
