//! Reads of `api_keys` (see [`crate::api_keys`]) with each key's batched last use
//! (`api_key_last_used`). Verification never reads here: it answers from the key cache.

use sqlx::types::Json;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::api_keys::KeyRecord;

/// A key as stored, with its last use.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The record.
    pub record: KeyRecord,
    /// Last successful verification (batched).
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    created_position: i64,
    record: Json<KeyRecord>,
    last_used_at: Option<OffsetDateTime>,
}

impl From<KeyRow> for StoredKey {
    fn from(r: KeyRow) -> Self {
        Self { record: r.record.0, last_used_at: r.last_used_at }
    }
}

const SELECT: &str = "SELECT k.created_position, k.record, l.last_used_at FROM api_keys k \
                      LEFT JOIN api_key_last_used l ON l.public_id = k.public_id";

/// The key `public_id`, whoever owns it (the caller checks who may see it).
pub async fn get(pool: &PgPool, public_id: &str) -> Result<Option<StoredKey>, sqlx::Error> {
    let row: Option<KeyRow> = sqlx::query_as(&format!("{SELECT} WHERE k.public_id = $1"))
        .bind(public_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

/// Which keys a page holds.
#[derive(Debug, Default)]
pub struct KeyPage<'a> {
    /// Only this tenant's keys.
    pub tenant_id: Option<&'a str>,
    /// Only this sub-account's keys.
    pub sub_account_id: Option<&'a str>,
    /// Only platform keys (no tenant).
    pub platform_only: bool,
    /// Only keys of this status (`active`, `disabled`, `revoked`).
    pub status: Option<&'a str>,
    /// Only keys whose key-bound tag `.0` is `.1`.
    pub tag: Option<(&'a str, &'a str)>,
    /// Keys issued after this position.
    pub after: i64,
    /// At most this many.
    pub limit: i64,
}

/// The keys of `page`, oldest first, each with the position of its issue (the cursor).
pub async fn page(pool: &PgPool, page: &KeyPage<'_>) -> Result<Vec<(i64, StoredKey)>, sqlx::Error> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE k.created_position > $1 \
         AND ($2::text IS NULL OR k.tenant_id = $2) \
         AND ($3::text IS NULL OR k.status = $3) \
         AND ($4::text IS NULL OR k.record->'settings'->'tags'->>$4 = $5) \
         AND ($6 = false OR k.tenant_id IS NULL) \
         AND ($8::text IS NULL OR k.sub_account_id = $8) \
         ORDER BY k.created_position LIMIT $7"
    ))
    .bind(page.after)
    .bind(page.tenant_id)
    .bind(page.status)
    .bind(page.tag.map(|(k, _)| k))
    .bind(page.tag.map(|(_, v)| v))
    .bind(page.platform_only)
    .bind(page.limit)
    .bind(page.sub_account_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.created_position, r.into())).collect())
}

/// The active tenant keys that expire in `(from, to]`: (public id, tenant, expiry).
pub async fn expiring(
    pool: &PgPool,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<(String, String, OffsetDateTime)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT public_id, tenant_id, (record->'settings'->>'expires_at')::timestamptz AS expires_at FROM api_keys \
         WHERE tenant_id IS NOT NULL AND status = 'active' AND record->'settings' ? 'expires_at' \
         AND (record->'settings'->>'expires_at')::timestamptz > $1 \
         AND (record->'settings'->>'expires_at')::timestamptz <= $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}
