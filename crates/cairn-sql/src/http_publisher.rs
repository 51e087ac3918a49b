//! [`HttpPublisher`]: a [`FactPublisher`] that posts facts to Cairn's
//! `POST /v1/facts`, so that this crate works without the SDK's client.

use cairn_fact::CanonicalFact;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::limits::{ERROR_MESSAGE_CHARS_MAX, PUBLISH_TIMEOUT};
use crate::publisher::{FactPublisher, PublishError};

/// Publishes facts with one `POST <base>/v1/facts` request per call,
/// sending each fact's canonical bytes as they are, and checks that Cairn
/// answered the locally computed hash for every fact.
#[derive(Clone, Debug)]
pub struct HttpPublisher {
    client: reqwest::Client,
    facts_url: String,
}

/// The HTTP client could not be built (for example, no TLS backend).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct HttpClientError(#[from] reqwest::Error);

/// The parts of a `POST /v1/facts` answer the publisher checks.
#[derive(Deserialize)]
struct PostFactsAnswer {
    results: Vec<PostFactsResult>,
}

#[derive(Deserialize)]
struct PostFactsResult {
    hash: String,
}

/// Cairn's error body: `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetails,
}

#[derive(Deserialize)]
struct ErrorDetails {
    code: String,
    message: String,
}

impl HttpPublisher {
    /// A publisher for the Cairn server at `base_url` (for example
    /// `http://127.0.0.1:7710`), with its own client and a request timeout
    /// of [`PUBLISH_TIMEOUT`].
    pub fn new(base_url: &str) -> Result<HttpPublisher, HttpClientError> {
        let client = reqwest::Client::builder()
            .timeout(PUBLISH_TIMEOUT)
            .build()?;
        Ok(HttpPublisher::with_client(client, base_url))
    }

    /// A publisher that sends its requests with `client` (whose timeouts
    /// then apply).
    pub fn with_client(client: reqwest::Client, base_url: &str) -> HttpPublisher {
        HttpPublisher {
            client,
            facts_url: format!("{}/v1/facts", base_url.trim_end_matches('/')),
        }
    }

    async fn post(&self, facts: Vec<CanonicalFact>) -> Result<(), PublishError> {
        let response = self
            .client
            .post(&self.facts_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request_body(&facts))
            .send()
            .await
            .map_err(|error| unavailable(&error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| unavailable(&error))?;
        if !status.is_success() {
            return Err(error_for_status(status, &body));
        }
        let answer: PostFactsAnswer =
            serde_json::from_slice(&body).map_err(|error| PublishError::MalformedAnswer {
                message: error.to_string(),
            })?;
        if answer.results.len() != facts.len() {
            return Err(PublishError::MalformedAnswer {
                message: format!("{} results for {} facts", answer.results.len(), facts.len()),
            });
        }
        for (fact, result) in facts.iter().zip(&answer.results) {
            if result.hash != fact.hash.to_hex() {
                return Err(PublishError::HashMismatch {
                    expected: fact.hash,
                    answered: excerpt(&result.hash),
                });
            }
        }
        Ok(())
    }
}

impl FactPublisher for HttpPublisher {
    fn publish(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(self.post(facts))
    }
}

/// `{"facts":[...]}` with each fact's canonical bytes embedded as they are:
/// canonical JSON is valid JSON, and re-serializing it could only risk
/// changing it.
fn request_body(facts: &[CanonicalFact]) -> Vec<u8> {
    let canonical_bytes: usize = facts.iter().map(|fact| fact.canonical.len() + 1).sum();
    let mut body = Vec::with_capacity(canonical_bytes + 16);
    body.extend_from_slice(b"{\"facts\":[");
    for (fact_idx, fact) in facts.iter().enumerate() {
        if fact_idx > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&fact.canonical);
    }
    body.extend_from_slice(b"]}");
    body
}

fn unavailable(error: &reqwest::Error) -> PublishError {
    // The chain of sources says what actually failed (refused, timed out…).
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    PublishError::Unavailable {
        message: excerpt(&message),
    }
}

fn error_for_status(status: StatusCode, body: &[u8]) -> PublishError {
    let (code, message) = match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) => (answer.error.code, answer.error.message),
        Err(_) => (String::new(), String::from_utf8_lossy(body).into_owned()),
    };
    let transient = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if transient {
        PublishError::Unavailable {
            message: excerpt(&format!("status {status}, code {code}: {message}")),
        }
    } else {
        PublishError::Rejected {
            status: status.as_u16(),
            code: excerpt(&code),
            message: excerpt(&message),
        }
    }
}

/// Cuts `text` to [`ERROR_MESSAGE_CHARS_MAX`] characters, so that a huge
/// answer cannot make a huge error.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(ERROR_MESSAGE_CHARS_MAX) {
        Some((cut_idx, _)) => format!("{}…", &text[..cut_idx]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT;

    #[test]
    fn request_body_embeds_canonical_bytes_in_order() {
        let facts: Vec<CanonicalFact> = ["A", "B"]
            .iter()
            .map(|type_name| {
                let text = format!(r#"{{"type":"{type_name}","fields":{{}},"predecessors":{{}}}}"#);
                CanonicalFact::from_json(text.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT).unwrap()
            })
            .collect();
        assert_eq!(
            String::from_utf8(request_body(&facts)).unwrap(),
            r#"{"facts":[{"fields":{},"predecessors":{},"type":"A"},{"fields":{},"predecessors":{},"type":"B"}]}"#
        );
    }

    #[test]
    fn statuses_split_into_transient_and_rejected() {
        let body = br#"{"error":{"code":"missing_predecessors","message":"m"}}"#;
        let rejected = error_for_status(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert!(
            matches!(&rejected, PublishError::Rejected { status: 422, code, .. } if code == "missing_predecessors")
        );
        assert!(!rejected.is_transient());
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert!(error_for_status(status, b"not json").is_transient());
        }
    }

    #[test]
    fn excerpt_cuts_long_text_on_a_character_boundary() {
        let long = "é".repeat(ERROR_MESSAGE_CHARS_MAX + 10);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), ERROR_MESSAGE_CHARS_MAX + 1);
        assert_eq!(excerpt("short"), "short");
    }
}
