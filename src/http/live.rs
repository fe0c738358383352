//! Live events for consoles: `GET /audit/events/stream` (the whole log) and `GET
//! /tenant/audit/events/stream` (one tenant's), as server-sent events — the audit records of
//! `/audit/events`, redacted the same way. Each event is `id: <position>` and `data:
//! <AuditItem>`; a client resumes with `?cursor=` (or `Last-Event-ID`).
//!
//! Streams are fed by the server's one reader of the log (`services::live`), not a query
//! each; a stream behind reads the log itself until it catches up. Every stream is held to
//! the one policy for as long as it is open: whenever the facts may have changed (the log
//! moved, sessions were read) and before every chunk, its admission is checked again
//! ([`Admission::holds`]); once it no longer holds — a key revoked, disabled, expired or
//! rotated away, a session ended, a person disabled or lowered, a tenant suspended or
//! deleted, an allowlist that no longer includes the client — the stream ends. Streams are
//! capped per principal and per server (429 `too_many_streams`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::IntoParams;

use crate::audit::query::{fetch_page, AuditFilter, AuditItem};
use crate::auth::requires::{ReadAudit, ReadTenantAudit};
use crate::auth::Action;
use crate::error::Code;
use crate::http::admission::Admission;
use crate::http::authorized::Authorized;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::http::AppState;
use crate::services::live::{StreamSlot, TooMany};

/// A comment line is sent when nothing happened for this long (keeps proxies from cutting).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Records read per query while a stream catches up from its cursor.
const CATCH_UP_PAGE: i64 = 100;

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

fn resume_from(headers: &HeaderMap, query: &StreamQuery) -> ApiResult<Option<i64>> {
    if query.cursor.is_some_and(|c| c < 0) {
        return Err(ApiError::new(Code::InvalidQuery, "cursor must be a position, 0 or more"));
    }
    Ok(query.cursor.or_else(|| {
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
    }))
}

/// What one stream delivers, and on what terms.
struct Feed {
    state: AppState,
    admission: Admission,
    action: Action,
    tenant_id: Option<String>,
    /// Held for the stream's life: its place under the caps.
    _slot: StreamSlot,
}

impl Feed {
    fn admitted(&self) -> bool {
        let sessions = self.state.live.sessions();
        self.admission.holds(&self.state, self.action, self.tenant_id.as_deref(), &sessions)
    }

    /// The SSE chunk of the records after `after` that this stream may see; the new `after`.
    fn chunk(&self, items: &[AuditItem], after: i64) -> (Vec<u8>, i64) {
        let mut chunk = Vec::new();
        let mut last = after;
        for item in items.iter().filter(|i| i.position > after) {
            last = item.position;
            if self.tenant_id.as_ref().is_some_and(|t| item.tenant_id.as_ref() != Some(t)) {
                continue;
            }
            let mut line = format!("id: {}\nevent: audit\ndata: ", item.position).into_bytes();
            if serde_json::to_writer(&mut line, item).is_ok() {
                chunk.extend_from_slice(&line);
                chunk.extend_from_slice(b"\n\n");
            }
        }
        (chunk, last)
    }

