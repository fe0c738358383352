//! The NDJSON export of the audit log: the records matching a filter, one JSON object a
//! line, read a page at a time so memory stays constant whatever the log's size. Served by
//! `GET /audit/events/export` and `tokenhub audit export`.

use crate::audit::{fetch_page, AuditFilter};

/// Pages of this size are read while exporting: memory stays constant whatever the log size.
pub const EXPORT_BATCH: i64 = 1_000;

/// The records matching `filter` as NDJSON chunks, one page at a time.
pub fn ndjson_stream(
    pool: sqlx::PgPool,
    filter: AuditFilter,
) -> impl futures::Stream<Item = Result<Vec<u8>, sqlx::Error>> + Send {
    let start = filter.cursor.unwrap_or(0).max(0);
    futures::stream::unfold(Some(start), move |cursor| {
        let (pool, filter) = (pool.clone(), filter.clone());
        async move {
            let after = cursor?;
            match fetch_page(&pool, &filter, after, EXPORT_BATCH).await {
                Ok(items) if items.is_empty() => None,
                Ok(items) => {
                    let next = items.last().map(|i| i.position);
                    let mut chunk = Vec::with_capacity(items.len() * 512);
                    for item in &items {
                        if serde_json::to_writer(&mut chunk, item).is_ok() {
                            chunk.push(b'\n');
                        }
                    }
                    Some((Ok(chunk), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}
