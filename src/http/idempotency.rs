//! `Idempotency-Key` on the create routes ([`CREATES`]): a retry with the same key and the
//! same request answers the first answer exactly (a key shown once included); the same key
//! with another request is 422 `idempotency_key_mismatch`; a retry while the first runs waits
//! for it (up to [`WAIT`]), then 409 `idempotency_key_in_use`.
//!
//! Keys are scoped to the principal and the path. The answer is sealed under the KEK before
//! it is stored (see [`crate::store::idempotency`] for the records and the commit marker).

use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::Code;
use crate::http::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::store::idempotency::{self, Claim, SealedAnswer};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// Set on an answer replayed from an earlier request.
pub const REPLAYED: &str = "idempotent-replayed";

/// The routes that accept the header (POST).
pub const CREATES: &[&str] = &[
    "/admin/tenants",
    "/admin/api-keys",
    "/admin/platform-keys",
    "/tenant/api-keys",
    "/tenant/sub-accounts",
    "/tenant/rbac/roles",
    "/tenant/secrets",
];

/// Longest wait for a first request still running.
pub const WAIT: Duration = Duration::from_secs(10);

/// Answer headers kept with the answer.
const KEPT_HEADERS: &[&str] = &["content-type", "location", "etag", "x-config-version"];

#[derive(Serialize, Deserialize)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn aad(scope: &[u8; 32]) -> Vec<u8> {
    format!("tokenhub:idempotency:{}", crate::crypto::hex(scope)).into_bytes()
}

/// The middleware: passes through every request but a create carrying the header.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Most requests carry no key: look at the header before the route.
    let Some(key) = request.headers().get(HEADER).cloned() else { return next.run(request).await };
    let applies = request.method() == Method::POST
        && request.extensions().get::<MatchedPath>().is_some_and(|p| CREATES.contains(&p.as_str()));
    if !applies {
        return next.run(request).await;
    }
    let Some(key) = key.to_str().ok().filter(|k| valid_key(k)).map(str::to_string) else {
        return ApiError::new(
            Code::InvalidIdempotencyKey,
            "Idempotency-Key is 1 to 255 visible ASCII characters",
        )
        .into_response();
    };
    let (mut parts, body) = request.into_parts();
    // Unauthenticated requests are answered by the handler and never claim a key.
    let Ok(principal) = Principal::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let body = match to_bytes(body, crate::http::MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return ApiError::new(Code::PayloadTooLarge, "request body is too large").into_response(),
    };
    // Scoped to the credential: a person by their id (several people may share a role's
    // principal, e.g. super admins), a key by its public id.
    let (kind, id) = match parts.extensions.get::<crate::http::authenticate::SessionUser>() {
        Some(session) => ("user", session.user.user_id.clone()),
        None => principal.actor(),
    };
    let scope = digest(&[b"v1", kind.as_bytes(), id.as_bytes(), parts.uri.path().as_bytes(), key.as_bytes()]);
    let tenant = parts.headers.get("x-tenant-id").map(|v| v.as_bytes()).unwrap_or_default();
    let query = parts.uri.query().unwrap_or_default();
    let fingerprint = digest(&[tenant, query.as_bytes(), &body]);
    let lease = state.limits.request_timeout + Duration::from_secs(5);

    let started = tokio::time::Instant::now();
    loop {
        let claim = match idempotency::claim(&state.pool, &scope, &fingerprint, lease).await {
            Ok(claim) => claim,
            Err(e) => return ApiError::from(e).into_response(),
        };
        match claim {
            Claim::Owned => return run_owned(&state, scope, parts, body, next).await,
            Claim::Answered(sealed) => return replay(&state, &scope, &sealed),
            Claim::Mismatch => {
                return ApiError::new(
                    Code::IdempotencyKeyMismatch,
                    "this Idempotency-Key was used with another request (tenant, query or body)",
                )
                .into_response()
            }
            Claim::AnswerLost => {
                return ApiError::new(
                    Code::IdempotencyAnswerLost,
                    "the request with this Idempotency-Key was committed, but its server stopped before \
                     keeping the answer; read the resource instead of creating it again",
                )
                .into_response()
            }
            Claim::InUse if started.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(25)).await,
            Claim::InUse => {
                return ApiError::new(
                    Code::IdempotencyKeyInUse,
                    "the first request with this Idempotency-Key is still running; retry",
                )
                .retry_after(1)
                .into_response()
            }
        }
    }
}

async fn run_owned(
    state: &AppState,
    scope: [u8; 32],
    parts: axum::http::request::Parts,
    body: Bytes,
    next: Next,
) -> Response {
    let response =
        idempotency::with_claim(scope, next.run(Request::from_parts(parts, Body::from(body)))).await;
    let (mut head, body) = response.into_parts();
    let body = match to_bytes(body, 4 * crate::http::MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => return ApiError::internal(&format!("cannot read the answer: {e}")).into_response(),
    };
    let sealed = seal(state, &scope, head.status, &head.headers, &body);
    if let Err(e) = idempotency::finish(&state.pool, &scope, sealed.as_ref()).await {
        // The command's outcome stands; only the replay is lost (a retry gets 409).
        tracing::warn!(error = %e, "cannot keep the answer of an idempotent request");
    }
    head.headers.remove(REPLAYED);
    Response::from_parts(head, Body::from(body))
}

/// Keeps, before the command runs, the answer this request gives once it commits (see
/// [`idempotency::plan`]): a create whose answer holds a key shown once calls it with that
/// answer just before its command, and then answers exactly it. Nothing without an
/// `Idempotency-Key`.
pub async fn plan_answer(
    state: &AppState,
    status: StatusCode,
    body: &impl serde::Serialize,
) -> ApiResult<Bytes> {
    let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| ApiError::internal(&e))?);
    if let Some(scope) = idempotency::claim_in_force() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(sealed) = seal(state, &scope, status, &headers, &bytes) {
            idempotency::plan(&state.pool, &scope, &sealed).await?;
        }
    }
    Ok(bytes)
}

/// The answer [`plan_answer`] planned, as a response.
pub fn planned_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn seal(
    state: &AppState,
    scope: &[u8; 32],
    status: StatusCode,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<SealedAnswer> {
    let answer = Answer {
        status: status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some((name.to_string(), value.to_string()))
            })
            .collect(),
        body: base64::engine::general_purpose::STANDARD.encode(body),
    };
    let plain = serde_json::to_vec(&answer).ok()?;
    let kek = &state.keks.current;
    match kek.seal(&aad(scope), &plain) {
        Ok((nonce, ciphertext)) => Some(SealedAnswer { kek_id: kek.id.clone(), nonce, ciphertext }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot seal an idempotent answer");
            None
        }
    }
}

fn replay(state: &AppState, scope: &[u8; 32], sealed: &SealedAnswer) -> Response {
    let Some(kek) = state.keks.by_id(&sealed.kek_id) else {
        return ApiError::internal(&format!("the answer is sealed by unknown KEK {}", sealed.kek_id))
            .into_response();
    };
    let answer = kek
        .open(&aad(scope), &sealed.nonce, &sealed.ciphertext)
        .map_err(|e| e.to_string())
        .and_then(|plain| serde_json::from_slice::<Answer>(&plain).map_err(|e| e.to_string()))
        .and_then(|a| {
            let body =
                base64::engine::general_purpose::STANDARD.decode(&a.body).map_err(|e| e.to_string())?;
            Ok((a, body))
        });
    let (answer, body) = match answer {
        Ok(v) => v,
        Err(e) => return ApiError::internal(&format!("cannot open a kept answer: {e}")).into_response(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
