//! The audit log, which is the event log: query with filters, export, and tamper evidence.
//!
//! - [`query`]: filtered pages by global position (`AuditFilter`, `AuditItem`).
//! - [`as_of`]: state at a past moment, rebuilt from the log.
//! - [`export`]: the NDJSON export, in constant memory.
//! - [`names`]: the names beside an audit page's ids.
//! - [`chain`]: recomputes the hash chain written by the insert trigger and reports the first
//!   position where it breaks.

pub mod as_of;
pub mod chain;
pub mod export;
pub mod names;
pub mod query;

pub use chain::{verify_chain, ChainBreak, ChainReport};
pub use query::{fetch_page, AuditFilter, AuditItem};
