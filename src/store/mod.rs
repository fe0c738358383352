//! Event-store wiring: the PostgreSQL pool, migrations, the cqrs-es repository and shared
//! settings.

pub mod group_commit;
pub mod health;
pub mod idempotency;
pub mod leader;
pub mod mfa_challenges;
pub mod oidc_logins;
pub mod quota_rooms;
pub mod rate_windows;
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
    /// A read-only command found no event log there.
    #[error("database '{0}' holds no TokenHub event log: check DATABASE_URL (read-only commands never create or migrate a database)")]
    NoEventLog(String),
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

/// Connects to `url` for reading only: never creates the database nor migrates it, and
/// refuses one that holds no TokenHub event log (a mistyped `DATABASE_URL` is an error, not
/// an empty answer).
pub async fn connect_existing(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace);
    let name = options.get_database().unwrap_or("postgres").to_string();
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => {
                StoreError::NoEventLog(name.clone())
            }
            other => StoreError::Database(other),
        })?;
    let found: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('events')::text").fetch_one(&pool).await?;
    if found.is_none() {
        return Err(StoreError::NoEventLog(name));
    }
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
            // Instances started together race here: the loser sees the name taken (42P04, or
            // 23505 from the catalogue's index) or the template busy with the winner's copy
            // (55006), and waits for the winner instead of failing.
            let mut attempt = 0;
            let outcome = loop {
                // The name was checked above to be a plain identifier; DDL cannot take a bind parameter.
                let created = sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await;
                match created {
                    Ok(_) => {
                        tracing::info!(database = %name, "database created");
                        break Ok(());
                    }
                    Err(sqlx::Error::Database(e))
                        if matches!(e.code().as_deref(), Some("42P04" | "23505")) =>
                    {
                        break Ok(())
                    }
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") && attempt < 50 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => break Err(e),
                }
            };
            admin.close().await?;
            outcome?;
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
