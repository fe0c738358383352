//! The HTTP API: routes (one file per group), errors, extractors, OpenAPI.
//!
//! Public routes are exactly `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and `/docs`;
//! every other handler takes a principal extractor and so cannot run unauthenticated.

pub mod admission;
pub mod api_keys_admin;
pub mod api_keys_batch;
pub mod api_keys_tenant;
pub mod audit;
pub mod audit_state;
pub mod authenticate;
pub mod authorized;
pub mod client_ip;
pub mod console;
pub mod error;
pub mod extract;
pub mod headers;
pub mod health;
pub mod idempotency;
pub mod input;
pub mod keys;
pub mod live;
pub mod oidc;
pub mod openapi;
pub mod paging;
pub mod people;
pub mod platform_keys;
pub mod rate_limit;
pub mod rbac;
pub mod request_id;
pub mod resource_limits;
pub mod secrets;
pub mod security;
pub mod sign_in;
pub mod strict;
pub mod sub_accounts;
pub mod tenant;
pub mod tenant_config;
pub mod tenants_admin;
pub mod two_factor;
pub mod usage;
pub mod verify;
pub mod views;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::Code;
use crate::http::error::ApiError;

/// What every handler reaches: the services' context (see [`crate::services::Ctx`]).
pub type AppState = crate::services::Ctx;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// All documented routes and the OpenAPI document describing them.
pub fn api() -> (Router<AppState>, serde_json::Value) {
    let (router, spec) = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(tenants_admin::create_tenant, tenants_admin::list_tenants))
        .routes(routes!(
            tenants_admin::get_tenant,
            tenants_admin::update_tenant,
            tenants_admin::delete_tenant
        ))
        .routes(routes!(tenants_admin::suspend_tenant))
        .routes(routes!(tenants_admin::reactivate_tenant))
        .routes(routes!(tenant::tenant_info))
        .routes(routes!(api_keys_admin::admin_issue_key, api_keys_admin::admin_list_keys))
        .routes(routes!(
            api_keys_admin::admin_get_key,
            api_keys_admin::admin_update_key,
            api_keys_admin::admin_revoke_key
        ))
        .routes(routes!(api_keys_tenant::tenant_issue_key, api_keys_tenant::tenant_list_keys))
        .routes(routes!(
            api_keys_tenant::tenant_get_key,
            api_keys_tenant::tenant_update_key,
            api_keys_tenant::tenant_revoke_key
        ))
        .routes(routes!(api_keys_tenant::tenant_disable_key))
        .routes(routes!(api_keys_tenant::tenant_enable_key))
        .routes(routes!(api_keys_tenant::tenant_rotate_key))
        .routes(routes!(platform_keys::issue_platform_key, platform_keys::list_platform_keys))
        .routes(routes!(platform_keys::revoke_platform_key))
        .routes(routes!(sub_accounts::create_sub_account, sub_accounts::list_sub_accounts))
        .routes(routes!(
            sub_accounts::get_sub_account,
            sub_accounts::update_sub_account,
            sub_accounts::delete_sub_account
        ))
        .routes(routes!(sub_accounts::disable_sub_account))
        .routes(routes!(sub_accounts::enable_sub_account))
        .routes(routes!(rbac::get_rbac, rbac::update_rbac))
        .routes(routes!(rbac::create_role))
        .routes(routes!(rbac::update_role, rbac::delete_role))
        .routes(routes!(rbac::check_permission))
        .routes(routes!(api_keys_admin::admin_key_history))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(audit::list_tenant_audit_events))
        .routes(routes!(audit::export_audit_events))
        .routes(routes!(audit::verify_audit_chain))
        .routes(routes!(audit_state::audit_state))
        .routes(routes!(audit_state::tenant_audit_state))
        .routes(routes!(live::audit_stream))
        .routes(routes!(live::tenant_audit_stream))
        .routes(routes!(security::get_ip_allowlist, security::put_ip_allowlist))
        .routes(routes!(secrets::list_secrets, secrets::store_secret))
        .routes(routes!(secrets::delete_secret))
        .routes(routes!(secrets::reveal_secret))
        .routes(routes!(tenant_config::get_config, tenant_config::save_config))
        .routes(routes!(tenant_config::config_history))
        .routes(routes!(tenant_config::rollback_config))
        .routes(routes!(usage::usage_summary))
        .routes(routes!(usage::usage_history))
        .routes(routes!(usage::usage_breakdown))
        .routes(routes!(api_keys_batch::admin_issue_batch))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::get_delivery))
        .routes(routes!(webhooks::retry_delivery))
        .routes(routes!(webhooks::list_endpoints))
        .routes(routes!(webhooks::enable_endpoint))
        .routes(routes!(webhooks::test_send))
        .routes(routes!(usage::admin_usage))
        .routes(routes!(resource_limits::get_resource_limits, resource_limits::put_resource_limits))
        .routes(routes!(resource_limits::resource_usage))
        .routes(routes!(resource_limits::check_resource))
        .routes(routes!(resource_limits::track_resource))
        .routes(routes!(people::invite_user, people::list_users))
        .routes(routes!(people::get_user, people::change_user_role, people::disable_user))
        .routes(routes!(people::erase_user))
        .routes(routes!(people::invite_tenant_user, people::list_tenant_users))
        .routes(routes!(
            people::get_tenant_user,
            people::change_tenant_user_role,
            people::disable_tenant_user
        ))
        .routes(routes!(people::accept_invite))
        .routes(routes!(sign_in::login))
        .routes(routes!(sign_in::login_mfa))
        .routes(routes!(oidc::providers))
        .routes(routes!(oidc::start))
        .routes(routes!(oidc::link))
        .routes(routes!(oidc::callback))
        .routes(routes!(sign_in::me))
        .routes(routes!(sign_in::logout))
        .routes(routes!(sign_in::list_sessions))
        .routes(routes!(sign_in::end_session))
        .routes(routes!(sign_in::change_password))
        .routes(routes!(two_factor::enroll))
        .routes(routes!(two_factor::confirm))
        .routes(routes!(two_factor::remove))
        .routes(routes!(two_factor::regenerate_recovery_codes))
        .routes(routes!(two_factor::get_policy, two_factor::put_policy))
        // Everything above may append events; the routes below never do, and the hot ones
        // (verify, usage reports) skip the write tracking.
        .layer(middleware::from_fn(track_writes))
        .routes(routes!(verify::verify_key))
        .routes(routes!(usage::report_usage))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .split_for_parts();
    (router, openapi::finish(spec))
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tokenhub_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("tokenhub_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn route_not_found() -> ApiError {
    ApiError::new(Code::RouteNotFound, "no such route")
}

