//! The rules of a key: issued → active ⇄ disabled; rotate any time; revoked is terminal.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::commands::ApiKeyCommand;
use super::error::ApiKeyError;
use super::events::{ApiKeyEvent, KeyChanges};
use super::issuer::{DisabledBy, Issuer, ManagerCredential};
use super::settings::{self, KeyOwner, KeyRole, KeySettings};

/// Longest grace period of a rotated-away secret.
pub const MAX_GRACE: Duration = Duration::days(30);

/// Lifecycle state of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Works.
    Active,
    /// Refused until enabled.
    Disabled,
    /// Refused for good.
    Revoked,
}

impl KeyStatus {
    /// Name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// The key aggregate state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApiKey {
    /// `None` until issued.
    pub status: Option<KeyStatus>,
    /// Public id.
    pub public_id: String,
    /// Owner.
    pub owner: Option<KeyOwner>,
    /// Role.
    pub role: KeyRole,
    /// Name.
    pub name: String,
    /// Current secret hash.
    pub secret_hash: String,
    /// Settings.
    pub settings: KeySettings,
    /// Who disabled it, while disabled.
    #[serde(default)]
    pub disabled_by: DisabledBy,
}

impl ApiKey {
    fn require_live(&self) -> Result<KeyStatus, ApiKeyError> {
        match self.status {
            None => Err(ApiKeyError::NotFound),
            Some(KeyStatus::Revoked) => Err(ApiKeyError::Revoked),
            Some(s) => Ok(s),
        }
    }

    fn normalise_changes(&self, changes: KeyChanges, at: OffsetDateTime) -> Result<KeyChanges, ApiKeyError> {
        if changes.is_empty() {
            return Err(ApiKeyError::EmptyUpdate);
        }
        if let Some(name) = &changes.name {
            settings::validate_name(name)?;
        }
        if let Some(q) = changes.quota_limit {
            settings::validate_quota(q)?;
        }
        if let Some(e) = changes.expires_at {
            settings::validate_expiry(e, at)?;
        }
        if let Some(tags) = &changes.tags {
            settings::validate_tags(tags)?;
        }
        if let Some(r) = changes.rate_limit {
            settings::validate_rate_limit(r)?;
        }
        Ok(KeyChanges {
            name: changes.name.map(|n| n.trim().to_string()),
            allowed_ips: changes.allowed_ips.as_deref().map(settings::normalise_ips).transpose()?,
            allowed_models: changes.allowed_models.as_deref().map(settings::normalise_models).transpose()?,
            permissions: changes.permissions.as_deref().map(settings::normalise_permissions).transpose()?,
            ..changes
        })
    }

