//! Authentication and authorization.
//!
//! - [`key_format`]: the `thk_…` key string (generate, parse, checksum).
//! - [`hashing`]: HMAC-SHA-256 of keys under the server pepper.
//! - [`master`]: the super-admin master key (plain, argon2id hash, or generated).
//! - [`password`]: people's password policy and argon2id hashing.
//! - [`principal`]: who is calling (resolved from headers in `src/http/authenticate.rs`).
//! - [`throttle`]: failed authentications per address, reveals per platform key.
//! - [`authorize`]: the one authorization decision, pure (its extractor is
//!   `src/http/authorized.rs`).
//!
//! Nothing here knows axum.

pub mod authorize;
pub mod denied;
pub mod hashing;
pub mod key_format;
pub mod master;
pub mod password;
pub mod principal;
pub mod throttle;
pub mod totp;

pub use authorize::{authorize, requires, Action};
pub use denied::Denied;
pub use principal::Principal;

/// A new tenant id, `ten_` and 20 random characters.
pub fn new_tenant_id() -> String {
    format!(
        "{}{}",
        tokenhub_aggregates::ids::TENANT_ID_PREFIX,
        crate::crypto::random_alphanumeric(tokenhub_aggregates::ids::ID_RANDOM_LEN)
    )
}
