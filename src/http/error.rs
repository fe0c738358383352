//! The one error type of the HTTP layer and its body:
//! `{"error": {"code", "message", "request_id"}}`.
//!
//! Every failure maps to a stable snake_case code and a status. Internal details (database
//! errors) are logged with the request id and never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cqrs_es::AggregateError;
use serde::Serialize;
use tokenhub_aggregates::{DomainError, ErrorKind};
use utoipa::ToSchema;

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

/// An HTTP-layer failure.
#[derive(Debug)]
pub struct ApiError {
    /// Status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Message shown to the caller.
    pub message: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 400
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503 for a dependency that failed; the detail is logged, not returned.
    pub fn unavailable(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "dependency failure");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a dependency is unavailable; retry later",
        );
        e.retry_after = Some(1);
        e
    }

    /// 500 for a bug; the detail is logged, not returned.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
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
                return Self::invalid("invalid_request", "a value in the request cannot be stored");
            }
        }
        Self::unavailable(&e)
    }
}

/// The status of a domain error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
    }
}

impl<E: DomainError> From<AggregateError<E>> for ApiError {
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => Self::new(status_of(e.kind()), e.code(), e.to_string()),
            AggregateError::AggregateConflict => Self::new(
                StatusCode::CONFLICT,
                "aggregate_conflict",
                "the resource was changed by a concurrent request; retry",
            ),
            AggregateError::DatabaseConnectionError(e) => Self::unavailable(&e),
            AggregateError::DeserializationError(e) | AggregateError::UnexpectedError(e) => {
                Self::internal(&e)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(code = self.code, status = self.status.as_u16(), "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                request_id: current_request_id(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
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
