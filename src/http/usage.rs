//! Usage over HTTP: `POST /v1/usage` (gateways report records), `/usage/summary` and
//! `/usage/history` (a tenant's month and its days), `/admin/usage` (finance admins, every
//! tenant).

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ReadAllUsage, ReadUsage, ReportUsage};
use crate::cache::caught_up::CaughtUp;
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Query};
use crate::http::AppState;
use crate::usage::ingest::{IngestError, Outcome};
use crate::usage::query::{self, Period, Totals, UsageFilter};
use crate::usage::record::{prepare, UsageRecordInput, MAX_BATCH};

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Stream(detail) => {
                tracing::warn!(error = %detail, "usage stream unavailable");
                ApiError::new(
                    Code::UsageStreamUnavailable,
                    "the usage stream did not acknowledge the batch; retry it (records are de-duplicated)",
                )
                .retry_after(1)
            }
        }
    }
}

/// A batch of usage records.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1000 records.
    pub records: Vec<UsageRecordInput>,
}

/// What happened to one record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordResult {
    /// Its idempotency id.
    pub id: String,
    /// `accepted` (new, durable in the usage stream) or `duplicate` (seen before, counted once).
    #[schema(example = "accepted")]
    pub status: &'static str,
}

/// The answer to a batch: every record is durable in the usage stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBatchResult {
    /// New records.
    pub accepted: usize,
    /// Records seen before.
    pub duplicates: usize,
    /// Per record, in order.
    pub records: Vec<RecordResult>,
}

/// Report usage records (gateways). The whole batch is validated first (nothing is published
/// when a record is refused); the answer comes after JetStream acknowledged every record.
/// Retrying a batch is safe: records are de-duplicated by tenant and `id`.
#[utoipa::path(post, path = "/v1/usage", tag = "usage",
    request_body = UsageBatch,
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = UsageBatchResult),
        (status = 400, body = ErrorBody, description = "`invalid_json`"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`forbidden`, `tenant_not_allowed` (a record of a tenant the gateway is not bound to)"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`"),
        (status = 422, body = ErrorBody, description = "`invalid_request` (an unknown field such as a prompt), `invalid_usage_record`, `unknown_key`, `full_key_not_accepted`, `record_tenant_mismatch`, `unknown_tenant`, `batch_too_large`, `empty_batch`"),
        (status = 503, body = ErrorBody, description = "`usage_stream_unavailable`, `key_not_yet_known`: retry the batch after `Retry-After`"),
    ))]
pub async fn report_usage(
    State(state): State<AppState>,
    auth: Authorized<ReportUsage>,
    Json(body): Json<UsageBatch>,
) -> ApiResult<axum::Json<UsageBatchResult>> {
    if body.records.is_empty() {
        return Err(ApiError::new(Code::EmptyBatch, "records must hold at least one record"));
    }
    if body.records.len() > MAX_BATCH {
        return Err(ApiError::new(Code::BatchTooLarge, format!("at most {MAX_BATCH} records per batch")));
    }
    let now = OffsetDateTime::now_utc();
    // A key this instance has not seen may have been issued elsewhere a moment ago: answer
    // `unknown_key` only once the cache holds the log as of this request; until then the
    // batch is retryable (503 `key_not_yet_known`), never a permanent refusal.
    let unseen = body.records.iter().any(|r| {
        r.key.as_deref().is_some_and(|k| {
            !k.starts_with(crate::auth::key_format::KEY_PREFIX) && state.keys.get(k).is_none()
        })
    });
    if unseen && state.keys.caught_up(&state.pool).await == CaughtUp::NotYet {
        let still =
            body.records.iter().any(|r| r.key.as_deref().is_some_and(|k| state.keys.get(k).is_none()));
        if still {
            return Err(ApiError::new(
                Code::KeyNotYetKnown,
                "a record names a key this instance has not caught up with yet; retry the batch",
            )
            .retry_after(1));
        }
    }
    let mut events = Vec::with_capacity(body.records.len());
    for (i, record) in body.records.into_iter().enumerate() {
        let event = prepare(i, record, &state.keys, now, state.usage.max_age())
            .map_err(|e| ApiError::new(e.code, format!("{}: {}", e.path, e.message)))?;
        auth.principal.may_act_for(&event.data.tenant_id)?;
        events.push(event);
    }
    let outcomes = state.usage.publish(&state.pool, &events).await?;
    let mut result =
        UsageBatchResult { accepted: 0, duplicates: 0, records: Vec::with_capacity(events.len()) };
    for (event, outcome) in events.iter().zip(outcomes) {
        let status = match outcome {
            Outcome::Accepted => {
                result.accepted += 1;
                event.count_in(&state.keys, now);
                "accepted"
            }
            Outcome::Duplicate => {
                result.duplicates += 1;
                "duplicate"
            }
        };
        result.records.push(RecordResult { id: event.id.clone(), status });
    }
    let accepted = events.iter().zip(&result.records).filter(|(_, r)| r.status == "accepted");
    state.live_usage.share(accepted.map(|(e, _)| e));
    metrics::counter!("tokenhub_usage_records_total", "status" => "accepted")
        .increment(result.accepted as u64);
    metrics::counter!("tokenhub_usage_records_total", "status" => "duplicate")
        .increment(result.duplicates as u64);
    Ok(axum::Json(result))
}

