//! The `tenants` query table: one row per tenant, its current state and effective limits.

use sqlx::PgConnection;
use tokenhub_aggregates::tenant::{Plan, TenantEvent, TenantLimits, TenantStatus};

use crate::{Projection, ProjectionError, StoredEvent};

/// Builds `tenants`.
pub struct TenantsProjection;

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

async fn set_status(
    conn: &mut PgConnection,
    event: &StoredEvent,
    status: TenantStatus,
    at: time::OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET status = $2, updated_at = $3, version = $4 WHERE tenant_id = $1")
        .bind(&event.aggregate_id)
        .bind(status.as_str())
        .bind(at)
        .bind(event.sequence)
        .execute(conn)
        .await?;
    Ok(())
}

/// A `tenant.created` row waiting to be inserted with others.
struct NewTenant {
    tenant_id: String,
    name: String,
    plan: &'static str,
    region: String,
    overrides: serde_json::Value,
    limits: serde_json::Value,
    created_at: time::OffsetDateTime,
    position: i64,
    version: i64,
}

async fn insert_tenants(conn: &mut PgConnection, rows: &mut Vec<NewTenant>) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, plan, region, status, limit_overrides, limits, created_at, updated_at, \
         created_position, version) \
         SELECT t, n, p, r, 'active', o, l, c, c, pos, v \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::timestamptz[], \
         $8::bigint[], $9::bigint[]) AS x(t, n, p, r, o, l, c, pos, v)",
    )
    .bind(rows.iter().map(|r| r.tenant_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.plan).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.region.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.overrides.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.limits.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    rows.clear();
    Ok(())
}

#[async_trait::async_trait]
impl Projection for TenantsProjection {
    /// Consecutive `tenant.created` events are inserted with one statement; any other tenant
    /// event first flushes them, then applies in order.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut pending = Vec::new();
        for event in events.iter().filter(|e| e.aggregate_type == "tenant") {
            if event.event_type == "tenant.created" {
                if let TenantEvent::Created { tenant_id, name, plan, region, limits, created_at } =
                    event.decode::<TenantEvent>()?
                {
                    pending.push(NewTenant {
                        tenant_id,
                        name,
                        plan: plan.as_str(),
                        region,
                        overrides: json(&limits),
                        limits: json(&TenantLimits::effective(plan, limits)),
                        created_at,
                        position: event.position,
                        version: event.sequence,
                    });
                    continue;
                }
            }
            insert_tenants(conn, &mut pending).await?;
            self.apply(conn, event).await?;
        }
        insert_tenants(conn, &mut pending).await?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "tenants"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tenants"]
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "tenant" {
            return Ok(());
        }
        match event.decode::<TenantEvent>()? {
            TenantEvent::Created { tenant_id, name, plan, region, limits, created_at } => {
                sqlx::query(
                    "INSERT INTO tenants (tenant_id, name, plan, region, status, limit_overrides, limits, \
                     created_at, updated_at, created_position, version) \
                     VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $7, $8, $9)",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(plan.as_str())
                .bind(region)
                .bind(json(&limits))
                .bind(json(&TenantLimits::effective(plan, limits)))
                .bind(created_at)
                .bind(event.position)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::Updated { name, plan, limits, updated_at } => {
                let current: Option<(String, serde_json::Value)> =
                    sqlx::query_as("SELECT plan, limit_overrides FROM tenants WHERE tenant_id = $1")
                        .bind(&event.aggregate_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some((current_plan, current_overrides)) = current else { return Ok(()) };
                let plan = plan
                    .or_else(|| serde_json::from_value::<Plan>(serde_json::Value::String(current_plan)).ok())
                    .unwrap_or_default();
                let overrides =
                    limits.unwrap_or_else(|| serde_json::from_value(current_overrides).unwrap_or_default());
                sqlx::query(
                    "UPDATE tenants SET name = coalesce($2, name), plan = $3, limit_overrides = $4, \
                     limits = $5, updated_at = $6, version = $7 WHERE tenant_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(name)
                .bind(plan.as_str())
                .bind(json(&overrides))
                .bind(json(&TenantLimits::effective(plan, overrides)))
                .bind(updated_at)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::Suspended { suspended_at, .. } => {
                set_status(conn, event, TenantStatus::Suspended, suspended_at).await?
            }
            TenantEvent::Reactivated { reactivated_at } => {
                set_status(conn, event, TenantStatus::Active, reactivated_at).await?
            }
            TenantEvent::ConfigSaved { version, config, saved_at } => {
                sqlx::query(
                    "UPDATE tenants SET config = $2, config_version = $3, updated_at = $4, version = $5 WHERE tenant_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(config)
                .bind(version)
                .bind(saved_at)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::ResourceLimitsSet { limits, set_at } => {
                sqlx::query(
                    "UPDATE tenants SET resource_limits = $2, updated_at = $3, version = $4 WHERE tenant_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(json(&limits))
                .bind(set_at)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::IpAllowlistSet { enabled, allowed_ips, set_at } => {
                sqlx::query(
                    "UPDATE tenants SET ip_allowlist_enabled = $2, ip_allowlist = $3, updated_at = $4, version = $5 \
                     WHERE tenant_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(enabled)
                .bind(json(&allowed_ips))
                .bind(set_at)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::TwoFactorPolicySet { require_2fa, set_at } => {
                sqlx::query(
                    "UPDATE tenants SET require_2fa = $2, updated_at = $3, version = $4 WHERE tenant_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(require_2fa)
                .bind(set_at)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::RbacConfigured { enabled, default_role, configured_at } => {
                sqlx::query(
                    "UPDATE tenants SET rbac_enabled = $2, default_role = $3, updated_at = $4, version = $5 \
                     WHERE tenant_id = $1",
                )
                .bind(&event.aggregate_id)
                .bind(enabled)
                .bind(default_role)
                .bind(configured_at)
                .bind(event.sequence)
                .execute(conn)
                .await?;
            }
            TenantEvent::WebhookDisabled { .. } | TenantEvent::WebhookEnabled { .. } => {
                // The webhook worker keeps endpoint state; here only the version moves.
                sqlx::query("UPDATE tenants SET version = $2 WHERE tenant_id = $1")
                    .bind(&event.aggregate_id)
                    .bind(event.sequence)
                    .execute(conn)
                    .await?;
            }
            TenantEvent::Deleted { deleted_at } => {
                set_status(&mut *conn, event, TenantStatus::Deleted, deleted_at).await?;
                // Crypto-shredding: the tenant's data key is destroyed, so its secrets' ciphertext
                // in the log can never be opened again. Derived from the log, so it happens even
                // after a crash, and again (harmlessly) on every rebuild.
                sqlx::query(
                    "INSERT INTO tenant_data_keys (tenant_id, version, kek_id, destroyed_at) VALUES ($1, 1, 'none', $2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET nonce = NULL, wrapped = NULL, \
                     destroyed_at = coalesce(tenant_data_keys.destroyed_at, excluded.destroyed_at)",
                )
                .bind(&event.aggregate_id)
                .bind(deleted_at)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
