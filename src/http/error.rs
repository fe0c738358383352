//! The one error type of the HTTP layer and its body:
//! `{"error": {"code", "message", "request_id"}}`.
//!
//! Every failure maps to a stable snake_case code and a status. Internal details (database
//! errors) are logged with the request id and never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cqrs_es::AggregateError;
use serde::Serialize;
use tokenhub_aggregates::DomainError;
use utoipa::ToSchema;

use crate::http::code::Code;
use crate::http::request_id::current_request_id;

/// The error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `tenant_not_found`, `invalid_api_key`.
    #[schema(example = "tenant_not_found")]
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The `X-Request-Id` of the request, for support.
    pub request_id: String,
}

/// An HTTP-layer failure: a [`Code`] (which fixes the status), a message, and seconds for
/// `Retry-After` where it applies.
#[derive(Debug)]
pub struct ApiError {
    /// Stable code.
    pub code: Code,
    /// Message shown to the caller.
    pub message: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    /// The same error with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Its HTTP status (the code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 503 for a dependency that failed; the detail is logged, not returned.
    pub fn unavailable(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "dependency failure");
        Self::new(Code::ServiceUnavailable, "a dependency is unavailable; retry later").retry_after(1)
    }

    /// 500 for a bug; the detail is logged, not returned.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(Code::Internal, "internal error")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // SQLSTATE class 22 (data exception: a value PostgreSQL cannot take, such as U+0000 in
        // text) is the request's fault and retrying cannot help: 422, not 503 "retry later".
        // The input checks refuse such values first; this is the last line.
        if let sqlx::Error::Database(db) = &e {
            if db.code().is_some_and(|c| c.starts_with("22")) {
                tracing::warn!(error = %e, "a value was refused by the database");
                return Self::new(Code::InvalidRequest, "a value in the request cannot be stored");
            }
        }
        Self::unavailable(&e)
    }
}

impl From<crate::auth::Denied> for ApiError {
    fn from(e: crate::auth::Denied) -> Self {
        let code = match e {
            crate::auth::Denied::Forbidden => Code::Forbidden,
            crate::auth::Denied::TenantNotAllowed => Code::TenantNotAllowed,
        };
        Self::new(code, e.to_string())
    }
}

impl From<crate::commands::CommandError> for ApiError {
    fn from(e: crate::commands::CommandError) -> Self {
        use crate::commands::CommandError;
        match e {
            CommandError::Refused { code, message } => match Code::parse(code) {
                Some(code) => Self::new(code, message),
                None => Self::internal(&format!("domain code {code} is not in the code table")),
            },
            CommandError::Conflict => {
                Self::new(Code::AggregateConflict, "the resource was changed by a concurrent request; retry")
            }
            CommandError::Unavailable(e) => Self::unavailable(&e),
            CommandError::Internal(e) => Self::internal(&e),
        }
    }
}

impl<E: DomainError> From<AggregateError<E>> for ApiError {
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => match Code::parse(e.code()) {
                Some(code) => Self::new(code, e.to_string()),
                None => Self::internal(&format!("domain code {} is not in the code table", e.code())),
            },
            AggregateError::AggregateConflict => {
                Self::new(Code::AggregateConflict, "the resource was changed by a concurrent request; retry")
            }
            AggregateError::DatabaseConnectionError(e) => Self::unavailable(&e),
            AggregateError::DeserializationError(e) | AggregateError::UnexpectedError(e) => {
                Self::internal(&e)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_client_error() {
            tracing::info!(code = self.code.as_str(), status = status.as_u16(), "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_string(),
                message: self.message,
                request_id: current_request_id(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    /// Every code's whole answer: its one status, the envelope, and `Retry-After` where set.
    #[tokio::test]
    async fn every_code_answers_its_status_with_the_envelope() {
        for &code in Code::ALL {
            let mut error = ApiError::new(code, "why");
            if code.status() == StatusCode::TOO_MANY_REQUESTS
                || code.status() == StatusCode::SERVICE_UNAVAILABLE
            {
                error.retry_after = Some(7);
            }
            let response = error.into_response();
            assert_eq!(response.status(), code.status(), "{}", code.as_str());
            let retry = response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes().to_vec());
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": code.as_str(), "message": "why", "request_id": ""}}),
                "{}",
                code.as_str()
            );
            if code.status() == StatusCode::TOO_MANY_REQUESTS
                || code.status() == StatusCode::SERVICE_UNAVAILABLE
            {
                assert_eq!(retry.as_deref(), Some(&b"7"[..]));
            }
        }
    }
}
