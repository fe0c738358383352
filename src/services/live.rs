//! Live audit streams' one reader of the log, and the facts that keep each stream admitted.
//!
//! One task per server ([`LiveHub::spawn`]) follows the key cache's position (itself a
//! follower of the log, fed on every instance): when it moves, the new audit records are read
//! once and broadcast to every open stream, and a generation counter tells the streams that
//! the facts they were admitted on (keys, tenants, people) may have changed. While people's
//! streams are open, the hub also reads their sessions (one query for all of them, every
//! [`SESSION_REFRESH`]), so a sign-out, an expiry or a disabled person ends their streams.
//! A stream costs nothing while nothing happens: no query of its own, no timer but its
//! keep-alive and its credential's expiry.
//!
//! Streams are counted per principal and per server ([`LiveHub::open`]); a [`StreamSlot`]
//! gives its place back when the stream ends, however it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::audit::query::{fetch_page, AuditFilter, AuditItem};
use crate::services::users::{self, UserRow};

/// How often the sessions of open streams are read again (a sign-out on any instance ends
/// its streams within this, plus a stream's wake-up).
pub const SESSION_REFRESH: Duration = Duration::from_millis(250);
/// Records read per query when the log moves.
const PAGE: i64 = 500;
/// Batches a slow stream may fall behind before it reads the log itself to catch up.
const BACKLOG: usize = 256;

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooMany {
    /// The principal holds its share.
    PerPrincipal(u32),
    /// The server holds its share.
    PerServer(u32),
}

/// The shared reader and the counts of open streams.
pub struct LiveHub {
    items: broadcast::Sender<Arc<[AuditItem]>>,
    head: watch::Sender<i64>,
    facts: watch::Sender<u64>,
    sessions: watch::Sender<Arc<HashMap<Vec<u8>, UserRow>>>,
    watched: DashMap<Vec<u8>, usize>,
    per_principal: DashMap<String, u32>,
    total: AtomicUsize,
    max_per_principal: u32,
    max_total: u32,
    closing: CancellationToken,
    /// Held while subscribing and while the reader skips a read for want of listeners, so a
    /// stream never subscribes between the two and misses what the head skipped.
    gate: std::sync::Mutex<()>,
}

/// A stream's place, given back on drop.
pub struct StreamSlot {
    hub: Arc<LiveHub>,
    principal: String,
    session: Option<Vec<u8>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.hub.total.fetch_sub(1, Ordering::Relaxed);
        self.hub.per_principal.remove_if_mut(&self.principal, |_, n| {
            *n -= 1;
            *n == 0
        });
        if let Some(session) = &self.session {
            self.hub.watched.remove_if_mut(session, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
        metrics::gauge!("tokenhub_live_streams").set(self.hub.total.load(Ordering::Relaxed) as f64);
    }
}

impl LiveHub {
    /// A hub with these caps; [`LiveHub::spawn`] starts its reader.
    pub fn new(max_per_principal: u32, max_total: u32) -> Arc<Self> {
        Arc::new(Self {
            items: broadcast::channel(BACKLOG).0,
            head: watch::channel(0).0,
            facts: watch::channel(0).0,
            sessions: watch::channel(Arc::new(HashMap::new())).0,
            watched: DashMap::new(),
            per_principal: DashMap::new(),
            total: AtomicUsize::new(0),
            max_per_principal,
            max_total,
            closing: CancellationToken::new(),
            gate: std::sync::Mutex::new(()),
        })
    }

    /// Takes a place for a stream of `principal` (for a person's stream, the session's id and
    /// the person as the request found them: the hub watches that session from now on, so a
    /// sign-out even before its next read is seen as a change).
    pub fn open(
        self: &Arc<Self>,
        principal: String,
        session: Option<(Vec<u8>, UserRow)>,
    ) -> Result<StreamSlot, TooMany> {
        let total = self.total.fetch_add(1, Ordering::Relaxed);
        if total >= self.max_total as usize {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(TooMany::PerServer(self.max_total));
        }
        let mut full = false;
        self.per_principal
            .entry(principal.clone())
            .and_modify(|n| {
                if *n >= self.max_per_principal {
                    full = true;
                } else {
                    *n += 1;
                }
            })
            .or_insert(1);
        if full {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(TooMany::PerPrincipal(self.max_per_principal));
        }
        let session = session.map(|(id, person)| {
            *self.watched.entry(id.clone()).or_insert(0) += 1;
            self.sessions.send_if_modified(|known| {
                if known.contains_key(&id) {
                    return false;
                }
                let mut next = (**known).clone();
                next.insert(id.clone(), person);
                *known = Arc::new(next);
                true
            });
            id
        });
        metrics::gauge!("tokenhub_live_streams").set(self.total.load(Ordering::Relaxed) as f64);
        Ok(StreamSlot { hub: Arc::clone(self), principal, session })
    }

