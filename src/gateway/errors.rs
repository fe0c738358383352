//! The gateway's refusals in OpenAI's error shape, `{"error": {"message", "type", "code"}}`,
//! so that existing SDKs show them; `code` is TokenHub's (a verify code such as
//! `QUOTA_EXCEEDED`, or a snake_case code of the gateway's own).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::cache::VerifyCode;

/// A refusal of the gateway.
#[derive(Debug)]
pub struct GatewayError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's error `type`.
    pub kind: &'static str,
    /// TokenHub's code.
    pub code: &'static str,
    /// What the caller is told.
    pub message: String,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl GatewayError {
    /// A refusal.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self { status, kind, code, message: message.into(), retry_after: None }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    /// 403 `permission_error`.
    pub fn permission(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", code, message)
    }

    /// The refusal of a key's verify code (never `VALID`).
    pub fn of_verdict(code: VerifyCode) -> Self {
        use VerifyCode as V;
        let message = match code {
            V::Malformed | V::NotFound => "the API key is not valid",
            V::Disabled => "the API key is disabled",
            V::Revoked => "the API key is revoked",
            V::Expired => "the API key has expired",
            V::IpNotAllowed => "the API key may not be used from this address",
            V::ModelNotAllowed => "the API key may not use this model",
            V::TenantSuspended => "the account is suspended",
            V::TenantDeleted => "the API key is not valid",
            V::SubAccountDisabled | V::SubAccountDeleted => "the API key's sub-account is disabled",
            V::QuotaExceeded => "the API key's token quota is used up",
            V::RateLimited => "the API key's requests or tokens per minute are used up",
            V::Valid => "valid",
        };
        let (status, kind) = match code {
            V::Malformed | V::NotFound | V::Disabled | V::Revoked | V::Expired | V::TenantDeleted => {
                (StatusCode::UNAUTHORIZED, "authentication_error")
            }
            V::QuotaExceeded => (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"),
            V::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            _ => (StatusCode::FORBIDDEN, "permission_error"),
        };
        let mut e = Self::new(status, kind, code.as_str(), message);
        if code == V::RateLimited {
            e.retry_after =
                Some(60 - (time::OffsetDateTime::now_utc().unix_timestamp().rem_euclid(60)) as u64);
        }
        e
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"message": self.message, "type": self.kind, "code": self.code, "param": null}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
