//! The API's error type: every failure becomes a JSON body
//! `{"error": {"code", "message", ...}}` with a stable code and the fitting
//! HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::{ErrorBody, ErrorCode, ErrorObject};
use cairn_store::{BlobError, ReadError, WriteError};
use serde_json::{json, Map, Value};

/// An error answer of the HTTP API: a stable code (which fixes the HTTP
/// status), a human sentence, and extra members of some codes.
#[derive(Debug)]
pub struct ApiError {
    /// Stable code; its status is the answer's.
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
    /// Extra members of the error object (for example `missing`).
    pub details: Map<String, Value>,
}

impl ApiError {
    /// An error without extra members.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// 400 `invalid_request`: the body does not have the endpoint's shape
    /// or values.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Adds an extra member to the error object.
    pub fn with_detail(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }

    /// The JSON body `{"error": {"code", "message", ...}}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: self.code.as_str().to_string(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self.code {
            ErrorCode::Unauthenticated => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"cairn\""),
                );
            }
            ErrorCode::RateLimited => {
                let retry_after_s = self
                    .details
                    .get("retry_after_s")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            _ => {}
        }
        response
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
                ApiError::new(ErrorCode::MissingPredecessors, message)
                    .with_detail("missing", json!(missing))
            }
            WriteError::Poisoned => ApiError::new(ErrorCode::StorePoisoned, error.to_string()),
            WriteError::Closed => ApiError::new(
                ErrorCode::ShuttingDown,
                "the server is shutting down; retry on another server or later",
            ),
            WriteError::Storage { .. } => ApiError::new(
                ErrorCode::StorageFailure,
                format!("{error}; nothing of the batch was acknowledged"),
            ),
            WriteError::Corrupt(_) => ApiError::new(ErrorCode::CorruptData, error.to_string()),
            WriteError::StaleFence {
                ref name,
                fence,
                current,
            } => ApiError::new(
                ErrorCode::StaleFence,
                format!("{error}; nothing was written (the writer has lost the lease)"),
            )
            .with_detail("name", json!(name))
            .with_detail("fence", json!(fence))
            .with_detail("current", json!(current)),
            WriteError::Unavailable { .. } => ApiError::new(
                ErrorCode::StoreUnavailable,
                format!("{error}; the write was not acknowledged (retrying is safe)"),
            ),
            // A kind of failure added to the store later: a failed write
            // acknowledges nothing, whatever its kind.
            _ => ApiError::new(
                ErrorCode::StorageFailure,
                format!("{error}; nothing of the batch was acknowledged"),
            ),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        let code = match error {
            ReadError::Corrupt { .. } => ErrorCode::CorruptData,
            ReadError::Storage { .. } => ErrorCode::StorageFailure,
            ReadError::Unavailable { .. } => ErrorCode::StoreUnavailable,
            // A kind of failure added to the store later.
            _ => ErrorCode::StorageFailure,
        };
        ApiError::new(code, error.to_string())
    }
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::TooLarge { .. } => ApiError::new(ErrorCode::BlobTooLarge, error.to_string()),
            BlobError::Io(_) | BlobError::Storage { .. } => {
                ApiError::new(ErrorCode::StorageFailure, error.to_string())
            }
            BlobError::Corrupt(_) => ApiError::new(ErrorCode::CorruptData, error.to_string()),
            BlobError::Unavailable { .. } => ApiError::new(
                ErrorCode::StoreUnavailable,
                format!("{error}; retrying is safe"),
            ),
            // A kind of failure added to the store later.
            _ => ApiError::new(ErrorCode::StorageFailure, error.to_string()),
        }
    }
}

impl From<cairn_fact::FactError> for ApiError {
    fn from(error: cairn_fact::FactError) -> Self {
        // Every code of the fact model is a code of the API (a test holds
        // them together).
        let code = ErrorCode::parse(error.code()).unwrap_or(ErrorCode::InvalidFact);
        ApiError::new(code, error.to_string())
    }
}

impl From<crate::delivery::DeliveryError> for ApiError {
    fn from(error: crate::delivery::DeliveryError) -> Self {
        use crate::delivery::DeliveryError;
        let message = error.to_string();
        match error {
            DeliveryError::UnknownSubscription(_) => {
                ApiError::new(ErrorCode::UnknownSubscription, message)
            }
            DeliveryError::InvalidDefinition(_) => {
                ApiError::new(ErrorCode::InvalidDefinition, message)
            }
            DeliveryError::Conflict {
                fixed_members_changed,
                ..
            } => ApiError::new(ErrorCode::SubscriptionConflict, message)
                .with_detail("fields", json!(fixed_members_changed)),
            DeliveryError::GenerationMismatch {
                current_generation, ..
            } => ApiError::new(ErrorCode::GenerationMismatch, message)
                .with_detail("generation", json!(current_generation)),
            DeliveryError::TooManySubscriptions => {
                ApiError::new(ErrorCode::TooManySubscriptions, message)
            }
            DeliveryError::Write(error) => error.into(),
            DeliveryError::Read(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code the fact model gives its errors is a code of the API, so
    /// no fact error is answered under a code the contract does not list.
    #[test]
    fn fact_errors_carry_codes_of_the_api() {
        let hash = "ab".repeat(32);
        let bad_facts = [
            "not json".to_string(),
            "\u{feff}{}".to_string(),
            r#"{"a": 1, "a": 2}"#.to_string(),
            format!("{}1{}", "[".repeat(80), "]".repeat(80)),
            r#"{"type": "T", "fields": {"n": 9007199254740993}, "predecessors": {}}"#.to_string(),
            r#"{"type": "T", "fields": {"s": "\ud800"}, "predecessors": {}}"#.to_string(),
            "[]".to_string(),
            r#"{"type": "T", "fields": {}}"#.to_string(),
            r#"{"type": "1T", "fields": {}, "predecessors": {}}"#.to_string(),
            r#"{"type": "T", "fields": {}, "predecessors": {"1r": []}}"#.to_string(),
            r#"{"type": "T", "fields": {}, "predecessors": {"r": []}}"#.to_string(),
            r#"{"type": "T", "fields": {}, "predecessors": {"r": "xyz"}}"#.to_string(),
            format!(
                r#"{{"type": "T", "fields": {{"big": "{}"}}, "predecessors": {{"r": "{hash}"}}}}"#,
                "x".repeat(70_000)
            ),
        ];
        for bad in bad_facts {
            let error = cairn_fact::CanonicalFact::from_json(bad.as_bytes(), 65_536)
                .expect_err("the fact is refused");
            assert!(
                ErrorCode::parse(error.code()).is_some(),
                "{} ({bad:.80})",
                error.code()
            );
        }
    }
}
