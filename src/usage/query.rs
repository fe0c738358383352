//! Reading the rollups: a month's totals, its days, and every tenant's totals.

use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgPool, Postgres};
use time::{Date, Month};

/// The days a usage query covers: a calendar month (`YYYY-MM`, read from the monthly
/// rollups) or the last 7 or 30 days up to today (`last-7-days`, `last-30-days`, read from the
/// daily rollups; today is partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Its first day.
    pub start: Date,
    /// The day after its last.
    end: Date,
    /// The last days up to today (`None`: a calendar month).
    last_days: Option<u8>,
}

/// The rolling periods, as `period` names them.
pub const LAST_DAYS: [(&str, u8); 2] = [("last-7-days", 7), ("last-30-days", 30)];

impl Period {
    /// Parses `YYYY-MM`, `last-7-days` or `last-30-days` (up to `today`).
    pub fn parse(raw: &str, today: Date) -> Option<Period> {
        if let Some((_, days)) = LAST_DAYS.iter().find(|(name, _)| *name == raw) {
            return Some(Period::last_days(today, *days));
        }
        let (year, month) = raw.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
        Some(Period::of(Date::from_calendar_date(year, month, 1).ok()?))
    }

    /// The month of `date`.
    pub fn of(date: Date) -> Period {
        let start = crate::calendar::month_start(date);
        Period { start, end: crate::calendar::next_month_start(start), last_days: None }
    }

    /// The `days` days up to and including `today`.
    pub fn last_days(today: Date, days: u8) -> Period {
        let end = today.next_day().unwrap_or(today);
        Period { start: end - time::Duration::days(days.into()), end, last_days: Some(days) }
    }

    /// The day after its last.
    pub fn end(&self) -> Date {
        self.end
    }

    /// `YYYY-MM`, or `last-N-days`.
    pub fn label(&self) -> String {
        match self.last_days {
            Some(days) => format!("last-{days}-days"),
            None => format!("{:04}-{:02}", self.start.year(), self.start.month() as u8),
        }
    }

    /// The rollups that cover it whole: `month` for a calendar month, else `day`.
    fn granularity(&self) -> &'static str {
        if self.last_days.is_some() {
            "day"
        } else {
            "month"
        }
    }
}

/// Narrows a query to one key, sub-account, end-user or model.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Key public id.
    pub key: Option<String>,
    /// Sub-account.
    pub sub_account: Option<String>,
    /// End-user.
    pub user: Option<String>,
    /// Model.
    pub model: Option<String>,
}

/// Sums over some rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Totals {
    /// Records counted.
    pub records: i64,
    /// API calls.
    pub api_calls: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Bytes transferred.
    pub bandwidth_bytes: i64,
    /// Bytes stored.
    pub storage_bytes: i64,
}

impl Totals {
    /// Prompt plus completion tokens.
    pub fn llm_tokens(&self) -> i64 {
        self.prompt_tokens + self.completion_tokens
    }
}

const SUMS: &str = "COALESCE(SUM(records), 0)::bigint AS records, COALESCE(SUM(api_calls), 0)::bigint AS api_calls, \
    COALESCE(SUM(prompt_tokens), 0)::bigint AS prompt_tokens, COALESCE(SUM(completion_tokens), 0)::bigint AS completion_tokens, \
    COALESCE(SUM(bandwidth_bytes), 0)::bigint AS bandwidth_bytes, COALESCE(SUM(storage_bytes), 0)::bigint AS storage_bytes";

const FILTERS: &str = "($3::text IS NULL OR key_id = $3) AND ($4::text IS NULL OR sub_account_id = $4) \
    AND ($5::text IS NULL OR user_id = $5) AND ($6::text IS NULL OR model = $6)";

/// Binds `$1` tenant, `$2` the period's first day and `$3`–`$6` the [`FILTERS`].
fn filtered<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    tenant: &'q str,
    period: Period,
    filter: &'q UsageFilter,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(tenant)
        .bind(period.start)
        .bind(&filter.key)
        .bind(&filter.sub_account)
        .bind(&filter.user)
        .bind(&filter.model)
}

/// A tenant's totals for a period.
pub async fn summary(
    pool: &PgPool,
    tenant: &str,
    period: Period,
    filter: &UsageFilter,
) -> Result<Totals, sqlx::Error> {
    let sql = format!(
        "SELECT {SUMS} FROM usage_rollups WHERE tenant_id = $1 AND granularity = $8 AND bucket >= $2 AND bucket < $7 \
         AND {FILTERS}"
    );
    filtered(sqlx::query_as(&sql), tenant, period, filter)
        .bind(period.end())
        .bind(period.granularity())
        .fetch_one(pool)
        .await
}

