//! Configuration from the environment (or flags), with defaults that work against a local
//! PostgreSQL and NATS. `tokenhub --help` lists every variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::nats::{EventsStreamConfig, UsageStreamConfig};

/// Settings shared by every subcommand.
#[derive(Args, Clone)]
pub struct Config {
    /// PostgreSQL URL; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/tokenhub",
        global = true
    )]
    pub database_url: String,

    /// Most PostgreSQL connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20, global = true)]
    pub database_max_connections: u32,

    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    pub nats_url: String,

    /// Subject prefix: events go to `<prefix>.events.<tenant>.<aggregate>.<event>`.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "tokenhub", global = true)]
    pub nats_subject_prefix: String,

    /// JetStream stream holding the events (created at start when missing).
    #[arg(long, env = "NATS_EVENTS_STREAM", default_value = "TOKENHUB_EVENTS", global = true)]
    pub nats_events_stream: String,

    /// Address the HTTP server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub listen_addr: SocketAddr,

    /// Log filter, e.g. `info` or `tokenhub=debug,info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    /// `json` (default) or `text` logs.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", global = true)]
    pub log_format: String,

    /// Master key in plain text (compared in constant time).
    #[arg(long, env = "MASTER_API_KEY", hide_env_values = true, global = true)]
    pub master_api_key: Option<String>,

    /// Master key as an argon2id PHC string (used when MASTER_API_KEY is unset).
    #[arg(long, env = "MASTER_API_KEY_HASH", hide_env_values = true, global = true)]
    pub master_api_key_hash: Option<String>,

    /// Pepper of API-key hashes (32+ bytes). When unset, one is generated and kept in the database.
    #[arg(long, env = "TOKENHUB_KEY_PEPPER", hide_env_values = true, global = true)]
    pub key_pepper: Option<String>,

    /// Key-encryption key of tenant secrets, base64 of 32 bytes (overrides the key file).
    #[arg(long, env = "TOKENHUB_KEK", hide_env_values = true, global = true)]
    pub kek: Option<String>,

    /// Previous KEKs (comma-separated base64) still accepted while `tokenhub kek rotate` re-wraps.
    #[arg(long, env = "TOKENHUB_KEK_PREVIOUS", hide_env_values = true, global = true)]
    pub kek_previous: Option<String>,

    /// Key file used when TOKENHUB_KEK is unset; created with mode 0600 on first start.
    #[arg(long, env = "TOKENHUB_KEK_FILE", default_value = "data/kek", global = true)]
    pub kek_file: std::path::PathBuf,

    /// Reverse proxies whose `X-Forwarded-For` is believed (comma-separated CIDRs); none by default.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,

    /// How long a command waits for the query tables to include its events before answering.
    #[arg(long, env = "READ_YOUR_WRITES_TIMEOUT_MS", default_value_t = 2000, global = true)]
    pub read_your_writes_timeout_ms: u64,

    /// JetStream stream of usage records (subjects `<prefix>.usage.<tenant>`).
    #[arg(long, env = "NATS_USAGE_STREAM", default_value = "TOKENHUB_USAGE", global = true)]
    pub nats_usage_stream: String,

    /// Durable consumer of the usage stream that builds the rollups (shared by all instances).
    #[arg(long, env = "USAGE_CONSUMER", default_value = "tokenhub-usage-rollups", global = true)]
    pub usage_consumer: String,

    /// How many days old a usage record may be. Ids of counted records are remembered this
    /// long (plus two days) to refuse re-posts, then pruned.
    #[arg(long, env = "USAGE_MAX_AGE_DAYS", default_value_t = 35, global = true)]
    pub usage_max_age_days: u32,

    /// Control-API requests per minute per tenant, unless the tenant configuration's
    /// `rateLimit` says otherwise (0 = unlimited).
    #[arg(long, env = "DEFAULT_RATE_LIMIT", default_value_t = 1000, global = true)]
    pub default_rate_limit: u32,
}

impl Config {
    /// The NATS events stream settings.
    pub fn events_stream(&self) -> EventsStreamConfig {
        EventsStreamConfig {
            stream: self.nats_events_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
        }
    }

    /// The NATS usage stream settings.
    pub fn usage_stream(&self) -> UsageStreamConfig {
        UsageStreamConfig {
            stream: self.nats_usage_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
            consumer: self.usage_consumer.clone(),
        }
    }

    /// How old a usage record may be.
    pub fn usage_max_age(&self) -> time::Duration {
        time::Duration::days(i64::from(self.usage_max_age_days))
    }

    /// The read-your-writes timeout.
    pub fn read_your_writes_timeout(&self) -> Duration {
        Duration::from_millis(self.read_your_writes_timeout_ms)
    }

    /// Checks values clap cannot check.
    pub fn validate(&self) -> Result<(), String> {
        let token_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !token_ok(&self.nats_subject_prefix) {
            return Err("NATS_SUBJECT_PREFIX must be letters, digits, '_' or '-'".into());
        }
        if !token_ok(&self.nats_events_stream) {
            return Err("NATS_EVENTS_STREAM must be letters, digits, '_' or '-'".into());
        }
        if !token_ok(&self.nats_usage_stream) || self.nats_usage_stream == self.nats_events_stream {
            return Err(
                "NATS_USAGE_STREAM must be letters, digits, '_' or '-', and differ from NATS_EVENTS_STREAM"
                    .into(),
            );
        }
        if !(1..=400).contains(&self.usage_max_age_days) {
            return Err("USAGE_MAX_AGE_DAYS must be 1 to 400".into());
        }
        if !token_ok(&self.usage_consumer) {
            return Err("USAGE_CONSUMER must be letters, digits, '_' or '-'".into());
        }
        crate::http::client_ip::parse_trusted(&self.trusted_proxies)?;
        if self.key_pepper.as_ref().is_some_and(|p| p.len() < 32) {
            return Err("TOKENHUB_KEY_PEPPER must be at least 32 bytes".into());
        }
        Ok(())
    }
}
