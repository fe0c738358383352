//! The shape every domain error shares: a stable snake_case code and a kind.
//!
//! The HTTP layer maps a kind to a status (422, 404, 409, 403); the code is the contract
//! that clients match on and is never renamed.

/// What sort of failure a domain error is, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command carried a value that breaks a rule (bad name, bad limit).
    InvalidInput,
    /// The target does not exist (or is not visible to the caller).
    NotFound,
    /// The target exists but its state does not allow the command.
    Conflict,
    /// The caller may not do this.
    Forbidden,
}

/// Implemented by every domain error enum.
pub trait DomainError: std::error::Error {
    /// Stable machine-readable code, e.g. `tenant_not_found`.
    fn code(&self) -> &'static str;
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
}