/// A tenant's totals per day of a period (days without usage are absent).
pub async fn history(
    pool: &PgPool,
    tenant: &str,
    period: Period,
    filter: &UsageFilter,
) -> Result<Vec<(Date, Totals)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        bucket: Date,
        #[sqlx(flatten)]
        totals: Totals,
    }
    let sql = format!(
        "SELECT bucket, {SUMS} FROM usage_rollups WHERE tenant_id = $1 AND granularity = 'day' \
         AND bucket >= $2 AND bucket < $7 AND {FILTERS} GROUP BY bucket ORDER BY bucket"
    );
    let rows: Vec<Row> =
        filtered(sqlx::query_as(&sql), tenant, period, filter).bind(period.end()).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|r| (r.bucket, r.totals)).collect())
}

/// A dimension usage can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Key public id.
    Key,
    /// Sub-account.
    SubAccount,
    /// End-user.
    User,
    /// Model.
    Model,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Key => "key_id",
            Dimension::SubAccount => "sub_account_id",
            Dimension::User => "user_id",
            Dimension::Model => "model",
        }
    }
}

/// A tenant's totals for a period per value of `by` (`None` = usage without one), most LLM
/// tokens first, then most API calls: up to `limit` groups.
pub async fn breakdown(
    pool: &PgPool,
    tenant: &str,
    period: Period,
    filter: &UsageFilter,
    by: Dimension,
    limit: i64,
) -> Result<Vec<(Option<String>, Totals)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        value: String,
        #[sqlx(flatten)]
        totals: Totals,
    }
    let column = by.column();
    let sql = format!(
        "SELECT {column} AS value, {SUMS} FROM usage_rollups WHERE tenant_id = $1 AND granularity = $8 \
         AND bucket >= $2 AND bucket < $7 AND {FILTERS} GROUP BY {column} \
         ORDER BY SUM(prompt_tokens) + SUM(completion_tokens) DESC, SUM(api_calls) DESC, {column} LIMIT $9"
    );
    let rows: Vec<Row> = filtered(sqlx::query_as(&sql), tenant, period, filter)
        .bind(period.end())
        .bind(period.granularity())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|r| ((!r.value.is_empty()).then_some(r.value), r.totals)).collect())
}

/// The current names of a breakdown's keys or sub-accounts (of `tenant` only): id → name.
/// End-users and models have none.
pub async fn group_names(
    pool: &PgPool,
    tenant: &str,
    by: Dimension,
    values: &[String],
) -> Result<std::collections::BTreeMap<String, String>, sqlx::Error> {
    use tokenhub_projections::read;
    let names = match by {
        _ if values.is_empty() => Vec::new(),
        Dimension::Key => read::api_keys::names(pool, Some(tenant), values).await?,
        Dimension::SubAccount => read::sub_accounts::names(pool, Some(tenant), values).await?,
        Dimension::User | Dimension::Model => Vec::new(),
    };
    Ok(names.into_iter().collect())
}

/// The names and effective monthly LLM-token quotas of the tenants `ids` (`None`: unlimited).
pub async fn tenant_names_and_quotas(
    pool: &PgPool,
    ids: &[String],
) -> Result<Vec<(String, String, Option<i64>)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    tokenhub_projections::read::tenants::names_and_monthly_quotas(pool, ids).await
}

/// Tenants' totals for a period, by tenant id: up to `limit` tenants after `after`.
pub async fn all_tenants(
    pool: &PgPool,
    period: Period,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, Totals)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        tenant_id: String,
        #[sqlx(flatten)]
        totals: Totals,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT tenant_id, {SUMS} FROM usage_rollups WHERE granularity = $5 AND bucket >= $1 AND bucket < $4 \
         AND ($2::text IS NULL OR tenant_id > $2) GROUP BY tenant_id ORDER BY tenant_id LIMIT $3"
    ))
    .bind(period.start)
    .bind(after)
    .bind(limit)
    .bind(period.end())
    .bind(period.granularity())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.tenant_id, r.totals)).collect())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn periods() {
        let today = date!(2024 - 03 - 05);
        let parse = |raw| Period::parse(raw, today);
        assert_eq!(parse("2024-01").map(|p| p.start), Some(date!(2024 - 01 - 01)));
        assert_eq!(parse("2024-12").map(|p| p.end()), Some(date!(2025 - 01 - 01)));
        assert_eq!(parse("2024-02").map(|p| p.end()), Some(date!(2024 - 03 - 01)));
        for bad in ["2024-13", "2024-1", "24-01", "2024-00", "2024/01", "", "last-8-days", "last-7-day"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        // The last 7 days: today and the 6 before it, across a month's end.
        let week = parse("last-7-days").unwrap();
        assert_eq!(
            (week.start, week.end(), week.label().as_str()),
            (date!(2024 - 02 - 28), date!(2024 - 03 - 06), "last-7-days")
        );
        assert_eq!(parse("last-30-days").map(|p| p.start), Some(date!(2024 - 02 - 05)));
        assert_eq!(Period::of(date!(2024 - 02 - 29)).label(), "2024-02");
    }
}
