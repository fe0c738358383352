//! `/healthz`, `/readyz` and `/metrics` (public, no credentials).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Per dependency: `ok` or `unavailable` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
}

/// Dependency checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// PostgreSQL.
    pub postgres: &'static str,
    /// NATS.
    pub nats: &'static str,
    /// The query tables: `ok`, or `stalled` while they lag behind the log (a command's
    /// read-your-writes wait timed out and none has succeeded since).
    pub projections: &'static str,
    /// The NATS relay: `ok`, or `stuck` once an event committed `RELAY_STUCK_AFTER_SECONDS`
    /// ago is still not on NATS (whichever instance leads the relay).
    pub relay: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok", checks: None })
}

/// Ready: PostgreSQL and NATS reachable, query tables and the NATS relay keeping up.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = Health, description = "A dependency is down")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let postgres = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let projections = !state.readmodels.stalled_now().await;
    let relay = match (postgres, state.limits.relay_stuck_after) {
        (true, Some(bound)) => crate::relay::lag(&state.pool, &state.limits.relay_checkpoint)
            .await
            .map_or(true, |(_, age)| age < bound),
        _ => true,
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ready = postgres && nats && projections && relay;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health {
        status: word(ready),
        checks: Some(Checks {
            postgres: word(postgres),
            nats: word(nats),
            projections: if projections { "ok" } else { "stalled" },
            relay: if relay { "ok" } else { "stuck" },
        }),
    };
    (status, axum::Json(body))
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics() -> impl IntoResponse {
    let body = crate::telemetry::metrics_handle().map(|h| h.render()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
