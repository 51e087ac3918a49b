//! The API's error type: every failure becomes a JSON body
//! `{"error": {"code", "message", ...}}` with a stable code and the fitting
//! HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_store::{BlobError, ReadError, WriteError};
use serde_json::{json, Map, Value};

/// An error answer of the HTTP API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
    /// Extra members of the error object (for example `missing`).
    pub details: Map<String, Value>,
}

impl ApiError {
    /// An error without extra members.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Adds an extra member to the error object.
    pub fn with_detail(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.details);
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::MissingPredecessors { missing } => {
                let message = format!(
                    "{} predecessor(s) are not stored and not earlier in the batch; nothing was written",
                    missing.len()
                );
                let missing: Vec<String> = missing.iter().map(|hash| hash.to_hex()).collect();
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_predecessors",
                    message,
                )
                .with_detail("missing", json!(missing))
            }
            WriteError::Poisoned => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_poisoned",
                error.to_string(),
            ),
            WriteError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; retry on another server or later",
            ),
            WriteError::Storage(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_failure",
                format!("{error}; nothing of the batch was acknowledged"),
            ),
            WriteError::Corrupt(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt_data",
                error.to_string(),
            ),
            WriteError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{error}; the write was not acknowledged (retrying is safe)"),
            ),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        let code = match error {
            ReadError::Corrupt(_) => "corrupt_data",
            ReadError::Storage(_) => "storage_failure",
            ReadError::Unavailable(_) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    error.to_string(),
                )
            }
        };
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, error.to_string())
    }
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "blob_too_large",
                error.to_string(),
            ),
            BlobError::Io(_) | BlobError::Storage(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_failure",
                error.to_string(),
            ),
            BlobError::Corrupt(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt_data",
                error.to_string(),
            ),
            BlobError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{error}; retrying is safe"),
            ),
        }
    }
}

impl From<cairn_fact::FactError> for ApiError {
    fn from(error: cairn_fact::FactError) -> Self {
        let status = match error {
            cairn_fact::FactError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<crate::delivery::DeliveryError> for ApiError {
    fn from(error: crate::delivery::DeliveryError) -> Self {
        use crate::delivery::DeliveryError;
        let message = error.to_string();
        match error {
            DeliveryError::UnknownSubscription(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_subscription", message)
            }
            DeliveryError::InvalidDefinition(_) => {
                ApiError::bad_request("invalid_definition", message)
            }
            DeliveryError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "subscription_conflict", message)
            }
            DeliveryError::TooManySubscriptions => {
                ApiError::new(StatusCode::CONFLICT, "too_many_subscriptions", message)
            }
            DeliveryError::Write(error) => error.into(),
            DeliveryError::Read(error) => error.into(),
        }
    }
}
