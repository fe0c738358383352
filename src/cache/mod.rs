//! The in-memory key cache: what verification and authentication read, in microseconds.
//!
//! It starts from the key-lookup tables (`api_keys`, `key_tenants`) at their checkpoint, read
//! in one snapshot, then follows the event log, applying the same pure
//! [`change_for`](tokenhub_projections::api_keys::change_for) as the SQL projection: the
//! projection runner hands it every batch it commits, and it reads the log itself when a
//! hand-over is late or leaves a gap, and at least once a second ([`follow`]), so a disabled,
//! revoked or rotated-away key stops verifying on every instance within about a second at
//! worst (measured: see README).
//!
//! - [`verify`]: the verification decision.
//! - [`caught_up`]: a miss is answered only once the cache holds the log as of the request.
//! - [`last_used`]: batched `last_used_at` writes (no event per verification).
//! - per-minute limits are counted for the fleet through [`crate::fleet::leases`].

pub mod caught_up;
pub mod last_used;

pub mod usage;
pub mod verify;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ipnet::IpNet;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{KeyRole, KeySettings, KeyStatus, QuotaPeriod, RateLimit};
use tokenhub_aggregates::tenant::{Plan, TenantEvent, TenantLimits, TenantStatus};
use tokenhub_projections::api_keys::{change_for, decode, KeyLookupChange, KeyLookupEvent, KeyRecord};
use tokenhub_projections::sub_accounts::{record_after, SubAccountRecord};
use tokenhub_projections::{ProjectionError, StoredEvent};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::key_format;
use crate::crypto::hex;
use crate::follow::{HandOver, GATHER, HAND_OVER_WAIT, POLL_INTERVAL};

pub use verify::{Verdict, VerifyCode, VerifyInput};

/// One key, prepared for verification in a compact form (about 600 bytes with typical
/// settings; see the `verify` benchmark): raw hash bytes, parsed networks, boxed slices, and
/// the tenant id shared with every other key of the tenant.
#[derive(Debug)]
pub struct CachedKey {
    /// Public id.
    pub public_id: Box<str>,
    /// Tenant (none for platform keys).
    pub tenant_id: Option<Arc<str>>,
    /// Sub-account.
    pub sub_account_id: Option<Box<str>>,
    /// Role.
    pub role: KeyRole,
    /// Status.
    pub status: KeyStatus,
    /// Name.
    pub name: Box<str>,
    hash: [u8; 32],
    previous: Option<([u8; 32], OffsetDateTime)>,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
    quota_limit: Option<i64>,
    quota_period: Option<QuotaPeriod>,
    nets: Box<[IpNet]>,
    /// Allowed models (empty = any).
    pub allowed_models: Box<[Box<str>]>,
    /// Permissions.
    pub permissions: Box<[Box<str>]>,
    /// Key-bound tags, sorted by name.
    pub tags: Box<[(Box<str>, Box<str>)]>,
    rate_limit: Option<RateLimit>,
    /// Platform keys: the tenants it may act for (empty = all); shared with the principals
    /// authenticated by it, so authenticating copies nothing.
    pub tenant_ids: Arc<[Box<str>]>,
    /// Usage counters (quota, per-minute rate), shared across versions of the entry.
    pub usage: Arc<usage::KeyUsage>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    /// Unix seconds of the last successful verification (0: none since start).
    pub last_used: AtomicI64,
    flushed: AtomicI64,
}

