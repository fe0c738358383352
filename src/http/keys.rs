//! Shared key logic behind `/admin/api-keys`, `/tenant/api-keys` and `/admin/platform-keys`:
//! wire shapes, issue, read, list, and running a command on a key the caller may see.
//!
//! A key of another tenant is always 404 `api_key_not_found`, never 403, so its existence
//! is not confirmed. No answer carries the secret or its hash after issue or rotation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{
    ApiKeyCommand, KeyChanges, KeyOwner, KeyRole, KeySettings, KeyStatus, ParentLimits, RateLimit,
};
use tokenhub_aggregates::serde_util::double_option;
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_projections::api_keys::KeyRecord;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{key_format, Principal};
use crate::commands::{execute, CommandMetadata};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::RequestContext;
use crate::http::paging;
use crate::http::views::QuotaPeriodDto;
use crate::state::AppState;

/// Role of a tenant key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantRoleDto {
    /// Data-plane key, verified by gateways.
    #[default]
    Data,
    /// Manages its tenant.
    TenantAdmin,
    /// Reads its tenant's usage and billing.
    TenantFinance,
}

impl From<TenantRoleDto> for KeyRole {
    fn from(r: TenantRoleDto) -> Self {
        match r {
            TenantRoleDto::Data => KeyRole::Data,
            TenantRoleDto::TenantAdmin => KeyRole::TenantAdmin,
            TenantRoleDto::TenantFinance => KeyRole::TenantFinance,
        }
    }
}

/// Per-key rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitDto {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// LLM tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

impl From<RateLimitDto> for RateLimit {
    fn from(r: RateLimitDto) -> Self {
        RateLimit { requests_per_minute: r.requests_per_minute, tokens_per_minute: r.tokens_per_minute }
    }
}

impl From<RateLimit> for RateLimitDto {
    fn from(r: RateLimit) -> Self {
        RateLimitDto { requests_per_minute: r.requests_per_minute, tokens_per_minute: r.tokens_per_minute }
    }
}

/// Body of a key issue. `tenant_id` is required on `/admin/api-keys` and must be absent on
/// `/tenant/api-keys` (the caller's tenant is used).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKeyRequest {
    /// Tenant (admin route only).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Display name.
    #[schema(example = "production gateway key")]
    pub name: String,
    /// Role; `data` when omitted.
    #[serde(default)]
    pub role: Option<TenantRoleDto>,
    /// Sub-account the key belongs to.
    #[serde(default)]
    pub sub_account_id: Option<String>,
    /// Key-bound tags, e.g. `{"customer_id": "acme-corp"}`; keys may not start with `tokenhub.`.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// Expiry (RFC 3339, in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiration: Option<OffsetDateTime>,
    /// LLM-token quota (prompt + completion tokens): for the key's lifetime, or per `quota_period`.
    #[serde(default)]
    pub quota_limit: Option<i64>,
    /// `day` or `month` (UTC calendar windows); absent = lifetime.
    #[serde(default)]
    pub quota_period: Option<QuotaPeriodDto>,
    /// Allowed client networks (IPv4/IPv6 CIDR or address); empty = any.
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// Allowed models; empty = any.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Permissions, e.g. `["chat", "embeddings"]`.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitDto>,
}

/// A key as admins see it (never its secret or hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// Public id.
    pub public_id: String,
    /// Tenant (absent for platform keys).
    pub tenant_id: Option<String>,
    /// Sub-account.
    pub sub_account_id: Option<String>,
    /// Role.
    #[schema(example = "data")]
    pub role: String,
    /// Name.
    pub name: String,
    /// `active`, `disabled` or `revoked`.
    #[schema(example = "active")]
    pub status: String,
    /// Key-bound tags.
    pub tags: BTreeMap<String, String>,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiration: Option<OffsetDateTime>,
    /// LLM-token quota.
    pub quota_limit: Option<i64>,
    /// The quota's window; absent = lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_period: Option<QuotaPeriodDto>,
    /// Allowed client networks.
    pub allowed_ips: Vec<String>,
    /// Allowed models.
    pub allowed_models: Vec<String>,
    /// Permissions.
    pub permissions: Vec<String>,
    /// Rate limit.
    pub rate_limit: Option<RateLimitDto>,
    /// Until when the rotated-away secret still works.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_key_valid_until: Option<OffsetDateTime>,
    /// Issue time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Last successful verification (written in batches, a few seconds behind).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl KeyView {
    /// The view of `record`.
    pub fn from_record(r: KeyRecord, last_used_at: Option<OffsetDateTime>) -> Self {
        let s = r.settings;
        Self {
            public_id: r.public_id,
            tenant_id: r.tenant_id,
            sub_account_id: r.sub_account_id,
            role: r.role.as_str().to_string(),
            name: r.name,
            status: r.status.as_str().to_string(),
            tags: s.tags,
            expiration: s.expires_at,
            quota_limit: s.quota_limit,
            quota_period: s.quota_period.map(Into::into),
            allowed_ips: s.allowed_ips,
            allowed_models: s.allowed_models,
            permissions: s.permissions,
            rate_limit: s.rate_limit.map(Into::into),
            previous_key_valid_until: r.previous_valid_until,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_used_at,
        }
    }
}

