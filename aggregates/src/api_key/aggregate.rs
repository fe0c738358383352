//! The rules of a key: issued → active ⇄ disabled; rotate any time; revoked is terminal.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::commands::ApiKeyCommand;
use super::error::ApiKeyError;
use super::events::{ApiKeyEvent, KeyChanges};
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

    fn decide(&self, command: ApiKeyCommand) -> Result<ApiKeyEvent, ApiKeyError> {
        match command {
            ApiKeyCommand::Issue { public_id, owner, role, name, secret_hash, settings, parent, at } => {
                if self.status.is_some() {
                    return Err(ApiKeyError::AlreadyExists);
                }
                if role.is_platform() != matches!(owner, KeyOwner::Platform) {
                    return Err(ApiKeyError::InvalidRole);
                }
                settings::validate_name(&name)?;
                let settings = settings.validated(at)?;
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
            ApiKeyCommand::Update { changes, parent, at } => {
                self.require_live()?;
                let changes = self.normalise_changes(changes, at)?;
                if let Some(parent) = &parent {
                    let after = changes.apply_to(&self.settings);
                    parent.check(&after.permissions, after.quota_limit)?;
                }
                Ok(ApiKeyEvent::Updated { changes, updated_at: at })
            }
            ApiKeyCommand::Disable { at } => match self.require_live()? {
                KeyStatus::Disabled => Err(ApiKeyError::AlreadyDisabled),
                _ => Ok(ApiKeyEvent::Disabled { disabled_at: at }),
            },
            ApiKeyCommand::Enable { at } => match self.require_live()? {
                KeyStatus::Disabled => Ok(ApiKeyEvent::Enabled { enabled_at: at }),
                _ => Err(ApiKeyError::NotDisabled),
            },
            ApiKeyCommand::Rotate { new_secret_hash, grace_until, at } => {
                self.require_live()?;
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
            ApiKeyCommand::Revoke { reason, at } => {
                self.require_live()?;
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
            ApiKeyEvent::Disabled { .. } => self.status = Some(KeyStatus::Disabled),
            ApiKeyEvent::Enabled { .. } => self.status = Some(KeyStatus::Active),
            ApiKeyEvent::Rotated { secret_hash, .. } => self.secret_hash = secret_hash,
            ApiKeyEvent::Revoked { .. } => self.status = Some(KeyStatus::Revoked),
        }
    }
}
