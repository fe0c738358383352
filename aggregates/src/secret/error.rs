//! Refused secret commands.

use crate::error_code::{Code, DomainError};

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
