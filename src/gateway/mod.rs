//! `tokenhub gateway`: the OpenAI-compatible data plane on the control plane's own keys.
//!
//! A request with a data key (`Authorization: Bearer thk_…`) passes the key's policy in memory
//! (status, expiry, tenant and sub-account state, IP and model allowlists, sub-account
//! permissions `chat` / `embeddings`, rate limits and quota: [`crate::cache::KeyCache::verify`]),
//! goes to the provider that serves its model ([`providers`]) with the key-bound tags injected
//! server-side, and is metered from the upstream's `usage` ([`meter`]). Content is forwarded,
//! never stored or logged: pure forwarding with zero data retention.
//!
//! - `POST /v1/chat/completions` (streaming and not), `POST /v1/embeddings`, `GET /v1/models`.
//! - Errors in OpenAI's shape ([`errors`]); an upstream's status passes through.

pub mod errors;
pub mod meter;
pub mod openapi;
pub mod providers;
mod request;
pub mod reserve;
mod stream;
pub mod upstream;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokenhub_aggregates::api_key::KeyRole;

use crate::cache::{CachedKey, VerifyCode, VerifyInput};
use crate::services::Ctx;
use errors::GatewayError;
use meter::{Meter, Metered};
use providers::{Kind, NoProvider, Provider, Providers};

/// Largest request body the gateway forwards.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Largest non-streaming answer the gateway reads from an upstream.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The header that carries key-bound tags to a plain OpenAI-compatible upstream (JSON object).
pub const TAGS_HEADER: &str = "x-tokenhub-tags";

/// The gateway's handles: the services' context (key cache, usage ingest, pool, KEKs), the
/// upstream client and the providers.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

/// What [`Gateway`] holds.
pub struct Inner {
    ctx: Ctx,
    upstreams: upstream::Upstreams,
    providers: Providers,
    allow_private: bool,
    reservations: Arc<reserve::Reservations>,
    /// The fleet's quota rooms (with `FLEET_RATE_LIMITS`): reservations held once for every
    /// gateway on the database.
    rooms: Option<Arc<crate::fleet::quota_rooms::QuotaRooms>>,
    recorder: meter::Recorder,
}

/// What the gateway says it is, to upstreams.
const USER_AGENT: &str = concat!("TokenHub-Gateway/", env!("CARGO_PKG_VERSION"));

/// The completion tokens reserved for a request that names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: i64 = 4096;

impl Gateway {
    /// Tokens reserved now against the quota of `owner` (a key's public id, a sub-account id
    /// or a tenant id): 0 once every request on it has settled.
    pub fn reserved(&self, owner: &str) -> i64 {
        // The same requests hold both (this gateway's view and the fleet's rooms).
        let in_rooms = self.0.rooms.as_ref().map_or(0, |r| r.reserved(owner));
        self.0.reservations.reserved(owner).max(in_rooms)
    }

    /// Waits until the usage records of every request so far are published, at most `within`
    /// (at shutdown, once the last request ended); false if some were not.
    pub async fn flush_usage(&self, within: Duration) -> bool {
        self.0.recorder.flush(within).await
    }

    /// A gateway over `ctx` with the platform's providers.
    pub fn new(
        ctx: Ctx,
        platform: Vec<Provider>,
        allow_private: bool,
        upstream_timeout: Duration,
    ) -> Result<Self, upstream::BuildError> {
        let upstreams = upstream::Upstreams::new(
            allow_private,
            Duration::from_secs(10).min(upstream_timeout),
            upstream_timeout,
        )?;
        Ok(Self(Arc::new(Inner {
            upstreams,
            providers: Providers::new(platform),
            allow_private,
            reservations: Arc::default(),
            rooms: ctx
                .keys
                .leaser
                .fleet()
                .then(|| crate::fleet::quota_rooms::QuotaRooms::start(ctx.pool.clone())),
            recorder: meter::Recorder::spawn(ctx.usage.clone()),
            ctx,
        })))
    }
}

/// The gateway's routes (no admin route).
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(|| async { axum::Json(openapi::document()) }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async {
            GatewayError::new(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", "no such route")
        })
        .with_state(gateway)
}

