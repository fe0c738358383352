//! Cursor pagination shared by every listing: `limit` (validated page size) and `cursor` (the
//! position after which the next page starts, as returned in `next_cursor`).

use crate::error::{Code, Failure, Outcome};

/// Default and largest page size of the listings.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size of the listings.
pub const MAX_LIMIT: i64 = 200;

/// The page size: `limit`, or `default`, which must lie in `1..=max`.
pub fn page_size(limit: Option<i64>, default: i64, max: i64) -> Outcome<i64> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(Failure::new(Code::InvalidQuery, format!("limit must be between 1 and {max}")));
    }
    Ok(limit)
}

/// The position a page starts after: 0 without a cursor.
pub fn after(cursor: Option<&str>) -> Outcome<i64> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| Failure::new(Code::InvalidQuery, "cursor is not one this API returned")),
    }
}

/// The cursor of the next page: the last position, when the page is full.
pub fn next_cursor(returned: usize, limit: i64, last: Option<i64>) -> Option<String> {
    (returned as i64 == limit).then(|| last.unwrap_or(0).to_string())
}
