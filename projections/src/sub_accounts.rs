//! The `sub_accounts` query table, and [`SubAccountRecord`]: what verification needs to know
//! about a sub-account (shared by the key lookup table and the in-memory cache).

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokenhub_aggregates::api_key::QuotaPeriod;
use tokenhub_aggregates::sub_account::{SubAccountEvent, SubAccountStatus};

use crate::{Projection, ProjectionError, StoredEvent};

/// A sub-account as the key lookup sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubAccountRecord {
    /// Id.
    pub sub_account_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Status.
    pub status: SubAccountStatus,
    /// Role.
    pub role: String,
    /// Permissions.
    pub permissions: Vec<String>,
    /// Quota.
    pub quota_limit: Option<i64>,
    /// The quota's window; `None` = lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_period: Option<QuotaPeriod>,
}

/// Decodes a sub-account event.
pub fn decode(event: &StoredEvent) -> Result<Option<SubAccountEvent>, ProjectionError> {
    if event.aggregate_type != "sub_account" {
        return Ok(None);
    }
    event.decode().map(Some)
}

/// The record after `event`, given the record before it.
pub fn record_after(event: SubAccountEvent, current: Option<SubAccountRecord>) -> Option<SubAccountRecord> {
    match event {
        SubAccountEvent::Created {
            sub_account_id,
            tenant_id,
            role,
            quota_limit,
            quota_period,
            permissions,
            ..
        } => Some(SubAccountRecord {
            sub_account_id,
            tenant_id,
            status: SubAccountStatus::Active,
            role,
            permissions,
            quota_limit,
            quota_period,
        }),
        other => {
            let mut record = current?;
            match other {
                SubAccountEvent::Created { .. } => {}
                SubAccountEvent::Updated { changes, .. } => {
                    if let Some(role) = changes.role {
                        record.role = role;
                    }
                    if let Some(permissions) = changes.permissions {
                        record.permissions = permissions;
                    }
                    if let Some(quota) = changes.quota_limit {
                        record.quota_limit = quota;
                    }
                    if let Some(period) = changes.quota_period {
                        record.quota_period = period;
                    }
                }
                SubAccountEvent::Disabled { .. } => record.status = SubAccountStatus::Disabled,
                SubAccountEvent::Enabled { .. } => record.status = SubAccountStatus::Active,
                SubAccountEvent::Deleted { .. } => record.status = SubAccountStatus::Deleted,
            }
            Some(record)
        }
    }
}

/// Builds `sub_accounts`.
pub struct SubAccountsProjection;

#[async_trait::async_trait]
impl Projection for SubAccountsProjection {
    fn name(&self) -> &'static str {
        "sub_accounts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sub_accounts"]
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        let Some(decoded) = decode(event)? else { return Ok(()) };
        match decoded {
            SubAccountEvent::Created {
                sub_account_id,
                tenant_id,
                name,
                role,
                quota_limit,
                quota_period,
                permissions,
                created_at,
            } => {
                sqlx::query(
                    "INSERT INTO sub_accounts (sub_account_id, tenant_id, name, role, status, quota_limit, permissions, \
                     created_at, updated_at, created_position, quota_period) \
                     VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $7, $8, $9)",
                )
                .bind(sub_account_id)
                .bind(tenant_id)
                .bind(name)
                .bind(role)
                .bind(quota_limit)
                .bind(serde_json::to_value(permissions).unwrap_or_default())
                .bind(created_at)
                .bind(event.position)
                .bind(quota_period.map(QuotaPeriod::as_str))
                .execute(conn)
                .await?;
            }
            SubAccountEvent::Updated { changes, updated_at } => {
                sqlx::query(
                    "UPDATE sub_accounts SET name = coalesce($2, name), role = coalesce($3, role), \
                     quota_limit = CASE WHEN $4 THEN $5 ELSE quota_limit END, \
                     permissions = coalesce($6, permissions), updated_at = $7, \
                     quota_period = CASE WHEN $8 THEN $9 ELSE quota_period END WHERE sub_account_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(changes.name)
                .bind(changes.role)
                .bind(changes.quota_limit.is_some())
                .bind(changes.quota_limit.flatten())
                .bind(changes.permissions.map(|p| serde_json::to_value(p).unwrap_or_default()))
                .bind(updated_at)
                .bind(changes.quota_period.is_some())
                .bind(changes.quota_period.flatten().map(QuotaPeriod::as_str))
                .execute(conn)
                .await?;
            }
            SubAccountEvent::Disabled { disabled_at: at } => {
                set_status(conn, event, SubAccountStatus::Disabled, at).await?
            }
            SubAccountEvent::Enabled { enabled_at: at } => {
                set_status(conn, event, SubAccountStatus::Active, at).await?
            }
            SubAccountEvent::Deleted { deleted_at: at } => {
                set_status(conn, event, SubAccountStatus::Deleted, at).await?
            }
        }
        Ok(())
    }
}

async fn set_status(
    conn: &mut PgConnection,
    event: &StoredEvent,
    status: SubAccountStatus,
    at: time::OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sub_accounts SET status = $2, updated_at = $3 WHERE sub_account_id = $1")
        .bind(&event.aggregate_id)
        .bind(status.as_str())
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}