    /// The manager, after checking that this key is one it may act on.
    fn managed_by<'a>(&self, issuer: &'a Issuer) -> Result<Option<&'a ManagerCredential>, ApiKeyError> {
        let Issuer::SubAccountManager(manager) = issuer else { return Ok(None) };
        let owner = self.owner.as_ref().ok_or(ApiKeyError::NotFound)?;
        manager.check_scope(owner, self.role)?;
        Ok(Some(manager))
    }

    fn decide(&self, command: ApiKeyCommand) -> Result<ApiKeyEvent, ApiKeyError> {
        match command {
            ApiKeyCommand::Issue {
                public_id,
                owner,
                role,
                name,
                secret_hash,
                settings,
                parent,
                at,
                issuer,
            } => {
                if self.status.is_some() {
                    return Err(ApiKeyError::AlreadyExists);
                }
                if role.is_platform() != matches!(owner, KeyOwner::Platform) {
                    return Err(ApiKeyError::InvalidRole);
                }
                if role != KeyRole::Data && matches!(owner, KeyOwner::Tenant { sub_account_id: Some(_), .. })
                {
                    return Err(ApiKeyError::SubAccountKeyNotData);
                }
                if !settings.tenant_ids.is_empty() && !role.is_platform() {
                    return Err(ApiKeyError::InvalidListItem {
                        field: "tenant_ids",
                        value: "only platform keys are bound to tenants".into(),
                    });
                }
                settings::validate_name(&name)?;
                let mut settings = settings;
                if let Issuer::SubAccountManager(manager) = &issuer {
                    manager.check_scope(&owner, role)?;
                    manager.confine_defaults(&mut settings);
                }
                let settings = settings.validated(at)?;
                if let Issuer::SubAccountManager(manager) = &issuer {
                    manager.check_within(&settings)?;
                }
                if let Some(parent) = &parent {
                    parent.check(&settings.permissions, settings.quota_limit)?;
                }
                Ok(ApiKeyEvent::Issued {
                    public_id,
                    owner,
                    role,
                    name: name.trim().to_string(),
                    secret_hash,
                    settings,
                    issued_at: at,
                })
            }
            ApiKeyCommand::Update { changes, parent, at, issuer } => {
                self.require_live()?;
                let manager = self.managed_by(&issuer)?;
                let changes = self.normalise_changes(changes, at)?;
                let after = changes.apply_to(&self.settings);
                if let Some(manager) = manager {
                    manager.check_within(&after)?;
                }
                if let Some(parent) = &parent {
                    parent.check(&after.permissions, after.quota_limit)?;
                }
                Ok(ApiKeyEvent::Updated { changes, updated_at: at })
            }
            ApiKeyCommand::Disable { at, issuer } => {
                let by = match self.managed_by(&issuer)? {
                    Some(_) => DisabledBy::SubAccountManager,
                    None => DisabledBy::Admin,
                };
                match self.require_live()? {
                    KeyStatus::Disabled => Err(ApiKeyError::AlreadyDisabled),
                    _ => Ok(ApiKeyEvent::Disabled { disabled_at: at, by }),
                }
            }
            ApiKeyCommand::Enable { at, issuer } => {
                let status = self.require_live()?;
                if let Some(manager) = self.managed_by(&issuer)? {
                    if status == KeyStatus::Disabled && self.disabled_by == DisabledBy::Admin {
                        return Err(ApiKeyError::DisabledByAdmin);
                    }
                    manager.check_within(&self.settings)?;
                }
                match status {
                    KeyStatus::Disabled => Ok(ApiKeyEvent::Enabled { enabled_at: at }),
                    _ => Err(ApiKeyError::NotDisabled),
                }
            }
            ApiKeyCommand::Rotate { new_secret_hash, grace_until, at, issuer } => {
                self.require_live()?;
                // A rotation hands out a working credential: only one within the manager's own.
                if let Some(manager) = self.managed_by(&issuer)? {
                    manager.check_within(&self.settings)?;
                }
                if grace_until.is_some_and(|g| g <= at || g > at + MAX_GRACE) {
                    return Err(ApiKeyError::InvalidGracePeriod);
                }
                Ok(ApiKeyEvent::Rotated {
                    secret_hash: new_secret_hash,
                    previous_secret_hash: grace_until.map(|_| self.secret_hash.clone()),
                    previous_valid_until: grace_until,
                    rotated_at: at,
                })
            }
            ApiKeyCommand::Revoke { reason, at, issuer } => {
                self.require_live()?;
                self.managed_by(&issuer)?;
                Ok(ApiKeyEvent::Revoked { reason, revoked_at: at })
            }
        }
    }
}

crate::impl_aggregate!(ApiKey, "api_key", ApiKeyCommand, ApiKeyEvent, ApiKeyError);

impl ApiKey {
    /// Applies an event to the state (cqrs-es `apply`).
    fn evolve(&mut self, event: ApiKeyEvent) {
        match event {
            ApiKeyEvent::Issued { public_id, owner, role, name, secret_hash, settings, .. } => {
                self.status = Some(KeyStatus::Active);
                self.public_id = public_id;
                self.owner = Some(owner);
                self.role = role;
                self.name = name;
                self.secret_hash = secret_hash;
                self.settings = settings;
            }
            ApiKeyEvent::Updated { changes, .. } => {
                if let Some(name) = &changes.name {
                    self.name = name.clone();
                }
                self.settings = changes.apply_to(&self.settings);
            }
            ApiKeyEvent::Disabled { by, .. } => {
                self.status = Some(KeyStatus::Disabled);
                self.disabled_by = by;
            }
            ApiKeyEvent::Enabled { .. } => {
                self.status = Some(KeyStatus::Active);
                self.disabled_by = DisabledBy::Admin;
            }
            ApiKeyEvent::Rotated { secret_hash, .. } => self.secret_hash = secret_hash,
            ApiKeyEvent::Revoked { .. } => self.status = Some(KeyStatus::Revoked),
        }
    }
}
