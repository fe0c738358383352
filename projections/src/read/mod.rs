//! Typed reads of the query tables, one module per table, tenant first: the only place (with
//! the key cache's load) that writes SQL against a query table outside its projection.

pub mod secrets;
