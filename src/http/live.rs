//! Live events for consoles: `GET /audit/events/stream` (the whole log) and `GET
//! /tenant/audit/events/stream` (one tenant's), as server-sent events fed by the event log —
//! the audit records of `/audit/events`, redacted the same way. Each event is `id: <position>`
//! and `data: <AuditItem>`; a client resumes with `?cursor=` (or `Last-Event-ID`). Appends are
//! serialised, so reading by position never skips an event that commits late.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::query::{fetch_page, AuditFilter};
use crate::auth::requires::{ReadAudit, ReadTenantAudit};
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::state::AppState;

/// How often the log is read for new events.
const POLL: Duration = Duration::from_millis(200);
/// A comment line is sent when nothing happened for this long (keeps proxies from cutting).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// One server-sent event of an audit stream (comment lines, `: …`, are keep-alives).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditStreamEvent {
    /// The record's position (send it back as `Last-Event-ID` to resume).
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    /// Always `audit`.
    #[schema(pattern = "^audit$")]
    pub event: String,
    /// The `AuditItem`, as JSON.
    pub data: String,
}

/// `?cursor=` of a stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Start after this position (default: the head, i.e. only new events).
    pub cursor: Option<i64>,
}

async fn head(state: &AppState) -> ApiResult<i64> {
    Ok(sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events").fetch_one(&state.pool).await?)
}

fn resume_from(headers: &HeaderMap, query: &StreamQuery) -> Option<i64> {
    query.cursor.or_else(|| {
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
    })
}

async fn stream(state: AppState, tenant_id: Option<String>, after: Option<i64>) -> ApiResult<Response> {
    let start = match after {
        Some(p) => p.max(0),
        None => head(&state).await?,
    };
    let filter = AuditFilter { tenant_id, ..AuditFilter::default() };
    let body =
        futures::stream::unfold((start, std::time::Instant::now(), true), move |(after, quiet, first)| {
            let (pool, filter) = (state.pool.clone(), filter.clone());
            async move {
                if first {
                    // Tell the client where it starts (and open the stream at once).
                    return Some((
                        Ok::<_, std::io::Error>(format!(": from {after}\n\n").into_bytes()),
                        (after, quiet, false),
                    ));
                }
                loop {
                    tokio::time::sleep(POLL).await;
                    match fetch_page(&pool, &filter, after, 100).await {
                        Ok(items) if !items.is_empty() => {
                            let last = items.last().map(|i| i.position).unwrap_or(after);
                            let mut chunk = Vec::new();
                            for item in &items {
                                chunk.extend_from_slice(
                                    format!("id: {}\nevent: audit\ndata: ", item.position).as_bytes(),
                                );
                                if serde_json::to_writer(&mut chunk, item).is_err() {
                                    continue;
                                }
                                chunk.extend_from_slice(b"\n\n");
                            }
                            return Some((Ok(chunk), (last, std::time::Instant::now(), false)));
                        }
                        Ok(_) if quiet.elapsed() >= KEEPALIVE => {
                            return Some((
                                Ok(b": keepalive\n\n".to_vec()),
                                (after, std::time::Instant::now(), false),
                            ));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "live stream ends: cannot read the log");
                            return None;
                        }
                    }
                }
            }
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header("X-Accel-Buffering", "no")
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(&e))
}

/// Live audit records of every tenant (server-sent events).
#[utoipa::path(get, path = "/audit/events/stream", tag = "audit",
    params(StreamQuery),
    security(("master_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = AuditStreamEvent, description = "`id: <position>`, `event: audit`, `data: <AuditItem>` per event; comments as keep-alives"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
    ))]
pub async fn audit_stream(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Response> {
    let after = resume_from(&headers, &query);
    stream(state, None, after).await
}

/// Live audit records of the caller's tenant (server-sent events).
#[utoipa::path(get, path = "/tenant/audit/events/stream", tag = "audit",
    params(StreamQuery),
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = AuditStreamEvent, description = "`id: <position>`, `event: audit`, `data: <AuditItem>` per event of the tenant"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
    ))]
pub async fn tenant_audit_stream(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantAudit>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Response> {
    let after = resume_from(&headers, &query);
    stream(state, Some(auth.tenant().to_string()), after).await
}
