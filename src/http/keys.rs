//! The wire shapes of `/admin/api-keys`, `/tenant/api-keys` and `/admin/platform-keys`, and
//! their mapping onto the key service ([`crate::services::api_keys`], where the rules are).
//! No answer carries the secret or its hash after issue or rotation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::{KeyChanges, KeyOwner, KeyRole, KeySettings, RateLimit};
use tokenhub_aggregates::serde_util::double_option;
use tokenhub_projections::api_keys::KeyRecord;
use utoipa::{IntoParams, ToSchema};

use crate::auth::key_format::GeneratedKey;
use crate::auth::Principal;
use crate::commands::RequestMeta;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::plan_answer;
use crate::http::views::QuotaPeriodDto;
use crate::http::AppState;

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
    /// Expiry (RFC 3339, in the future); `expires_at` is accepted as its alias.
    #[serde(default, alias = "expires_at", with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiration: Option<OffsetDateTime>,
    /// LLM-token quota (prompt + completion tokens): for the key's lifetime, or per `quota_period`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1e15)]
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
    /// Platform keys only (set through `/admin/platform-keys`).
    #[serde(skip)]
    pub tenant_ids: Option<Vec<String>>,
    /// Accepted for the published key object; the server assigns the id, so this value is
    /// not used.
    #[serde(default)]
    pub id: Option<String>,
    /// Accepted for the published key object: a new key is `active` (anything else is 422).
    #[serde(default)]
    pub status: Option<NewKeyStatus>,
}

/// The only status a new key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewKeyStatus {
    /// A new key works at once.
    Active,
}

/// A key as admins see it (never its secret or hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// Public id.
    pub public_id: String,
    /// The same id, under the published key object's name.
    pub id: String,
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
    /// The same expiry under the name requests may use for it (`expires_at`).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
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
    /// Platform keys: the tenants it may act for (absent: every tenant).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenant_ids: Vec<String>,
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
            id: r.public_id.clone(),
            public_id: r.public_id,
            tenant_id: r.tenant_id,
            sub_account_id: r.sub_account_id,
            role: r.role.as_str().to_string(),
            name: r.name,
            status: r.status.as_str().to_string(),
            tags: s.tags,
            expiration: s.expires_at,
            expires_at: s.expires_at,
            quota_limit: s.quota_limit,
            quota_period: s.quota_period.map(Into::into),
            allowed_ips: s.allowed_ips,
            allowed_models: s.allowed_models,
            permissions: s.permissions,
            rate_limit: s.rate_limit.map(Into::into),
            tenant_ids: s.tenant_ids,
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
    #[schema(value_type = Option<i64>, nullable, minimum = 0, maximum = 1e15)]
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
    /// Only keys whose name contains this, in any case (at most 100 characters).
    pub q: Option<String>,
    /// The order: `created` (oldest first, the default), `newest`, `name` (A to Z, any case),
    /// `last_used` (most recently used first, never used last), `expires` (soonest first, no
    /// expiry last). A cursor continues the order it was returned for.
    pub sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of keys, in the order asked for (oldest first by default).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    /// Keys.
    pub data: Vec<KeyView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

pub use crate::services::api_keys::KeyAction;
pub use crate::services::api_keys::Scope;
use crate::services::api_keys::{self as service, KeyFilter, NewKey, StoredKey};

impl From<StoredKey> for KeyView {
    fn from(k: StoredKey) -> Self {
        KeyView::from_record(k.record, k.last_used_at)
    }
}

/// The key `public_id` if `scope` may see it, else 404.
pub async fn load_key(pool: &PgPool, public_id: &str, scope: Scope<'_>) -> ApiResult<KeyView> {
    Ok(service::load(pool, public_id, scope).await?.into())
}

/// A page of keys visible in `scope`.
pub async fn list_keys(pool: &PgPool, scope: Scope<'_>, query: ListKeysQuery) -> ApiResult<KeyPage> {
    let filter = KeyFilter {
        tenant_id: query.tenant_id,
        status: query.status,
        tag: query.tag,
        q: query.q,
        sort: query.sort,
        limit: query.limit,
        cursor: query.cursor,
    };
    let (keys, next_cursor) = service::list(pool, scope, filter).await?;
    Ok(KeyPage { data: keys.into_iter().map(Into::into).collect(), next_cursor })
}

/// Issues a key for `owner` with `role` from `body`.
pub async fn issue_key(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestMeta,
    owner: KeyOwner,
    role: KeyRole,
    body: IssueKeyRequest,
) -> ApiResult<IssuedKey> {
    let new = new_key(owner, role, body);
    // The answer (its key shown once) is kept with an idempotency claim before the command is
    // stored: a retry after a crash at any moment gets exactly it.
    let plan = async |issued: &[(GeneratedKey, StoredKey)]| {
        if let Some((generated, stored)) = issued.first() {
            let answer = IssuedKey { api_key: generated.full.clone(), key: stored.clone().into() };
            plan_answer(state, axum::http::StatusCode::CREATED, &answer).await?;
        }
        Ok(())
    };
    let (generated, stored) = service::issue(state, principal, ctx, new, plan).await?;
    Ok(IssuedKey { api_key: generated.full, key: stored.into() })
}

/// The key a request body asks for.
pub fn new_key(owner: KeyOwner, role: KeyRole, body: IssueKeyRequest) -> NewKey {
    let settings = KeySettings {
        quota_limit: body.quota_limit,
        quota_period: body.quota_period.map(Into::into),
        expires_at: body.expiration,
        allowed_ips: body.allowed_ips.unwrap_or_default(),
        allowed_models: body.allowed_models.unwrap_or_default(),
        permissions: body.permissions.unwrap_or_default(),
        tags: body.tags.unwrap_or_default(),
        rate_limit: body.rate_limit.map(Into::into),
        tenant_ids: body.tenant_ids.unwrap_or_default(),
    };
    NewKey { owner, role, name: body.name, settings }
}

/// Runs `action` on key `public_id` when `scope` may see it; returns the key after.
pub async fn act_on_key(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestMeta,
    public_id: &str,
    scope: Scope<'_>,
    action: KeyAction,
) -> ApiResult<KeyView> {
    Ok(service::act(state, principal, ctx, public_id, scope, action).await?.0.into())
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
    ctx: &RequestMeta,
    public_id: &str,
    scope: Scope<'_>,
    body: RotateKeyRequest,
) -> ApiResult<RotatedKey> {
    let action = KeyAction::Rotate { grace_seconds: body.grace_period_seconds.unwrap_or(0) };
    let (stored, fresh) = service::act(state, principal, ctx, public_id, scope, action).await?;
    let api_key = fresh.map(|g| g.full).ok_or_else(|| ApiError::internal(&"rotation returned no key"))?;
    Ok(RotatedKey { api_key, key: stored.into() })
}
