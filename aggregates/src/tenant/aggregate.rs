//! The rules of the tenant lifecycle: created → active ⇄ suspended → deleted (terminal).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::commands::TenantCommand;
use super::error::TenantError;
use super::events::TenantEvent;
use super::limits::{Plan, TenantLimits, MAX_REQUESTS_PER_MINUTE};

/// Lifecycle state of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Keys work.
    Active,
    /// Keys are refused until reactivated.
    Suspended,
    /// Terminal.
    Deleted,
}

impl TenantStatus {
    /// Name on the wire and in query tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleted => "deleted",
        }
    }
}

/// The tenant aggregate state, rebuilt from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// `None` until created.
    pub status: Option<TenantStatus>,
    /// Id.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// Region.
    pub region: String,
    /// Explicit limit overrides.
    pub limit_overrides: TenantLimits,
    /// Creation time.
    pub created_at: Option<OffsetDateTime>,
    /// Last change.
    pub updated_at: Option<OffsetDateTime>,
    /// RBAC on or off (off for a new tenant).
    pub rbac_enabled: bool,
    /// Default role (`viewer` for a new tenant).
    pub default_role: String,
    /// IP allowlist on or off.
    pub ip_allowlist_enabled: bool,
    /// The tenant's people must enrol TOTP before acting.
    #[serde(default)]
    pub require_2fa: bool,
    /// Its networks.
    pub ip_allowlist: Vec<String>,
    /// Latest configuration version (0: none).
    pub config_version: i64,
}

/// Default role of a new tenant.
pub const DEFAULT_ROLE: &str = "viewer";

/// Longest accepted tenant name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

fn validate_name(name: &str) -> Result<(), TenantError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(TenantError::InvalidName);
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), TenantError> {
    let ok = (1..=32).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(()).ok_or(TenantError::InvalidRegion)
}

fn validate_limits(limits: &TenantLimits) -> Result<(), TenantError> {
    if limits.requests_per_minute == Some(0) {
        return Err(TenantError::InvalidLimits("requests_per_minute must be at least 1"));
    }
    if limits.requests_per_minute.is_some_and(|r| r > MAX_REQUESTS_PER_MINUTE) {
        return Err(TenantError::InvalidLimits("requests_per_minute is above 10000000"));
    }
    if limits.monthly_token_quota.is_some_and(|q| q > crate::MAX_TOKENS as u64) {
        return Err(TenantError::InvalidLimits("monthly_token_quota is above 1000000000000000"));
    }
    Ok(())
}

impl Tenant {
    /// The limits in force: plan defaults with overrides on top.
    pub fn effective_limits(&self) -> TenantLimits {
        TenantLimits::effective(self.plan, self.limit_overrides)
    }

    /// Refuses commands on tenants that do not exist or are deleted.
    fn require_live(&self) -> Result<TenantStatus, TenantError> {
        match self.status {
            None => Err(TenantError::NotFound),
            Some(TenantStatus::Deleted) => Err(TenantError::Deleted),
            Some(status) => Ok(status),
        }
    }

