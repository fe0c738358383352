//! The in-memory key cache: what verification and authentication read, in microseconds.
//!
//! It starts from the key-lookup tables (`api_keys`, `key_tenants`) at their checkpoint, read
//! in one snapshot, then follows the event log itself, applying the same pure
//! [`change_for`](tokenhub_projections::api_keys::change_for) as the SQL projection. It wakes on
//! every commit (`LISTEN tokenhub_events`) and at least once a second, so a disabled, revoked
//! or rotated-away key stops verifying on every instance within about a second at worst
//! (measured: see README).
//!
//! - [`verify`]: the verification decision.
//! - [`last_used`]: batched `last_used_at` writes (no event per verification).

pub mod last_used;
pub mod verify;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ipnet::IpNet;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_projections::api_keys::{change_for, decode, KeyLookupChange, KeyRecord};
use tokenhub_projections::log::read_after;
use tokenhub_projections::{ProjectionError, StoredEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::readmodels::wait_for_wakeup;

pub use verify::{Verdict, VerifyCode, VerifyInput};

/// One key, prepared for verification.
#[derive(Debug)]
pub struct CachedKey {
    /// The record from the key lookup.
    pub record: KeyRecord,
    hash: [u8; 32],
    previous: Option<([u8; 32], OffsetDateTime)>,
    nets: Vec<IpNet>,
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

impl CachedKey {
    /// Prepares `record` (decoded hashes, parsed networks).
    pub fn new(record: KeyRecord) -> Self {
        let previous = match (&record.previous_secret_hash, record.previous_valid_until) {
            (Some(h), Some(until)) => Some((decode_hex32(h), until)),
            _ => None,
        };
        let nets = record.settings.allowed_ips.iter().filter_map(|n| n.parse().ok()).collect();
        Self {
            hash: decode_hex32(&record.secret_hash),
            previous,
            nets,
            record,
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
        }
    }
}

/// All keys and tenant statuses, by public id and tenant id.
pub struct KeyCache {
    keys: DashMap<String, Arc<CachedKey>>,
    tenants: DashMap<String, TenantStatus>,
    position: watch::Sender<i64>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self { keys: DashMap::new(), tenants: DashMap::new(), position: watch::channel(0).0 }
    }
}

impl KeyCache {
    /// The key with this public id.
    pub fn get(&self, public_id: &str) -> Option<Arc<CachedKey>> {
        self.keys.get(public_id).map(|e| Arc::clone(e.value()))
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
        self.tenants.get(tenant_id).map(|s| *s)
    }

    /// Position of the log the cache includes.
    pub fn position(&self) -> watch::Receiver<i64> {
        self.position.subscribe()
    }

    /// Inserts or replaces a key, keeping its usage stamp.
    pub fn put_key(&self, record: KeyRecord) {
        let fresh = CachedKey::new(record);
        if let Some(old) = self.keys.get(&fresh.record.public_id) {
            fresh.last_used.store(old.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
            fresh.flushed.store(old.flushed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.keys.insert(fresh.record.public_id.clone(), Arc::new(fresh));
    }

    /// Sets a tenant's status.
    pub fn put_tenant(&self, tenant_id: String, status: TenantStatus) {
        self.tenants.insert(tenant_id, status);
    }

    /// Applies one event of the log.
    pub fn apply(&self, event: &StoredEvent) -> Result<(), ProjectionError> {
        let Some(decoded) = decode(event)? else { return Ok(()) };
        let current = self.get(&event.aggregate_id).map(|k| k.record.clone());
        match change_for(&event.aggregate_id, decoded, current) {
            Some(KeyLookupChange::Key(record)) => self.put_key(*record),
            Some(KeyLookupChange::Tenant { tenant_id, status }) => self.put_tenant(tenant_id, status),
            None => {}
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
        let tenants: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id, status FROM key_tenants").fetch_all(&mut *tx).await?;
        for (tenant_id, status) in tenants {
            let status =
                serde_json::from_value(serde_json::Value::String(status)).unwrap_or(TenantStatus::Deleted);
            self.put_tenant(tenant_id, status);
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

    /// Applies every committed event after the cache's position.
    pub async fn catch_up(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        loop {
            let from = *self.position.borrow();
            let events = read_after(pool, from, 1_000).await?;
            let Some(last) = events.last().map(|e| e.position) else { return Ok(()) };
            for event in &events {
                self.apply(event)?;
            }
            self.position.send_replace(last);
        }
    }
}

/// Loads the cache and keeps it following the log until shutdown.
pub async fn start(
    pool: PgPool,
    mut hint: watch::Receiver<i64>,
    shutdown: CancellationToken,
) -> Result<Arc<KeyCache>, ProjectionError> {
    let cache = Arc::new(KeyCache::default());
    let started = std::time::Instant::now();
    cache.load(&pool).await?;
    cache.catch_up(&pool).await?;
    tracing::info!(keys = cache.len(), elapsed_ms = started.elapsed().as_millis() as u64, "key cache loaded");
    let follower = Arc::clone(&cache);
    tokio::spawn(async move {
        while wait_for_wakeup(&mut hint, &shutdown).await {
            if let Err(e) = follower.catch_up(&pool).await {
                tracing::error!(error = %e, "key cache cannot follow the log; retrying");
            }
            metrics::gauge!("tokenhub_key_cache_position").set(*follower.position.borrow() as f64);
        }
    });
    Ok(cache)
}
