//! Configuration from the environment (or flags), with defaults that work against a local
//! PostgreSQL and NATS. `tokenhub --help` lists every variable.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

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

    /// NATS server URL, or several separated by commas (the nodes of a cluster).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    pub nats_url: String,

    /// Replicas of the events and usage streams in a JetStream cluster (1 on a single server;
    /// 3 on a three-node cluster keeps them through the loss of a node).
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1, global = true, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub nats_stream_replicas: u64,

    /// Subject prefix: events go to `<prefix>.events.<tenant>.<aggregate>.<event>`.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "tokenhub", global = true)]
    pub nats_subject_prefix: String,

    /// JetStream stream holding the events (created at start when missing).
    #[arg(long, env = "NATS_EVENTS_STREAM", default_value = "TOKENHUB_EVENTS", global = true)]
    pub nats_events_stream: String,

    /// Address the HTTP server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub listen_addr: SocketAddr,

    /// Certificate chain (PEM) to serve HTTPS with, TLS 1.3 only (`serve` and `gateway`);
    /// with `TLS_KEY_FILE`. Unset: plain HTTP (behind a TLS-terminating proxy).
    #[arg(long, env = "TLS_CERT_FILE", global = true)]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TLS_KEY_FILE", global = true)]
    pub tls_key_file: Option<std::path::PathBuf>,

    /// CA certificate (PEM) that NATS servers must present a certificate from; set, the
    /// connection to NATS requires TLS.
    #[arg(long, env = "NATS_TLS_CA_FILE", global = true)]
    pub nats_tls_ca_file: Option<std::path::PathBuf>,

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

    /// Make this instance's master key the fleet's (when changing a configured master key:
    /// start one instance with it, then restart the others with the new key). Without it an
    /// instance whose master key differs from the fleet's refuses to start.
    #[arg(long, env = "FLEET_ADOPT_MASTER_KEY", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub fleet_adopt_master_key: bool,

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

    /// Count every per-minute limit (a key's requests, a tenant's control-API rate) once for
    /// the fleet, from leases of each window in PostgreSQL; `false`: each instance counts on
    /// its own (N instances admit up to N × a limit).
    #[arg(long, env = "FLEET_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub fleet_rate_limits: bool,

    /// Where a generated master key is written (mode 0600) when stderr is not a terminal.
    #[arg(long, env = "MASTER_KEY_FILE", default_value = "data/master-key", global = true)]
    pub master_key_file: std::path::PathBuf,

    /// How long a client may take to send a request's headers (slow clients are cut off).
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, global = true)]
    pub http_header_read_timeout_ms: u64,

    /// Longest time a request may take until its response starts (503 `request_timeout`).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = 30_000, global = true)]
    pub http_request_timeout_ms: u64,

    /// Requests handled at once; more are shed at once with 503 `overloaded`.
    #[arg(long, env = "HTTP_MAX_IN_FLIGHT", default_value_t = 1024, global = true)]
    pub http_max_in_flight: usize,

    /// Open connections at most; further connections are closed on accept.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 8192, global = true)]
    pub http_max_connections: usize,

    /// Where `tokenhub gateway` listens (the OpenAI-compatible data plane).
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "127.0.0.1:8081", global = true)]
    pub gateway_listen_addr: SocketAddr,

    /// Let the gateway forward to loopback, private and other internal upstream addresses
    /// (local development and tests); also lets a tenant configuration name such a provider.
    #[arg(long, env = "GATEWAY_ALLOW_PRIVATE_UPSTREAMS", default_value_t = false, global = true, action = clap::ArgAction::Set)]
    pub gateway_allow_private_upstreams: bool,

    /// Platform-wide providers of the gateway, for every tenant: a JSON array of
    /// `{"name", "kind", "base_url", "models", "api_key_env"?}` (the upstream key is read from
    /// the environment variable `api_key_env` at start).
    #[arg(long, env = "GATEWAY_PROVIDERS", default_value = "[]", global = true)]
    pub gateway_providers: String,

    /// Longest wait for an upstream's answer (and between two chunks of a stream).
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT_MS", default_value_t = 120_000, global = true, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub gateway_upstream_timeout_ms: u64,

    /// Let webhooks target loopback, private, link-local and other internal addresses.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE_TARGETS", default_value_t = false, global = true, action = clap::ArgAction::Set)]
    pub webhook_allow_private_targets: bool,

    /// First webhook retry after this many milliseconds, doubling (±20 % jitter) up to an hour.
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000, global = true, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub webhook_retry_base_ms: u64,

    /// Webhook retries stop this many seconds after a delivery was created (then `failed`).
    #[arg(long, env = "WEBHOOK_RETRY_FOR_SECONDS", default_value_t = 86_400, global = true, value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub webhook_retry_for_seconds: u64,

    /// A webhook endpoint whose every attempt failed for this many seconds is disabled.
    #[arg(long, env = "WEBHOOK_DISABLE_AFTER_SECONDS", default_value_t = 259_200, global = true, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub webhook_disable_after_seconds: u64,

    /// Per webhook attempt, in milliseconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, global = true, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub webhook_timeout_ms: u64,

    /// Webhook attempts in flight per tenant.
    #[arg(long, env = "WEBHOOK_TENANT_CONCURRENCY", default_value_t = 4, global = true, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub webhook_tenant_concurrency: u64,

    /// How often expiring keys and quota thresholds are looked for, in milliseconds.
    #[arg(long, env = "WEBHOOK_NOTICE_INTERVAL_MS", default_value_t = 10_000, global = true, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub webhook_notice_interval_ms: u64,

    /// Base URL people reach this server at, for invite links.
    #[arg(long, env = "PUBLIC_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub public_url: String,

    /// OpenID providers people may sign in with, comma-separated names; each is configured by
    /// `OIDC_<NAME>_ISSUER`, `OIDC_<NAME>_CLIENT_ID`, `OIDC_<NAME>_CLIENT_SECRET` (`github`:
    /// no issuer). Empty: none.
    #[arg(long, env = "OIDC_PROVIDERS", default_value = "", global = true)]
    pub oidc_providers: String,

    /// Mark session cookies `Secure` (set `false` only for local plain http).
    #[arg(long, env = "COOKIE_SECURE", default_value_t = true, global = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// A session ends after this many minutes without a request.
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 30, global = true, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub session_idle_minutes: u64,

    /// A session ends this many hours after sign-in, whatever its use.
    #[arg(long, env = "SESSION_ABSOLUTE_HOURS", default_value_t = 12, global = true, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub session_absolute_hours: u64,

    /// Most live secrets per tenant (409 `secret_limit_reached`).
    #[arg(long, env = "TENANT_MAX_SECRETS", default_value_t = 1000, global = true)]
    pub tenant_max_secrets: i64,

    /// Most roles per tenant (409 `role_limit_reached`).
    #[arg(long, env = "TENANT_MAX_ROLES", default_value_t = 200, global = true)]
    pub tenant_max_roles: i64,

    /// Largest tenant configuration document in bytes (422 `config_too_large`).
    #[arg(long, env = "TENANT_MAX_CONFIG_BYTES", default_value_t = 64 * 1024, global = true)]
    pub tenant_max_config_bytes: usize,

    /// Most configuration saves per tenant per UTC day (429 `config_version_limit_reached`).
    #[arg(long, env = "TENANT_MAX_CONFIG_VERSIONS_PER_DAY", default_value_t = 200, global = true)]
    pub tenant_max_config_versions_per_day: i64,

    /// Secret reveals per minute per platform key (429 `rate_limited`).
    #[arg(long, env = "PLATFORM_REVEALS_PER_MINUTE", default_value_t = 600, global = true)]
    pub platform_reveals_per_minute: u32,

    /// Failed master-key or API-key attempts per minute per client address before 429.
    #[arg(long, env = "AUTH_FAILURES_PER_MINUTE", default_value_t = 30, global = true)]
    pub auth_failures_per_minute: u32,

    /// `/readyz` answers 503 (`relay: "stuck"`) once an event committed this many seconds ago
    /// is still not on NATS: downstream consumers (billing, audit subscribers) would otherwise
    /// stop silently. 0: never.
    #[arg(long, env = "RELAY_STUCK_AFTER_SECONDS", default_value_t = 30, global = true)]
    pub relay_stuck_after_seconds: u64,

    /// OpenID sign-in starts (`/auth/oidc/{provider}/start`, each a stored login attempt)
    /// per minute per client address; more get 429 `rate_limited`. 0: unlimited.
    #[arg(long, env = "OIDC_STARTS_PER_MINUTE", default_value_t = 30, global = true)]
    pub oidc_starts_per_minute: u32,

    /// Open live streams (`/audit/events/stream`, `/tenant/audit/events/stream`) per
    /// principal (a key, a person, the master key) on this server; more get 429
    /// `too_many_streams`.
    #[arg(long, env = "LIVE_STREAMS_PER_PRINCIPAL", default_value_t = 16, global = true, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub live_streams_per_principal: u32,

    /// Open live streams on this server, all principals together; more get 429
    /// `too_many_streams`.
    #[arg(long, env = "LIVE_STREAMS_MAX", default_value_t = 2000, global = true, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub live_streams_max: u32,
}

