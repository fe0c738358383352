//! Wire shapes shared by several route groups, and their reads from the query tables.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::QuotaPeriod;
use tokenhub_aggregates::tenant::{Plan, TenantLimits};
use tokenhub_projections::read::tenants::{self, TenantPage, TenantRow};
use utoipa::ToSchema;

/// A plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanDto {
    /// Free.
    #[default]
    Free,
    /// Pro.
    Pro,
    /// Enterprise.
    Enterprise,
}

impl From<PlanDto> for Plan {
    fn from(p: PlanDto) -> Self {
        match p {
            PlanDto::Free => Plan::Free,
            PlanDto::Pro => Plan::Pro,
            PlanDto::Enterprise => Plan::Enterprise,
        }
    }
}

/// The window of a periodic quota (calendar-aligned in UTC); absent = lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriodDto {
    /// From midnight UTC.
    Day,
    /// From the first of the month, midnight UTC.
    Month,
}

impl From<QuotaPeriodDto> for QuotaPeriod {
    fn from(p: QuotaPeriodDto) -> Self {
        match p {
            QuotaPeriodDto::Day => QuotaPeriod::Day,
            QuotaPeriodDto::Month => QuotaPeriod::Month,
        }
    }
}

impl From<QuotaPeriod> for QuotaPeriodDto {
    fn from(p: QuotaPeriod) -> Self {
        match p {
            QuotaPeriod::Day => QuotaPeriodDto::Day,
            QuotaPeriod::Month => QuotaPeriodDto::Month,
        }
    }
}

/// Tenant limits; an absent field is "plan default" in a request and "unlimited" in an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDto {
    /// Most API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_api_keys: Option<u32>,
    /// Most sub-accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sub_accounts: Option<u32>,
    /// LLM tokens per calendar month, at most 10^15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 1e15)]
    pub monthly_token_quota: Option<u64>,
    /// Control-API requests per minute, 1 to 10,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000000)]
    pub requests_per_minute: Option<u32>,
}

impl From<LimitsDto> for TenantLimits {
    fn from(l: LimitsDto) -> Self {
        TenantLimits {
            max_api_keys: l.max_api_keys,
            max_sub_accounts: l.max_sub_accounts,
            monthly_token_quota: l.monthly_token_quota,
            requests_per_minute: l.requests_per_minute,
        }
    }
}

/// A tenant as the super admin sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// Id.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Plan.
    #[schema(value_type = PlanDto)]
    pub plan: String,
    /// Region.
    pub region: String,
    /// `active`, `suspended` or `deleted`.
    #[schema(example = "active")]
    pub status: String,
    /// Effective limits (plan defaults with overrides).
    #[schema(value_type = LimitsDto)]
    pub limits: serde_json::Value,
    /// Overrides set by an admin.
    #[schema(value_type = LimitsDto)]
    pub limit_overrides: serde_json::Value,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Number of events of the tenant (its aggregate version).
    pub version: i64,
}

impl From<TenantRow> for TenantView {
    fn from(r: TenantRow) -> Self {
        Self {
            tenant_id: r.tenant_id,
            name: r.name,
            plan: r.plan,
            region: r.region,
            status: r.status,
            limits: r.limits,
            limit_overrides: r.limit_overrides,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

impl TenantView {
    /// The tenant `id` from the query table.
    pub async fn load(pool: &PgPool, id: &str) -> Result<Option<Self>, sqlx::Error> {
        Ok(tenants::get(pool, id).await?.map(Into::into))
    }

    /// Up to `limit` tenants matching `filter` created after position `after`; also the last
    /// position returned.
    pub async fn page(
        pool: &PgPool,
        after: i64,
        limit: i64,
        filter: &TenantFilter<'_>,
    ) -> Result<(Vec<Self>, i64), sqlx::Error> {
        let page =
            TenantPage { status: filter.status, plan: filter.plan, search: filter.search, after, limit };
        let (rows, last) = tenants::page(pool, &page).await?;
        Ok((rows.into_iter().map(Into::into).collect(), last))
    }
}

/// Filters of the tenant list.
#[derive(Debug, Default)]
pub struct TenantFilter<'a> {
    /// Status.
    pub status: Option<&'a str>,
    /// Plan.
    pub plan: Option<&'a str>,
    /// Id, or a substring of the name (case-insensitive).
    pub search: Option<&'a str>,
}
