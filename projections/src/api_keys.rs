//! The key lookup: `api_keys` (one [`KeyRecord`] per key), `key_tenants` (tenant status as
//! verification sees it) and `key_sub_accounts`, under one checkpoint.
//!
//! The change an event makes is computed by the pure [`change_for`], used both here (SQL) and
//! by the in-memory key cache of the server, so the two can never disagree.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{ApiKeyEvent, KeyOwner, KeyRole, KeySettings, KeyStatus};
use tokenhub_aggregates::tenant::{TenantEvent, TenantStatus};

use crate::{Projection, ProjectionError, StoredEvent};

/// Everything verification needs to know about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id.
    pub public_id: String,
    /// Tenant (none for platform keys).
    pub tenant_id: Option<String>,
    /// Sub-account.
    pub sub_account_id: Option<String>,
    /// Role.
    pub role: KeyRole,
    /// Name.
    pub name: String,
    /// Status.
    pub status: KeyStatus,
    /// Hex HMAC of the current key.
    pub secret_hash: String,
    /// Hex HMAC of the rotated-away key, valid until `previous_valid_until`.
    pub previous_secret_hash: Option<String>,
    /// End of the rotation grace period.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_valid_until: Option<OffsetDateTime>,
    /// Settings.
    pub settings: KeySettings,
    /// Issue time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What one event does to the key lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyLookupChange {
    /// Insert or replace a key record.
    Key(Box<KeyRecord>),
    /// Set a tenant's status.
    Tenant {
        /// Tenant.
        tenant_id: String,
        /// Status.
        status: TenantStatus,
    },
    /// Set a tenant's IP allowlist (`None`: off).
    TenantAllowlist {
        /// Tenant.
        tenant_id: String,
        /// Networks, when on.
        allowlist: Option<Vec<String>>,
    },
}

/// A decoded event the key lookup cares about.
pub enum KeyLookupEvent {
    /// A tenant event.
    Tenant(TenantEvent),
    /// An API-key event.
    Key(ApiKeyEvent),
}

/// The aggregate types whose events the key lookup reads: those [`decode`] and
/// [`crate::sub_accounts::decode`] take (a follower of the log reads no other payload).
pub const FOLLOWED_AGGREGATES: &[&str] = &["tenant", "api_key", "sub_account"];

/// Decodes `event` when the key lookup cares about it.
pub fn decode(event: &StoredEvent) -> Result<Option<KeyLookupEvent>, ProjectionError> {
    match event.aggregate_type.as_str() {
        "tenant" => Ok(Some(KeyLookupEvent::Tenant(event.decode()?))),
        "api_key" => Ok(Some(KeyLookupEvent::Key(event.decode()?))),
        _ => Ok(None),
    }
}

