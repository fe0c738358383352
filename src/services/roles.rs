//! Roles and the tenant's RBAC settings: define, change, delete (refused while in use), turn
//! RBAC on or off; whether a role exists, and the per-tenant cap (`TENANT_MAX_ROLES`).

use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::normalise_permissions;
use tokenhub_aggregates::role::{role_id, RoleCommand, RoleInUse};
use tokenhub_aggregates::sub_account::is_role_name;
use tokenhub_aggregates::tenant::TenantCommand;

use tokenhub_projections::read;

use crate::auth::Principal;
use crate::commands::{execute, CommandMetadata, RequestMeta};
use crate::error::{Code, Failure, Outcome};
use crate::services::Ctx;

/// The permissions of role `name` in `tenant_id`, if it exists.
pub async fn role_permissions(pool: &PgPool, tenant_id: &str, name: &str) -> Outcome<Option<Vec<String>>> {
    Ok(read::roles::get(pool, tenant_id, name).await?.map(|r| r.permissions.0))
}

/// 422 `role_not_found` unless role `name` exists in `tenant_id`.
pub async fn require_role(pool: &PgPool, tenant_id: &str, name: &str) -> Outcome<()> {
    if !is_role_name(name) || role_permissions(pool, tenant_id, name).await?.is_none() {
        return Err(Failure::new(Code::UnknownRole, format!("role '{name}' does not exist in this tenant")));
    }
    Ok(())
}

/// 409 `role_limit_reached` when `tenant_id` already has `max` roles.
pub async fn check_role_cap(pool: &PgPool, tenant_id: &str, max: i64) -> Outcome<()> {
    let n = read::roles::count(pool, tenant_id).await?;
    if n >= max {
        return Err(Failure::new(
            Code::RoleLimitReached,
            format!("the tenant has {n} roles, the most allowed (TENANT_MAX_ROLES); delete one first"),
        ));
    }
    Ok(())
}

/// A role as its `Create` command describes it (what the event will say).
#[derive(Debug, Clone)]
pub struct NewRole {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Permissions, normalised.
    pub permissions: Vec<String>,
}

/// Turns RBAC on or off, or changes the default role (which must exist).
pub async fn configure(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    enabled: Option<bool>,
    default_role: Option<String>,
) -> Outcome<()> {
    if let Some(role) = &default_role {
        require_role(&ctx.pool, tenant, role).await?;
    }
    let command = TenantCommand::ConfigureRbac { enabled, default_role, at: OffsetDateTime::now_utc() };
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    execute(&ctx.commands.tenants, tenant, command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}

/// Defines a role. `before_commit` sees what its event will say before it is stored (an
/// idempotent answer).
pub async fn create(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    role: NewRole,
    before_commit: impl AsyncFnOnce(&NewRole) -> Outcome<()>,
) -> Outcome<()> {
    if !is_role_name(&role.name) {
        return Err(Failure::new(Code::InvalidRole, "role name must match [a-z][a-z0-9_-]{0,31}"));
    }
    check_role_cap(&ctx.pool, tenant, ctx.limits.max_roles).await?;
    let command = RoleCommand::Create {
        tenant_id: tenant.to_string(),
        name: role.name.clone(),
        description: role.description.clone(),
        permissions: role.permissions.clone(),
        at: OffsetDateTime::now_utc(),
    };
    let planned = NewRole {
        permissions: normalise_permissions(&role.permissions).unwrap_or_else(|_| role.permissions.clone()),
        ..role
    };
    before_commit(&planned).await?;
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    execute(&ctx.commands.roles, &role_id(tenant, &planned.name), command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}

fn role_not_found() -> Failure {
    Failure::new(Code::RoleNotFound, "role not found")
}

/// Replaces a role's permissions (and its description, when given).
pub async fn update(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    name: &str,
    description: Option<String>,
    permissions: Vec<String>,
) -> Outcome<()> {
    if !is_role_name(name) {
        return Err(role_not_found());
    }
    let command = RoleCommand::Update { description, permissions, at: OffsetDateTime::now_utc() };
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    execute(&ctx.commands.roles, &role_id(tenant, name), command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}

/// Deletes a role; refused while it is the default role or a live sub-account has it.
pub async fn delete(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    name: &str,
) -> Outcome<()> {
    if !is_role_name(name) {
        return Err(role_not_found());
    }
    let default_role = read::tenants::default_role(&ctx.pool, tenant).await?;
    let default_role = default_role.ok_or_else(|| Failure::new(Code::TenantNotFound, "tenant not found"))?;
    let used = read::sub_accounts::role_in_use(&ctx.pool, tenant, name).await?;
    let in_use = if default_role == name {
        Some(RoleInUse::Default)
    } else if used {
        Some(RoleInUse::SubAccount)
    } else {
        None
    };
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    let command = RoleCommand::Delete { in_use, at: OffsetDateTime::now_utc() };
    execute(&ctx.commands.roles, &role_id(tenant, name), command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}
