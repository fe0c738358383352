//! Tamper evidence: the insert trigger chains every event to the previous one
//! (`hash = sha256(prev_hash ‖ canonical row)`, one global chain, so deleting or reordering
//! anything — not only inside one tenant — breaks it). Verification walks the whole log in
//! order, recomputing each hash with the same SQL function, and reports the first break.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// Where and how the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainBreak {
    /// The first position that fails.
    pub position: i64,
    /// `altered` (the row's content no longer matches its hash), `missing` (a position is
    /// absent), `relinked` (the row does not point at its predecessor's hash) or
    /// `head_mismatch` (the newest rows were removed).
    pub reason: &'static str,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainReport {
    /// True when the whole chain is intact.
    pub ok: bool,
    /// Events checked.
    pub checked: i64,
    /// The head position recorded by the database.
    pub head: i64,
    /// The head hash (hex): keep it somewhere else from time to time as an outside anchor.
    pub head_hash: String,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
}

const BATCH: i64 = 10_000;

#[derive(sqlx::FromRow)]
struct Row {
    position: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    recomputed: Vec<u8>,
}

/// Verifies the whole chain; `progress(checked, head)` is called after each batch.
pub async fn verify_chain(
    pool: &PgPool,
    progress: &(dyn Fn(i64, i64) + Send + Sync),
) -> Result<ChainReport, sqlx::Error> {
    let (head, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM event_log_head").fetch_one(pool).await?;
    let mut expected_position = 1i64;
    let mut previous_hash = vec![0u8; 32];
    let mut checked = 0i64;
    let head_hex = crate::crypto::hex(&head_hash);
    let report = |first_break: Option<ChainBreak>, checked| ChainReport {
        ok: first_break.is_none(),
        checked,
        head,
        head_hash: head_hex.clone(),
        first_break,
    };
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT position, prev_hash, hash, event_chain_hash(prev_hash, e) AS recomputed \
             FROM events e WHERE position >= $1 ORDER BY position LIMIT $2",
        )
        .bind(expected_position)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let broken = if row.position != expected_position {
                Some("missing")
            } else if row.prev_hash != previous_hash {
                Some("relinked")
            } else if row.recomputed != row.hash {
                Some("altered")
            } else {
                None
            };
            if let Some(reason) = broken {
                return Ok(report(Some(ChainBreak { position: expected_position, reason }), checked));
            }
            previous_hash.clone_from(&row.hash);
            expected_position += 1;
            checked += 1;
        }
        progress(checked, head);
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    if expected_position - 1 != head || (head > 0 && previous_hash != head_hash) {
        return Ok(report(
            Some(ChainBreak { position: expected_position, reason: "head_mismatch" }),
            checked,
        ));
    }
    Ok(report(None, checked))
}