/// The change `decoded` (an event of aggregate `aggregate_id`) makes, given the key's current
/// record (for key events).
pub fn change_for(
    aggregate_id: &str,
    decoded: KeyLookupEvent,
    current: Option<KeyRecord>,
) -> Option<KeyLookupChange> {
    let tenant = |status| Some(KeyLookupChange::Tenant { tenant_id: aggregate_id.to_string(), status });
    match decoded {
        KeyLookupEvent::Tenant(TenantEvent::Created { .. } | TenantEvent::Reactivated { .. }) => {
            tenant(TenantStatus::Active)
        }
        KeyLookupEvent::Tenant(TenantEvent::Suspended { .. }) => tenant(TenantStatus::Suspended),
        KeyLookupEvent::Tenant(TenantEvent::Deleted { .. }) => tenant(TenantStatus::Deleted),
        KeyLookupEvent::Tenant(TenantEvent::IpAllowlistSet { enabled, allowed_ips, .. }) => {
            Some(KeyLookupChange::TenantAllowlist {
                tenant_id: aggregate_id.to_string(),
                allowlist: enabled.then_some(allowed_ips),
            })
        }
        KeyLookupEvent::Tenant(
            TenantEvent::Updated { .. }
            | TenantEvent::RbacConfigured { .. }
            | TenantEvent::TwoFactorPolicySet { .. }
            | TenantEvent::ConfigSaved { .. }
            | TenantEvent::WebhookDisabled { .. }
            | TenantEvent::WebhookEnabled { .. }
            | TenantEvent::ResourceLimitsSet { .. },
        ) => None,
        KeyLookupEvent::Key(ApiKeyEvent::Issued {
            public_id,
            owner,
            role,
            name,
            secret_hash,
            settings,
            issued_at,
        }) => {
            let (tenant_id, sub_account_id) = match owner {
                KeyOwner::Tenant { tenant_id, sub_account_id } => (Some(tenant_id), sub_account_id),
                KeyOwner::Platform => (None, None),
            };
            Some(KeyLookupChange::Key(Box::new(KeyRecord {
                public_id,
                tenant_id,
                sub_account_id,
                role,
                name,
                status: KeyStatus::Active,
                secret_hash,
                previous_secret_hash: None,
                previous_valid_until: None,
                settings,
                created_at: issued_at,
                updated_at: issued_at,
            })))
        }
        KeyLookupEvent::Key(event) => {
            let mut record = current?;
            match event {
                ApiKeyEvent::Issued { .. } => return None,
                ApiKeyEvent::Updated { changes, updated_at } => {
                    if let Some(name) = &changes.name {
                        record.name = name.clone();
                    }
                    record.settings = changes.apply_to(&record.settings);
                    record.updated_at = updated_at;
                }
                ApiKeyEvent::Disabled { disabled_at, .. } => {
                    record.status = KeyStatus::Disabled;
                    record.updated_at = disabled_at;
                }
                ApiKeyEvent::Enabled { enabled_at } => {
                    record.status = KeyStatus::Active;
                    record.updated_at = enabled_at;
                }
                ApiKeyEvent::Rotated {
                    secret_hash,
                    previous_secret_hash,
                    previous_valid_until,
                    rotated_at,
                } => {
                    record.secret_hash = secret_hash;
                    record.previous_secret_hash = previous_secret_hash;
                    record.previous_valid_until = previous_valid_until;
                    record.updated_at = rotated_at;
                }
                ApiKeyEvent::Revoked { revoked_at, .. } => {
                    record.status = KeyStatus::Revoked;
                    record.previous_secret_hash = None;
                    record.previous_valid_until = None;
                    record.updated_at = revoked_at;
                }
            }
            Some(KeyLookupChange::Key(Box::new(record)))
        }
    }
}

/// Builds `api_keys` and `key_tenants`.
pub struct ApiKeysProjection;

