//! The fleet's shared room of each quota (`quota_rooms`, `quota_room_holders`): a gateway
//! leases room — tokens it may reserve — and the database grants no more than the limit
//! minus what the gateways hold and have spent, so the gateways together never reserve past
//! a quota. See [`crate::fleet::quota_rooms`] for the in-memory side.

use sqlx::PgPool;

/// How long a holder may stay quiet before its unspent room is given back to the fleet.
pub const HOLDER_TIMEOUT_SECONDS: i64 = 5;

/// A room no gateway holds is dropped after this long without a lease.
pub const ROOM_IDLE_SECONDS: i64 = 600;

/// What a lease granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Granted by this call (0: nothing is left).
    pub granted: i64,
    /// What the gateways hold and have spent in the period, this grant included.
    pub lent: i64,
}

/// One room as a holder reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The quota's owner.
    pub owner: String,
    /// Its period (day or month index; 0 for a lifetime quota).
    pub period_start: i64,
    /// What the holder has not spent: its free room and its open reservations.
    pub unspent: i64,
    /// Free room given back to the fleet with this report.
    pub given_back: i64,
}

/// Leases up to `want` tokens of `owner`'s quota for `holder`; the room starts at `used` when
/// this is the period's first lease.
pub async fn lease(
    pool: &PgPool,
    owner: &str,
    period_start: i64,
    holder: &str,
    want: i64,
    limit: i64,
    used: i64,
) -> Result<Granted, sqlx::Error> {
    let (granted, lent): (i64, i64) =
        sqlx::query_as("SELECT granted, lent FROM lease_quota_room($1, $2, $3, $4, $5, $6)")
            .bind(owner)
            .bind(period_start)
            .bind(holder)
            .bind(want)
            .bind(limit)
            .bind(used)
            .fetch_one(pool)
            .await?;
    Ok(Granted { granted, lent })
}

/// Reports what `holder` holds unspent of each room (and gives back what it no longer needs);
/// returns the rooms the fleet no longer counts as held by it (it was quiet too long and its
/// room was given back): the holder must stop spending from them.
pub async fn report(pool: &PgPool, holder: &str, held: &[Held]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let owners: Vec<&str> = held.iter().map(|h| h.owner.as_str()).collect();
    let periods: Vec<i64> = held.iter().map(|h| h.period_start).collect();
    let unspent: Vec<i64> = held.iter().map(|h| h.unspent).collect();
    let back: Vec<i64> = held.iter().map(|h| h.given_back).collect();
    let mut tx = pool.begin().await?;
    let found: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE quota_room_holders h SET unspent = v.unspent, seen_at = now() \
         FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS v(owner, period_start, unspent) \
         WHERE h.holder = $1 AND h.owner = v.owner AND h.period_start = v.period_start \
         RETURNING h.owner, h.period_start",
    )
    .bind(holder)
    .bind(&owners)
    .bind(&periods)
    .bind(&unspent)
    .fetch_all(&mut *tx)
    .await?;
    lend_less(&mut tx, &owners, &periods, &back).await?;
    tx.commit().await?;
    let lost = held.iter().filter(|h| !found.iter().any(|(o, p)| *o == h.owner && *p == h.period_start));
    Ok(lost.map(|h| (h.owner.clone(), h.period_start)).collect())
}

/// Gives `amount` of `holder`'s free room of one quota back to the fleet at once (room too
/// small for the request that asked for more is of more use to the other gateways).
pub async fn give_back(
    pool: &PgPool,
    holder: &str,
    owner: &str,
    period_start: i64,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH h AS (UPDATE quota_room_holders SET unspent = unspent - $4 \
                    WHERE holder = $1 AND owner = $2 AND period_start = $3 RETURNING owner) \
         UPDATE quota_rooms r SET lent = r.lent - $4 FROM h WHERE r.owner = $2 AND r.period_start = $3",
    )
    .bind(holder)
    .bind(owner)
    .bind(period_start)
    .bind(amount)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets `holder`'s rooms that it holds nothing of (after giving back their free room).
pub async fn release(pool: &PgPool, holder: &str, rooms: &[(String, i64)]) -> Result<(), sqlx::Error> {
    let owners: Vec<&str> = rooms.iter().map(|r| r.0.as_str()).collect();
    let periods: Vec<i64> = rooms.iter().map(|r| r.1).collect();
    sqlx::query(
        "DELETE FROM quota_room_holders h USING unnest($2::text[], $3::bigint[]) AS v(owner, period_start) \
         WHERE h.holder = $1 AND h.owner = v.owner AND h.period_start = v.period_start AND h.unspent = 0",
    )
    .bind(holder)
    .bind(&owners)
    .bind(&periods)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives back the unspent room of holders quiet for [`HOLDER_TIMEOUT_SECONDS`] (killed
/// gateways) and drops rooms nobody holds after [`ROOM_IDLE_SECONDS`]; one instance at a
/// time does it (the others skip). Returns how many holders were expired.
pub async fn expire(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('tokenhub.quota_rooms.expire'))")
            .fetch_one(&mut *tx)
            .await?;
    if !ours {
        return Ok(0);
    }
    let gone: Vec<(String, i64, i64)> = sqlx::query_as(
        "DELETE FROM quota_room_holders WHERE seen_at < now() - make_interval(secs => $1) \
         RETURNING owner, period_start, unspent",
    )
    .bind(HOLDER_TIMEOUT_SECONDS as f64)
    .fetch_all(&mut *tx)
    .await?;
    let owners: Vec<&str> = gone.iter().map(|g| g.0.as_str()).collect();
    let periods: Vec<i64> = gone.iter().map(|g| g.1).collect();
    let back: Vec<i64> = gone.iter().map(|g| g.2.max(0)).collect();
    lend_less(&mut tx, &owners, &periods, &back).await?;
    sqlx::query(
        "DELETE FROM quota_rooms r WHERE r.leased_at < now() - make_interval(secs => $1) \
         AND NOT EXISTS (SELECT 1 FROM quota_room_holders h WHERE h.owner = r.owner AND h.period_start = r.period_start)",
    )
    .bind(ROOM_IDLE_SECONDS as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(gone.len() as u64)
}

/// Takes `back[i]` off what the fleet has lent of room (`owners[i]`, `periods[i]`), summed per
/// room; rooms are locked in one order (owner, period), as a lease locks one: no cycle.
async fn lend_less(
    tx: &mut sqlx::PgConnection,
    owners: &[&str],
    periods: &[i64],
    back: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE quota_rooms r SET lent = r.lent - v.back FROM ( \
           SELECT owner, period_start, sum(back) AS back \
           FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(owner, period_start, back) \
           WHERE back > 0 GROUP BY owner, period_start ORDER BY owner, period_start \
         ) v WHERE r.owner = v.owner AND r.period_start = v.period_start",
    )
    .bind(owners)
    .bind(periods)
    .bind(back)
    .execute(tx)
    .await?;
    Ok(())
}
