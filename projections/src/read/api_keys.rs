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
    record: Json<KeyRecord>,
    last_used_at: Option<OffsetDateTime>,
}

impl From<KeyRow> for StoredKey {
    fn from(r: KeyRow) -> Self {
        Self { record: r.record.0, last_used_at: r.last_used_at }
    }
}

const SELECT: &str = "SELECT k.record, l.last_used_at FROM api_keys k \
                      LEFT JOIN api_key_last_used l ON l.public_id = k.public_id";

/// The key `public_id`, whoever owns it (the caller checks who may see it).
pub async fn get(pool: &PgPool, public_id: &str) -> Result<Option<StoredKey>, sqlx::Error> {
    let row: Option<KeyRow> = sqlx::query_as(&format!("{SELECT} WHERE k.public_id = $1"))
        .bind(public_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

/// The order of a key listing, with where a page starts (after the previous page's last key).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOrder {
    /// Oldest first: keys issued after this position.
    Created(i64),
    /// Newest first: keys issued before this position (`None`: from the newest).
    Newest(Option<i64>),
    /// By name (any case), A to Z: after this (lower-cased name, position).
    Name(Option<(String, i64)>),
    /// Most recently used first, never used last: after this (last use, position).
    LastUsed(Option<(Option<OffsetDateTime>, i64)>),
    /// Soonest expiry first, no expiry last: after this (expiry, position).
    Expires(Option<(Option<OffsetDateTime>, i64)>),
}

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder::Created(0)
    }
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
    /// Only keys whose name contains this, in any case.
    pub name_contains: Option<&'a str>,
    /// The order, and where the page starts.
    pub order: KeyOrder,
    /// At most this many.
    pub limit: i64,
}

/// A key of a page, with what the next page starts after.
#[derive(Debug, Clone)]
pub struct PagedKey {
    /// The key.
    pub key: StoredKey,
    /// The position of its issue.
    pub position: i64,
    /// Its expiry (for [`KeyOrder::Expires`] cursors).
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct PagedRow {
    created_position: i64,
    record: Json<KeyRecord>,
    last_used_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
}

/// `text` as a `LIKE` pattern matching itself anywhere.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The keys of `page`, in its order.
pub async fn page(pool: &PgPool, page: &KeyPage<'_>) -> Result<Vec<PagedKey>, sqlx::Error> {
    const EXPIRES: &str = "(k.record->'settings'->>'expires_at')::timestamptz";
    // $9: the cursor's position; $10 / $11: its name / time (NULL: none, or a key without one);
    // $12: whether there is a cursor.
    let (start, order) = match &page.order {
        KeyOrder::Created(_) => ("k.created_position > $9".to_string(), "k.created_position".to_string()),
        KeyOrder::Newest(_) => {
            ("($12 = false OR k.created_position < $9)".to_string(), "k.created_position DESC".to_string())
        }
        KeyOrder::Name(_) => (
            "($12 = false OR (lower(k.name), k.created_position) > ($10, $9))".to_string(),
            "lower(k.name), k.created_position".to_string(),
        ),
        KeyOrder::LastUsed(_) => (
            "($12 = false \
              OR ($11::timestamptz IS NULL AND l.last_used_at IS NULL AND k.created_position < $9) \
              OR ($11::timestamptz IS NOT NULL AND (l.last_used_at IS NULL OR l.last_used_at < $11 \
                  OR (l.last_used_at = $11 AND k.created_position < $9))))"
                .to_string(),
            "l.last_used_at DESC NULLS LAST, k.created_position DESC".to_string(),
        ),
        KeyOrder::Expires(_) => (
            format!(
                "($12 = false \
                  OR ($11::timestamptz IS NULL AND {EXPIRES} IS NULL AND k.created_position > $9) \
                  OR ($11::timestamptz IS NOT NULL AND ({EXPIRES} IS NULL OR {EXPIRES} > $11 \
                      OR ({EXPIRES} = $11 AND k.created_position > $9))))"
            ),
            format!("{EXPIRES} ASC NULLS LAST, k.created_position"),
        ),
    };
    let (position, name, time, has_cursor): (i64, Option<&str>, Option<OffsetDateTime>, bool) =
        match &page.order {
            KeyOrder::Created(after) => (*after, None, None, true),
            KeyOrder::Newest(before) => (before.unwrap_or(0), None, None, before.is_some()),
            KeyOrder::Name(after) => match after {
                Some((name, p)) => (*p, Some(name.as_str()), None, true),
                None => (0, None, None, false),
            },
            KeyOrder::LastUsed(after) | KeyOrder::Expires(after) => match after {
                Some((time, p)) => (*p, None, *time, true),
                None => (0, None, None, false),
            },
        };
    let rows: Vec<PagedRow> = sqlx::query_as(&format!(
        "SELECT k.created_position, k.record, l.last_used_at, {EXPIRES} AS expires_at FROM api_keys k \
         LEFT JOIN api_key_last_used l ON l.public_id = k.public_id \
         WHERE {start} \
         AND ($1::text IS NULL OR k.tenant_id = $1) \
         AND ($2::text IS NULL OR k.status = $2) \
         AND ($3::text IS NULL OR k.record->'settings'->'tags'->>$3 = $4) \
         AND ($5 = false OR k.tenant_id IS NULL) \
         AND ($6::text IS NULL OR k.sub_account_id = $6) \
         AND ($7::text IS NULL OR k.name ILIKE $7) \
         ORDER BY {order} LIMIT $8"
    ))
    .bind(page.tenant_id)
    .bind(page.status)
    .bind(page.tag.map(|(k, _)| k))
    .bind(page.tag.map(|(_, v)| v))
    .bind(page.platform_only)
    .bind(page.sub_account_id)
    .bind(page.name_contains.map(contains_pattern))
    .bind(page.limit)
    .bind(position)
    .bind(name)
    .bind(time)
    .bind(has_cursor)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PagedKey {
            position: r.created_position,
            expires_at: r.expires_at,
            key: StoredKey { record: r.record.0, last_used_at: r.last_used_at },
        })
        .collect())
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

/// The names of the keys `ids` (of `tenant_id` only, when given): (public id, name).
pub async fn names(
    pool: &PgPool,
    tenant_id: Option<&str>,
    ids: &[String],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT public_id, name FROM api_keys WHERE public_id = ANY($1) AND ($2::text IS NULL OR tenant_id = $2)",
    )
    .bind(ids)
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}
