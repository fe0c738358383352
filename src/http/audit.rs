//! The audit log over HTTP: `/audit/events` (super admin, `auditor`), `/tenant/audit/events`
//! (tenant admins, their tenant only), a streaming NDJSON export, and chain verification.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::export::ndjson_stream;
use crate::audit::query::{fetch_page_before, AuditOrder};
use crate::audit::{fetch_page, verify_chain, AuditFilter, AuditItem, ChainReport};
use crate::auth::requires::{ReadAudit, ReadTenantAudit};
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::http::AppState;
use crate::paging;

/// A page of audit records, oldest first (or newest first with `order=desc`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Records.
    pub data: Vec<AuditItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<i64>,
    /// The current names of the tenants, keys and sub-accounts the records name (by id; a
    /// tenant's page names only its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, String>,
}

async fn page(state: &AppState, filter: AuditFilter, scope: Option<&str>) -> ApiResult<AuditPage> {
    let limit = paging::page_size(filter.limit, 100, 1000)?;
    let (data, from) = match filter.order.unwrap_or_default() {
        AuditOrder::Asc => {
            let after = filter.cursor.unwrap_or(0).max(0);
            (fetch_page(&state.pool, &filter, after, limit).await?, after)
        }
        AuditOrder::Desc => {
            let before = filter.cursor.map(|c| c.max(0));
            (fetch_page_before(&state.pool, &filter, before, limit).await?, before.unwrap_or(0))
        }
    };
    let next_cursor = (data.len() as i64 == limit).then(|| data.last().map(|i| i.position).unwrap_or(from));
    let names = crate::audit::names::of(&state.pool, scope, &data).await?;
    Ok(AuditPage { data, next_cursor, names })
}

/// Audit records of all tenants.
#[utoipa::path(get, path = "/audit/events", tag = "audit",
    params(AuditFilter),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<axum::Json<AuditPage>> {
    Ok(axum::Json(page(&state, filter, None).await?))
}

/// Audit records of the caller's tenant.
#[utoipa::path(get, path = "/tenant/audit/events", tag = "audit",
    params(AuditFilter),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list_tenant_audit_events(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantAudit>,
    Query(mut filter): Query<AuditFilter>,
) -> ApiResult<axum::Json<AuditPage>> {
    filter.tenant_id = Some(auth.tenant().to_string());
    Ok(axum::Json(page(&state, filter, Some(auth.tenant())).await?))
}

/// Export audit records as NDJSON (one JSON object a line), streamed in constant memory.
#[utoipa::path(get, path = "/audit/events/export", tag = "audit",
    params(AuditFilter),
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, content_type = "application/x-ndjson", body = String, description = "One `AuditItem` per line"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn export_audit_events(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<Response> {
    let stream = ndjson_stream(state.pool.clone(), filter).map(|chunk| {
        chunk.map_err(|e| {
            tracing::error!(error = %e, "audit export aborted");
            std::io::Error::other("audit export aborted")
        })
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(&e))
}

/// Recompute the hash chain of the whole log and report the first break.
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    security(("master_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ChainReport, description = "`ok` false names the first broken position"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn verify_audit_chain(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
) -> ApiResult<axum::Json<ChainReport>> {
    let report = verify_chain(&state.pool, &|_, _| {}).await?;
    if let Some(b) = &report.first_break {
        tracing::error!(position = b.position, reason = b.reason, "audit chain broken");
    }
    Ok(axum::Json(report))
}