fn decode_hex32(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex.get(i * 2..i * 2 + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
    out
}

fn boxed(items: Vec<String>) -> Box<[Box<str>]> {
    items.into_iter().map(String::into_boxed_str).collect()
}

fn unboxed(items: &[Box<str>]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl CachedKey {
    /// Prepares `record`; `tenant_id` is the shared copy of its tenant id.
    pub fn new(record: KeyRecord, tenant_id: Option<Arc<str>>, usage: Arc<usage::KeyUsage>) -> Self {
        let previous = match (&record.previous_secret_hash, record.previous_valid_until) {
            (Some(h), Some(until)) => Some((decode_hex32(h), until)),
            _ => None,
        };
        let s = record.settings;
        Self {
            public_id: record.public_id.into_boxed_str(),
            tenant_id,
            sub_account_id: record.sub_account_id.map(String::into_boxed_str),
            role: record.role,
            status: record.status,
            name: record.name.into_boxed_str(),
            hash: decode_hex32(&record.secret_hash),
            previous,
            expires_at: s.expires_at,
            quota_limit: s.quota_limit,
            quota_period: s.quota_period,
            nets: s.allowed_ips.iter().filter_map(|n| n.parse().ok()).collect(),
            allowed_models: boxed(s.allowed_models),
            permissions: boxed(s.permissions),
            tags: s.tags.into_iter().map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str())).collect(),
            rate_limit: s.rate_limit,
            tenant_ids: Arc::from(boxed(s.tenant_ids)),
            usage,
            created_at: record.created_at,
            updated_at: record.updated_at,
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
        }
    }

    /// The full record again (to apply the next event to it).
    pub fn to_record(&self) -> KeyRecord {
        KeyRecord {
            public_id: self.public_id.to_string(),
            tenant_id: self.tenant_id.as_deref().map(str::to_string),
            sub_account_id: self.sub_account_id.as_deref().map(str::to_string),
            role: self.role,
            name: self.name.to_string(),
            status: self.status,
            secret_hash: hex(&self.hash),
            previous_secret_hash: self.previous.map(|(h, _)| hex(&h)),
            previous_valid_until: self.previous.map(|(_, until)| until),
            settings: KeySettings {
                quota_limit: self.quota_limit,
                quota_period: self.quota_period,
                expires_at: self.expires_at,
                allowed_ips: self.nets.iter().map(ToString::to_string).collect(),
                allowed_models: unboxed(&self.allowed_models),
                permissions: unboxed(&self.permissions),
                tags: self.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                rate_limit: self.rate_limit,
                tenant_ids: unboxed(&self.tenant_ids),
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A public id as a map key: 16 ASCII bytes inline, no allocation.
type IdKey = [u8; key_format::PUBLIC_ID_LEN];

fn id_key(public_id: &str) -> Option<IdKey> {
    public_id.as_bytes().try_into().ok()
}

/// What verification checks about a tenant.
#[derive(Debug, Clone)]
pub struct TenantGate {
    /// Status.
    pub status: TenantStatus,
    /// The tenant's IP allowlist, when on.
    pub allowlist: Option<Box<[IpNet]>>,
    /// The tenant's monthly LLM-token quota, when it has one: its plan's, or the super
    /// admin's override, kept from the tenant's events (no refresh lag).
    pub quota: Option<i64>,
    /// The tenant's LLM tokens.
    pub tokens: Arc<usage::TokenTotals>,
    /// Its plan.
    pub plan: Plan,
    /// The super admin's limit overrides.
    pub overrides: TenantLimits,
}

impl TenantGate {
    /// Sets the plan and overrides, and the monthly quota they give (kept, not derived per
    /// verification: it is read on the hot path).
    fn set_limits(&mut self, plan: Plan, overrides: TenantLimits) {
        self.plan = plan;
        self.overrides = overrides;
        self.quota = TenantLimits::effective(plan, overrides)
            .monthly_token_quota
            .map(|q| q.min(i64::MAX as u64) as i64);
    }
}

fn parse_nets(nets: &[String]) -> Box<[IpNet]> {
    nets.iter().filter_map(|n| n.parse().ok()).collect()
}

/// A `key_tenants` row: tenant id, status, allowlist (NULL = off), with the tenant's plan and
/// limit overrides from `tenants`.
type TenantRow = (
    String,
    String,
    Option<sqlx::types::Json<Vec<String>>>,
    Option<String>,
    Option<sqlx::types::Json<TenantLimits>>,
);

/// All keys and tenant statuses, by public id and tenant id.
pub struct KeyCache {
    keys: DashMap<IdKey, Arc<CachedKey>>,
    tenants: DashMap<Arc<str>, TenantGate>,
    sub_accounts: DashMap<String, Arc<SubAccountRecord>>,
    usage: DashMap<IdKey, Arc<usage::KeyUsage>>,
    sub_usage: DashMap<String, Arc<usage::TokenTotals>>,
    tenant_usage: DashMap<String, Arc<usage::TokenTotals>>,
    /// Keys not revoked, per tenant (what the plan's `max_api_keys` counts).
    live_keys: DashMap<Arc<str>, i64>,
    position: watch::Sender<i64>,
    /// The highest position a request on this instance waits for the cache to reach: where
    /// another instance leads the projections, the follower reads the log at once for it, and
    /// lets other commits gather otherwise ([`follow`]).
    wanted: watch::Sender<i64>,
    /// Held while events are applied: the follower and the projection runner's hand-over
    /// ([`follow`]) never apply one event twice.
    applying: std::sync::Mutex<()>,
    /// Leases of the fleet's per-minute counts ([`crate::fleet::leases`]).
    pub leaser: crate::fleet::leases::Leaser,
    /// Keys whose tokens per minute are shared with the fleet this minute (the minute).
    minute_watch: DashMap<IdKey, i64>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            keys: DashMap::new(),
            tenants: DashMap::new(),
            sub_accounts: DashMap::new(),
            usage: DashMap::new(),
            sub_usage: DashMap::new(),
            tenant_usage: DashMap::new(),
            live_keys: DashMap::new(),
            position: watch::channel(0).0,
            wanted: watch::channel(0).0,
            applying: std::sync::Mutex::new(()),
            leaser: crate::fleet::leases::Leaser::default(),
            minute_watch: DashMap::new(),
        }
    }
}

impl KeyCache {
    /// The key with this public id.
    pub fn get(&self, public_id: &str) -> Option<Arc<CachedKey>> {
        self.keys.get(&id_key(public_id)?).map(|e| Arc::clone(e.value()))
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Status of a tenant, as last seen.
    pub fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        self.tenants.get(tenant_id).map(|g| g.status)
    }

    /// Sets (or, with `None`, turns off) a tenant's IP allowlist.
    pub fn put_tenant_allowlist(&self, tenant_id: &str, allowlist: Option<&[String]>) {
        if let Some(mut gate) = self.tenants.get_mut(tenant_id) {
            gate.allowlist = allowlist.map(parse_nets);
        }
    }

    /// A sub-account, as last seen.
    pub fn sub_account(&self, sub_account_id: &str) -> Option<Arc<SubAccountRecord>> {
        self.sub_accounts.get(sub_account_id).map(|e| Arc::clone(e.value()))
    }

    /// Inserts or replaces a sub-account.
    pub fn put_sub_account(&self, record: SubAccountRecord) {
        self.sub_accounts.insert(record.sub_account_id.clone(), Arc::new(record));
    }

    /// Position of the log the cache includes.
    pub fn position(&self) -> watch::Receiver<i64> {
        self.position.subscribe()
    }

    /// Says that a request waits for the cache to reach `position` (it follows the log at
    /// once instead of letting commits gather).
    pub fn want(&self, position: i64) {
        self.wanted.send_if_modified(|wanted| {
            let more = position > *wanted;
            if more {
                *wanted = position;
            }
            more
        });
    }

    /// Inserts or replaces a key, keeping its usage stamp.
    pub fn put_key(&self, record: KeyRecord) {
        let Some(id) = id_key(&record.public_id) else {
            tracing::error!(public_id = %record.public_id, "key with a malformed public id ignored");
            return;
        };
        let tenant = record.tenant_id.as_deref().map(|t| self.shared_tenant_id(t));
        let usage = usage::shared(&self.usage, &id);
        let fresh = CachedKey::new(record, tenant, usage);
        if let Some(old) = self.keys.get(&id) {
            fresh.last_used.store(old.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
            fresh.flushed.store(old.flushed.load(Ordering::Relaxed), Ordering::Relaxed);
            self.count_live(&old, -1);
        }
        self.count_live(&fresh, 1);
        self.keys.insert(id, Arc::new(fresh));
    }

    fn count_live(&self, key: &CachedKey, delta: i64) {
        if let (Some(tenant), true) = (&key.tenant_id, key.status != KeyStatus::Revoked) {
            *self.live_keys.entry(Arc::clone(tenant)).or_default() += delta;
        }
    }

    /// The keys of `tenant_id` that are not revoked, as last seen.
    pub fn live_keys(&self, tenant_id: &str) -> i64 {
        self.live_keys.get(tenant_id).map(|n| *n).unwrap_or(0)
    }

    /// The most keys `tenant_id` may hold (its plan's, or the super admin's override), as last
    /// seen; `None` when unlimited or the tenant is unknown.
    pub fn max_api_keys(&self, tenant_id: &str) -> Option<i64> {
        let gate = self.tenants.get(tenant_id)?;
        TenantLimits::effective(gate.plan, gate.overrides).max_api_keys.map(i64::from)
    }

    fn shared_tenant_id(&self, tenant_id: &str) -> Arc<str> {
        self.tenants.get(tenant_id).map(|e| Arc::clone(e.key())).unwrap_or_else(|| Arc::from(tenant_id))
    }

    /// Sets a tenant's status.
    pub fn put_tenant(&self, tenant_id: String, status: TenantStatus) {
        if let Some(mut gate) = self.tenants.get_mut(tenant_id.as_str()) {
            gate.status = status;
            return;
        }
        let shared = self.shared_tenant_id(&tenant_id);
        let tokens = self.tenant_usage(&tenant_id);
        let mut gate = TenantGate {
            status,
            allowlist: None,
            quota: None,
            tokens,
            plan: Plan::default(),
            overrides: TenantLimits::default(),
        };
        gate.set_limits(Plan::default(), TenantLimits::default());
        self.tenants.insert(shared, gate);
    }

    /// Applies one event of the log.
    pub fn apply(&self, event: &StoredEvent) -> Result<(), ProjectionError> {
        if let Some(sub_event) = tokenhub_projections::sub_accounts::decode(event)? {
            let current = self.sub_account(&event.aggregate_id).map(|r| (*r).clone());
            if let Some(record) = record_after(sub_event, current) {
                self.put_sub_account(record);
            }
            return Ok(());
        }
        let Some(decoded) = decode(event)? else { return Ok(()) };
        // The tenant's quota follows its plan and overrides (both in created and updated).
        let limits = match &decoded {
            KeyLookupEvent::Tenant(TenantEvent::Created { plan, limits, .. }) => {
                Some((Some(*plan), Some(*limits)))
            }
            KeyLookupEvent::Tenant(TenantEvent::Updated { plan, limits, .. }) => Some((*plan, *limits)),
            _ => None,
        };
        let current = self.get(&event.aggregate_id).map(|k| k.to_record());
        match change_for(&event.aggregate_id, decoded, current) {
            Some(KeyLookupChange::Key(record)) => self.put_key(*record),
            Some(KeyLookupChange::Tenant { tenant_id, status }) => self.put_tenant(tenant_id, status),
            Some(KeyLookupChange::TenantAllowlist { tenant_id, allowlist }) => {
                self.put_tenant_allowlist(&tenant_id, allowlist.as_deref())
            }
            None => {}
        }
        if let Some((plan, overrides)) = limits {
            let tenant = event.aggregate_id.as_str();
            if let Some(mut gate) = self.tenants.get_mut(tenant) {
                let (plan, overrides) = (plan.unwrap_or(gate.plan), overrides.unwrap_or(gate.overrides));
                gate.set_limits(plan, overrides);
            }
        }
        Ok(())
    }

    /// Loads the key-lookup tables at their checkpoint (one snapshot); returns that position.
    pub async fn load(&self, pool: &PgPool) -> Result<i64, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let position: i64 = sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = 'api_keys'")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        // The plan and overrides come from `tenants`, which may be ahead of this checkpoint;
        // replaying the events after it converges, since created and updated events carry the
        // whole plan and overrides.
        let tenants: Vec<TenantRow> = sqlx::query_as(
            "SELECT k.tenant_id, k.status, k.allowlist, t.plan, t.limit_overrides \
             FROM key_tenants k LEFT JOIN tenants t USING (tenant_id)",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (tenant_id, status, allowlist, plan, overrides) in tenants {
            let status =
                serde_json::from_value(serde_json::Value::String(status)).unwrap_or(TenantStatus::Deleted);
            self.put_tenant(tenant_id.clone(), status);
            self.put_tenant_allowlist(&tenant_id, allowlist.as_ref().map(|a| a.0.as_slice()));
            let plan: Plan = plan
                .and_then(|p| serde_json::from_value(serde_json::Value::String(p)).ok())
                .unwrap_or_default();
            let overrides = overrides.map(|o| o.0).unwrap_or_default();
            if let Some(mut gate) = self.tenants.get_mut(tenant_id.as_str()) {
                gate.set_limits(plan, overrides);
            }
        }
        // Sub-accounts are part of the same checkpoint: without them every sub-account key
        // answered SUB_ACCOUNT_DELETED after a restart (the follower resumes at the checkpoint).
        let subs: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM key_sub_accounts").fetch_all(&mut *tx).await?;
        for record in subs {
            match serde_json::from_value::<SubAccountRecord>(record) {
                Ok(r) => self.put_sub_account(r),
                Err(e) => {
                    tracing::error!(error = %e, "unreadable sub-account record; rebuild the api_keys projection")
                }
            }
        }
        let records: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM api_keys").fetch_all(&mut *tx).await?;
        for record in records {
            match serde_json::from_value::<KeyRecord>(record) {
                Ok(r) => self.put_key(r),
                Err(e) => {
                    tracing::error!(error = %e, "unreadable key record; rebuild the api_keys projection")
                }
            }
        }
        tx.commit().await?;
        self.position.send_replace(position);
        Ok(position)
    }

    /// A canonical dump of what verification decides from (keys, tenants, sub-accounts) and of
    /// the live-key counts the plan limit reads, sorted, without usage counters or last-used
    /// stamps: two caches that hold the same state dump equal values. Restart-equivalence tests compare a loaded cache with one replayed
    /// from position 0.
    pub fn canonical_dump(&self) -> serde_json::Value {
        let mut keys: Vec<(String, serde_json::Value)> = self
            .keys
            .iter()
            .map(|e| {
                (
                    e.value().public_id.to_string(),
                    serde_json::to_value(e.value().to_record()).unwrap_or_default(),
                )
            })
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tenants: Vec<(String, serde_json::Value)> = self
            .tenants
            .iter()
            .map(|e| {
                let g = e.value();
                let nets: Option<Vec<String>> =
                    g.allowlist.as_deref().map(|n| n.iter().map(ToString::to_string).collect());
                (e.key().to_string(), serde_json::json!([g.status.as_str(), nets, g.quota]))
            })
            .collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subs: Vec<(String, serde_json::Value)> = self
            .sub_accounts
            .iter()
            .map(|e| (e.key().clone(), serde_json::to_value(&**e.value()).unwrap_or_default()))
            .collect();
        subs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut live: Vec<(String, i64)> = self
            .live_keys
            .iter()
            .filter(|e| *e.value() != 0)
            .map(|e| (e.key().to_string(), *e.value()))
            .collect();
        live.sort();
        serde_json::json!({ "keys": keys, "tenants": tenants, "sub_accounts": subs, "live_keys": live })
    }

    /// A cache built by replaying the whole log from position 0 (no query table involved).
    pub async fn replayed(pool: &PgPool) -> Result<KeyCache, ProjectionError> {
        let cache = KeyCache::default();
        cache.catch_up(pool).await?;
        Ok(cache)
    }

    /// Applies every committed event after the cache's position.
    pub async fn catch_up(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        crate::follow::apply::catch_up(pool, &mut Reading(self)).await.map(|_| ())
    }

    /// Applies the events of `events` (in position order) after the cache's position, when they
    /// continue it without a gap; false when they do not (the caller reads the log instead).
    pub fn apply_following(&self, events: &[StoredEvent]) -> Result<bool, ProjectionError> {
        let _applying = self.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut position = *self.position.borrow();
        let start = events.partition_point(|e| e.position <= position);
        let fresh = &events[start..];
        match fresh.first() {
            None => return Ok(true),
            Some(first) if first.position != position + 1 => return Ok(false),
            Some(_) => {}
        }
        let mut outcome = Ok(true);
        for event in fresh {
            if let Err(e) = self.apply(event) {
                outcome = Err(e);
                break;
            }
            position = event.position;
        }
        self.position.send_replace(position);
        outcome
    }
}

/// Loads the cache and keeps it following the log until shutdown (see [`follow`]).
pub async fn start(
    pool: PgPool,
    hint: watch::Receiver<i64>,
    handed_over: HandOver,
    leaser: crate::fleet::leases::Leaser,
    shutdown: CancellationToken,
) -> Result<Arc<KeyCache>, ProjectionError> {
    let cache = Arc::new(KeyCache { leaser, ..KeyCache::default() });
    let started = std::time::Instant::now();
    cache.load(&pool).await?;
    cache.catch_up(&pool).await?;
    tracing::info!(keys = cache.len(), elapsed_ms = started.elapsed().as_millis() as u64, "key cache loaded");
    follow(Arc::clone(&cache), pool, hint, handed_over, shutdown);
    Ok(cache)
}

/// Keeps `cache` following the log. Usually the projection runner hands it each batch it has
/// just committed (the events are read once for both); the cache reads the log itself when a
/// hand-over leaves a gap or lags, when an announced commit has not been handed over within
/// [`HAND_OVER_WAIT`] (projections slow or failing), and at least once a second in case a
/// notification was missed — so a revocation reaches verification within about a second at
/// worst, whatever the projections do.
fn follow(
    cache: Arc<KeyCache>,
    pool: PgPool,
    mut hint: watch::Receiver<i64>,
    HandOver { batches: mut handed_over, runner, handed, leading }: HandOver,
    shutdown: CancellationToken,
) {
    let report = |cache: &KeyCache, outcome: Result<(), ProjectionError>| {
        if let Err(e) = outcome {
            tracing::error!(error = %e, "key cache cannot follow the log; retrying");
        }
        metrics::gauge!("tokenhub_key_cache_position").set(*cache.position.borrow() as f64);
    };
    let (fed, fed_pool, fed_shutdown) = (Arc::clone(&cache), pool.clone(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            let batch = tokio::select! {
                _ = fed_shutdown.cancelled() => return,
                batch = handed_over.recv() => batch,
            };
            let outcome = match batch {
                Ok(events) => match fed.apply_following(&events) {
                    Ok(true) => Ok(()),
                    Ok(false) => fed.catch_up(&fed_pool).await,
                    Err(e) => Err(e),
                },
                Err(broadcast::error::RecvError::Lagged(_)) => fed.catch_up(&fed_pool).await,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            report(&fed, outcome);
        }
    });
    tokio::spawn(async move {
        let mut wanted = cache.wanted.subscribe();
        loop {
            let (announced, asked) = tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = hint.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    (true, false)
                }
                Ok(()) = wanted.changed() => (false, true),
                _ = tokio::time::sleep(POLL_INTERVAL) => (false, false),
            };
            let following = !*leading.borrow();
            if asked && (!following || *wanted.borrow() <= *cache.position.borrow()) {
                // Already there; or the runner here hands the cache every batch, and announced
                // commits are waited for below.
                continue;
            }
            if announced && following {
                // Another instance applies the projections: nothing is handed over, the cache
                // reads the log. Commits gather for up to GATHER before one read serves them
                // all, unless a request here waits for the cache (its own write, a miss).
                let behind = |w: &i64| *w > *cache.position.borrow();
                let _ = tokio::time::timeout(GATHER, wanted.wait_for(behind)).await;
            } else if announced {
                // Wait for the hand-over, but only while the runner of this process may still
                // bring one: when another instance applied the batch, the runner only moves
                // its position without handing it over, and the cache reads at once.
                let target = *hint.borrow_and_update();
                let (mut cached, mut ran) = (cache.position(), runner.clone());
                let passed_without_handing = async {
                    let _ = ran.wait_for(|p| *p >= target).await;
                    if *handed.borrow() >= target {
                        // Handed over: the feeding task applies it in a moment.
                        std::future::pending::<()>().await;
                    }
                };
                let _ = tokio::time::timeout(HAND_OVER_WAIT, async {
                    tokio::select! {
                        _ = cached.wait_for(|p| *p >= target) => {}
                        _ = passed_without_handing => {}
                    }
                })
                .await;
                if *cache.position.borrow() >= target {
                    continue;
                }
            }
            let outcome = cache.catch_up(&pool).await;
            report(&cache, outcome);
        }
    });
}

/// The cache's apply step when it reads the log itself ([`KeyCache::catch_up`]).
struct Reading<'a>(&'a KeyCache);

impl crate::follow::apply::Apply for Reading<'_> {
    type Error = ProjectionError;
    const BATCH: i64 = 1_000;
    /// What [`KeyCache::apply`] decodes; it reads no metadata.
    const PAYLOADS_OF: Option<&'static [&'static str]> =
        Some(tokenhub_projections::api_keys::FOLLOWED_AGGREGATES);

    fn position(&self) -> i64 {
        *self.0.position.borrow()
    }

    async fn apply(&mut self, events: Vec<StoredEvent>) -> Result<(), ProjectionError> {
        // Read after the position it had: a hand-over applied meanwhile is skipped, never a gap.
        self.0.apply_following(&events).map(|_| ())
    }
}
