//! [`Ctx`]: what every service (and so every handler) can reach. All fields are cheap handles
//! (pools, `Arc`s, channels). The HTTP layer's `Ctx` is this context.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::hashing::KeyHasher;
use crate::auth::master::MasterKey;
use crate::cache::KeyCache;
use crate::commands::Commands;
use crate::readmodels::ReadModels;

/// The services' context: one allocation shared by every request (extractors clone it, so a
/// clone is one reference count, not one per field).
#[derive(Clone)]
pub struct Ctx(Arc<Shared>);

impl Ctx {
    /// The state around `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for Ctx {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`Ctx`] holds.
pub struct Shared {
    /// PostgreSQL.
    pub pool: PgPool,
    /// Command side.
    pub commands: Commands,
    /// Key hashing under the pepper.
    pub hasher: KeyHasher,
    /// The master key.
    pub master: MasterKey,
    /// Position of the query tables, for read-your-writes.
    pub readmodels: ReadModels,
    /// The in-memory key cache.
    pub keys: Arc<KeyCache>,
    /// The key-encryption keys of tenant data keys.
    pub keks: crate::crypto::data_keys::Keks,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// NATS, for readiness.
    pub nats: async_nats::Client,
    /// Publishes usage records to the usage stream.
    pub usage: crate::usage::ingest::UsageIngest,
    /// Announces accepted tokens to the other instances (and counts theirs).
    pub live_usage: crate::usage::live::LiveUsage,
    /// The per-tenant control-API rate limit.
    pub rate_limiter: Arc<crate::usage::rate_limit::TenantRateLimiter>,
    /// Server and per-tenant limits.
    pub limits: Arc<crate::config::Limits>,
    /// Failed authentications per client address, and reveals per platform key.
    pub throttles: Arc<crate::auth::throttle::Throttles>,
    /// People's passwords (argon2id, bounded).
    pub passwords: crate::auth::password::Passwords,
    /// The OpenID providers people may sign in with.
    pub oidc: Arc<super::oidc::Providers>,
    /// Webhook attempts (test sends) and their settings.
    pub webhooks: Arc<crate::webhooks::sender::Sender>,
    /// `rate_limit.exceeded` notices from verification.
    pub rate_limit_notices: crate::webhooks::notices::RateLimitNotices,
    /// Live audit streams: their shared reader and their caps.
    pub live: Arc<super::live::LiveHub>,
    /// Whether PostgreSQL answers (requests fail fast while it does not).
    pub db: Arc<crate::store::health::DbHealth>,
}
