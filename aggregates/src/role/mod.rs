//! The `Role` aggregate: a named set of permissions a tenant defines for its end-users and
//! sub-accounts. Id `<tenant_id>:<name>`, so names are unique per tenant by construction.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
#[cfg(test)]
mod tests;

pub use aggregate::Role;
pub use commands::{default_roles, role_id, RoleCommand, RoleInUse};
pub use error::RoleError;
pub use events::RoleEvent;