/// Serves the gateway on `listener` until `shutdown`.
pub async fn serve(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(gateway).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Which permission of a sub-account an operation needs.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Chat,
    Embeddings,
}

impl Operation {
    fn permission(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
        }
    }

    /// Its route on the gateway (what a tenant's `routes` name).
    fn route(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::Embeddings => "/v1/embeddings",
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, GatewayError> {
    let missing = || {
        GatewayError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing_credentials",
            "send a TokenHub data key as Authorization: Bearer thk_…",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?.to_str().map_err(|_| missing())?;
    // The scheme's name is case-insensitive (RFC 9110, section 11.1).
    let (scheme, key) = value.split_once(' ').ok_or_else(missing)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(missing());
    }
    Ok(key)
}

fn client_ip(gw: &Inner, headers: &HeaderMap, peer: SocketAddr) -> Option<std::net::IpAddr> {
    let peer_ip = peer.ip();
    let trusted = gw.ctx.trusted_proxies.iter().any(|n| n.contains(&peer_ip));
    if !trusted {
        return Some(peer_ip);
    }
    // Behind a trusted proxy: the right-most address the proxies did not add.
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !gw.ctx.trusted_proxies.iter().any(|n| n.contains(*ip)))
        .copied()
        .or(Some(peer_ip))
}

/// The key's policy: a data key that passes verify for `model`, whose sub-account (and own
/// permissions, when it has any) allow `operation`.
async fn admit(
    gw: &Inner,
    key: &str,
    ip: Option<std::net::IpAddr>,
    model: Option<&str>,
    operation: Option<Operation>,
) -> Result<Arc<CachedKey>, GatewayError> {
    let input = VerifyInput { key, ip, model };
    let mut verdict = gw.ctx.keys.verify_counted(&gw.ctx.hasher, input, OffsetDateTime::now_utc()).await;
    // `NOT_FOUND` only once this gateway holds the log as of the request: a key issued a
    // moment ago (on the server) is known here first.
    if verdict.code == VerifyCode::NotFound
        && gw.ctx.keys.caught_up(&gw.ctx.pool).await == crate::cache::caught_up::CaughtUp::Yes
    {
        verdict = gw.ctx.keys.verify_counted(&gw.ctx.hasher, input, OffsetDateTime::now_utc()).await;
    }
    if verdict.code != VerifyCode::Valid {
        return Err(GatewayError::of_verdict(verdict.code));
    }
    let Some(cached) = verdict.key else { return Err(GatewayError::of_verdict(VerifyCode::NotFound)) };
    if cached.role != KeyRole::Data || cached.tenant_id.is_none() {
        return Err(GatewayError::permission(
            "data_key_required",
            "only a tenant's data keys may call the gateway",
        ));
    }
    if let Some(operation) = operation {
        let wanted = operation.permission();
        let own_ok = cached.permissions.is_empty() || cached.permissions.iter().any(|p| &**p == wanted);
        let sub_ok = verdict
            .sub_account
            .as_ref()
            .is_none_or(|s| s.permissions.is_empty() || s.permissions.iter().any(|p| p == wanted));
        if !own_ok || !sub_ok {
            return Err(GatewayError::permission(
                "permission_denied",
                format!("this key may not use {wanted} (its permissions or its sub-account's)"),
            ));
        }
    }
    Ok(cached)
}

/// The provider of `model` for a request of the key's tenant on `operation`'s route.
async fn provider_of(
    gw: &Inner,
    key: &CachedKey,
    operation: Operation,
    model: &str,
) -> Result<Arc<Provider>, GatewayError> {
    let own = gw.tenant_upstreams(key.tenant_id.as_deref().unwrap_or_default()).await?;
    let route = operation.route();
    match gw.providers.pick(&own, route, model) {
        Ok(provider) => Ok(provider.clone()),
        Err(why) => Err(GatewayError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            match why {
                NoProvider::Model => format!("no provider serves the model '{model}'"),
                NoProvider::Routed(name) => format!(
                    "the tenant's routes send POST {route} to the provider '{name}', which does not serve the model '{model}'"
                ),
            },
        )),
    }
}

