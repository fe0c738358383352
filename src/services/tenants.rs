//! Tenants: creation (with its tenant-admin key, in one transaction) and every other command
//! on the `Tenant` aggregate — lifecycle, RBAC settings, the IP allowlist (which may not lock
//! out the key that sets it), resource limits, configuration, the 2FA policy, webhooks.
//! Handlers build the command from their DTO; the rules and the command run here.

use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{ApiKeyCommand, Issuer, KeyOwner, KeyRole, KeySettings};
use tokenhub_aggregates::tenant::{Plan, TenantCommand, TenantLimits};

use crate::auth::key_format::{self, GeneratedKey};
use crate::auth::{new_tenant_id, Principal};
use crate::commands::{execute, execute_retrying, CommandMetadata, RequestMeta};
use crate::error::{Code, Failure, Outcome};
use crate::services::Ctx;

/// A tenant to create.
#[derive(Debug)]
pub struct NewTenant {
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// Region (`default` when absent).
    pub region: Option<String>,
    /// Limit overrides.
    pub limits: TenantLimits,
}

/// A created tenant, with its tenant-admin key (shown once).
#[derive(Debug)]
pub struct CreatedTenant {
    /// Id, `ten_…`.
    pub tenant_id: String,
    /// The tenant-admin key.
    pub key: GeneratedKey,
    /// Name, trimmed as stored.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// Region.
    pub region: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// Creates a tenant and its tenant-admin key. `before_commit` sees the answer (the key shown
/// once included) before the commands are stored: an idempotent answer is kept with it.
pub async fn create(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    new: NewTenant,
    before_commit: impl AsyncFnOnce(&CreatedTenant) -> Outcome<()>,
) -> Outcome<CreatedTenant> {
    let tenant_id = new_tenant_id();
    let key = key_format::generate();
    let now = OffsetDateTime::now_utc();
    let region = new.region.unwrap_or_else(|| "default".to_string());
    let command = TenantCommand::Create {
        tenant_id: tenant_id.clone(),
        name: new.name.clone(),
        plan: new.plan,
        region: region.clone(),
        limits: new.limits,
        at: now,
    };
    let issue = ApiKeyCommand::Issue {
        public_id: key.public_id.clone(),
        owner: KeyOwner::Tenant { tenant_id: tenant_id.clone(), sub_account_id: None },
        role: KeyRole::TenantAdmin,
        name: "tenant admin".into(),
        secret_hash: ctx.hasher.hash_hex(&key.full),
        settings: KeySettings::default(),
        parent: None,
        at: now,
        issuer: Issuer::Admin,
    };
    let created = CreatedTenant {
        tenant_id: tenant_id.clone(),
        name: new.name.trim().to_string(),
        plan: new.plan,
        region,
        created_at: now,
        key,
    };
    before_commit(&created).await?;
    let metadata = CommandMetadata::new(principal, meta, Some(&tenant_id));
    ctx.commands.create_tenant(&tenant_id, command, &created.key.public_id, issue, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    tracing::info!(tenant_id = %tenant_id, "tenant created");
    Ok(created)
}

/// Runs `command` on tenant `tenant` and waits until the query tables include it.
pub async fn act(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    command: TenantCommand,
) -> Outcome<()> {
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    execute(&ctx.commands.tenants, tenant, command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}

/// [`act`] for a command that only sets a value (no precondition on the version): a
/// concurrent change of the tenant is retried instead of answered 409.
pub async fn set(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    command: impl Fn() -> TenantCommand,
) -> Outcome<()> {
    let metadata = CommandMetadata::new(principal, meta, Some(tenant));
    execute_retrying(&ctx.commands.tenants, tenant, command, metadata).await?;
    ctx.readmodels.wait_for_head().await;
    Ok(())
}

/// Sets the tenant's IP allowlist. A tenant's own key may not switch on a list that leaves
/// out the address it calls from (it would lock itself out): 422 `allowlist_excludes_caller`.
pub async fn set_ip_allowlist(
    ctx: &Ctx,
    principal: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    enabled: bool,
    allowed_ips: Vec<String>,
) -> Outcome<()> {
    if enabled && matches!(principal, Principal::TenantKey { .. }) {
        let nets = tokenhub_aggregates::api_key::settings::normalise_ips(&allowed_ips).unwrap_or_default();
        let caller: Option<std::net::IpAddr> = meta.source_ip.parse().ok();
        let inside = caller.is_some_and(|ip| {
            nets.iter().filter_map(|n| n.parse::<ipnet::IpNet>().ok()).any(|n| n.contains(&ip))
        });
        if !nets.is_empty() && !inside {
            return Err(Failure::new(
                Code::AllowlistExcludesCaller,
                format!(
                    "the list does not include your address {}; you would lock yourself out",
                    meta.source_ip
                ),
            ));
        }
    }
    let command = TenantCommand::SetIpAllowlist { enabled, allowed_ips, at: OffsetDateTime::now_utc() };
    act(ctx, principal, meta, tenant, command).await
}
