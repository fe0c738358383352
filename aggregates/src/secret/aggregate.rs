//! The secret state and its rules: decide (command → event) and evolve.

use serde::{Deserialize, Serialize};

use super::{is_secret_name, SecretCommand, SecretError, SecretEvent};

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