/// A newly issued key: the full key, shown only in this answer, and the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    /// The full key. Store it now: only its hash is kept.
    pub api_key: String,
    /// The key.
    #[serde(flatten)]
    pub key: KeyView,
}

/// Body of a key update: only the fields given change; `null` clears a nullable field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New key-bound tags (replace all).
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// New expiry, or `null` for none.
    #[serde(default, deserialize_with = "double_option_time")]
    #[schema(value_type = Option<String>, format = DateTime, nullable)]
    pub expiration: Option<Option<OffsetDateTime>>,
    /// New quota, or `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, nullable)]
    pub quota_limit: Option<Option<i64>>,
    /// New quota period, or `null` for a lifetime quota.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<QuotaPeriodDto>, nullable)]
    pub quota_period: Option<Option<QuotaPeriodDto>>,
    /// New allowed networks.
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// New allowed models.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// New permissions.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// New rate limit, or `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<RateLimitDto>, nullable)]
    pub rate_limit: Option<Option<RateLimitDto>>,
}

fn double_option_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(with = "time::serde::rfc3339::option")] Option<OffsetDateTime>);
    Wrap::deserialize(d).map(|Wrap(t)| Some(t))
}

impl From<UpdateKeyRequest> for KeyChanges {
    fn from(u: UpdateKeyRequest) -> Self {
        KeyChanges {
            name: u.name,
            quota_limit: u.quota_limit,
            quota_period: u.quota_period.map(|p| p.map(Into::into)),
            expires_at: u.expiration,
            allowed_ips: u.allowed_ips,
            allowed_models: u.allowed_models,
            permissions: u.permissions,
            tags: u.tags,
            rate_limit: u.rate_limit.map(|r| r.map(Into::into)),
        }
    }
}

/// Query of key listings.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListKeysQuery {
    /// Only this tenant's keys (admin listing).
    pub tenant_id: Option<String>,
    /// Only keys in this status (`active`, `disabled`, `revoked`).
    pub status: Option<String>,
    /// Only keys with this key-bound tag, as `key=value` (e.g. `customer_id=acme-corp`).
    pub tag: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of keys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    /// Keys.
    pub data: Vec<KeyView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Where a key may be looked up: everywhere (super admin) or in one tenant.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Any key.
    All,
    /// Keys of this tenant only.
    Tenant(&'a str),
    /// Platform keys only.
    Platform,
    /// Keys of one sub-account of one tenant.
    SubAccount(&'a str, &'a str),
}

impl<'a> Scope<'a> {
    /// The scope of a tenant-route caller: its sub-account for a sub-account key, else the
    /// tenant acted on.
    pub fn of_caller(principal: &'a Principal, tenant_id: &'a str) -> Scope<'a> {
        match principal {
            Principal::TenantKey { sub_account_id: Some(sub), role: KeyRole::Data, .. } => {
                Scope::SubAccount(tenant_id, sub)
            }
            _ => Scope::Tenant(tenant_id),
        }
    }
}

fn key_not_found() -> ApiError {
    ApiError::not_found("api_key_not_found", "api key not found")
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    created_position: i64,
    record: sqlx::types::Json<KeyRecord>,
    last_used_at: Option<OffsetDateTime>,
}

const KEY_SELECT: &str = "SELECT k.created_position, k.record, l.last_used_at FROM api_keys k \
                          LEFT JOIN api_key_last_used l ON l.public_id = k.public_id";

fn visible(record: &KeyRecord, scope: Scope<'_>) -> bool {
    match scope {
        Scope::All => true,
        Scope::Tenant(t) => record.tenant_id.as_deref() == Some(t),
        Scope::Platform => record.tenant_id.is_none(),
        Scope::SubAccount(t, sub) => {
            record.tenant_id.as_deref() == Some(t) && record.sub_account_id.as_deref() == Some(sub)
        }
    }
}

