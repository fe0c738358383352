//! The `Secret` aggregate: an upstream credential of a tenant (e.g. `STRIPE_SECRET_KEY`).
//! Events carry only ciphertext (sealed by the server under the tenant's data key), never the
//! value; every reveal is an event too, for the audit log. Id `<tenant_id>:<NAME>`.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error_code::{Code, DomainError};

/// The aggregate id of secret `name` of `tenant_id`.
pub fn secret_id(tenant_id: &str, name: &str) -> String {
    format!("{tenant_id}:{name}")
}

/// True for names like `STRIPE_SECRET_KEY`: `[A-Z][A-Z0-9_]{0,127}`.
pub fn is_secret_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A command on a secret.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretCommand {
    /// Store a new version (sealed by the caller for exactly this version).
    Store {
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// The version the ciphertext was sealed for: the current version + 1.
        version: i64,
        /// Base64 ciphertext.
        ciphertext: String,
        /// Base64 nonce.
        nonce: String,
        /// Version of the tenant data key used.
        dek_version: i32,
        /// When.
        at: OffsetDateTime,
    },
    /// Delete it (its events stay; the name may be stored again later).
    Delete {
        /// When.
        at: OffsetDateTime,
    },
    /// Record that a principal read the value.
    RecordReveal {
        /// When.
        at: OffsetDateTime,
    },
}

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

/// A refused secret command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Bad name.
    #[error("secret names match [A-Z][A-Z0-9_]{{0,127}}")]
    InvalidName,
    /// No such (live) secret.
    #[error("secret not found")]
    NotFound,
    /// Another store won the race for this version.
    #[error("the secret changed concurrently; retry")]
    VersionConflict,
}

impl DomainError for SecretError {
    fn code(&self) -> Code {
        match self {
            SecretError::InvalidName => Code::InvalidSecretName,
            SecretError::NotFound => Code::SecretNotFound,
            SecretError::VersionConflict => Code::AggregateConflict,
        }
    }
}

/// The secret state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// Latest version stored (0: never).
    pub version: i64,
    /// True while it exists (stored and not deleted).
    pub live: bool,
}

impl Secret {
    fn decide(&self, command: SecretCommand) -> Result<SecretEvent, SecretError> {
        match command {
            SecretCommand::Store { tenant_id, name, version, ciphertext, nonce, dek_version, at } => {
                if !is_secret_name(&name) {
                    return Err(SecretError::InvalidName);
                }
                if version != self.version + 1 {
                    return Err(SecretError::VersionConflict);
                }
                Ok(SecretEvent::Stored {
                    tenant_id,
                    name,
                    version,
                    ciphertext,
                    nonce,
                    dek_version,
                    stored_at: at,
                })
            }
            SecretCommand::Delete { at } if self.live => Ok(SecretEvent::Deleted { deleted_at: at }),
            SecretCommand::RecordReveal { at } if self.live => {
                Ok(SecretEvent::Revealed { version: self.version, revealed_at: at })
            }
            SecretCommand::Delete { .. } | SecretCommand::RecordReveal { .. } => Err(SecretError::NotFound),
        }
    }

    /// Applies an event to the state (cqrs-es `apply`).
    fn evolve(&mut self, event: SecretEvent) {
        match event {
            SecretEvent::Stored { version, .. } => {
                self.version = version;
                self.live = true;
            }
            SecretEvent::Deleted { .. } => self.live = false,
            SecretEvent::Revealed { .. } => {}
        }
    }
}

crate::impl_aggregate!(Secret, "secret", SecretCommand, SecretEvent, SecretError);

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn store(name: &str, version: i64) -> SecretCommand {
        SecretCommand::Store {
            tenant_id: "ten_x".into(),
            name: name.into(),
            version,
            ciphertext: "Y3Q=".into(),
            nonce: "bm9uY2U=".into(),
            dek_version: 1,
            at: T0,
        }
    }

    fn stored(version: i64) -> SecretEvent {
        SecretEvent::Stored {
            tenant_id: "ten_x".into(),
            name: "STRIPE_SECRET_KEY".into(),
            version,
            ciphertext: "Y3Q=".into(),
            nonce: "bm9uY2U=".into(),
            dek_version: 1,
            stored_at: T0,
        }
    }

    #[test]
    fn store_versions_follow_each_other() {
        TestFramework::<Secret>::with(())
            .given_no_previous_events()
            .when(store("STRIPE_SECRET_KEY", 1))
            .then_expect_events(vec![stored(1)]);
        TestFramework::<Secret>::with(())
            .given(vec![stored(1)])
            .when(store("STRIPE_SECRET_KEY", 2))
            .then_expect_events(vec![stored(2)]);
        TestFramework::<Secret>::with(())
            .given(vec![stored(1)])
            .when(store("STRIPE_SECRET_KEY", 1))
            .then_expect_error(SecretError::VersionConflict);
        TestFramework::<Secret>::with(())
            .given_no_previous_events()
            .when(store("stripe-key", 1))
            .then_expect_error(SecretError::InvalidName);
    }

    #[test]
    fn delete_and_reveal_need_a_live_secret() {
        let deleted = SecretEvent::Deleted { deleted_at: T0 };
        TestFramework::<Secret>::with(())
            .given(vec![stored(1)])
            .when(SecretCommand::Delete { at: T0 })
            .then_expect_events(vec![deleted.clone()]);
        TestFramework::<Secret>::with(())
            .given(vec![stored(1), stored(2)])
            .when(SecretCommand::RecordReveal { at: T0 })
            .then_expect_events(vec![SecretEvent::Revealed { version: 2, revealed_at: T0 }]);
        TestFramework::<Secret>::with(())
            .given(vec![stored(1), deleted.clone()])
            .when(SecretCommand::RecordReveal { at: T0 })
            .then_expect_error(SecretError::NotFound);
        TestFramework::<Secret>::with(())
            .given_no_previous_events()
            .when(SecretCommand::Delete { at: T0 })
            .then_expect_error(SecretError::NotFound);
        TestFramework::<Secret>::with(())
            .given(vec![stored(1), deleted])
            .when(store("STRIPE_SECRET_KEY", 2))
            .then_expect_events(vec![stored(2)]);
    }

    #[test]
    fn names() {
        assert!(
            is_secret_name("STRIPE_SECRET_KEY") && is_secret_name("A") && is_secret_name("JIRA_API_TOKEN2")
        );
        assert!(
            !is_secret_name("")
                && !is_secret_name("1ABC")
                && !is_secret_name("a_b")
                && !is_secret_name(&"A".repeat(129))
        );
    }
}
