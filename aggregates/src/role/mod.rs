//! The `Role` aggregate: a named set of permissions a tenant defines for its end-users and
//! sub-accounts. Id `<tenant_id>:<name>`, so names are unique per tenant by construction.

pub mod aggregate;
#[cfg(test)]
mod tests;

pub use aggregate::{default_roles, role_id, Role, RoleCommand, RoleError, RoleEvent, RoleInUse};
