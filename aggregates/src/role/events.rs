//! Events of a role (wire types `role.<past>`).

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An event of a role (wire types `role.<past>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum RoleEvent {
    /// `role.created`
    #[serde(rename = "role.created")]
    Created {
        /// Tenant.
        tenant_id: String,
        /// Name.
        name: String,
        /// Description.
        description: String,
        /// Permissions.
        permissions: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    /// `role.updated`
    #[serde(rename = "role.updated")]
    Updated {
        /// Description.
        description: String,
        /// Permissions.
        permissions: Vec<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    /// `role.deleted`
    #[serde(rename = "role.deleted")]
    Deleted {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
    },
}

impl DomainEvent for RoleEvent {
    fn event_type(&self) -> String {
        match self {
            RoleEvent::Created { .. } => "role.created",
            RoleEvent::Updated { .. } => "role.updated",
            RoleEvent::Deleted { .. } => "role.deleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
