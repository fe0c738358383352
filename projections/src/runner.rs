//! Running projections: catch up from the stored checkpoint, and rebuild from zero.
//!
//! Concurrency: every batch locks the projection's checkpoint row (`FOR UPDATE`) and re-reads
//! it, so several instances (or a rebuild next to a live server) never apply an event twice.

use sqlx::{PgConnection, PgPool};

use crate::log::read_after;
use crate::{Projection, ProjectionError, StoredEvent};

/// How a transaction of derived state (query tables, deliveries, and their checkpoints) begins:
/// its commit need not wait for the disk, since a crash takes the state and its checkpoint back
/// together and the events are applied again.
pub const BEGIN_DERIVED: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// Events read and applied per transaction.
pub const BATCH: i64 = 1_000;

/// The PostgreSQL notification channel on which a runner announces, at commit, the position
/// every projection reached (the payload): instances that do not apply the projections
/// themselves learn from it when the query tables include their writes.
pub const PROJECTED_CHANNEL: &str = "tokenhub_projected";

/// Announces on [`PROJECTED_CHANNEL`] that every projection reached `position`, when `conn`'s
/// transaction commits (not before, and not at all if it rolls back).
async fn announce(conn: &mut PgConnection, position: i64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(PROJECTED_CHANNEL)
        .bind(position.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The position every one of `projections` reached (the lowest checkpoint; 0 for one that has
/// none yet): what a follower of the runner reads when a notification may have been missed.
pub async fn position_of_all(pool: &PgPool, projections: &[Box<dyn Projection>]) -> Result<i64, sqlx::Error> {
    let names = sorted_names(projections);
    let (found, lowest): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), min(position) FROM checkpoints WHERE name = ANY($1)")
            .bind(&names)
            .fetch_one(pool)
            .await?;
    Ok(if found < names.len() as i64 { 0 } else { lowest.unwrap_or(0) })
}

/// Called after every batch with (projection, position reached, head position).
pub type Progress<'a> = &'a (dyn Fn(&str, i64, i64) + Send + Sync);

/// Locks and returns the checkpoint of `name`, creating it at zero.
async fn lock_checkpoint(conn: &mut PgConnection, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1 FOR UPDATE")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}

async fn store_checkpoint(conn: &mut PgConnection, name: &str, position: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE checkpoints SET position = $2, updated_at = now() WHERE name = $1")
        .bind(name)
        .bind(position)
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies the next batch inside `conn`'s transaction; returns the new position and how many
/// events were read.
async fn apply_batch(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    from: i64,
) -> Result<(i64, usize), ProjectionError> {
    let events = read_after(&mut *conn, from, BATCH).await?;
    projection.apply_batch(conn, &events).await?;
    let position = events.last().map(|e| e.position).unwrap_or(from);
    if !events.is_empty() {
        store_checkpoint(conn, projection.name(), position).await?;
    }
    Ok((position, events.len()))
}

/// Applies every committed event after the checkpoint; returns the position reached.
pub async fn catch_up(pool: &PgPool, projection: &dyn Projection) -> Result<i64, ProjectionError> {
    loop {
        let mut tx = pool.begin().await?;
        let from = lock_checkpoint(&mut tx, projection.name()).await?;
        let (position, read) = apply_batch(&mut tx, projection, from).await?;
        tx.commit().await?;
        if read < BATCH as usize {
            return Ok(position);
        }
    }
}

/// The projections' checkpoint names in the one order every locker of several checkpoints
/// takes them (inserting or locking): by name.
fn sorted_names(projections: &[Box<dyn Projection>]) -> Vec<&str> {
    let mut names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    names.sort_unstable();
    names
}

/// Applies every committed event after their checkpoints to all `projections` in one
/// transaction per batch: the log is read once, and one commit serves them all. The commit is
/// asynchronous (`synchronous_commit = off`): the tables are derived and their checkpoints move
/// in the same transaction, so a database crash can only take both back together, and the
/// events are re-applied. Returns the position every projection reached. `committed` receives
/// each batch once its transaction committed (an in-process follower of the log can take the
/// events from there instead of reading them again).
pub async fn catch_up_all(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
    committed: &(dyn Fn(Vec<StoredEvent>) + Send + Sync),
) -> Result<i64, ProjectionError> {
    let names = sorted_names(projections);
    loop {
        let mut tx = pool.begin_with(BEGIN_DERIVED).await?;
        let lock = || {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT name, position FROM checkpoints WHERE name = ANY($1) ORDER BY name FOR UPDATE",
            )
            .bind(&names)
        };
        let mut rows = lock().fetch_all(&mut *tx).await?;
        if rows.len() < names.len() {
            // The first run: create the missing checkpoints at zero, then lock them all.
            sqlx::query(
                "INSERT INTO checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&names)
            .execute(&mut *tx)
            .await?;
            rows = lock().fetch_all(&mut *tx).await?;
        }
        let from_of = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, p)| *p).unwrap_or(0);
        let from = projections.iter().map(|p| from_of(p.name())).min().unwrap_or(0);
        let events = read_after(&mut *tx, from, BATCH).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            tx.commit().await?;
            return Ok(from);
        };
        for projection in projections {
            let own = from_of(projection.name());
            let start = events.partition_point(|e| e.position <= own);
            projection.apply_batch(&mut tx, &events[start..]).await?;
        }
        sqlx::query("UPDATE checkpoints SET position = $2, updated_at = now() WHERE name = ANY($1)")
            .bind(&names)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        announce(&mut tx, last).await?;
        tx.commit().await?;
        let short = (events.len() as i64) < BATCH;
        committed(events);
        if short {
            return Ok(last);
        }
    }
}

/// Applies `events` — committed on this instance, following right after `known` — to all
/// `projections` in one transaction, without reading the log, when every checkpoint still
/// stands at `known` (the conditional update also locks them, as a catch-up does). `None`
/// when one moved (another instance or a catch-up of one projection got there first): then
/// catch up from the log. Returns the position reached.
pub async fn apply_committed(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
    known: i64,
    events: &[StoredEvent],
) -> Result<Option<i64>, ProjectionError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(Some(known)) };
    if first.position != known + 1 || last.position - first.position + 1 != events.len() as i64 {
        return Ok(None);
    }
    let names = sorted_names(projections);
    let mut tx = pool.begin_with(BEGIN_DERIVED).await?;
    // Rows are locked in name order, as every other locker of several checkpoints does
    // (`catch_up_all`): two instances never wait on each other in a cycle.
    let moved = sqlx::query(
        "UPDATE checkpoints c SET position = $3, updated_at = now() FROM ( \
           SELECT name FROM checkpoints WHERE name = ANY($1) AND position = $2 ORDER BY name FOR UPDATE \
         ) locked WHERE c.name = locked.name",
    )
    .bind(&names)
    .bind(known)
    .bind(last.position)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved != names.len() as u64 {
        tx.rollback().await?;
        return Ok(None);
    }
    for projection in projections {
        projection.apply_batch(&mut tx, events).await?;
    }
    announce(&mut tx, last.position).await?;
    tx.commit().await?;
    Ok(Some(last.position))
}

