//! The refusal every handler and the authentication layer return. It lives apart from the
//! handlers so that authentication can produce refusals without depending on the API module.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::protocol::{ErrorBody, ErrorResponse};

/// A refusal: the HTTP status, a stable machine-readable kind, and a message for humans.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }

    /// A refusal whose message is `error` and its causes: the client sees only the message, so
    /// the causes must be in it.
    pub fn from_error(
        status: StatusCode,
        kind: &'static str,
        error: &(dyn std::error::Error + 'static),
    ) -> Self {
        Self::new(status, kind, crate::error_chain(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                kind: self.kind.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
