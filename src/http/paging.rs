//! The query of a listing page (`?limit=&cursor=`); the rules are in [`crate::paging`].

use serde::Deserialize;
use utoipa::IntoParams;

/// `?limit=&cursor=` of a listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