impl Inner {
    async fn tenant_upstreams(&self, tenant: &str) -> Result<Arc<providers::TenantUpstreams>, GatewayError> {
        self.providers.of(&self.ctx.pool, &self.ctx.keks, tenant).await.map_err(|e| {
            tracing::warn!(error = %e, tenant_id = %tenant, "cannot read the tenant's providers");
            GatewayError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "service_unavailable",
                "retry later",
            )
        })
    }
}

fn tags_of(key: &CachedKey) -> Map<String, Value> {
    key.tags.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
}

/// The key-bound tags as the [`TAGS_HEADER`] value: a JSON object in ASCII (other characters
/// as `\uXXXX` escapes), so a tag such as `Café` reaches any upstream as JSON decodes it, not
/// as header bytes each server reads its own way.
fn tags_header(tags: &Map<String, Value>) -> HeaderValue {
    let json = Value::Object(tags.clone()).to_string();
    let mut ascii = String::with_capacity(json.len());
    let mut units = [0u16; 2];
    for c in json.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            // Only inside strings: JSON has no other place for such a character.
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(ascii, "\\u{unit:04x}");
            }
        }
    }
    // JSON escapes every control character, so the text is a valid header value.
    HeaderValue::from_str(&ascii).unwrap_or_else(|_| HeaderValue::from_static("{}"))
}

/// A request id: the usage record's id and the `X-Request-Id` of the answer.
fn request_id() -> String {
    format!("gw_{}", uuid::Uuid::now_v7().simple())
}

async fn chat_completions(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    forward(&gw, peer, &headers, body, Operation::Chat).await.unwrap_or_else(IntoResponse::into_response)
}

