//! `POST /admin/api-keys:batch`: up to 1,000 tenant keys in one request and one transaction
//! (all are issued, or none is), for imports.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokenhub_aggregates::api_key::KeyOwner;
use utoipa::ToSchema;

use crate::auth::key_format::GeneratedKey;
use crate::auth::requires::ManageApiKeys;
use crate::error::Code;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, RequestMeta};
use crate::http::idempotency::plan_answer;
use crate::http::keys::{new_key, IssueKeyRequest, IssuedKey};
use crate::http::AppState;
use crate::services::api_keys as service;
use crate::services::api_keys::StoredKey;

/// Keys in one batch at most.
pub const MAX_KEYS: usize = 1_000;

/// Body of a batch issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBatchRequest {
    /// 1 to 1,000 keys, each with its `tenant_id` (the request body is at most 256 KiB).
    pub keys: Vec<IssueKeyRequest>,
}

/// Every key of the batch, in the request's order; each `api_key` is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedBatch {
    /// The keys.
    pub keys: Vec<IssuedKey>,
}

/// Issue up to 1,000 keys at once, all or none: one refusal (named `keys[n]: …` in the
/// message) refuses the batch and nothing is stored.
#[utoipa::path(post, path = "/admin/api-keys:batch", tag = "admin-api-keys",
    request_body = IssueBatchRequest,
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 201, body = IssuedBatch, description = "Issued; every `api_key` is shown only here"),
        (status = 400, body = ErrorBody, description = "`invalid_json`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`tenant_not_found`"),
        (status = 409, body = ErrorBody, description = "`tenant_deleted`, `api_key_limit_reached`, `aggregate_conflict`"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`"),
        (status = 422, body = ErrorBody, description = "`empty_batch`, `batch_too_large`, `invalid_request`, `invalid_cidr`, `expiry_in_past`, `invalid_quota`, `reserved_tag_key`, `invalid_tag`, `invalid_list_item`, `too_many_entries`, `invalid_rate_limit`, `invalid_key_name`, `unknown_sub_account`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_issue_batch(
    State(state): State<AppState>,
    auth: Authorized<ManageApiKeys>,
    ctx: RequestMeta,
    Json(body): Json<IssueBatchRequest>,
) -> ApiResult<(StatusCode, axum::Json<IssuedBatch>)> {
    if body.keys.is_empty() {
        return Err(ApiError::new(Code::EmptyBatch, "keys must hold at least one key"));
    }
    if body.keys.len() > MAX_KEYS {
        return Err(ApiError::new(Code::BatchTooLarge, format!("at most {MAX_KEYS} keys per batch")));
    }
    let mut batch = Vec::with_capacity(body.keys.len());
    for (n, key) in body.keys.into_iter().enumerate() {
        let Some(tenant_id) = key.tenant_id.clone() else {
            return Err(ApiError::new(Code::InvalidRequest, format!("keys[{n}]: tenant_id is required")));
        };
        let owner = KeyOwner::Tenant { tenant_id, sub_account_id: key.sub_account_id.clone() };
        let role = key.role.unwrap_or_default().into();
        batch.push(new_key(owner, role, key));
    }
    let answer_of = |issued: &[(GeneratedKey, StoredKey)]| IssuedBatch {
        keys: issued
            .iter()
            .map(|(g, stored)| IssuedKey { api_key: g.full.clone(), key: stored.clone().into() })
            .collect(),
    };
    // Kept with an idempotency claim before the keys are stored (see `keys::issue_key`).
    let plan = async |issued: &[(GeneratedKey, StoredKey)]| {
        plan_answer(&state, StatusCode::CREATED, &answer_of(issued)).await.map(drop)
    };
    let issued = service::issue_many(&state, &auth.principal, &ctx, batch, plan).await?;
    Ok((StatusCode::CREATED, axum::Json(answer_of(&issued))))
}
