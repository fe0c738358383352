//! TokenHub domain: the aggregates, their commands, events and invariants.
//!
//! Pure: no IO, no database, no HTTP. Time and ids come in through commands, so every
//! decision here is deterministic and tested with cqrs-es's given/when/then framework.
//!
//! # Layout
//! - [`ids`]: the stable identifier formats (`ten_…`, public key ids).
//! - [`error_code`]: the kinds of domain failure and the trait that gives each a stable code.
//! - [`tenant`]: the `Tenant` aggregate (one folder: commands, events, aggregate, errors, tests).
//! - [`api_key`]: the `ApiKey` aggregate (tenant and platform keys).
//! - [`sub_account`]: the `SubAccount` aggregate.
//! - [`role`]: the `Role` aggregate (tenant-defined RBAC roles).
//! - [`redact`]: which event fields never leave the process (hashes, ciphertext).

pub mod api_key;
pub mod error_code;
pub mod ids;
pub mod redact;
pub mod role;
pub mod serde_util;
pub mod sub_account;
pub mod tenant;

pub use error_code::{DomainError, ErrorKind};