async fn embeddings(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    forward(&gw, peer, &headers, body, Operation::Embeddings)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward(
    gw: &Gateway,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    operation: Operation,
) -> Result<Response, GatewayError> {
    let gw = &gw.0;
    let key = bearer(headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            GatewayError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!("the body is over {} MiB", MAX_BODY_BYTES / (1024 * 1024)),
            )
        } else {
            GatewayError::invalid("invalid_body", "the body could not be read")
        }
    })?;
    let mut request = request::parse(&body).map_err(|why| match why {
        request::Unreadable::NotAnObject => GatewayError::invalid("invalid_request", "the body must be a JSON object"),
        request::Unreadable::DuplicateName => GatewayError::invalid(
            "invalid_request",
            "an object in the body names a member twice (the gateway and the upstream could read different values)",
        ),
    })?;
    let model = match request.get("model") {
        Some(Value::String(m)) if (1..=256).contains(&m.chars().count()) => m.clone(),
        _ => {
            return Err(GatewayError::invalid(
                "invalid_request",
                "`model` must be a string of 1 to 256 characters",
            ))
        }
    };
    let ip = client_ip(gw, headers, peer);
    let cached = admit(gw, key, ip, Some(&model), Some(operation)).await?;
    request::check(operation, &request)?;
    let provider = provider_of(gw, &cached, operation, &model).await?;
    // The outbound rules hold whatever the configuration says (it may have been saved by a
    // more permissive server): names are checked again when they resolve.
    let url = match (
        provider.url(matches!(operation, Operation::Embeddings)),
        provider.problem(gw.allow_private),
    ) {
        (Some(url), None) => url,
        (_, problem) => {
            let problem = problem.unwrap_or("must be an absolute URL");
            tracing::warn!(provider = %provider.name, problem, "upstream refused by the outbound rules");
            return Err(GatewayError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_refused",
                format!("the provider's address is refused: {problem} (GATEWAY_ALLOW_PRIVATE_UPSTREAMS)"),
            ));
        }
    };

    // Key-bound tags, injected server-side where the provider reads them; the client's own
    // tags of the same names never win.
    let bound = tags_of(&cached);
    let mut upstream = axum::http::Request::post(url.clone()).header(header::USER_AGENT, USER_AGENT);
    match provider.kind {
        Kind::TensorZero => {
            let mut tags = match request.remove("tensorzero::tags") {
                Some(Value::Object(client)) => client,
                _ => Map::new(),
            };
            tags.retain(|k, _| !k.starts_with(tokenhub_aggregates::api_key::RESERVED_TAG_PREFIX));
            tags.extend(bound.clone());
            request.insert("tensorzero::tags".into(), Value::Object(tags));
        }
        Kind::OpenAi => {
            if !bound.is_empty() {
                upstream = upstream.header(TAGS_HEADER, tags_header(&bound));
            }
        }
    }
    if let Some((name, value)) = &provider.auth {
        upstream = upstream.header(name.clone(), value.clone());
    }
    let streaming = matches!(operation, Operation::Chat) && request.get("stream") == Some(&Value::Bool(true));
    let client_wants_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Ask for the usage chunk to meter the stream; strip it if the client did not ask.
    let ask_for_usage = streaming && !client_wants_usage;
    if ask_for_usage {
        // Checked: an object or null (absent).
        match request.get_mut("stream_options") {
            Some(Value::Object(options)) => {
                options.insert("include_usage".into(), Value::Bool(true));
            }
            _ => {
                request.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
    }
    let normalised = request::counts_as_integers(operation, &mut request);
    // A body the gateway changed is serialised again; any other goes as the client sent it.
    let rewritten = ask_for_usage || normalised || matches!(provider.kind, Kind::TensorZero);
    // The most this request can be counted for: its prompt (at most one token per byte of
    // the body) and its completion (`max_tokens`, else a default, for each of the `n` choices
    // it asks for). Reserved against every quota of the key before anything is sent.
    let completion_bound = request::completion_bound(operation, &request, DEFAULT_MAX_TOKENS);
    let bound = body.len() as i64 + completion_bound;
    // Reserved in this gateway's view (its key cache's use, which also counts usage reported
    // through `POST /v1/usage`) and, with fleet limits, in the fleet's room of each quota.
    let now = OffsetDateTime::now_utc();
    let quotas = gw.ctx.keys.quotas(&cached, now);
    let reservation = if quotas.is_empty() {
        None
    } else {
        let exceeded = || quota_refusal(&quotas, bound);
        let local = gw.reservations.reserve(&quotas, bound).ok_or_else(exceeded)?;
        let fleet = match &gw.rooms {
            Some(rooms) => {
                Some(rooms.reserve(&reserve::in_rooms(&quotas, now), bound).await.ok_or_else(exceeded)?)
            }
            None => None,
        };
        Some(reserve::Held { local, fleet })
    };
    let id = request_id();
    let mut meter = Meter::new(gw.ctx.clone(), gw.recorder.clone(), id.clone(), cached.clone(), model);
    meter.reservation = reservation;
    let payload = if rewritten {
        match serde_json::to_vec(&Value::Object(request)) {
            Ok(p) => Bytes::from(p),
            Err(_) => return Err(GatewayError::invalid("invalid_request", "the body cannot be forwarded")),
        }
    } else {
        body
    };
    let upstream = upstream
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, if streaming { "text/event-stream" } else { "application/json" })
        .body(http_body_util::Full::new(payload));
    let Ok(upstream) = upstream else {
        // Every part was checked when the provider was read (its URL, its credential header).
        return Err(GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "api_error",
            "upstream_refused",
            "the request to the provider cannot be built",
        ));
    };
    let answer = match gw.upstreams.send(upstream).await {
        Ok(a) => a,
        Err(e) => {
            let (status, code, message) = if e.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "the upstream did not answer in time")
            } else {
                (StatusCode::BAD_GATEWAY, "upstream_unavailable", "the upstream could not be reached")
            };
            tracing::warn!(provider = %provider.name, timeout = e.is_timeout(), "upstream request failed");
            meter.status = status.as_u16();
            return Err(GatewayError::new(status, "api_error", code, message));
        }
    };
    let status = answer.status();
    meter.status = status.as_u16();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let is_stream = content_type.as_ref().is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut response = if streaming && status.is_success() && is_stream {
        let body = stream::metered(answer.into_stream(), meter, !client_wants_usage);
        Response::new(Body::from_stream(body))
    } else {
        let bytes =
            read_bounded(answer).await.inspect_err(|_| meter.status = StatusCode::BAD_GATEWAY.as_u16())?;
        if status.is_success() {
            meter.tokens = Metered::of(&bytes).and_then(|m| m.tokens());
        }
        meter.record();
        Response::new(Body::from(bytes))
    };
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    Ok(response)
}

