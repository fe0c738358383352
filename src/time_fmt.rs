//! RFC 3339 formatting used on the wire and in metadata.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `t` as RFC 3339 (UTC, with fractional seconds when present).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Now, to the microsecond: what PostgreSQL keeps of a time, so that an answer given before a
/// row is stored reads the same as the row read back.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}
