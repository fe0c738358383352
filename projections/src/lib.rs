//! TokenHub read models: catch-up projections over the global event order.
//!
//! Each projection owns its query tables and one row in `checkpoints`. A batch of events is
//! applied and the checkpoint advanced in the same transaction, so a crash can neither lose
//! nor repeat an effect, and any projection can be rebuilt from position zero.
//!
//! # Layout
//! - [`log`]: reading the event log in global order ([`StoredEvent`]).
//! - [`runner`]: catch-up, live following, rebuild.
//! - [`tenants`], [`api_keys`], [`sub_accounts`], [`roles`], [`secrets`]: one module per
//!   query table.
//! - [`read`]: the typed reads of the query tables, one module per table.

pub mod api_keys;
pub mod log;
pub mod read;
pub mod roles;
pub mod runner;
pub mod secrets;
pub mod sub_accounts;
pub mod tenants;
pub mod users;

pub use log::StoredEvent;
pub use runner::{
    apply_committed, catch_up, catch_up_all, position_of_all, rebuild, rebuild_all, Progress, BEGIN_DERIVED,
    PROJECTED_CHANNEL,
};

use sqlx::PgConnection;

/// A failure while projecting.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An event payload did not match its type (a missing upcaster).
    #[error("event at position {position} ({event_type}) cannot be read: {source}")]
    Payload {
        /// Position of the event.
        position: i64,
        /// Its type.
        event_type: String,
        /// Why.
        source: serde_json::Error,
    },
    /// No projection has that name.
    #[error("unknown projection '{0}'")]
    Unknown(String),
}

/// A read model built from the event log.
#[async_trait::async_trait]
pub trait Projection: Send + Sync {
    /// Stable name; also the key of its checkpoint.
    fn name(&self) -> &'static str;
    /// Tables it owns, cleared on rebuild (in this order).
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event inside the batch transaction. Events it does not care about are
    /// ignored.
    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ProjectionError>;

    /// Applies a batch of events in order. The default applies them one by one; projections
    /// on the rebuild's critical path override it with set-based writes.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(conn, event).await?;
        }
        Ok(())
    }
}

/// Every projection the service runs, in a stable order.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(tenants::TenantsProjection),
        Box::new(api_keys::ApiKeysProjection),
        Box::new(sub_accounts::SubAccountsProjection),
        Box::new(roles::RolesProjection),
        Box::new(secrets::SecretsProjection),
        Box::new(users::UsersProjection),
    ]
}

/// The projections whose name is `name`, or all of them for `None`.
pub fn select(name: Option<&str>) -> Result<Vec<Box<dyn Projection>>, ProjectionError> {
    let all = all();
    match name {
        None => Ok(all),
        Some(name) => {
            let chosen: Vec<_> = all.into_iter().filter(|p| p.name() == name).collect();
            if chosen.is_empty() {
                return Err(ProjectionError::Unknown(name.to_string()));
            }
            Ok(chosen)
        }
    }
}