/// `QUOTA_EXCEEDED` for a request whose bound does not fit one of `quotas`: used up, or too
/// large for what is left (then the message says how large, so the client can ask for less).
fn quota_refusal(quotas: &[(String, crate::cache::verify::QuotaStatus)], bound: i64) -> GatewayError {
    let mut refusal = GatewayError::of_verdict(VerifyCode::QuotaExceeded);
    let left = quotas.iter().map(|(_, q)| q.remaining).min().unwrap_or(0);
    if left > 0 {
        refusal.message = format!(
            "this request may count for up to {bound} tokens (one per byte of its body, and its max_tokens for each choice): more than the {left} left of the quota, less what requests in flight hold"
        );
    }
    refusal
}

async fn read_bounded(mut answer: upstream::Answer) -> Result<Bytes, GatewayError> {
    let mut out = bytes::BytesMut::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(GatewayError::new(
                        StatusCode::BAD_GATEWAY,
                        "api_error",
                        "upstream_answer_too_large",
                        "the upstream's answer is too large",
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out.freeze()),
            Err(e) => {
                let (status, code) = if e.is_timeout() {
                    (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
                } else {
                    (StatusCode::BAD_GATEWAY, "upstream_unavailable")
                };
                return Err(GatewayError::new(
                    status,
                    "api_error",
                    code,
                    "the upstream's answer was cut off",
                ));
            }
        }
    }
}

/// The models this key may use: those its providers serve (`*` providers add none), within
/// the key's model allowlist. 503 until the gateway has caught up with the log.
async fn models(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let gw = &gw.0;
    if gw.ctx.keys.caught_up(&gw.ctx.pool).await == crate::cache::caught_up::CaughtUp::NotYet {
        return Err(GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "not_ready",
            "catching up; retry",
        ));
    }
    let key = bearer(&headers)?;
    let ip = client_ip(gw, &headers, peer);
    let cached = admit(gw, key, ip, None, None).await?;
    let own = gw.tenant_upstreams(cached.tenant_id.as_deref().unwrap_or_default()).await?;
    let mut seen = std::collections::BTreeMap::new();
    for p in own.providers.iter().chain(gw.providers.platform()) {
        for m in p.models.iter().filter(|m| *m != "*") {
            let allowed = cached.allowed_models.is_empty() || cached.allowed_models.iter().any(|a| &**a == m);
            if allowed {
                seen.entry(m.clone()).or_insert_with(|| p.name.clone());
            }
        }
    }
    let data: Vec<Value> = seen
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tags_header_is_ascii_json_that_decodes_to_the_tags() {
        let tags: Map<String, Value> = [("customer", "Café 東京 😀"), ("plain", "a\"b\\c"), ("tab", "x\ty")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let header = tags_header(&tags);
        let text = header.to_str().expect("visible ASCII only");
        assert!(text.is_ascii(), "{text}");
        assert_eq!(serde_json::from_str::<Map<String, Value>>(text).unwrap(), tags);
        assert_eq!(tags_header(&Map::new()).to_str().unwrap(), "{}");
    }

    #[test]
    fn the_bearer_schemes_name_is_case_insensitive_and_a_key_is_required() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer(&headers).map(str::to_string).map_err(|e| e.code)
        };
        for value in ["Bearer thk_a", "bearer thk_a", "BEARER  thk_a ", "Bearer thk_a"] {
            assert_eq!(with(value), Ok("thk_a".to_string()), "{value}");
        }
        for value in ["Basic thk_a", "Bearer", "Bearer ", "Bearerthk_a", "thk_a", ""] {
            assert_eq!(with(value), Err("missing_credentials"), "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()).map_err(|e| e.code), Err("missing_credentials"));
    }
}
