//! Usage records: what a gateway reports (metadata only: zero data retention) and the
//! CloudEvent each becomes on the usage stream.
//!
//! ```json
//! {"specversion": "1.0", "id": "<idempotency id>", "source": "/tokenhub/tenants/ten_…/usage",
//!  "type": "tokenhub.usage.v1", "subject": "ten_…", "time": "<record timestamp>",
//!  "datacontenttype": "application/json",
//!  "data": {"tenant_id": "ten_…", "key_id": "…", "sub_account_id": "…", "user_id": "…",
//!           "model": "gpt-4o", "api_calls": 1, "prompt_tokens": 10, "completion_tokens": 5,
//!           "llm_tokens": 15, "bandwidth_bytes": 0, "storage_bytes": 0,
//!           "tags": {"customer_id": "acme"}, "received_at": "…"}}
//! ```
//! `tags` are the key's key-bound tags, set server-side; whatever tags a caller sends are
//! ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::key_format;
use crate::cache::KeyCache;
use crate::error::Code;

/// The CloudEvents `type` of a usage record.
pub const USAGE_EVENT_TYPE: &str = "tokenhub.usage.v1";

/// Most records in one `POST /v1/usage`.
pub const MAX_BATCH: usize = 1_000;

/// Largest value of one counter in one record.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// How far in the future a record's timestamp may be (clock skew).
pub const MAX_FUTURE: Duration = Duration::minutes(5);

/// One usage record as a gateway reports it. Only these metadata fields are accepted; a
/// record carrying anything else (a prompt, a response) is refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecordInput {
    /// Idempotency id, unique per tenant: 1 to 128 of `[A-Za-z0-9._:-]`. A record re-posted
    /// with the same id is counted once.
    #[schema(example = "req_01J9Z6")]
    pub id: String,
    /// Public id of the key the usage was made with (never the full key).
    #[serde(default)]
    pub key: Option<String>,
    /// The tenant, for usage by an end-user without a key (then `userId` is required).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The end-user.
    #[serde(default, rename = "userId", alias = "user_id")]
    pub user_id: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// API calls.
    #[serde(default)]
    pub api_calls: u64,
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Bytes transferred.
    #[serde(default)]
    pub bandwidth_bytes: u64,
    /// Bytes stored.
    #[serde(default)]
    pub storage_bytes: u64,
    /// When the usage happened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: OffsetDateTime,
    /// Ignored: usage events carry the key's key-bound tags, never caller-sent ones.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The `data` of a usage CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageData {
    /// Tenant.
    pub tenant_id: String,
    /// Key public id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The key's sub-account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_account_id: Option<String>,
    /// End-user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// API calls.
    pub api_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Prompt plus completion tokens.
    pub llm_tokens: u64,
    /// Bytes transferred.
    pub bandwidth_bytes: u64,
    /// Bytes stored.
    pub storage_bytes: u64,
    /// The key's key-bound tags.
    pub tags: BTreeMap<String, String>,
    /// The answer's HTTP status, for a request the gateway forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long the gateway's request took, in milliseconds (to its last byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// True when the upstream reported no usage: the token counts are unknown (pending a
    /// correction), not zero.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub usage_unknown: bool,
    /// When TokenHub accepted the record.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// A usage record as a CloudEvent 1.0 (structured JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// `1.0`.
    pub specversion: String,
    /// The idempotency id.
    pub id: String,
    /// `/tokenhub/tenants/<tenant>/usage`.
    pub source: String,
    /// `tokenhub.usage.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The tenant.
    pub subject: String,
    /// When the usage happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `application/json`.
    pub datacontenttype: String,
    /// The record.
    pub data: UsageData,
}

impl UsageEvent {
    /// The JetStream `Nats-Msg-Id`: tenant and idempotency id, so that two tenants' ids never
    /// suppress each other.
    pub fn message_id(&self) -> String {
        format!("{}:{}", self.data.tenant_id, self.id)
    }
}

/// A record refused by validation: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// `records[3].key`.
    pub path: String,
    /// Stable code.
    pub code: Code,
    /// What is wrong.
    pub message: String,
}

