//! Typed reads of the query tables, one module per table, tenant first: with the key cache's
//! load, the only code outside a projection that writes SQL against a query table (the
//! remaining exceptions are named in the README's layout).

pub mod roles;
pub mod secrets;
pub mod sub_accounts;
pub mod tenants;
