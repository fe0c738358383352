//! `/tenant/secrets`: upstream credentials, sealed under the tenant's data key. Listings show
//! names only; values leave only through `reveal`, which is recorded in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ManageSecrets, ReadSecrets, RevealSecrets};
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::idempotency::{plan_answer, planned_response};
use crate::http::AppState;
use crate::services::secrets as service;

/// Body of `POST /tenant/secrets`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSecretRequest {
    /// Name, `[A-Z][A-Z0-9_]{0,127}`, e.g. `STRIPE_SECRET_KEY`.
    #[schema(example = "STRIPE_SECRET_KEY")]
    pub key: String,
    /// The value (at most 64 KiB); never returned by listings, never logged.
    pub value: String,
}

/// Answer of a store or delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretAck {
    /// Always true.
    pub success: bool,
    /// `Secret stored` or `Secret deleted`.
    pub message: &'static str,
    /// Version stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// Query of the listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListSecretsQuery {
    /// Add version and update time of each secret.
    pub detail: Option<bool>,
}

/// One secret's metadata.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SecretInfo {
    /// Name.
    pub key: String,
    /// Latest version.
    pub version: i64,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// The tenant's secrets: names only, or with `detail=true` their metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    /// Names.
    pub secrets: Vec<String>,
    /// Version and update time per secret (with `detail=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Vec<SecretInfo>>,
}

/// A revealed value.
#[derive(Serialize, ToSchema)]
pub struct RevealedSecret {
    /// Name.
    pub key: String,
    /// Version.
    pub version: i64,
    /// The value.
    pub value: String,
}

/// List the tenant's secrets (names only).
#[utoipa::path(get, path = "/tenant/secrets", tag = "tenant-secrets",
    params(ListSecretsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SecretList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_secrets(
    State(state): State<AppState>,
    auth: Authorized<ReadSecrets>,
    Query(query): Query<ListSecretsQuery>,
) -> ApiResult<axum::Json<SecretList>> {
    let rows: Vec<SecretInfo> = service::list(&state, auth.tenant())
        .await?
        .into_iter()
        .map(|m| SecretInfo { key: m.name, version: m.version, updated_at: m.updated_at })
        .collect();
    let secrets = rows.iter().map(|r| r.key.clone()).collect();
    Ok(axum::Json(SecretList { secrets, detail: query.detail.unwrap_or(false).then_some(rows) }))
}

/// Store a secret (a new version when the name exists).
#[utoipa::path(post, path = "/tenant/secrets", tag = "tenant-secrets",
    request_body = StoreSecretRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SecretAck),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`aggregate_conflict` (a concurrent store), `tenant_deleted`, `secret_limit_reached`"),
        (status = 410, body = ErrorBody, description = "`secret_shredded`"),
        (status = 422, body = ErrorBody, description = "`invalid_secret_name`, `secret_too_large`, `invalid_request`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn store_secret(
    State(state): State<AppState>,
    auth: Authorized<ManageSecrets>,
    ctx: RequestMeta,
    Json(body): Json<StoreSecretRequest>,
) -> ApiResult<Response> {
    // The answer is known before the command is stored: kept with an idempotency claim first,
    // so a retry after a crash at any moment gets exactly it.
    let mut planned = None;
    service::store(&state, &auth.principal, &ctx, auth.tenant(), &body.key, &body.value, async |version| {
        let answer = SecretAck { success: true, message: "Secret stored", version: Some(version) };
        planned = Some(plan_answer(&state, StatusCode::OK, &answer).await?);
        Ok(())
    })
    .await?;
    let planned = planned.ok_or_else(|| ApiError::internal(&"no answer planned"))?;
    Ok(planned_response(StatusCode::OK, planned))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/tenant/secrets/{key}", tag = "tenant-secrets",
    params(("key" = String, Path, description = "Secret name")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SecretAck),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`secret_not_found`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn delete_secret(
    State(state): State<AppState>,
    auth: Authorized<ManageSecrets>,
    ctx: RequestMeta,
    Path(key): Path<String>,
) -> ApiResult<axum::Json<SecretAck>> {
    service::delete(&state, &auth.principal, &ctx, auth.tenant(), &key).await?;
    Ok(axum::Json(SecretAck { success: true, message: "Secret deleted", version: None }))
}

/// Reveal a secret's value (tenant admins; gateways acting for the tenant in `X-Tenant-ID`).
/// Every reveal is recorded as a `secret.revealed` event (who, which version; never the value).
#[utoipa::path(post, path = "/tenant/secrets/{key}/reveal", tag = "tenant-secrets",
    params(("key" = String, Path, description = "Secret name")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = RevealedSecret),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`forbidden`, `tenant_suspended`, `tenant_not_allowed`"),
        (status = 404, body = ErrorBody, description = "`secret_not_found`"),
        (status = 410, body = ErrorBody, description = "`secret_shredded`: the tenant's data key was destroyed"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: a platform key's reveals per minute (`PLATFORM_REVEALS_PER_MINUTE`)"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn reveal_secret(
    State(state): State<AppState>,
    auth: Authorized<RevealSecrets>,
    ctx: RequestMeta,
    Path(key): Path<String>,
) -> ApiResult<axum::Json<RevealedSecret>> {
    let (version, value) = service::reveal(&state, &auth.principal, &ctx, auth.tenant(), &key).await?;
    Ok(axum::Json(RevealedSecret { key, version, value }))
}
