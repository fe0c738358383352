//! Event-store wiring: the PostgreSQL pool, migrations, the cqrs-es repository and shared
//! settings.

pub mod group_commit;
pub mod idempotency;
pub mod leader;
pub mod mfa_challenges;
pub mod oidc_logins;
pub mod repository;
pub mod sessions;
pub mod settings;
pub mod sign_in_locks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

pub use repository::PgEventRepository;

/// The embedded migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How an append's transaction begins: with a bound on the wait for the head row lock, in the
/// same round trip.
pub const BEGIN_APPEND: &str = "BEGIN; SET LOCAL lock_timeout = '5s'";

/// A failure to reach or prepare the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connection or query failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database name cannot be created safely.
    #[error("database name '{0}' must be letters, digits and underscores")]
    BadDatabaseName(String),
}

/// Connects to `url`, creating the database first when it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace);
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(pool)
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), StoreError> {
    match sqlx::PgConnection::connect_with(options).await {
        Ok(conn) => {
            conn.close().await?;
            Ok(())
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let name = options.get_database().unwrap_or("postgres").to_string();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(StoreError::BadDatabaseName(name));
            }
            let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
            // The name was checked above to be a plain identifier; DDL cannot take a bind parameter.
            let created = sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await;
            admin.close().await?;
            match created {
                Ok(_) => tracing::info!(database = %name, "database created"),
                // Another instance created it first.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies pending migrations (safe to run from several instances at once).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
