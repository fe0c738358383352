//! Commands on a role, its id and the roles every tenant starts with.

use time::OffsetDateTime;

/// The aggregate id of role `name` in `tenant_id`.
pub fn role_id(tenant_id: &str, name: &str) -> String {
    format!("{tenant_id}:{name}")
}

/// The roles every new tenant starts with: (name, description, permissions).
pub fn default_roles() -> [(&'static str, &'static str, &'static [&'static str]); 2] {
    [("viewer", "Read-only access", &["read"]), ("admin", "Full access", &["read", "write", "delete"])]
}

/// A command on a role.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    /// Define it (again, after a delete).
    Create {
        /// Tenant.
        tenant_id: String,
        /// Name, `[a-z][a-z0-9_-]{0,31}`.
        name: String,
        /// Description.
        description: String,
        /// Permissions.
        permissions: Vec<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Replace description and permissions.
    Update {
        /// New description (unchanged when `None`).
        description: Option<String>,
        /// New permissions.
        permissions: Vec<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Remove it. The server passes why it is still in use, if it is.
    Delete {
        /// `Some(reason)` when a sub-account or the tenant's default role uses it.
        in_use: Option<RoleInUse>,
        /// When.
        at: OffsetDateTime,
    },
}

/// Why a role cannot be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleInUse {
    /// It is the tenant's default role.
    Default,
    /// A sub-account has it.
    SubAccount,
}
