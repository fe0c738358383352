//! The per-tenant control-API rate limit on the wire: requests by a tenant's own keys on
//! tenant routes are counted ([`crate::usage::rate_limit`]); every such response carries
//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds), and a refused one
//! is 429 `rate_limited` with `Retry-After`.

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::Code;
use crate::http::error::ApiError;
use crate::usage::rate_limit::RateInfo;

/// Where the authorization step leaves the request's rate information for the response.
#[derive(Clone, Default)]
pub struct RateSlot(Arc<OnceLock<RateInfo>>);

impl RateSlot {
    /// Records `info`.
    pub fn set(&self, info: RateInfo) {
        let _ = self.0.set(info);
    }
}

/// Counts one request of `tenant`; 429 when over its limit (`own`: whether the tenant's own
/// `rateLimit` applies, see [`crate::usage::rate_limit::TenantRateLimiter::hit`]).
pub async fn check(
    slot: Option<&RateSlot>,
    limiter: &crate::usage::rate_limit::TenantRateLimiter,
    tenant: &str,
    own: bool,
) -> Result<(), ApiError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let Some(info) = limiter.hit(tenant, now, own).await else { return Ok(()) };
    if let Some(slot) = slot {
        slot.set(info);
    }
    if info.allowed {
        return Ok(());
    }
    let error = ApiError::new(
        Code::RateLimited,
        format!(
            "the tenant's limit of {} requests per window is reached; retry in {} s",
            info.limit, info.reset_in
        ),
    );
    Err(error.retry_after(info.reset_in))
}

/// Adds the `RateLimit-*` headers to responses of counted requests.
pub async fn rate_limit_headers(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(info) = slot.0.get() {
        let headers = response.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", u64::from(info.limit)),
            ("ratelimit-remaining", u64::from(info.remaining)),
            ("ratelimit-reset", info.reset_in),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
    }
    response
}