/// Which month and which usage.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// `YYYY-MM` (a calendar month, UTC), `last-7-days` or `last-30-days` (up to and including
    /// today, UTC; today is partial); the current month when absent.
    pub period: Option<String>,
    /// Only this key (public id).
    pub key: Option<String>,
    /// Only this sub-account.
    pub sub_account: Option<String>,
    /// Only this end-user.
    #[serde(rename = "userId", alias = "user_id")]
    #[param(rename = "userId")]
    pub user_id: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

/// `YYYY-MM`, `last-7-days` or `last-30-days`, or the current month (UTC) when absent.
fn period_of(raw: Option<&str>) -> ApiResult<Period> {
    match raw {
        None => Ok(Period::of(OffsetDateTime::now_utc().date())),
        Some(raw) => Period::parse(raw, OffsetDateTime::now_utc().date()).ok_or_else(|| {
            ApiError::new(Code::InvalidPeriod, "period must be YYYY-MM, last-7-days or last-30-days")
        }),
    }
}

impl UsageQuery {
    fn filter(&self) -> UsageFilter {
        UsageFilter {
            key: self.key.clone(),
            sub_account: self.sub_account.clone(),
            user: self.user_id.clone(),
            model: self.model.clone(),
        }
    }
}

/// A tenant's usage in a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSummary {
    /// The tenant.
    pub tenant_id: String,
    /// The period asked for: `YYYY-MM`, `last-7-days` or `last-30-days`.
    #[schema(example = "2024-01")]
    pub period: String,
    /// API calls.
    pub api_calls: i64,
    /// LLM tokens (prompt plus completion).
    pub llm_tokens: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Bytes stored (sum of the reported values).
    pub storage_bytes: i64,
    /// Bytes transferred.
    pub bandwidth_bytes: i64,
    /// Records counted.
    pub records: i64,
}

fn summary_of(tenant_id: String, period: String, t: Totals) -> UsageSummary {
    UsageSummary {
        tenant_id,
        period,
        api_calls: t.api_calls,
        llm_tokens: t.llm_tokens(),
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.completion_tokens,
        storage_bytes: t.storage_bytes,
        bandwidth_bytes: t.bandwidth_bytes,
        records: t.records,
    }
}