    fn decide(&self, command: TenantCommand) -> Result<TenantEvent, TenantError> {
        match command {
            TenantCommand::Create { tenant_id, name, plan, region, limits, at } => {
                if self.status.is_some() {
                    return Err(TenantError::AlreadyExists);
                }
                validate_name(&name)?;
                validate_region(&region)?;
                validate_limits(&limits)?;
                Ok(TenantEvent::Created {
                    tenant_id,
                    name: name.trim().to_string(),
                    plan,
                    region,
                    limits,
                    created_at: at,
                })
            }
            TenantCommand::Update { name, plan, limits, at } => {
                self.require_live()?;
                if name.is_none() && plan.is_none() && limits.is_none() {
                    return Err(TenantError::EmptyUpdate);
                }
                if let Some(name) = &name {
                    validate_name(name)?;
                }
                if let Some(limits) = &limits {
                    validate_limits(limits)?;
                }
                Ok(TenantEvent::Updated {
                    name: name.map(|n| n.trim().to_string()),
                    plan,
                    limits: limits.map(|l| self.limit_overrides.merged_with(l)),
                    updated_at: at,
                })
            }
            TenantCommand::Suspend { reason, at } => match self.require_live()? {
                TenantStatus::Suspended => Err(TenantError::AlreadySuspended),
                _ => Ok(TenantEvent::Suspended { reason, suspended_at: at }),
            },
            TenantCommand::Reactivate { at } => match self.require_live()? {
                TenantStatus::Suspended => Ok(TenantEvent::Reactivated { reactivated_at: at }),
                _ => Err(TenantError::NotSuspended),
            },
            TenantCommand::ConfigureRbac { enabled, default_role, at } => {
                self.require_live()?;
                if enabled.is_none() && default_role.is_none() {
                    return Err(TenantError::EmptyUpdate);
                }
                if default_role.as_deref().is_some_and(|r| !crate::sub_account::is_role_name(r)) {
                    return Err(TenantError::InvalidRole);
                }
                Ok(TenantEvent::RbacConfigured {
                    enabled: enabled.unwrap_or(self.rbac_enabled),
                    default_role: default_role.unwrap_or_else(|| self.default_role.clone()),
                    configured_at: at,
                })
            }
            TenantCommand::SetIpAllowlist { enabled, allowed_ips, at } => {
                self.require_live()?;
                let allowed_ips =
                    crate::api_key::settings::normalise_ips(&allowed_ips).map_err(|e| match e {
                        crate::api_key::ApiKeyError::InvalidCidr(raw) => TenantError::InvalidCidr(raw),
                        _ => TenantError::InvalidCidr("too many networks".into()),
                    })?;
                if enabled && allowed_ips.is_empty() {
                    return Err(TenantError::EmptyAllowlist);
                }
                Ok(TenantEvent::IpAllowlistSet { enabled, allowed_ips, set_at: at })
            }
            TenantCommand::DisableWebhook { url, reason, at } => {
                self.require_live()?;
                Ok(TenantEvent::WebhookDisabled { url, reason, disabled_at: at })
            }
            TenantCommand::EnableWebhook { url, at } => {
                self.require_live()?;
                Ok(TenantEvent::WebhookEnabled { url, enabled_at: at })
            }
            TenantCommand::SetTwoFactorPolicy { require_2fa, at } => {
                self.require_live()?;
                Ok(TenantEvent::TwoFactorPolicySet { require_2fa, set_at: at })
            }
            TenantCommand::SaveConfig { mut config, secrets, allow_private_webhooks, at } => {
                self.require_live()?;
                super::config::normalise(&mut config);
                super::config::validate(&config, &secrets, allow_private_webhooks).map_err(|issues| {
                    let text: Vec<String> =
                        issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect();
                    TenantError::InvalidConfig(text.join("; "))
                })?;
                Ok(TenantEvent::ConfigSaved { version: self.config_version + 1, config, saved_at: at })
            }
            TenantCommand::SetResourceLimits { limits, at } => {
                self.require_live()?;
                super::resource_limits::validate(&limits).map_err(TenantError::InvalidResourceLimits)?;
                Ok(TenantEvent::ResourceLimitsSet { limits, set_at: at })
            }
            TenantCommand::Delete { at } => {
                self.require_live()?;
                Ok(TenantEvent::Deleted { deleted_at: at })
            }
        }
    }
}

crate::impl_aggregate!(Tenant, "tenant", TenantCommand, TenantEvent, TenantError);

impl Tenant {
    /// Applies an event to the state (cqrs-es `apply`).
    fn evolve(&mut self, event: TenantEvent) {
        match event {
            TenantEvent::Created { tenant_id, name, plan, region, limits, created_at } => {
                self.status = Some(TenantStatus::Active);
                self.tenant_id = tenant_id;
                self.name = name;
                self.plan = plan;
                self.region = region;
                self.limit_overrides = limits;
                self.created_at = Some(created_at);
                self.updated_at = Some(created_at);
                self.rbac_enabled = false;
                self.default_role = DEFAULT_ROLE.to_string();
            }
            TenantEvent::ConfigSaved { version, saved_at, .. } => {
                self.config_version = version;
                self.updated_at = Some(saved_at);
            }
            TenantEvent::ResourceLimitsSet { set_at, .. } => {
                self.updated_at = Some(set_at);
            }
            TenantEvent::WebhookDisabled { .. } | TenantEvent::WebhookEnabled { .. } => {}
            TenantEvent::IpAllowlistSet { enabled, allowed_ips, set_at } => {
                self.ip_allowlist_enabled = enabled;
                self.ip_allowlist = allowed_ips;
                self.updated_at = Some(set_at);
            }
            TenantEvent::TwoFactorPolicySet { require_2fa, set_at } => {
                self.require_2fa = require_2fa;
                self.updated_at = Some(set_at);
            }
            TenantEvent::RbacConfigured { enabled, default_role, configured_at } => {
                self.rbac_enabled = enabled;
                self.default_role = default_role;
                self.updated_at = Some(configured_at);
            }
            TenantEvent::Updated { name, plan, limits, updated_at } => {
                if let Some(name) = name {
                    self.name = name;
                }
                if let Some(plan) = plan {
                    self.plan = plan;
                }
                if let Some(limits) = limits {
                    self.limit_overrides = limits;
                }
                self.updated_at = Some(updated_at);
            }
            TenantEvent::Suspended { suspended_at, .. } => {
                self.status = Some(TenantStatus::Suspended);
                self.updated_at = Some(suspended_at);
            }
            TenantEvent::Reactivated { reactivated_at } => {
                self.status = Some(TenantStatus::Active);
                self.updated_at = Some(reactivated_at);
            }
            TenantEvent::Deleted { deleted_at } => {
                self.status = Some(TenantStatus::Deleted);
                self.updated_at = Some(deleted_at);
            }
        }
    }
}
