//! Quota reservations held once for the fleet of gateways. A gateway reserves a request's
//! bound from room it has leased of each quota ([`crate::store::quota_rooms`]): the database
//! grants a gateway at most what the limit leaves after what every gateway holds and has spent,
//! so concurrent requests on several gateways never reserve past a quota. Reserving from held
//! room is an in-memory step; a gateway whose room cannot hold a bound asks for more (one call
//! for all requests waiting on that quota): what it lacks, or an eighth of what the fleet has
//! left if that is more, so the shares shrink as the quota fills.
//!
//! When a request ends, what it spent stays spent and the rest of its bound is free room again.
//! Every half second a gateway reports what it holds unspent, and gives back free room it has
//! not touched for two seconds; a gateway quiet for five seconds (killed) has its unspent room
//! given back by the others.
//!
//! Bounds: the gateways never reserve more than a quota. They may admit less: free room other
//! gateways hold at that moment (a gateway gives back at once room too small for the request
//! that asked, and all its free room after two idle seconds). After a
//! `kill -9`, what that gateway spent in its last half second may be leased again. Usage
//! reported through `POST /v1/usage` (not through a gateway) is counted by the key cache's
//! check, which every gateway also makes, within the milliseconds it takes to reach it.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sqlx::PgPool;

use crate::store::quota_rooms::{self as store, Held};

/// How often a gateway reports its rooms (and expires quiet holders).
pub const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Free room untouched this long is given back to the fleet.
pub const GIVE_BACK_AFTER: Duration = Duration::from_secs(2);

/// A lease request that takes longer is given up (the request is refused, not admitted).
pub const LEASE_TIMEOUT: Duration = Duration::from_millis(500);

type RoomKey = (String, i64);

#[derive(Debug)]
struct State {
    /// Room held and not reserved (negative after a request spent more than its bound).
    free: i64,
    /// Reserved by requests in flight.
    reserved: i64,
    /// What the fleet had lent at the last grant.
    lent_known: Option<i64>,
    touched: Instant,
    /// Unspent as last reported to the database.
    reported: i64,
}

#[derive(Debug)]
struct Room {
    state: Mutex<State>,
    filling: tokio::sync::Mutex<()>,
}

impl Room {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This gateway's rooms.
pub struct QuotaRooms {
    pool: PgPool,
    holder: String,
    rooms: DashMap<RoomKey, Arc<Room>>,
    /// Taken around every write of this holder's rows, with the reading of the rooms it
    /// writes from: a report writes what it read (absolute), so a lease or a give-back
    /// (relative) landing between its reading and its writing would be overwritten, and a
    /// stale unspent left in the database is given back again when the holder expires.
    writes: tokio::sync::Mutex<()>,
}

/// A request's reservation in the fleet's rooms; settle it with what was spent (dropping it
/// unsettled counts nothing spent).
pub struct RoomHold {
    held: Vec<(Arc<Room>, i64)>,
    spent: i64,
}

impl RoomHold {
    /// What the request spent (its tokens): stays spent when the hold is dropped.
    pub fn settle(&mut self, spent: i64) {
        self.spent = spent.max(0);
    }
}

impl Drop for RoomHold {
    fn drop(&mut self) {
        for (room, bound) in self.held.drain(..) {
            let mut s = room.state();
            s.reserved -= bound;
            s.free += bound - self.spent;
            s.touched = Instant::now();
        }
    }
}

/// One quota a request is reserved against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Its owner: a key's public id, a sub-account id or a tenant id.
    pub owner: String,
    /// The period it counts in: a day or month index, 0 for a lifetime quota.
    pub period_start: i64,
    /// Tokens allowed in the period.
    pub limit: i64,
    /// Tokens used in the period, as this instance knows (where a new room starts).
    pub used: i64,
}