/// The tenant's usage in a month (UTC), optionally for one key, sub-account, end-user or
/// model. Counts records once the usage projection has consumed them (normally within a second).
#[utoipa::path(get, path = "/usage/summary", tag = "usage",
    params(UsageQuery),
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = UsageSummary),
        (status = 400, body = ErrorBody, description = "`tenant_id_required` (super admin or finance admin without `X-Tenant-ID`)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_period`, `invalid_query`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn usage_summary(
    State(state): State<AppState>,
    auth: Authorized<ReadUsage>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<axum::Json<UsageSummary>> {
    let period = period_of(q.period.as_deref())?;
    let totals = query::summary(&state.pool, auth.tenant(), period, &q.filter()).await?;
    Ok(axum::Json(summary_of(auth.tenant().to_string(), period.label(), totals)))
}

/// One day of usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD` (UTC).
    #[schema(example = "2024-01-15")]
    pub date: String,
    /// API calls.
    pub api_calls: i64,
    /// LLM tokens.
    pub llm_tokens: i64,
    /// Bytes transferred.
    pub bandwidth_bytes: i64,
    /// Bytes stored.
    pub storage_bytes: i64,
}

/// The days of a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageHistory {
    /// The tenant.
    pub tenant_id: String,
    /// The period asked for: `YYYY-MM`, `last-7-days` or `last-30-days`.
    pub period: String,
    /// Days with usage, oldest first.
    pub history: Vec<UsageDay>,
}

/// The tenant's usage per day of a month (UTC), with the same filters as the summary.
#[utoipa::path(get, path = "/usage/history", tag = "usage",
    params(UsageQuery),
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = UsageHistory),
        (status = 400, body = ErrorBody, description = "`tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_period`, `invalid_query`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn usage_history(
    State(state): State<AppState>,
    auth: Authorized<ReadUsage>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<axum::Json<UsageHistory>> {
    let period = period_of(q.period.as_deref())?;
    let days = query::history(&state.pool, auth.tenant(), period, &q.filter()).await?;
    let history = days
        .into_iter()
        .map(|(date, t)| UsageDay {
            date: date.to_string(),
            api_calls: t.api_calls,
            llm_tokens: t.llm_tokens(),
            bandwidth_bytes: t.bandwidth_bytes,
            storage_bytes: t.storage_bytes,
        })
        .collect();
    Ok(axum::Json(UsageHistory { tenant_id: auth.tenant().to_string(), period: period.label(), history }))
}

/// What to break a month's usage down by.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageDimension {
    /// Per key (public id).
    Key,
    /// Per sub-account.
    SubAccount,
    /// Per end-user (`userId` of the records).
    User,
    /// Per model.
    Model,
}

/// Which month, which usage, and by what.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BreakdownQuery {
    /// The dimension.
    pub by: UsageDimension,
    /// Groups to return, 1 to 1000 (default 100), most LLM tokens first.
    pub limit: Option<i64>,
    /// `YYYY-MM` (a calendar month, UTC), `last-7-days` or `last-30-days` (up to and including
    /// today, UTC; today is partial); the current month when absent.
    pub period: Option<String>,
    /// Only this key (public id).
    pub key: Option<String>,
    /// Only this sub-account.
    pub sub_account: Option<String>,
    /// Only this end-user.
    #[serde(rename = "userId", alias = "user_id")]
    #[param(rename = "userId")]
    pub user_id: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

/// One group of a breakdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageGroup {
    /// The key, sub-account, end-user or model; `null` for usage reported without one.
    pub value: Option<String>,
    /// API calls.
    pub api_calls: i64,
    /// LLM tokens (prompt plus completion).
    pub llm_tokens: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Records counted.
    pub records: i64,
}

/// A month's usage per key, sub-account, end-user or model.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBreakdown {
    /// The tenant.
    pub tenant_id: String,
    /// The period asked for: `YYYY-MM`, `last-7-days` or `last-30-days`.
    pub period: String,
    /// The dimension.
    pub by: UsageDimension,
    /// Groups, most LLM tokens first (then most API calls); without a `limit` cut they sum
    /// to `/usage/summary` with the same filters.
    pub groups: Vec<UsageGroup>,
    /// True when more groups exist than `limit` returned.
    pub truncated: bool,
    /// The current names of the keys or sub-accounts among the groups, by id.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub names: std::collections::BTreeMap<String, String>,
}

