//! Cursor pagination shared by every listing: `limit` (validated page size) and `cursor` (the
//! position after which the next page starts, as returned in `next_cursor`).

use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::code::Code;
use crate::http::error::{ApiError, ApiResult};

/// `?limit=&cursor=` of a listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Default and largest page size of the listings.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size of the listings.
pub const MAX_LIMIT: i64 = 200;

/// The page size: `limit`, or `default`, which must lie in `1..=max`.
pub fn page_size(limit: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, format!("limit must be between 1 and {max}")));
    }
    Ok(limit)
}

/// The position a page starts after: 0 without a cursor.
pub fn after(cursor: Option<&str>) -> ApiResult<i64> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| ApiError::new(Code::InvalidQuery, "cursor is not one this API returned")),
    }
}

/// The cursor of the next page: the last position, when the page is full.
pub fn next_cursor(returned: usize, limit: i64, last: Option<i64>) -> Option<String> {
    (returned as i64 == limit).then(|| last.unwrap_or(0).to_string())
}
