//! The `api_keys` key-lookup table, by public id: what authentication reads.
//!
//! Today it holds the tenant-admin key issued with each tenant; tenant status is joined from
//! `tenants` at lookup, so a suspension takes effect without touching key rows.

use sqlx::PgConnection;
use tokenhub_aggregates::tenant::TenantEvent;

use crate::tenants::decode_tenant_event;
use crate::{Projection, ProjectionError, StoredEvent};

/// Builds `api_keys`.
pub struct ApiKeysProjection;

#[async_trait::async_trait]
impl Projection for ApiKeysProjection {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["api_keys"]
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "tenant" {
            return Ok(());
        }
        if let TenantEvent::Created { tenant_id, admin_key, created_at, .. } = decode_tenant_event(event)? {
            sqlx::query(
                "INSERT INTO api_keys (public_id, tenant_id, kind, role, secret_hash, status, created_at, updated_at) \
                 VALUES ($1, $2, 'tenant', 'tenant_admin', $3, 'active', $4, $4)",
            )
            .bind(admin_key.public_id)
            .bind(tenant_id)
            .bind(admin_key.secret_hash)
            .bind(created_at)
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}