/// The tenant's usage in a month (UTC) per key, sub-account, end-user or model, with the
/// same filters as the summary.
#[utoipa::path(get, path = "/usage/breakdown", tag = "usage",
    params(BreakdownQuery),
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = UsageBreakdown),
        (status = 400, body = ErrorBody, description = "`tenant_id_required`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_period`, `invalid_query`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn usage_breakdown(
    State(state): State<AppState>,
    auth: Authorized<ReadUsage>,
    Query(q): Query<BreakdownQuery>,
) -> ApiResult<axum::Json<UsageBreakdown>> {
    let period = period_of(q.period.as_deref())?;
    let limit = crate::paging::page_size(q.limit, 100, 1000)?;
    let filter = UsageFilter {
        key: q.key.clone(),
        sub_account: q.sub_account.clone(),
        user: q.user_id.clone(),
        model: q.model.clone(),
    };
    let by = match q.by {
        UsageDimension::Key => query::Dimension::Key,
        UsageDimension::SubAccount => query::Dimension::SubAccount,
        UsageDimension::User => query::Dimension::User,
        UsageDimension::Model => query::Dimension::Model,
    };
    let mut rows = query::breakdown(&state.pool, auth.tenant(), period, &filter, by, limit + 1).await?;
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let values: Vec<String> = rows.iter().filter_map(|(value, _)| value.clone()).collect();
    let names = query::group_names(&state.pool, auth.tenant(), by, &values).await?;
    let groups = rows
        .into_iter()
        .map(|(value, t)| UsageGroup {
            value,
            api_calls: t.api_calls,
            llm_tokens: t.llm_tokens(),
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            records: t.records,
        })
        .collect();
    Ok(axum::Json(UsageBreakdown {
        tenant_id: auth.tenant().to_string(),
        period: period.label(),
        by: q.by,
        groups,
        truncated,
        names,
    }))
}

/// Which month, and which page of tenants.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// `YYYY-MM` (a calendar month, UTC), `last-7-days` or `last-30-days` (up to and including
    /// today, UTC; today is partial); the current month when absent.
    pub period: Option<String>,
    /// Tenants per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every tenant's usage in a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllTenantsUsage {
    /// The period asked for: `YYYY-MM`, `last-7-days` or `last-30-days`.
    pub period: String,
    /// One entry per tenant with usage, by tenant id.
    pub tenants: Vec<UsageSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// The current names of this page's tenants, by id.
    pub names: std::collections::BTreeMap<String, String>,
    /// The effective monthly LLM-token quota of this page's tenants that have one, by id.
    pub monthly_token_quotas: std::collections::BTreeMap<String, i64>,
}

/// Every tenant's usage in a month (finance admins), a page of tenants at a time.
#[utoipa::path(get, path = "/admin/usage", tag = "usage",
    params(PeriodQuery),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = AllTenantsUsage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_period`, `invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_usage(
    State(state): State<AppState>,
    _auth: Authorized<ReadAllUsage>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<AllTenantsUsage>> {
    let period = period_of(q.period.as_deref())?;
    let limit = crate::paging::page_size(q.limit, 100, 1000)?;
    if q.cursor.as_ref().is_some_and(|c| c.len() > 64) {
        return Err(ApiError::new(Code::InvalidQuery, "cursor is not one this API returned"));
    }
    let rows = query::all_tenants(&state.pool, period, q.cursor.as_deref(), limit).await?;
    let next_cursor =
        if rows.len() as i64 == limit { rows.last().map(|(tenant, _)| tenant.clone()) } else { None };
    let ids: Vec<String> = rows.iter().map(|(tenant, _)| tenant.clone()).collect();
    let (mut names, mut monthly_token_quotas) = (BTreeMap::new(), BTreeMap::new());
    for (id, name, quota) in query::tenant_names_and_quotas(&state.pool, &ids).await? {
        if let Some(quota) = quota {
            monthly_token_quotas.insert(id.clone(), quota);
        }
        names.insert(id, name);
    }
    let label = period.label();
    let tenants: Vec<UsageSummary> =
        rows.into_iter().map(|(tenant, totals)| summary_of(tenant, label.clone(), totals)).collect();
    Ok(axum::Json(AllTenantsUsage { period: label, tenants, next_cursor, names, monthly_token_quotas }))
}
