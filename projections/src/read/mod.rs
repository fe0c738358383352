//! Typed reads of the query tables, one module per table, tenant first: with the key cache's
//! load and the quota notices' join (`src/webhooks/notices.rs`: one query across `api_keys`,
//! `sub_accounts` and `tenants`), the only code outside a projection that writes SQL against
//! a query table.

pub mod api_keys;
pub mod roles;
pub mod secrets;
pub mod sub_accounts;
pub mod tenants;
pub mod users;
