//! The `roles` query table: each tenant's RBAC roles.

use sqlx::PgConnection;
use tokenhub_aggregates::role::RoleEvent;

use crate::{Projection, ProjectionError, StoredEvent};

/// Builds `roles`.
pub struct RolesProjection;

#[async_trait::async_trait]
impl Projection for RolesProjection {
    fn name(&self) -> &'static str {
        "roles"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["roles"]
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "role" {
            return Ok(());
        }
        let decoded: RoleEvent = event.decode()?;
        // The aggregate id is `<tenant_id>:<name>`.
        let Some((tenant_id, name)) = event.aggregate_id.split_once(':') else { return Ok(()) };
        match decoded {
            RoleEvent::Created { description, permissions, created_at, .. } => {
                sqlx::query(
                    "INSERT INTO roles (tenant_id, name, description, permissions, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(description)
                .bind(serde_json::to_value(permissions).unwrap_or_default())
                .bind(created_at)
                .execute(conn)
                .await?;
            }
            RoleEvent::Updated { description, permissions, updated_at } => {
                sqlx::query(
                    "UPDATE roles SET description = $3, permissions = $4, updated_at = $5 WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(description)
                .bind(serde_json::to_value(permissions).unwrap_or_default())
                .bind(updated_at)
                .execute(conn)
                .await?;
            }
            RoleEvent::Deleted { .. } => {
                sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant_id)
                    .bind(name)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }
}
