//! Failures below HTTP: a [`Code`] from the one table, a message for the caller, and
//! seconds for `Retry-After` where it applies. Services, commands and the cache return
//! [`Failure`]; the HTTP layer only renders it (`src/http/error.rs`).
//!
//! Internal details (database errors, bugs) are logged here and never put in the message.

mod code;

use cqrs_es::AggregateError;
use tokenhub_aggregates::DomainError;

pub use code::Code;

/// Why something was not done: a [`Code`] (which fixes the status), a message, and seconds
/// for `Retry-After` (429, 503).
#[derive(Debug)]
pub struct Failure {
    /// Stable code.
    pub code: Code,
    /// Message shown to the caller.
    pub message: String,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

/// The result of a service.
pub type Outcome<T> = Result<T, Failure>;

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    /// The same failure with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A dependency failed (503); the detail is logged, not returned.
    pub fn unavailable(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "dependency failure");
        Self::new(Code::ServiceUnavailable, "a dependency is unavailable; retry later").retry_after(1)
    }

    /// A bug (500); the detail is logged, not returned.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(Code::Internal, "internal error")
    }

    /// The failure of a domain error: its code from the table.
    pub fn domain<E: DomainError>(e: &E) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        // SQLSTATE class 22 (data exception: a value PostgreSQL cannot take, such as U+0000 in
        // text) is the request's fault and retrying cannot help: 422, not 503 "retry later".
        // The input checks refuse such values first; this is the last line.
        if let sqlx::Error::Database(db) = &e {
            if db.code().is_some_and(|c| c.starts_with("22")) {
                tracing::warn!(error = %e, "a value was refused by the database");
                return Self::new(Code::InvalidRequest, "a value in the request cannot be stored");
            }
        }
        Self::unavailable(&e)
    }
}

impl<E: DomainError> From<AggregateError<E>> for Failure {
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => Self::domain(&e),
            AggregateError::AggregateConflict => {
                Self::new(Code::AggregateConflict, "the resource was changed by a concurrent request; retry")
            }
            AggregateError::DatabaseConnectionError(e) => Self::unavailable(&e),
            AggregateError::DeserializationError(e) | AggregateError::UnexpectedError(e) => {
                Self::internal(&e)
            }
        }
    }
}