async fn method_not_allowed(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED {
        return axum::response::IntoResponse::into_response(ApiError::new(
            Code::MethodNotAllowed,
            "this route does not accept that method",
        ));
    }
    response
}

fn panic_response(detail: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = detail
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| detail.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    metrics::counter!("tokenhub_http_panics_total").increment(1);
    axum::response::IntoResponse::into_response(ApiError::internal(&format!("handler panicked: {what}")))
}

async fn shed_or_timeout(error: tower::BoxError) -> ApiError {
    let (code, message) = if error.is::<tower::timeout::error::Elapsed>() {
        metrics::counter!("tokenhub_http_timeouts_total").increment(1);
        (Code::RequestTimeout, "the request took too long; retry later")
    } else {
        metrics::counter!("tokenhub_http_shed_total").increment(1);
        (Code::Overloaded, "the server is at its limit of requests in flight; retry later")
    };
    ApiError::new(code, message).retry_after(1)
}

/// While PostgreSQL is known down (`store::health`), a request gets at most
/// [`crate::store::health::FAIL_FAST`]: one that needs the database is answered 503
/// `service_unavailable` then, instead of after the pool's acquire timeout; one that does not
/// (verify, usage reports) is answered as usual. Live streams are not cut (their body
/// outlives this), only their start.
async fn fail_fast(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    if !state.db.is_down() {
        return next.run(req).await;
    }
    match tokio::time::timeout(crate::store::health::FAIL_FAST, next.run(req)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(
            ApiError::new(Code::ServiceUnavailable, "the database does not answer; retry later")
                .retry_after(1),
        ),
    }
}

/// Notes the position of the last event a request appends, so that its read-your-writes
/// waits for that position rather than the global head (reads skip it).
async fn track_writes(req: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    crate::store::repository::tracking_writes(next.run(req)).await
}

/// The whole application router: the API with its own layers, then [`safety_layers`].
pub fn router(state: AppState) -> Router {
    let (api, spec) = api();
    let limits = state.limits.clone();
    let app = api
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", spec))
        .merge(console::routes())
        .fallback(route_not_found)
        .layer(middleware::from_fn(headers::response_headers))
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::guard))
        .layer(middleware::from_fn(method_not_allowed))
        .layer(middleware::from_fn(rate_limit::rate_limit_headers))
        .layer(middleware::from_fn(count_requests))
        .layer(middleware::from_fn_with_state(state.clone(), fail_fast))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    safety_layers(app, &limits).with_state(state)
}

/// What every request passes through, outermost first: a request id; control characters in
/// path, query and headers refused; a request timeout and load shedding (503
/// `request_timeout` / `overloaded`, with `Retry-After`); panics caught as 500 `internal`
/// (logged), as the last resort.
pub fn safety_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: &crate::config::Limits,
) -> Router<S> {
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(shed_or_timeout))
                .load_shed()
                .concurrency_limit(limits.max_in_flight)
                .timeout(limits.request_timeout),
        )
        .layer(middleware::from_fn(input::reject_control_characters))
        .layer(middleware::from_fn(request_id::assign_request_id))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_internal_and_the_server_lives_on() {
        use clap::Parser;
        let defaults = crate::cli::Cli::try_parse_from(["tokenhub", "serve"]).map(|c| c.config.limits());
        let Ok(limits) = defaults else { return assert!(defaults.is_ok(), "the default flags parse") };
        let app = safety_layers(Router::new().route("/boom", get(boom)), &limits);
        for _ in 0..2 {
            let request = axum::http::Request::get("/boom").body(Body::empty()).unwrap_or_default();
            let response = app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
            assert_eq!(response.status(), 500);
            assert!(response.headers().contains_key("x-request-id"));
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(body["error"]["code"], "internal");
            assert!(body["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
        }
    }
}