    /// New records, in batches in log order, and the position from which the batches take
    /// over: read the log up to it first, then skip in the batches what was read.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<[AuditItem]>>, i64) {
        let _gate = self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.items.subscribe(), self.head())
    }

    /// The position up to which records were broadcast.
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// Bumped whenever the facts that admit streams may have changed (the log moved, the
    /// watched sessions were read).
    pub fn facts(&self) -> watch::Receiver<u64> {
        self.facts.subscribe()
    }

    /// The live sessions among the watched ones, with their person as last read.
    pub fn sessions(&self) -> Arc<HashMap<Vec<u8>, UserRow>> {
        Arc::clone(&self.sessions.borrow())
    }

    /// Cancelled when the server shuts down: every stream ends.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Open streams on this server.
    pub fn open_streams(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Starts the reader: it follows `position` (the key cache's) until `shutdown`.
    pub fn spawn(
        self: &Arc<Self>,
        pool: PgPool,
        mut position: watch::Receiver<i64>,
        session_idle: Duration,
        shutdown: CancellationToken,
    ) {
        let hub = Arc::clone(self);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            closing.cancel();
        });
        let shutdown = self.closing.clone();
        tokio::spawn(async move {
            let start = *position.borrow_and_update();
            hub.head.send_replace(start);
            let mut refresh = tokio::time::interval(SESSION_REFRESH);
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = position.changed() => {
                        if changed.is_err() { return }
                        let to = *position.borrow_and_update();
                        hub.facts.send_modify(|g| *g += 1);
                        if let Err(e) = hub.publish_up_to(&pool, to).await {
                            tracing::warn!(error = %e, "live streams: cannot read the log; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            position.mark_changed();
                        }
                    }
                    _ = refresh.tick() => {
                        if let Err(e) = hub.refresh_sessions(&pool, session_idle).await {
                            tracing::warn!(error = %e, "live streams: cannot read sessions; retrying");
                        }
                    }
                }
            }
        });
    }

    /// Reads and broadcasts the records up to position `to` (none are read while no stream
    /// listens).
    async fn publish_up_to(&self, pool: &PgPool, to: i64) -> Result<(), sqlx::Error> {
        let mut head = self.head();
        {
            let _gate = self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.items.receiver_count() == 0 {
                self.head.send_replace(head.max(to));
                return Ok(());
            }
        }
        while head < to {
            let items = fetch_page(pool, &AuditFilter::default(), head, PAGE).await?;
            let Some(last) = items.last().map(|i| i.position) else { break };
            head = last;
            // The head moves first: a stream that subscribes now reads up to it from the log.
            self.head.send_replace(head);
            let _ = self.items.send(Arc::from(items));
        }
        self.head.send_replace(head.max(to));
        Ok(())
    }

    /// Reads the watched sessions and their people once (no query when none is watched), and
    /// changes only what it read: a session a stream registered meanwhile is kept as the
    /// stream registered it.
    async fn refresh_sessions(&self, pool: &PgPool, idle: Duration) -> Result<(), sqlx::Error> {
        let ids: Vec<Vec<u8>> = self.watched.iter().map(|e| e.key().clone()).collect();
        let mut fresh: HashMap<Vec<u8>, UserRow> = HashMap::new();
        if !ids.is_empty() {
            let live = crate::store::sessions::live_among(pool, &ids, idle).await?;
            let user_ids: Vec<String> = live.iter().map(|(_, u)| u.clone()).collect();
            let people: HashMap<String, UserRow> =
                users::by_ids(pool, &user_ids).await?.into_iter().map(|u| (u.user_id.clone(), u)).collect();
            fresh = live
                .into_iter()
                .filter_map(|(id, user_id)| Some((id, people.get(&user_id)?.clone())))
                .collect();
        }
        // Streams wake only when something they depend on changed.
        let changed = self.sessions.send_if_modified(|known| {
            let mut next = (**known).clone();
            let mut changed = false;
            for id in &ids {
                match (fresh.remove(id), next.get(id)) {
                    (Some(now), Some(was)) if same_person(was, &now) => {}
                    (Some(now), _) => {
                        next.insert(id.clone(), now);
                        changed = true;
                    }
                    (None, Some(_)) => {
                        next.remove(id);
                        changed = true;
                    }
                    (None, None) => {}
                }
            }
            let before = next.len();
            next.retain(|id, _| self.watched.contains_key(id));
            changed |= next.len() != before;
            if changed {
                *known = Arc::new(next);
            }
            changed
        });
        if changed {
            self.facts.send_modify(|g| *g += 1);
        }
        Ok(())
    }
}

/// True when nothing that admits a person's stream differs between two reads.
fn same_person(a: &UserRow, b: &UserRow) -> bool {
    a.user_id == b.user_id
        && a.status == b.status
        && a.scope == b.scope
        && a.role == b.role
        && a.tenant_id == b.tenant_id
        && a.totp_enrolled == b.totp_enrolled
        && a.tenant_requires_2fa == b.tenant_requires_2fa
}
