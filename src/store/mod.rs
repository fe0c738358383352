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

/// The connection options of `url`. A server on this host (a loopback address, `localhost` or a
/// Unix socket) is reached without TLS unless `url` or `PGSSLMODE` names an `sslmode`: on
/// loopback, encryption protects nothing and cost every query CPU in both processes (about 10 %
/// of the commands' CPU, measured). Any other host keeps the driver's default (`prefer`).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace);
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let named = query.split('&').any(|pair| matches!(pair.split('=').next(), Some("sslmode" | "ssl-mode")))
        || std::env::var_os("PGSSLMODE").is_some();
    Ok(if !named && (options.get_socket().is_some() || on_this_host(options.get_host())) {
        options.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        options
    })
}

/// True for a loopback address, `localhost` or a Unix socket directory given as the host.
fn on_this_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connection idle for longer than this is checked (one round trip) before it is handed
/// out; one used more recently is not. sqlx's default checks every acquire, a round trip that
/// cost about 4 % of a command's CPU under load; a connection that broke while in use is
/// still dropped when it goes back to the pool (sqlx checks it there), so after an outage at
/// most the connections idle under this long can fail one query each.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The pool settings of every pool of this crate: at most `max_connections`, an acquire
/// bounded at 5 s, and idle connections checked after [`CHECK_IDLE_AFTER`].
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// A pool of one connection with `options`, opened on first use: called inside the future a
/// [`crate::dedicated::spawn`]ed thread runs, the connection belongs to that thread's runtime.
pub fn connection_of_its_own(options: PgConnectOptions) -> PgPool {
    pool_options(1).connect_lazy_with(options)
}

/// Connects to `url`, creating the database first when it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = connect_options(url)?;
    create_database_if_missing(&options).await?;
    let pool = pool_options(max_connections).connect_with(options).await?;
    Ok(pool)
}

/// Connects to `url` for reading only: never creates the database nor migrates it, and
/// refuses one that holds no TokenHub event log (a mistyped `DATABASE_URL` is an error, not
/// an empty answer).
pub async fn connect_existing(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = connect_options(url)?;
    let name = options.get_database().unwrap_or("postgres").to_string();
    let pool = pool_options(max_connections).connect_with(options).await.map_err(|e| match e {
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

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgSslMode;

    use super::connect_options;

    #[test]
    fn a_server_on_this_host_is_reached_without_tls_unless_asked() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return; // The environment names the mode for every URL.
        }
        let mode = |url: &str| connect_options(url).map(|o| o.get_ssl_mode()).ok();
        for url in [
            "postgres://postgres@127.0.0.1:5432/tokenhub",
            "postgres://postgres@127.0.0.2/tokenhub",
            "postgres://postgres@localhost/tokenhub",
            "postgres://postgres@LOCALHOST:5433/tokenhub",
            "postgres://postgres@[::1]:5432/tokenhub",
            "postgres:///tokenhub?host=/var/run/postgresql",
        ] {
            assert!(matches!(mode(url), Some(PgSslMode::Disable)), "{url}");
        }
        for url in [
            "postgres://postgres@db.internal:5432/tokenhub",
            "postgres://postgres@10.0.0.5/tokenhub",
            "postgres://postgres@127.0.0.1.example.com/tokenhub",
        ] {
            assert!(matches!(mode(url), Some(PgSslMode::Prefer)), "{url}");
        }
        // Named in the URL: kept, on any host.
        assert!(matches!(mode("postgres://p@127.0.0.1/t?sslmode=require"), Some(PgSslMode::Require)));
        assert!(matches!(mode("postgres://p@localhost/t?sslmode=prefer"), Some(PgSslMode::Prefer)));
        assert!(matches!(
            mode("postgres://p@db.internal/t?sslmode=verify-full"),
            Some(PgSslMode::VerifyFull)
        ));
    }
}
