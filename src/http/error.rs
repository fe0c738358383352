//! How a [`Failure`] is answered over HTTP: its code's status, the body
//! `{"error": {"code", "message", "request_id"}}` and `Retry-After` where set.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Code, Failure, Outcome};
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

/// The failure every handler returns: the transport-free [`Failure`], rendered here.
pub type ApiError = Failure;

/// The HTTP status of `code`.
pub fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
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
pub type ApiResult<T> = Outcome<T>;

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    /// Every code's whole answer: its one status, the envelope, and `Retry-After` where set.
    #[tokio::test]
    async fn every_code_answers_its_status_with_the_envelope() {
        for &code in Code::ALL {
            let mut error = ApiError::new(code, "why");
            if code.status() == 429 || code.status() == 503 {
                error.retry_after = Some(7);
            }
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), code.status(), "{}", code.as_str());
            let retry = response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes().to_vec());
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": code.as_str(), "message": "why", "request_id": ""}}),
                "{}",
                code.as_str()
            );
            if code.status() == 429 || code.status() == 503 {
                assert_eq!(retry.as_deref(), Some(&b"7"[..]));
            }
        }
    }
}
