//! The innermost service of the client stack: one attempt over `reqwest`,
//! reading the whole answer so that the attempt timeout covers the body too,
//! and turning non-2xx answers into [`CallError::Status`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tower::Service;

use crate::call::{CallRequest, CallResponse};
use crate::error::CallError;
use crate::limits::RESPONSE_BODY_BYTES_MAX;

/// Sends one attempt through a pooled `reqwest` client.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// Wraps a `reqwest` client; timeouts are left to the layers above.
    pub fn new(client: reqwest::Client) -> Self {
        HttpTransport { client }
    }
}

impl Service<CallRequest> for HttpTransport {
    type Response = CallResponse;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<CallResponse, CallError>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: CallRequest) -> Self::Future {
        let sending = self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .send();
        Box::pin(async move {
            let mut response = sending.await.map_err(transport_error)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let mut body = BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                if body.len() + chunk.len() > RESPONSE_BODY_BYTES_MAX {
                    return Err(CallError::ResponseTooLarge {
                        limit_bytes: RESPONSE_BODY_BYTES_MAX,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            let body = body.freeze();
            if status.is_success() {
                Ok(CallResponse {
                    status,
                    headers,
                    body,
                })
            } else {
                Err(CallError::Status {
                    status,
                    retry_after: retry_after(&headers),
                    body,
                })
            }
        })
    }
}

fn transport_error(error: reqwest::Error) -> CallError {
    CallError::Transport {
        source: Box::new(error),
    }
}

/// `Retry-After` in its delay-seconds form; the HTTP-date form is rare between
/// services and falls back to the normal backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}