/// 1 to `max` bytes without control characters (models, end-user ids).
pub fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// Validates record `index` and resolves its key against the cache: tenant, sub-account and
/// key-bound tags come from the key, never from the caller.
pub fn prepare(
    index: usize,
    input: UsageRecordInput,
    cache: &KeyCache,
    now: OffsetDateTime,
    max_age: Duration,
) -> Result<UsageEvent, RecordError> {
    let fail = |field: &str, code: Code, message: String| RecordError {
        path: format!("records[{index}].{field}"),
        code,
        message,
    };
    if !tokenhub_aggregates::ids::is_token(&input.id, 128) {
        return Err(fail("id", Code::InvalidUsageRecord, "must be 1 to 128 of [A-Za-z0-9._:-]".into()));
    }
    for (field, value) in [
        ("api_calls", input.api_calls),
        ("prompt_tokens", input.prompt_tokens),
        ("completion_tokens", input.completion_tokens),
        ("bandwidth_bytes", input.bandwidth_bytes),
        ("storage_bytes", input.storage_bytes),
    ] {
        if value > MAX_AMOUNT {
            return Err(fail(field, Code::InvalidUsageRecord, format!("must be at most {MAX_AMOUNT}")));
        }
    }
    if input.timestamp > now + MAX_FUTURE || input.timestamp < now - max_age {
        return Err(fail(
            "timestamp",
            Code::InvalidUsageRecord,
            format!("must be within the last {} days and at most 5 minutes ahead", max_age.whole_days()),
        ));
    }
    if let Some(model) = &input.model {
        if !printable(model, 128) {
            return Err(fail(
                "model",
                Code::InvalidUsageRecord,
                "must be 1 to 128 printable characters".into(),
            ));
        }
    }
    if let Some(user) = &input.user_id {
        if !printable(user, 128) {
            return Err(fail(
                "userId",
                Code::InvalidUsageRecord,
                "must be 1 to 128 printable characters".into(),
            ));
        }
    }
    let (tenant_id, key_id, sub_account_id, tags) = match &input.key {
        Some(key) if key.starts_with(key_format::KEY_PREFIX) => {
            return Err(fail(
                "key",
                Code::FullKeyNotAccepted,
                "send the key's public id, never the full key".into(),
            ))
        }
        Some(public_id) => {
            let cached =
                cache.get(public_id).ok_or_else(|| fail("key", Code::UnknownKey, "no such key".into()))?;
            let Some(tenant) = cached.tenant_id.as_deref() else {
                return Err(fail("key", Code::UnknownKey, "platform keys have no usage".into()));
            };
            if input.tenant_id.as_deref().is_some_and(|t| t != tenant) {
                return Err(fail(
                    "tenant_id",
                    Code::RecordTenantMismatch,
                    "the key belongs to another tenant".into(),
                ));
            }
            let tags = cached.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            (
                tenant.to_string(),
                Some(public_id.clone()),
                cached.sub_account_id.as_deref().map(str::to_string),
                tags,
            )
        }
        None => {
            let Some(tenant) = input.tenant_id.clone() else {
                return Err(fail(
                    "key",
                    Code::InvalidUsageRecord,
                    "give a key, or a tenant_id and a userId".into(),
                ));
            };
            if input.user_id.is_none() {
                return Err(fail("userId", Code::InvalidUsageRecord, "required when no key is given".into()));
            }
            if !tokenhub_aggregates::ids::is_tenant_id(&tenant) || cache.tenant_status(&tenant).is_none() {
                return Err(fail("tenant_id", Code::UnknownTenant, "no such tenant".into()));
            }
            (tenant, None, None, BTreeMap::new())
        }
    };
    let data = UsageData {
        tenant_id: tenant_id.clone(),
        key_id,
        sub_account_id,
        user_id: input.user_id,
        model: input.model,
        api_calls: input.api_calls,
        prompt_tokens: input.prompt_tokens,
        completion_tokens: input.completion_tokens,
        llm_tokens: input.prompt_tokens + input.completion_tokens,
        bandwidth_bytes: input.bandwidth_bytes,
        storage_bytes: input.storage_bytes,
        tags,
        status: None,
        latency_ms: None,
        usage_unknown: false,
        received_at: now,
    };
    Ok(UsageEvent::new(input.id, input.timestamp, data))
}

impl UsageEvent {
    /// Counts this record's tokens in `cache` at once (its key's, sub-account's and tenant's
    /// totals), as an accepted record is.
    pub fn count_in(&self, cache: &KeyCache, now: OffsetDateTime) {
        let d = &self.data;
        cache.add_ingested(
            &d.tenant_id,
            d.key_id.as_deref(),
            d.sub_account_id.as_deref(),
            d.llm_tokens,
            self.time,
            now,
        );
    }

    /// The CloudEvent of record `id` (unique per tenant) of usage that happened at `time`.
    pub fn new(id: String, time: OffsetDateTime, data: UsageData) -> Self {
        let tenant_id = data.tenant_id.clone();
        Self {
            specversion: "1.0".into(),
            id,
            source: format!("/tokenhub/tenants/{tenant_id}/usage"),
            event_type: USAGE_EVENT_TYPE.into(),
            subject: tenant_id,
            time,
            datacontenttype: "application/json".into(),
            data,
        }
    }
}
