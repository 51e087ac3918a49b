//! What every HTTP party of replication shares — a link's source, the
//! SDK's outbound sink, a comparison's digests: the client (a connect
//! deadline, extra certificate authorities), answers read up to a bound,
//! and what a failed request means (transient: retry; refused: the
//! definition or credentials need fixing). A message names the URL and
//! the failure, never the bearer token.

use std::time::Duration;

use reqwest::{Certificate, RequestBuilder, StatusCode};

use crate::limits::CONNECT_TIMEOUT_MS;
use crate::source::SourceError;

/// A client that connects within [`CONNECT_TIMEOUT_MS`], trusting
/// `extra_roots` besides the public roots, each request cut off after
/// `timeout` if given (otherwise per request).
pub(crate) fn client(
    extra_roots: &[Certificate],
    timeout: Option<Duration>,
) -> Result<reqwest::Client, SourceError> {
    let mut builder =
        reqwest::Client::builder().connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    for root in extra_roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
        .build()
        .map_err(|error| SourceError::Unavailable(format!("cannot make an HTTP client: {error}")))
}

/// Sends `request` (with `token` as bearer, if given) and reads its
/// answer, at most `bytes_max` bytes of it: its status and body.
pub(crate) async fn send(
    request: RequestBuilder,
    token: Option<&str>,
    bytes_max: usize,
) -> Result<(StatusCode, Vec<u8>), SourceError> {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let too_large = || SourceError::Invalid(format!("an answer larger than {bytes_max} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > bytes_max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > bytes_max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// A request that got no answer: transient.
fn transport_error(error: reqwest::Error) -> SourceError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "connection failed"
    };
    // reqwest's message names the URL; the TLS failure itself is deeper
    // in the chain.
    let mut detail = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        detail = format!("{detail}: {inner}");
        cause = inner.source();
    }
    if detail.contains("certificate") {
        detail.push_str(
            " (a deployment whose certificate a private CA signed needs that CA: `cairn serve --link-ca-cert`, `cairn diff --ca-cert`)",
        );
    }
    SourceError::Unavailable(format!("{kind}: {detail}"))
}

/// What an answer other than 200 means: transient (408, 429, 5xx) or a
/// refusal, with the API's error code and message when the body has them.
pub(crate) fn status_error(status: StatusCode, body: &[u8]) -> SourceError {
    let detail = match serde_json::from_slice::<cairn_api::ErrorBody>(body) {
        Ok(answer) => format!("{status} {}: {}", answer.error.code, answer.error.message),
        Err(_) => status.to_string(),
    };
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        SourceError::Unavailable(detail)
    } else {
        SourceError::Refused(detail)
    }
}