/// The key `public_id` if `scope` may see it, else 404.
pub async fn load_key(pool: &PgPool, public_id: &str, scope: Scope<'_>) -> ApiResult<KeyView> {
    if !key_format::is_public_id(public_id) {
        return Err(key_not_found());
    }
    let row: Option<KeyRow> = sqlx::query_as(&format!("{KEY_SELECT} WHERE k.public_id = $1"))
        .bind(public_id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) if visible(&row.record.0, scope) => {
            Ok(KeyView::from_record(row.record.0, row.last_used_at))
        }
        _ => Err(key_not_found()),
    }
}

/// A page of keys visible in `scope`.
pub async fn list_keys(pool: &PgPool, scope: Scope<'_>, query: ListKeysQuery) -> ApiResult<KeyPage> {
    let limit = paging::page_size(query.limit, paging::DEFAULT_LIMIT, paging::MAX_LIMIT)?;
    let after = paging::after(query.cursor.as_deref())?;
    if query.status.as_deref().is_some_and(|s| !["active", "disabled", "revoked"].contains(&s)) {
        return Err(ApiError::invalid("invalid_query", "status must be active, disabled or revoked"));
    }
    let tag = match query.tag.as_deref() {
        None => None,
        Some(t) => Some(
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ApiError::invalid("invalid_query", "tag must be key=value"))?,
        ),
    };
    let (tenant, sub_account) = match scope {
        Scope::Tenant(t) => (Some(t.to_string()), None),
        Scope::SubAccount(t, sub) => (Some(t.to_string()), Some(sub.to_string())),
        _ => (query.tenant_id.clone(), None),
    };
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "{KEY_SELECT} WHERE k.created_position > $1 \
         AND ($2::text IS NULL OR k.tenant_id = $2) \
         AND ($3::text IS NULL OR k.status = $3) \
         AND ($4::text IS NULL OR k.record->'settings'->'tags'->>$4 = $5) \
         AND ($6 = false OR k.tenant_id IS NULL) \
         AND ($8::text IS NULL OR k.sub_account_id = $8) \
         ORDER BY k.created_position LIMIT $7"
    ))
    .bind(after)
    .bind(tenant)
    .bind(query.status)
    .bind(tag.as_ref().map(|(k, _)| k.clone()))
    .bind(tag.map(|(_, v)| v))
    .bind(matches!(scope, Scope::Platform))
    .bind(limit)
    .bind(sub_account)
    .fetch_all(pool)
    .await?;
    let last = rows.last().map(|r| r.created_position);
    let next_cursor = paging::next_cursor(rows.len(), limit, last);
    let data = rows.into_iter().map(|r| KeyView::from_record(r.record.0, r.last_used_at)).collect();
    Ok(KeyPage { data, next_cursor })
}

/// Checks that `tenant_id` exists and can receive keys.
pub fn require_tenant(state: &AppState, tenant_id: &str) -> ApiResult<()> {
    match state.keys.tenant_status(tenant_id) {
        None => Err(ApiError::not_found("tenant_not_found", "tenant not found")),
        Some(TenantStatus::Deleted) => {
            Err(ApiError::new(axum::http::StatusCode::CONFLICT, "tenant_deleted", "tenant is deleted"))
        }
        Some(_) => Ok(()),
    }
}

async fn check_key_limit(state: &AppState, tenant_id: &str) -> ApiResult<()> {
    let limit: Option<i64> =
        sqlx::query_scalar("SELECT (limits->>'max_api_keys')::bigint FROM tenants WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&state.pool)
            .await?
            .flatten();
    let Some(max) = limit else { return Ok(()) };
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND status <> 'revoked'")
            .bind(tenant_id)
            .fetch_one(&state.pool)
            .await?;
    if count >= max {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "api_key_limit_reached",
            format!("the tenant's plan allows {max} keys; revoke one or raise max_api_keys"),
        ));
    }
    Ok(())
}

