//! `POST /v1/keys/verify`: the gateway's hot path. Answered from the in-memory key cache:
//! no database or NATS round trip.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::tenant::LimitPeriod;
use utoipa::ToSchema;

use crate::auth::requires::VerifyKeys;
use crate::cache::caught_up::CaughtUp;
use crate::cache::verify::merge_tags;
use crate::cache::{VerifyCode, VerifyInput};
use crate::calendar::window_end;
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Json;
use crate::http::AppState;
use crate::time_fmt::rfc3339;

/// What the gateway asks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key the client presented.
    pub key: String,
    /// The client's IP address; required when the key has an IP allowlist.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    pub ip: Option<String>,
    /// The model requested; checked against the key's model list when given.
    #[serde(default)]
    pub model: Option<String>,
    /// Client-supplied tags, merged under the key-bound ones.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

// It borrows from the cached key and the request, so answering allocates little.
/// The answer: always 200 for a well-formed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    /// True only for `VALID`.
    pub valid: bool,
    /// `VALID`, `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`, `EXPIRED`, `IP_NOT_ALLOWED`,
    /// `MODEL_NOT_ALLOWED`, `TENANT_SUSPENDED`, `TENANT_DELETED`, `SUB_ACCOUNT_DISABLED`,
    /// `SUB_ACCOUNT_DELETED`, `QUOTA_EXCEEDED`, `RATE_LIMITED`.
    #[schema(example = "VALID")]
    pub code: &'static str,
    /// Public id of the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub public_id: Option<&'a str>,
    /// Its tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<&'a str>,
    /// Its sub-account.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sub_account_id: Option<&'a str>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub name: Option<&'a str>,
    /// Its role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The role of its sub-account.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sub_account_role: Option<&'a str>,
    /// Its effective permissions: its own, narrowed to its sub-account's.
    pub permissions: Vec<String>,
    /// Its model list (empty = any).
    #[schema(value_type = Vec<String>)]
    pub allowed_models: Vec<&'a str>,
    /// Its expiry.
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// Client tags merged with the key-bound tags: a key-bound tag wins over a client tag of the
    /// same name and also appears as `tokenhub.<name>`, which clients can never set.
    #[schema(value_type = BTreeMap<String, String>)]
    pub tags: BTreeMap<Cow<'a, str>, &'a str>,
    /// The tightest of the key's, its sub-account's and its tenant's monthly LLM-token quotas,
    /// when any applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaView>,
    /// With `RATE_LIMITED`: when the key may be used again (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub rate_limit_reset: Option<String>,
}

/// Where a quota stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    /// `key`, `sub_account` or `tenant`.
    pub scope: &'static str,
    /// LLM tokens allowed.
    pub limit: i64,
    /// LLM tokens used.
    pub used: i64,
    /// Left, never below 0.
    pub remaining: i64,
    /// `day` or `month` for a periodic quota (UTC calendar windows); absent = lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "month")]
    pub period: Option<&'static str>,
    /// When a periodic quota's window ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resets_at: Option<String>,
}

/// Counts a verdict in `tokenhub_verifications_total{code}`. The counters are looked up once
/// (the recorder is installed at start, before the first request): a labelled `counter!`
/// hashes its key into the registry on every call, which the hot path does not need.
fn count_verification(code: VerifyCode) {
    static COUNTERS: OnceLock<[metrics::Counter; VerifyCode::ALL.len()]> = OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        VerifyCode::ALL.map(|c| metrics::counter!("tokenhub_verifications_total", "code" => c.as_str()))
    });
    counters[code as usize].increment(1);
}

/// Verify a key for a gateway.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "verify",
    request_body = VerifyRequest,
    security(("bearer" = []), ("api_key" = []), ("master_key" = [])),
    responses(
        (status = 200, body = VerifyResponse, description = "The verdict (also for invalid keys)"),
        (status = 400, body = ErrorBody, description = "`invalid_json`"),
        (status = 401, body = ErrorBody, description = "The caller's own credentials are missing or wrong"),
        (status = 403, body = ErrorBody, description = "The caller is not a gateway (`forbidden`), or is bound to other tenants than the key's (`tenant_not_allowed`)"),
        (status = 422, body = ErrorBody, description = "`invalid_request` (e.g. `ip` not an address)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn verify_key(
    State(state): State<AppState>,
    auth: Authorized<VerifyKeys>,
    Json(body): Json<VerifyRequest>,
) -> ApiResult<Response> {
    let ip = match body.ip.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<IpAddr>()
                .map_err(|_| ApiError::new(Code::InvalidRequest, "ip must be an IPv4 or IPv6 address"))?,
        ),
    };
    let input = VerifyInput { key: &body.key, ip, model: body.model.as_deref() };
    let now = OffsetDateTime::now_utc();
    let mut verdict = state.keys.verify_counted(&state.hasher, input, now).await;
    // `NOT_FOUND` only once this instance holds the log as of the request (a key issued on
    // another instance a moment ago is known here first).
    if verdict.code == VerifyCode::NotFound && state.keys.caught_up(&state.pool).await == CaughtUp::Yes {
        verdict = state.keys.verify_counted(&state.hasher, input, now).await;
    }
    // A gateway bound to tenants verifies only their keys.
    if let Some(tenant) = verdict.key.as_ref().and_then(|k| k.tenant_id.as_deref()) {
        auth.principal.may_act_for(tenant)?;
    }
    count_verification(verdict.code);
    if verdict.code == VerifyCode::RateLimited {
        if let Some(key) = &verdict.key {
            if let Some(tenant) = key.tenant_id.as_deref() {
                state.rate_limit_notices.exceeded(&key.public_id, tenant, now);
            }
        }
    }
    let permissions = verdict.effective_permissions();
    let sub_account_role = verdict.sub_account.as_deref().map(|s| s.role.as_str());
    let answer = match verdict.key.as_deref() {
        None => VerifyResponse {
            valid: false,
            code: verdict.code.as_str(),
            public_id: None,
            tenant_id: None,
            sub_account_id: None,
            name: None,
            role: None,
            sub_account_role: None,
            permissions: Vec::new(),
            allowed_models: Vec::new(),
            expires_at: None,
            tags: BTreeMap::new(),
            quota: None,
            rate_limit_reset: None,
        },
        Some(key) => VerifyResponse {
            valid: verdict.code == VerifyCode::Valid,
            code: verdict.code.as_str(),
            public_id: Some(&key.public_id),
            tenant_id: key.tenant_id.as_deref(),
            sub_account_id: key.sub_account_id.as_deref(),
            name: Some(&key.name),
            role: Some(key.role.as_str()),
            sub_account_role,
            permissions,
            allowed_models: key.allowed_models.iter().map(|m| &**m).collect(),
            expires_at: key.expires_at,
            tags: merge_tags(body.tags.as_ref(), &key.tags),
            quota: verdict.quota.map(|q| QuotaView {
                scope: q.scope.as_str(),
                limit: q.limit,
                used: q.used,
                remaining: q.remaining,
                period: q.period.map(|p| p.as_str()),
                resets_at: q.period.map(|p| rfc3339(window_end(p.into(), now))),
            }),
            rate_limit_reset: (verdict.code == VerifyCode::RateLimited)
                .then(|| rfc3339(window_end(LimitPeriod::Minute, now))),
        },
    };
    // Turned into the response here, while the borrowed answer lives.
    Ok(axum::Json(answer).into_response())
}