    /// Reads the log from `after` up to `to` (a stream resuming, or one that fell behind),
    /// sending what it may see; the position reached.
    async fn catch_up(&self, out: &mpsc::Sender<Vec<u8>>, mut after: i64, to: i64) -> Option<i64> {
        let filter = AuditFilter { tenant_id: self.tenant_id.clone(), ..AuditFilter::default() };
        while after < to {
            let items = match fetch_page(&self.state.pool, &filter, after, CATCH_UP_PAGE).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "live stream ends: cannot read the log");
                    return None;
                }
            };
            let Some(last) = items.last().map(|i| i.position) else { break };
            let (chunk, _) = self.chunk(&items, after);
            after = last;
            if !self.admitted() || (!chunk.is_empty() && out.send(chunk).await.is_err()) {
                return None;
            }
        }
        Some(after.max(to))
    }

    /// Runs the stream until its admission no longer holds, the client leaves or the server
    /// stops.
    async fn run(self, out: mpsc::Sender<Vec<u8>>, start: Option<i64>) {
        let hub = Arc::clone(&self.state.live);
        let closing = hub.closing();
        let mut facts = hub.facts();
        let (mut items, head) = hub.subscribe();
        let mut after = start.map(|p| p.max(0)).unwrap_or(head);
        if out.send(format!(": from {after}\n\n").into_bytes()).await.is_err() {
            return;
        }
        match self.catch_up(&out, after, head).await {
            Some(reached) => after = reached,
            None => return,
        }
        let mut quiet = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = closing.cancelled() => return,
                _ = out.closed() => return,
                changed = facts.changed() => {
                    if changed.is_err() || !self.admitted() { return }
                }
                batch = items.recv() => match batch {
                    Ok(batch) => {
                        if !self.admitted() { return }
                        let (chunk, last) = self.chunk(&batch, after);
                        after = last;
                        if !chunk.is_empty() {
                            if out.send(chunk).await.is_err() { return }
                            quiet = tokio::time::Instant::now();
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the shared reader: read the log itself up to its head.
                        match self.catch_up(&out, after, hub.head()).await {
                            Some(reached) => after = reached,
                            None => return,
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(quiet + KEEPALIVE) => {
                    // Time-bound facts (a key's expiry, a session's lifetime) are checked here
                    // too, at the latest.
                    if !self.admitted() || out.send(b": keepalive\n\n".to_vec()).await.is_err() { return }
                    quiet = tokio::time::Instant::now();
                }
            }
        }
    }
}

async fn stream(
    state: AppState,
    admission: Admission,
    action: Action,
    tenant_id: Option<String>,
    after: Option<i64>,
) -> ApiResult<Response> {
    let session = match (&admission.credential, &admission.person) {
        (crate::http::admission::Credential::Session(id), Some(person)) => Some((id.clone(), person.clone())),
        _ => None,
    };
    let slot = state.live.open(admission.who.clone(), session).map_err(|too_many| {
        let message = match too_many {
            TooMany::PerPrincipal(n) => format!("this principal has {n} live streams open; close one first"),
            TooMany::PerServer(n) => format!("this server has {n} live streams open; retry later"),
        };
        ApiError::new(Code::TooManyStreams, message).retry_after(5)
    })?;
    let feed = Feed { state, admission, action, tenant_id, _slot: slot };
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(feed.run(tx, after));
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok::<_, std::io::Error>)));
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
        (status = 429, body = ErrorBody, description = "`too_many_streams` (`LIVE_STREAMS_PER_PRINCIPAL`, `LIVE_STREAMS_MAX`), `rate_limited`"),
    ))]
pub async fn audit_stream(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
    admission: Admission,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Response> {
    let after = resume_from(&headers, &query)?;
    stream(state, admission, Action::ReadAudit, None, after).await
}

/// Live audit records of the caller's tenant (server-sent events).
#[utoipa::path(get, path = "/tenant/audit/events/stream", tag = "audit",
    params(StreamQuery),
    security(("bearer" = []), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = AuditStreamEvent, description = "`id: <position>`, `event: audit`, `data: <AuditItem>` per event of the tenant"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_query`"),
        (status = 429, body = ErrorBody, description = "`too_many_streams` (`LIVE_STREAMS_PER_PRINCIPAL`, `LIVE_STREAMS_MAX`), `rate_limited`"),
    ))]
pub async fn tenant_audit_stream(
    State(state): State<AppState>,
    auth: Authorized<ReadTenantAudit>,
    admission: Admission,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Response> {
    let after = resume_from(&headers, &query)?;
    stream(state, admission, Action::ReadTenantAudit, Some(auth.tenant().to_string()), after).await
}
