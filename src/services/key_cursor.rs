//! The orders of a key listing (`sort`) and their cursors: `next_cursor` names the order it
//! was made for and the last key of the page (its position, and its name, last use or expiry),
//! so the next page starts exactly after it whatever changed meanwhile. A cursor of the
//! default order is the bare position, as every other listing's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::OffsetDateTime;
use tokenhub_projections::read::api_keys::{KeyOrder, PagedKey};

use crate::error::{Code, Failure, Outcome};
use crate::paging;

/// The orders `sort` takes.
pub const SORTS: [&str; 5] = ["created", "newest", "name", "last_used", "expires"];

fn not_ours() -> Failure {
    Failure::new(Code::InvalidQuery, "cursor is not one this API returned for this sort")
}

/// `sort` with where the page starts (`cursor`).
pub fn order(sort: Option<&str>, cursor: Option<&str>) -> Outcome<KeyOrder> {
    let sort = sort.unwrap_or("created");
    if sort == "created" {
        return Ok(KeyOrder::Created(paging::after(cursor)?));
    }
    let parts = match cursor {
        None => None,
        Some(c) => {
            let (tag, rest) = c.split_once('.').ok_or_else(not_ours)?;
            if tag != sort {
                return Err(not_ours());
            }
            let (position, value) = rest.split_once('.').unwrap_or((rest, ""));
            let position = position.parse::<i64>().ok().filter(|p| *p >= 0).ok_or_else(not_ours)?;
            Some((position, value))
        }
    };
    let time = |value: &str| -> Outcome<Option<OffsetDateTime>> {
        if value.is_empty() {
            return Ok(None);
        }
        let micros = value.parse::<i128>().map_err(|_| not_ours())?;
        OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000).map(Some).map_err(|_| not_ours())
    };
    Ok(match sort {
        "newest" => KeyOrder::Newest(parts.map(|(p, _)| p)),
        "name" => KeyOrder::Name(match parts {
            None => None,
            Some((p, value)) => {
                let name = URL_SAFE_NO_PAD.decode(value).ok().and_then(|b| String::from_utf8(b).ok());
                Some((name.ok_or_else(not_ours)?, p))
            }
        }),
        "last_used" => KeyOrder::LastUsed(parts.map(|(p, v)| time(v).map(|t| (t, p))).transpose()?),
        "expires" => KeyOrder::Expires(parts.map(|(p, v)| time(v).map(|t| (t, p))).transpose()?),
        _ => {
            return Err(Failure::new(
                Code::InvalidQuery,
                format!("sort must be one of {}", SORTS.join(", ")),
            ));
        }
    })
}

/// The cursor of the page after `last` in `order`.
pub fn after(order: &KeyOrder, last: &PagedKey) -> String {
    let micros = |t: Option<OffsetDateTime>| {
        t.map(|t| (t.unix_timestamp_nanos() / 1_000).to_string()).unwrap_or_default()
    };
    let p = last.position;
    match order {
        KeyOrder::Created(_) => p.to_string(),
        KeyOrder::Newest(_) => format!("newest.{p}"),
        KeyOrder::Name(_) => {
            format!("name.{p}.{}", URL_SAFE_NO_PAD.encode(last.key.record.name.to_lowercase()))
        }
        KeyOrder::LastUsed(_) => format!("last_used.{p}.{}", micros(last.key.last_used_at)),
        KeyOrder::Expires(_) => format!("expires.{p}.{}", micros(last.expires_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_cursors_and_sorts_are_refused_not_guessed() {
        for (sort, cursor) in [
            (Some("name"), Some("newest.3")),
            (Some("name"), Some("name.x.YQ")),
            (Some("name"), Some("name.-1.YQ")),
            (Some("name"), Some("name.3.%%%")),
            (Some("last_used"), Some("last_used.3.abc")),
            (Some("expires"), Some("expires.3.99999999999999999999999999")),
            (Some("created"), Some("name.3")),
            (Some("size"), None),
            (Some(""), None),
        ] {
            assert!(order(sort, cursor).is_err(), "{sort:?} {cursor:?}");
        }
        assert_eq!(order(None, None).unwrap(), KeyOrder::Created(0));
        assert_eq!(order(Some("newest"), None).unwrap(), KeyOrder::Newest(None));
        assert_eq!(
            order(Some("last_used"), Some("last_used.7.")).unwrap(),
            KeyOrder::LastUsed(Some((None, 7)))
        );
    }
}
