//! The rules of each aggregate's commands that need more than the aggregate itself (the key
//! cache, the query tables, plan limits), below HTTP: a handler extracts, calls one of these
//! and maps the answer.
//!
//! - [`api_keys`]: scope, issuer, plan limits and every key command.

pub mod api_keys;