/// Issues a key for `owner` with `role` from `body`.
pub async fn issue_key(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    owner: KeyOwner,
    role: KeyRole,
    body: IssueKeyRequest,
) -> ApiResult<IssuedKey> {
    if let Some(tenant_id) = owner.tenant_id() {
        require_tenant(state, tenant_id)?;
        check_key_limit(state, tenant_id).await?;
    }
    let parent = match (&owner, body.sub_account_id.as_deref()) {
        (KeyOwner::Tenant { tenant_id, .. }, Some(sub)) => {
            Some(parent_limits(&state.pool, tenant_id, sub).await?)
        }
        _ => None,
    };
    let generated = key_format::generate();
    let now = OffsetDateTime::now_utc();
    let settings = KeySettings {
        quota_limit: body.quota_limit,
        quota_period: body.quota_period.map(Into::into),
        expires_at: body.expiration,
        allowed_ips: body.allowed_ips.unwrap_or_default(),
        allowed_models: body.allowed_models.unwrap_or_default(),
        permissions: body.permissions.unwrap_or_default(),
        tags: body.tags.unwrap_or_default(),
        rate_limit: body.rate_limit.map(Into::into),
    };
    let tenant = owner.tenant_id().map(str::to_string);
    let command = ApiKeyCommand::Issue {
        public_id: generated.public_id.clone(),
        owner,
        role,
        name: body.name,
        secret_hash: state.hasher.hash_hex(&generated.full),
        settings,
        parent,
        at: now,
    };
    let meta = CommandMetadata::new(principal, ctx, tenant.as_deref());
    execute(&state.commands.api_keys, &generated.public_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    tracing::info!(public_id = %generated.public_id, tenant_id = ?tenant, "api key issued");
    let key = load_key(&state.pool, &generated.public_id, Scope::All).await?;
    Ok(IssuedKey { api_key: generated.full, key })
}

/// The limits of sub-account `sub_account_id` of `tenant_id`; 422 `sub_account_not_found`
/// when it does not exist there or is deleted.
pub async fn parent_limits(pool: &PgPool, tenant_id: &str, sub_account_id: &str) -> ApiResult<ParentLimits> {
    let row: Option<(sqlx::types::Json<Vec<String>>, Option<i64>)> = sqlx::query_as(
        "SELECT permissions, quota_limit FROM sub_accounts \
         WHERE sub_account_id = $1 AND tenant_id = $2 AND status <> 'deleted'",
    )
    .bind(sub_account_id)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    let (permissions, quota_limit) = row
        .ok_or_else(|| ApiError::invalid("sub_account_not_found", "sub-account not found in this tenant"))?;
    Ok(ParentLimits { permissions: permissions.0, quota_limit })
}

/// Updates key `public_id` (visible in `scope`), checking a sub-account key against its
/// sub-account.
pub async fn update_key(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    public_id: &str,
    scope: Scope<'_>,
    changes: KeyChanges,
) -> ApiResult<KeyView> {
    let before = load_key(&state.pool, public_id, scope).await?;
    let parent = match (&before.tenant_id, &before.sub_account_id) {
        (Some(tenant), Some(sub)) => Some(parent_limits(&state.pool, tenant, sub).await?),
        _ => None,
    };
    let command = ApiKeyCommand::Update { changes, parent, at: OffsetDateTime::now_utc() };
    run_on_loaded(state, principal, ctx, &before, scope, command).await
}

/// Runs `command` on key `public_id` when `scope` may see it; returns the key after.
pub async fn run_on_key(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    public_id: &str,
    scope: Scope<'_>,
    command: ApiKeyCommand,
) -> ApiResult<KeyView> {
    let before = load_key(&state.pool, public_id, scope).await?;
    run_on_loaded(state, principal, ctx, &before, scope, command).await
}

/// Runs `command` on `before`, a key already loaded (and so visible) in `scope`.
async fn run_on_loaded(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    before: &KeyView,
    scope: Scope<'_>,
    command: ApiKeyCommand,
) -> ApiResult<KeyView> {
    let meta = CommandMetadata::new(principal, ctx, before.tenant_id.as_deref());
    execute(&state.commands.api_keys, &before.public_id, command, meta).await?;
    state.readmodels.wait_for_head().await;
    load_key(&state.pool, &before.public_id, scope).await
}

/// Body of a rotation (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old key keeps working, in seconds (0 or absent: it stops at once; at most 30 days).
    #[serde(default)]
    pub grace_period_seconds: Option<u32>,
}

/// A rotated key: the new full key, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The new full key.
    pub api_key: String,
    /// The key after rotation.
    #[serde(flatten)]
    pub key: KeyView,
}

/// Rotates `public_id`.
pub async fn rotate_key(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    public_id: &str,
    scope: Scope<'_>,
    body: RotateKeyRequest,
) -> ApiResult<RotatedKey> {
    let before = load_key(&state.pool, public_id, scope).await?;
    if before.status == KeyStatus::Revoked.as_str() {
        return Err(ApiError::new(axum::http::StatusCode::CONFLICT, "api_key_revoked", "api key is revoked"));
    }
    // Same public id, new secret: a key string has the public id inside it.
    let fresh = key_format::generate_for(public_id);
    let now = OffsetDateTime::now_utc();
    let grace_until =
        body.grace_period_seconds.filter(|s| *s > 0).map(|s| now + time::Duration::seconds(i64::from(s)));
    let command =
        ApiKeyCommand::Rotate { new_secret_hash: state.hasher.hash_hex(&fresh.full), grace_until, at: now };
    let key = run_on_loaded(state, principal, ctx, &before, scope, command).await?;
    Ok(RotatedKey { api_key: fresh.full, key })
}