/// Limits of the HTTP server and of what one tenant may write, from [`Config`].
/// The defaults are the flags' (`Config::limits` of a parsed configuration).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Header-read timeout.
    pub header_read_timeout: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Concurrent requests.
    pub max_in_flight: usize,
    /// Open connections.
    pub max_connections: usize,
    /// Webhooks may target internal addresses.
    pub webhook_allow_private_targets: bool,
    /// Gateway providers may be internal addresses.
    pub gateway_allow_private_upstreams: bool,
    /// Base URL for invite links.
    pub public_url: String,
    /// Session cookies are `Secure`.
    pub cookie_secure: bool,
    /// Idle timeout of sessions.
    pub session_idle: Duration,
    /// Absolute lifetime of sessions.
    pub session_absolute: Duration,
    /// Live secrets per tenant.
    pub max_secrets: i64,
    /// Roles per tenant.
    pub max_roles: i64,
    /// Configuration size.
    pub max_config_bytes: usize,
    /// Configuration saves per tenant per day.
    pub max_config_versions_per_day: i64,
    /// Reveals per minute per platform key.
    pub platform_reveals_per_minute: u32,
    /// Failed authentications per minute per client address.
    pub auth_failures_per_minute: u32,
    /// When an unpublished event makes the relay "stuck" (`None`: never).
    pub relay_stuck_after: Option<Duration>,
    /// The relay's checkpoint name (its position in `checkpoints`).
    pub relay_checkpoint: String,
    /// Open live streams per principal.
    pub live_streams_per_principal: u32,
    /// Open live streams per server.
    pub live_streams_max: u32,
}