impl QuotaRooms {
    /// Rooms of a gateway on `pool`, reported every [`REPORT_EVERY`] while it lives.
    pub fn start(pool: PgPool) -> Arc<Self> {
        let rooms = Arc::new(Self {
            pool,
            holder: format!("gw-{}", uuid::Uuid::now_v7().simple()),
            rooms: DashMap::new(),
            writes: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(report_while_alive(Arc::downgrade(&rooms)));
        rooms
    }

    /// This gateway's name in `quota_room_holders`.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn room(&self, key: &RoomKey) -> Arc<Room> {
        if let Some(room) = self.rooms.get(key) {
            return room.clone();
        }
        self.rooms
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Room {
                    state: Mutex::new(State {
                        free: 0,
                        reserved: 0,
                        lent_known: None,
                        touched: Instant::now(),
                        reported: 0,
                    }),
                    filling: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Reserves `bound` tokens in the room of every quota of `quotas`, all or none, leasing
    /// room as needed; `None` when the fleet has no room left for it in one of them.
    pub async fn reserve(&self, quotas: &[Quota], bound: i64) -> Option<RoomHold> {
        let mut hold = RoomHold { held: Vec::with_capacity(quotas.len()), spent: 0 };
        for quota in quotas {
            let room = self.room(&(quota.owner.clone(), quota.period_start));
            if !self.take(&room, quota, bound).await {
                return None; // `hold` gives back what it took
            }
            hold.held.push((room, bound));
        }
        Some(hold)
    }

    /// Takes `bound` from `room`, leasing what it lacks.
    async fn take(&self, room: &Room, quota: &Quota, bound: i64) -> bool {
        for _ in 0..3 {
            {
                let mut s = room.state();
                s.touched = Instant::now();
                if s.free >= bound {
                    s.free -= bound;
                    s.reserved += bound;
                    return true;
                }
            }
            if !self.fill(room, quota, bound).await {
                return false;
            }
        }
        false
    }

    /// Leases room for `bound` (one call for the requests waiting on `room`); false when the
    /// fleet has none left for it.
    async fn fill(&self, room: &Room, quota: &Quota, bound: i64) -> bool {
        let _one = room.filling.lock().await;
        let want = {
            let s = room.state();
            if s.free >= bound {
                return true; // filled by another request meanwhile
            }
            let lacking = bound - s.free;
            let left = quota.limit - s.lent_known.unwrap_or(quota.used);
            lacking.max(left / 8)
        };
        let _writes = self.writes.lock().await;
        let leased = tokio::time::timeout(
            LEASE_TIMEOUT,
            store::lease(
                &self.pool,
                &quota.owner,
                quota.period_start,
                &self.holder,
                want,
                quota.limit,
                quota.used,
            ),
        )
        .await;
        let granted = match leased {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot lease quota room; the request is refused");
                return false;
            }
            Err(_) => {
                tracing::warn!("no answer to a quota room lease within 500 ms; the request is refused");
                return false;
            }
        };
        metrics::counter!("tokenhub_quota_room_leases_total").increment(1);
        let give = {
            let mut s = room.state();
            s.free += granted.granted;
            s.reported += granted.granted;
            s.lent_known = Some(granted.lent);
            if s.free >= bound {
                return true;
            }
            // Too little for this request: of more use to the other gateways than held here.
            let give = s.free.max(0);
            s.free -= give;
            s.reported -= give;
            give
        };
        if give > 0 {
            if let Err(e) =
                store::give_back(&self.pool, &self.holder, &quota.owner, quota.period_start, give).await
            {
                tracing::warn!(error = %e, "cannot give quota room back; keeping it");
                let mut s = room.state();
                s.free += give;
                s.reported += give;
            }
        }
        false
    }

    /// Tokens reserved now in `owner`'s rooms (0 once every request settled).
    pub fn reserved(&self, owner: &str) -> i64 {
        self.rooms.iter().filter(|e| e.key().0 == owner).map(|e| e.value().state().reserved).sum()
    }

    /// Reports every room, gives back idle free room, forgets rooms that hold nothing, and
    /// expires quiet holders.
    pub async fn report(&self) -> Result<(), sqlx::Error> {
        self.read_report().await.write().await
    }

    /// The first half of [`QuotaRooms::report`]: what every room holds, read in this
    /// gateway's turn to write (its leases and give-backs wait until [`Report::write`]).
    pub async fn read_report(&self) -> Report<'_> {
        let writes = self.writes.lock().await;
        let mut held = Vec::new();
        let mut idle = Vec::new();
        for entry in self.rooms.iter() {
            let mut s = entry.value().state();
            let give_back =
                if s.reserved == 0 && s.touched.elapsed() >= GIVE_BACK_AFTER { s.free.max(0) } else { 0 };
            s.free -= give_back;
            let unspent = s.free.max(0) + s.reserved;
            if unspent == s.reported && give_back == 0 && unspent == 0 {
                idle.push(entry.key().clone());
                continue;
            }
            s.reported = unspent;
            let (owner, period_start) = entry.key().clone();
            held.push(Held { owner, period_start, unspent, given_back: give_back });
        }
        Report { rooms: self, _writes: writes, held, idle }
    }
}

/// A report read and not yet written: this gateway's other writes wait for it.
pub struct Report<'a> {
    rooms: &'a QuotaRooms,
    _writes: tokio::sync::MutexGuard<'a, ()>,
    held: Vec<Held>,
    idle: Vec<RoomKey>,
}

impl Report<'_> {
    /// Writes what was read, releases the rooms found idle and expires quiet holders.
    pub async fn write(self) -> Result<(), sqlx::Error> {
        let Report { rooms, held, idle, .. } = &self;
        if !held.is_empty() {
            match store::report(&rooms.pool, &rooms.holder, held).await {
                Ok(lost) => {
                    for key in lost {
                        // The fleet gave this room back while this gateway was quiet: spend
                        // nothing more from it (requests in flight settle into the forgotten
                        // room); the next request leases a new one.
                        rooms.rooms.remove(&key);
                        tracing::warn!(owner = %key.0, "quota room expired while this gateway was quiet; leasing again");
                    }
                }
                Err(e) => {
                    // Nothing was given back: keep the room.
                    for h in held {
                        if let Some(room) = rooms.rooms.get(&(h.owner.clone(), h.period_start)) {
                            let mut s = room.state();
                            s.free += h.given_back;
                            s.reported = -1;
                        }
                    }
                    return Err(e);
                }
            }
        }
        if !idle.is_empty() {
            store::release(&rooms.pool, &rooms.holder, idle).await?;
            for key in idle {
                rooms.rooms.remove_if(key, |_, room| {
                    let s = room.state();
                    s.free <= 0 && s.reserved == 0 && s.touched.elapsed() >= GIVE_BACK_AFTER
                });
            }
        }
        store::expire(&rooms.pool).await?;
        Ok(())
    }
}

async fn report_while_alive(rooms: Weak<QuotaRooms>) {
    loop {
        tokio::time::sleep(REPORT_EVERY).await;
        let Some(rooms) = rooms.upgrade() else { return };
        if let Err(e) = rooms.report().await {
            tracing::warn!(error = %e, "cannot report quota rooms; retrying");
        }
    }
}