async fn load_record(conn: &mut PgConnection, public_id: &str) -> Result<Option<KeyRecord>, ProjectionError> {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT record FROM api_keys WHERE public_id = $1")
            .bind(public_id)
            .fetch_optional(conn)
            .await?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// Upserts tenant statuses in one statement.
async fn upsert_tenant_statuses(
    conn: &mut PgConnection,
    tenants: std::collections::HashMap<String, TenantStatus>,
) -> Result<(), sqlx::Error> {
    if tenants.is_empty() {
        return Ok(());
    }
    let (ids, statuses): (Vec<String>, Vec<&str>) = tenants.into_iter().map(|(t, s)| (t, s.as_str())).unzip();
    sqlx::query(
        "INSERT INTO key_tenants (tenant_id, status) SELECT * FROM UNNEST($1::text[], $2::text[]) \
         ON CONFLICT (tenant_id) DO UPDATE SET status = excluded.status",
    )
    .bind(ids)
    .bind(statuses)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes one tenant change.
async fn write_change(conn: &mut PgConnection, change: KeyLookupChange) -> Result<(), sqlx::Error> {
    match change {
        KeyLookupChange::Tenant { tenant_id, status } => {
            sqlx::query(
                "INSERT INTO key_tenants (tenant_id, status) VALUES ($1, $2) \
                 ON CONFLICT (tenant_id) DO UPDATE SET status = excluded.status",
            )
            .bind(tenant_id)
            .bind(status.as_str())
            .execute(conn)
            .await?;
        }
        KeyLookupChange::TenantAllowlist { tenant_id, allowlist } => {
            sqlx::query("UPDATE key_tenants SET allowlist = $2 WHERE tenant_id = $1")
                .bind(tenant_id)
                .bind(allowlist.map(sqlx::types::Json))
                .execute(conn)
                .await?;
        }
        KeyLookupChange::Key(_) => {}
    }
    Ok(())
}

/// Upserts key records in one statement (each public id at most once).
async fn upsert_keys(conn: &mut PgConnection, rows: &[(KeyRecord, i64)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&(KeyRecord, i64)) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO api_keys (public_id, tenant_id, sub_account_id, role, status, name, created_position, record) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::jsonb[]) \
         ON CONFLICT (public_id) DO UPDATE SET status = excluded.status, name = excluded.name, record = excluded.record",
    )
    .bind(col(&|(r, _)| Some(r.public_id.clone())))
    .bind(col(&|(r, _)| r.tenant_id.clone()))
    .bind(col(&|(r, _)| r.sub_account_id.clone()))
    .bind(col(&|(r, _)| Some(r.role.as_str().to_string())))
    .bind(col(&|(r, _)| Some(r.status.as_str().to_string())))
    .bind(col(&|(r, _)| Some(r.name.clone())))
    .bind(rows.iter().map(|(_, p)| *p).collect::<Vec<i64>>())
    .bind(rows.iter().map(|(r, _)| sqlx::types::Json(r)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl Projection for ApiKeysProjection {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["api_keys", "key_tenants", "key_sub_accounts"]
    }

    /// Set-based: the three tables do not depend on each other, so each is folded in memory
    /// over the batch (current rows loaded in one query) and written with one upsert.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        use std::collections::HashMap;

        use crate::sub_accounts::{record_after, SubAccountRecord};

        let touched = |kind: &str, created: &str| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.aggregate_type == kind && e.event_type != created)
                .map(|e| e.aggregate_id.clone())
                .collect()
        };
        let key_ids = touched("api_key", "api_key.issued");
        let sub_ids = touched("sub_account", "sub_account.created");
        let mut keys: HashMap<String, (KeyRecord, i64)> = HashMap::new();
        if !key_ids.is_empty() {
            let rows: Vec<(sqlx::types::Json<KeyRecord>, i64)> =
                sqlx::query_as("SELECT record, created_position FROM api_keys WHERE public_id = ANY($1)")
                    .bind(&key_ids)
                    .fetch_all(&mut *conn)
                    .await?;
            keys.extend(rows.into_iter().map(|(r, p)| (r.0.public_id.clone(), (r.0, p))));
        }
        let mut subs: HashMap<String, SubAccountRecord> = HashMap::new();
        if !sub_ids.is_empty() {
            let rows: Vec<sqlx::types::Json<SubAccountRecord>> =
                sqlx::query_scalar("SELECT record FROM key_sub_accounts WHERE sub_account_id = ANY($1)")
                    .bind(&sub_ids)
                    .fetch_all(&mut *conn)
                    .await?;
            subs.extend(rows.into_iter().map(|r| (r.0.sub_account_id.clone(), r.0)));
        }
        let (mut dirty_keys, mut dirty_subs) =
            (std::collections::HashSet::new(), std::collections::HashSet::new());
        let mut tenants: HashMap<String, TenantStatus> = HashMap::new();
        for event in events {
            if let Some(sub_event) = crate::sub_accounts::decode(event)? {
                if let Some(record) = record_after(sub_event, subs.remove(&event.aggregate_id)) {
                    dirty_subs.insert(record.sub_account_id.clone());
                    subs.insert(record.sub_account_id.clone(), record);
                }
                continue;
            }
            let Some(decoded) = decode(event)? else { continue };
            let current = keys.get(&event.aggregate_id).map(|(r, _)| r.clone());
            match change_for(&event.aggregate_id, decoded, current) {
                Some(KeyLookupChange::Key(record)) => {
                    let created = keys.get(&event.aggregate_id).map(|(_, p)| *p).unwrap_or(event.position);
                    dirty_keys.insert(event.aggregate_id.clone());
                    keys.insert(event.aggregate_id.clone(), (*record, created));
                }
                Some(KeyLookupChange::Tenant { tenant_id, status }) => {
                    tenants.insert(tenant_id, status);
                }
                Some(change @ KeyLookupChange::TenantAllowlist { .. }) => {
                    // Rare: write the statuses so far, then this change, in order.
                    upsert_tenant_statuses(conn, std::mem::take(&mut tenants)).await?;
                    write_change(conn, change).await?;
                }
                None => {}
            }
        }
        let pending: Vec<(KeyRecord, i64)> = dirty_keys.iter().filter_map(|id| keys.remove(id)).collect();
        upsert_keys(conn, &pending).await?;
        upsert_tenant_statuses(conn, tenants).await?;
        let records: Vec<SubAccountRecord> = dirty_subs.iter().filter_map(|id| subs.remove(id)).collect();
        if !records.is_empty() {
            sqlx::query(
                "INSERT INTO key_sub_accounts (sub_account_id, record) SELECT * FROM UNNEST($1::text[], $2::jsonb[]) \
                 ON CONFLICT (sub_account_id) DO UPDATE SET record = excluded.record",
            )
            .bind(records.iter().map(|r| r.sub_account_id.clone()).collect::<Vec<_>>())
            .bind(records.iter().map(sqlx::types::Json).collect::<Vec<_>>())
            .execute(conn)
            .await?;
        }
        Ok(())
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        if let Some(sub_event) = crate::sub_accounts::decode(event)? {
            let current: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM key_sub_accounts WHERE sub_account_id = $1")
                    .bind(&event.aggregate_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let current = current.and_then(|v| serde_json::from_value(v).ok());
            if let Some(record) = crate::sub_accounts::record_after(sub_event, current) {
                sqlx::query(
                    "INSERT INTO key_sub_accounts (sub_account_id, record) VALUES ($1, $2) \
                     ON CONFLICT (sub_account_id) DO UPDATE SET record = excluded.record",
                )
                .bind(&record.sub_account_id)
                .bind(serde_json::to_value(&record).unwrap_or_default())
                .execute(conn)
                .await?;
            }
            return Ok(());
        }
        let Some(decoded) = decode(event)? else { return Ok(()) };
        let current = match &decoded {
            KeyLookupEvent::Key(ApiKeyEvent::Issued { .. }) | KeyLookupEvent::Tenant(_) => None,
            KeyLookupEvent::Key(_) => load_record(conn, &event.aggregate_id).await?,
        };
        match change_for(&event.aggregate_id, decoded, current) {
            None => {}
            Some(change @ (KeyLookupChange::Tenant { .. } | KeyLookupChange::TenantAllowlist { .. })) => {
                write_change(conn, change).await?;
            }
            Some(KeyLookupChange::Key(record)) => {
                let json = serde_json::to_value(&record).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO api_keys (public_id, tenant_id, sub_account_id, role, status, name, created_position, record) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (public_id) DO UPDATE SET status = excluded.status, name = excluded.name, record = excluded.record",
                )
                .bind(&record.public_id)
                .bind(&record.tenant_id)
                .bind(&record.sub_account_id)
                .bind(record.role.as_str())
                .bind(record.status.as_str())
                .bind(&record.name)
                .bind(event.position)
                .bind(json)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
