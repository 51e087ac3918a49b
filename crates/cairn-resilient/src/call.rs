//! The request and answer types that flow through the client's `tower`
//! stack. The request is cheap to clone (its body is `Bytes`), which is what
//! lets the retry layer resend it unchanged.

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::error::CallError;
use crate::idempotency_key::IDEMPOTENCY_KEY_HEADER;

/// One HTTP request, resent as is on each attempt.
#[derive(Clone, Debug)]
pub struct CallRequest {
    /// The HTTP method.
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// Headers, the `Idempotency-Key` included.
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
}

impl CallRequest {
    /// True when sending the request twice cannot do harm twice: it carries an
    /// `Idempotency-Key`, or its method is idempotent by definition.
    pub fn is_retry_safe(&self) -> bool {
        self.headers.contains_key(IDEMPOTENCY_KEY_HEADER)
            || matches!(
                self.method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE
            )
    }
}

/// A complete 2xx answer.
#[derive(Clone, Debug)]
pub struct CallResponse {
    /// The answer's status (always 2xx).
    pub status: StatusCode,
    /// The answer's headers.
    pub headers: HeaderMap,
    /// The whole answer body.
    pub body: Bytes,
}

impl CallResponse {
    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(CallError::Decode)
    }
}