/// Clears the projection's tables and replays the whole log, in one transaction: readers see
/// the old tables until the new ones are complete. Returns the position reached.
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: Progress<'_>,
) -> Result<i64, ProjectionError> {
    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, projection.name()).await?;
    for table in projection.tables() {
        // Table names are compile-time constants of the projection, never input.
        sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
    }
    let head = crate::log::head_position(&mut *tx).await?;
    let mut position = 0;
    loop {
        let (reached, read) = apply_batch(&mut tx, projection, position).await?;
        position = reached;
        progress(projection.name(), position, head.max(position));
        if read < BATCH as usize {
            break;
        }
    }
    store_checkpoint(&mut tx, projection.name(), position).await?;
    tx.commit().await?;
    Ok(position)
}

/// Events read per batch by [`rebuild_all`].
pub const REBUILD_BATCH: i64 = 5_000;

/// Rebuilds several projections in one pass over the log and one transaction: each batch is
/// read once and given to every projection. Returns the position reached.
pub async fn rebuild_all(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
    progress: Progress<'_>,
) -> Result<i64, ProjectionError> {
    let mut tx = pool.begin().await?;
    for projection in projections {
        lock_checkpoint(&mut tx, projection.name()).await?;
        for table in projection.tables() {
            // Table names are compile-time constants of the projection, never input.
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
        }
    }
    let head = crate::log::head_position(&mut *tx).await?;
    let mut position = 0;
    loop {
        let events = read_after(&mut *tx, position, REBUILD_BATCH).await?;
        for projection in projections {
            projection.apply_batch(&mut tx, &events).await?;
        }
        position = events.last().map(|e| e.position).unwrap_or(position);
        progress("all", position, head.max(position));
        if (events.len() as i64) < REBUILD_BATCH {
            break;
        }
    }
    for projection in projections {
        store_checkpoint(&mut tx, projection.name(), position).await?;
    }
    tx.commit().await?;
    Ok(position)
}
