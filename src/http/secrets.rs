//! `/tenant/secrets`: upstream credentials, sealed under the tenant's data key. Listings show
//! names only; values leave only through `reveal`, which is recorded in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokenhub_aggregates::secret::{is_secret_name, secret_id, SecretCommand};
use tokenhub_aggregates::tenant::TenantStatus;
use utoipa::{IntoParams, ToSchema};

use crate::auth::requires::{ManageSecrets, ReadSecrets, RevealSecrets};
use crate::auth::Principal;
use crate::commands::{execute, execute_retrying, CommandMetadata};
use crate::crypto::data_keys::{tenant_dek, DataKeyError, DEK_VERSION};
use crate::crypto::secret_aad;
use crate::http::authorized::Authorized;
use crate::http::code::Code;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query, RequestMeta};
use crate::http::idempotency::{plan_answer, planned_response};
use crate::state::AppState;

/// Largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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

fn bad_name() -> ApiError {
    ApiError::new(Code::InvalidSecretName, "secret names match [A-Z][A-Z0-9_]{0,127}")
}

fn not_found() -> ApiError {
    ApiError::new(Code::SecretNotFound, "secret not found")
}

fn data_key_error(e: DataKeyError) -> ApiError {
    match e {
        DataKeyError::Shredded => ApiError::new(
            Code::SecretShredded,
            "the tenant's data key was destroyed; its secrets cannot be read by anyone",
        ),
        other => ApiError::unavailable(&other),
    }
}

fn require_live_tenant(state: &AppState, tenant: &str) -> ApiResult<()> {
    match state.keys.tenant_status(tenant) {
        Some(TenantStatus::Deleted) => Err(ApiError::new(Code::TenantDeleted, "tenant is deleted")),
        _ => Ok(()),
    }
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
    let rows: Vec<SecretInfo> = sqlx::query_as(
        "SELECT name AS key, version, updated_at FROM secrets WHERE tenant_id = $1 AND NOT deleted ORDER BY name",
    )
    .bind(auth.tenant())
    .fetch_all(&state.pool)
    .await?;
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
    let tenant = auth.tenant().to_string();
    if !is_secret_name(&body.key) {
        return Err(bad_name());
    }
    if body.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::new(
            Code::SecretTooLarge,
            format!("values are at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    require_live_tenant(&state, &tenant)?;
    let current: Option<(i64, bool)> =
        sqlx::query_as("SELECT version, deleted FROM secrets WHERE tenant_id = $1 AND name = $2")
            .bind(&tenant)
            .bind(&body.key)
            .fetch_optional(&state.pool)
            .await?;
    if current.is_none_or(|(_, deleted)| deleted) {
        crate::services::caps::ensure_below(
            &state.pool,
            &tenant,
            "SELECT count(*) FROM secrets WHERE tenant_id = $1 AND NOT deleted",
            state.limits.max_secrets,
            Code::SecretLimitReached,
            |n| {
                format!("the tenant has {n} secrets, the most allowed (TENANT_MAX_SECRETS); delete one first")
            },
        )
        .await?;
    }
    let current = current.map(|(v, _)| v);
    let version = current.unwrap_or(0) + 1;
    let dek = tenant_dek(&state.pool, &state.keks, &tenant).await.map_err(data_key_error)?;
    let (nonce, ciphertext) = dek
        .seal(&secret_aad(&tenant, &body.key, version), body.value.as_bytes())
        .map_err(|e| ApiError::internal(&e))?;
    let command = SecretCommand::Store {
        tenant_id: tenant.clone(),
        name: body.key.clone(),
        version,
        ciphertext: B64.encode(ciphertext),
        nonce: B64.encode(nonce),
        dek_version: DEK_VERSION,
        at: OffsetDateTime::now_utc(),
    };
    // The answer is known before the command is stored: kept with an idempotency claim first,
    // so a retry after a crash at any moment gets exactly it.
    let answer = SecretAck { success: true, message: "Secret stored", version: Some(version) };
    let planned = plan_answer(&state, StatusCode::OK, &answer).await?;
    let meta = CommandMetadata::new(&auth.principal, &ctx, Some(&tenant));
    execute(&state.commands.secrets, &secret_id(&tenant, &body.key), command, meta).await?;
    state.readmodels.wait_for_head().await;
    tracing::info!(tenant_id = %tenant, secret = %body.key, version, "secret stored");
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
    if !is_secret_name(&key) {
        return Err(not_found());
    }
    let tenant = auth.tenant().to_string();
    let meta = CommandMetadata::new(&auth.principal, &ctx, Some(&tenant));
    execute(
        &state.commands.secrets,
        &secret_id(&tenant, &key),
        SecretCommand::Delete { at: OffsetDateTime::now_utc() },
        meta,
    )
    .await?;
    state.readmodels.wait_for_head().await;
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
    if !is_secret_name(&key) {
        return Err(not_found());
    }
    let tenant = auth.tenant().to_string();
    // A suspended tenant's secrets are not handed out, to anyone; a deleted tenant's are
    // crypto-shredded (410 `secret_shredded` below).
    if state.keys.tenant_status(&tenant) == Some(TenantStatus::Suspended) {
        return Err(ApiError::new(Code::TenantSuspended, "the tenant is suspended"));
    }
    // Platform keys (gateways) may reveal for many tenants: bounded per key.
    if let Principal::PlatformKey { public_id, .. } = &auth.principal {
        if let Err(retry) = state.throttles.reveal(public_id) {
            let e = ApiError::new(
                Code::RateLimited,
                format!("this platform key's secret reveals per minute are used up; retry in {retry} s"),
            );
            return Err(e.retry_after(retry));
        }
    }
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT version, nonce, ciphertext FROM secrets WHERE tenant_id = $1 AND name = $2 AND NOT deleted",
    )
    .bind(&tenant)
    .bind(&key)
    .fetch_optional(&state.pool)
    .await?;
    let (version, nonce, ciphertext) = row.ok_or_else(not_found)?;
    let dek = tenant_dek(&state.pool, &state.keks, &tenant).await.map_err(data_key_error)?;
    let decode = |s: &str| B64.decode(s).map_err(|e| ApiError::internal(&e));
    let value = dek
        .open(&secret_aad(&tenant, &key, version), &decode(&nonce)?, &decode(&ciphertext)?)
        .map_err(|e| ApiError::internal(&e))?;
    // The reveal is on the record before the value leaves. Reveals have no precondition but
    // the secret's existence, so a concurrent write (another reveal) is simply retried.
    let meta = CommandMetadata::new(&auth.principal, &ctx, Some(&tenant));
    let command = || SecretCommand::RecordReveal { at: OffsetDateTime::now_utc() };
    execute_retrying(&state.commands.secrets, &secret_id(&tenant, &key), command, meta).await?;
    let value = String::from_utf8(value).map_err(|e| ApiError::internal(&e))?;
    Ok(axum::Json(RevealedSecret { key, version, value }))
}
