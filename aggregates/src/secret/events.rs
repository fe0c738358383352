//! Events of a secret (wire types `secret.<past>`): ciphertext only.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An event of a secret (wire types `secret.<past>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum SecretEvent {
    /// `secret.stored`: the ciphertext and nonce never leave the process (see `redact`).
    #[serde(rename = "secret.stored")]
    Stored {
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// Version.
        version: i64,
        /// Base64 ciphertext.
        #[schema(ignore)]
        ciphertext: String,
        /// Base64 nonce.
        #[schema(ignore)]
        nonce: String,
        /// Tenant data key version.
        dek_version: i32,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        stored_at: OffsetDateTime,
    },
    /// `secret.deleted`
    #[serde(rename = "secret.deleted")]
    Deleted {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
    },
    /// `secret.revealed`: who read which version (the actor is in the metadata); no value.
    #[serde(rename = "secret.revealed")]
    Revealed {
        /// Version read.
        version: i64,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        revealed_at: OffsetDateTime,
    },
}

impl DomainEvent for SecretEvent {
    fn event_type(&self) -> String {
        match self {
            SecretEvent::Stored { .. } => "secret.stored",
            SecretEvent::Deleted { .. } => "secret.deleted",
            SecretEvent::Revealed { .. } => "secret.revealed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