impl Config {
    /// The NATS events stream settings.
    pub fn events_stream(&self) -> EventsStreamConfig {
        EventsStreamConfig {
            stream: self.nats_events_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
            replicas: self.nats_stream_replicas as usize,
        }
    }

    /// The NATS usage stream settings.
    pub fn usage_stream(&self) -> UsageStreamConfig {
        UsageStreamConfig {
            stream: self.nats_usage_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
            consumer: self.usage_consumer.clone(),
            replicas: self.nats_stream_replicas as usize,
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

    /// The server and tenant limits.
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(self.http_header_read_timeout_ms),
            request_timeout: Duration::from_millis(self.http_request_timeout_ms),
            max_in_flight: self.http_max_in_flight,
            max_connections: self.http_max_connections,
            webhook_allow_private_targets: self.webhook_allow_private_targets,
            gateway_allow_private_upstreams: self.gateway_allow_private_upstreams,
            public_url: self.public_url.trim_end_matches('/').to_string(),
            cookie_secure: self.cookie_secure,
            session_idle: Duration::from_secs(self.session_idle_minutes * 60),
            session_absolute: Duration::from_secs(self.session_absolute_hours * 3600),
            max_secrets: self.tenant_max_secrets,
            max_roles: self.tenant_max_roles,
            max_config_bytes: self.tenant_max_config_bytes,
            max_config_versions_per_day: self.tenant_max_config_versions_per_day,
            platform_reveals_per_minute: self.platform_reveals_per_minute,
            auth_failures_per_minute: self.auth_failures_per_minute,
            relay_stuck_after: (self.relay_stuck_after_seconds > 0)
                .then(|| Duration::from_secs(self.relay_stuck_after_seconds)),
            relay_checkpoint: crate::nats::relay_checkpoint(&self.nats_events_stream),
            live_streams_per_principal: self.live_streams_per_principal,
            live_streams_max: self.live_streams_max,
        }
    }

    /// Checks values clap cannot check.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("TLS_CERT_FILE and TLS_KEY_FILE go together: set both, or neither".into());
        }
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
        parse_trusted(&self.trusted_proxies)?;
        if self.master_api_key.as_ref().is_some_and(|k| !k.is_empty() && k.chars().count() < 32) {
            return Err("MASTER_API_KEY must be at least 32 characters (or use MASTER_API_KEY_HASH)".into());
        }
        if self.http_header_read_timeout_ms == 0 || self.http_request_timeout_ms == 0 {
            return Err("HTTP_HEADER_READ_TIMEOUT_MS and HTTP_REQUEST_TIMEOUT_MS must be at least 1".into());
        }
        if self.http_max_in_flight == 0 || self.http_max_connections == 0 {
            return Err("HTTP_MAX_IN_FLIGHT and HTTP_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.key_pepper.as_ref().is_some_and(|p| p.len() < 32) {
            return Err("TOKENHUB_KEY_PEPPER must be at least 32 bytes".into());
        }
        Ok(())
    }
}

/// Parses `TRUSTED_PROXIES`: comma-separated CIDRs or addresses.
pub fn parse_trusted(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("TRUSTED_PROXIES: '{s}' is not an address or CIDR"))
        })
        .collect()
}
