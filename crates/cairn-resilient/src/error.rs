//! Typed errors of a resilient call, shaped by what the caller can do about
//! them: retry later, fix the request, or give up.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;

/// Boxed error from a lower layer (the HTTP transport or `tower`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call through [`crate::ResilientClient`] did not produce a 2xx answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// An attempt, or the whole call, took longer than its timeout.
    #[error("the call timed out")]
    Timeout,
    /// The circuit breaker is open: the request was not sent.
    #[error("the circuit breaker is open; the request was not sent")]
    CircuitOpen,
    /// A retry was due but the retry budget had no room; `last_error` is the
    /// failure of the last attempt.
    #[error("retry budget exhausted; last attempt failed: {last_error}")]
    RetryBudgetExhausted {
        /// The error of the last attempt made.
        last_error: Box<CallError>,
    },
    /// The server answered with a status outside 2xx.
    #[error("the server answered {status}")]
    Status {
        /// The answer's status.
        status: StatusCode,
        /// The answer's body (up to the client's response limit).
        body: Bytes,
        /// The answer's `Retry-After`, when it held a number of seconds.
        retry_after: Option<Duration>,
    },
    /// The connection failed or broke before a complete answer arrived.
    #[error("transport error: {source}")]
    Transport {
        /// The underlying error.
        source: BoxError,
    },
    /// The answer body was larger than the client accepts.
    #[error("the answer body exceeds {limit_bytes} bytes")]
    ResponseTooLarge {
        /// The limit that was exceeded.
        limit_bytes: usize,
    },
    /// The request could not be built (bad URL, header, key or body).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What was wrong.
        reason: String,
    },
    /// The answer body was not the JSON the caller asked for.
    #[error("could not decode the answer body: {0}")]
    Decode(#[source] serde_json::Error),
}

impl CallError {
    /// True when the same request may succeed if sent again: timeouts, transport
    /// failures, 429, 502, 503 and 504. Other statuses (including every other
    /// 4xx) would fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Timeout | CallError::Transport { .. } => true,
            CallError::Status { status, .. } => matches!(
                *status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            _ => false,
        }
    }

    /// True when the error says the server (or the path to it) is unhealthy,
    /// which is what the circuit breaker counts. A 4xx or a 429 is a healthy
    /// server answering, so it does not count.
    pub fn is_server_failure(&self) -> bool {
        match self {
            CallError::Timeout | CallError::Transport { .. } => true,
            CallError::Status { status, .. } => status.is_server_error(),
            _ => false,
        }
    }

    /// Converts an error coming out of a `tower` layer: either one of ours that
    /// was boxed on the way, or `tower`'s own timeout.
    pub(crate) fn from_layer(error: BoxError) -> CallError {
        match error.downcast::<CallError>() {
            Ok(call_error) => *call_error,
            Err(error) if error.is::<tower::timeout::error::Elapsed>() => CallError::Timeout,
            Err(source) => CallError::Transport { source },
        }
    }
}
