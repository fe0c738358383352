//! The `ApiKey` aggregate: a tenant key (tenant admin, tenant finance or data-plane key,
//! optionally under a sub-account) or a platform key (gateway, finance admin, auditor).
//!
//! Layout: [`commands`], [`events`], [`aggregate`] (the rules), [`settings`] (validated key
//! settings: expiry, CIDR and model allowlists, permissions, tags, rate limit), [`issuer`]
//! (who acts, and the rule that a sub-account manager never grants more than it holds),
//! [`error`].

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod issuer;
pub mod settings;
#[cfg(test)]
mod tests;

pub use aggregate::{ApiKey, KeyStatus};
pub use commands::ApiKeyCommand;
pub use error::ApiKeyError;
pub use events::{ApiKeyEvent, KeyChanges};
pub use issuer::{DisabledBy, Issuer, ManagerCredential, KEYS_MANAGE};
pub use settings::{
    normalise_permissions, KeyOwner, KeyRole, KeySettings, ParentLimits, QuotaPeriod, RateLimit,
    RESERVED_TAG_PREFIX,
};
