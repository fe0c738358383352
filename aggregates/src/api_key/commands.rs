//! What callers may ask of an API key. The server supplies ids, hashes and times, and says
//! who asks ([`Issuer`]): every command is checked against its issuer's own credential.

use time::OffsetDateTime;

use super::events::KeyChanges;
use super::issuer::Issuer;
use super::settings::{KeyOwner, KeyRole, KeySettings, ParentLimits};

/// A command on the `ApiKey` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyCommand {
    /// Issue a new key (only its hash comes in).
    Issue {
        /// Public id (also the aggregate id).
        public_id: String,
        /// Owner.
        owner: KeyOwner,
        /// Role.
        role: KeyRole,
        /// Display name.
        name: String,
        /// Hex HMAC of the full key.
        secret_hash: String,
        /// Settings (validated here).
        settings: KeySettings,
        /// The sub-account's limits, for a key under a sub-account.
        parent: Option<ParentLimits>,
        /// When.
        at: OffsetDateTime,
        /// Who asks.
        issuer: Issuer,
    },
    /// Change settings or name; at least one field.
    Update {
        /// The changes.
        changes: KeyChanges,
        /// The sub-account's limits, for a key under a sub-account.
        parent: Option<ParentLimits>,
        /// When.
        at: OffsetDateTime,
        /// Who asks.
        issuer: Issuer,
    },
    /// Stop the key until enabled.
    Disable {
        /// When.
        at: OffsetDateTime,
        /// Who asks.
        issuer: Issuer,
    },
    /// Undo a disable.
    Enable {
        /// When.
        at: OffsetDateTime,
        /// Who asks.
        issuer: Issuer,
    },
    /// Replace the secret; the old one keeps working until `grace_until` (none = at once).
    Rotate {
        /// Hash of the new full key.
        new_secret_hash: String,
        /// End of the grace period of the old secret.
        grace_until: Option<OffsetDateTime>,
        /// When.
        at: OffsetDateTime,
        /// Who asks.
        issuer: Issuer,
    },
    /// Terminal.
    Revoke {
        /// Why, for the audit log.
        reason: Option<String>,
        /// When.
        at: OffsetDateTime,
        /// Who asks.
        issuer: Issuer,
    },
}
