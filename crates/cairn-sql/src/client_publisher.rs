//! [`FactPublisher`] for the SDK's [`cairn_client::Client`], so that a
//! service that already holds a client (with its failover between
//! endpoints and its retries) gives the relay that same client instead of a
//! second HTTP stack.

use cairn_client::{Client, ClientError};
use cairn_fact::CanonicalFact;
use futures_util::future::BoxFuture;

use crate::limits::ERROR_MESSAGE_CHARS_MAX;
use crate::publisher::{FactPublisher, PublishError};

/// Publishes through [`Client::put_facts`], which sends the canonical bytes
/// as they are, retries transient failures within the client's own bounds,
/// and checks Cairn's hash of every fact against the local one.
impl FactPublisher for Client {
    fn publish(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(async move {
            self.put_facts(facts)
                .await
                .map(|_results| ())
                .map_err(publish_error)
        })
    }
}

/// Sorts a client error by what the relay's operator can do about it:
/// wait (unavailable, overloaded, failing server) or look (a refusal, a
/// disagreeing hash, an answer that breaks the contract).
fn publish_error(error: ClientError) -> PublishError {
    match error {
        ClientError::Unavailable { .. } => PublishError::Unavailable {
            message: excerpt(&error.to_string()),
        },
        ClientError::Api {
            status,
            code,
            message,
            ..
        } => {
            // The client gives up at once on a 5xx other than 502/503/504,
            // but a failing server is still something waiting may fix.
            if status == 408 || status == 429 || status >= 500 {
                PublishError::Unavailable {
                    message: excerpt(&format!("status {status}, code {code}: {message}")),
                }
            } else {
                PublishError::Rejected {
                    status,
                    code: excerpt(&code),
                    message: excerpt(&message),
                }
            }
        }
        ClientError::HashMismatch { local, server } => PublishError::HashMismatch {
            expected: local,
            answered: server.to_hex(),
        },
        // `put_facts` of already canonical facts builds nothing, so what is
        // left (a protocol breach, and variants of other calls) all means
        // that the exchange with Cairn went wrong.
        other => PublishError::MalformedAnswer {
            message: excerpt(&other.to_string()),
        },
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
    use cairn_fact::Hash;

    fn api(status: u16, code: &str) -> ClientError {
        ClientError::Api {
            status,
            code: code.to_owned(),
            message: "m".to_owned(),
            details: serde_json::Map::new(),
        }
    }

    #[test]
    fn unavailable_and_server_errors_are_transient() {
        let unavailable = ClientError::Unavailable {
            attempts: 3,
            last_error: "connection refused".to_owned(),
        };
        assert!(publish_error(unavailable).is_transient());
        for status in [408, 429, 500, 503] {
            assert!(
                publish_error(api(status, "x")).is_transient(),
                "status {status}"
            );
        }
    }

    #[test]
    fn refusals_keep_status_and_code() {
        let rejected = publish_error(api(422, "missing_predecessors"));
        assert!(
            matches!(&rejected, PublishError::Rejected { status: 422, code, .. } if code == "missing_predecessors")
        );
        assert!(!rejected.is_transient());
    }

    #[test]
    fn disagreements_and_breaches_are_not_transient() {
        let local = Hash([1; 32]);
        let server = Hash([2; 32]);
        let mismatch = publish_error(ClientError::HashMismatch { local, server });
        assert!(
            matches!(&mismatch, PublishError::HashMismatch { expected, answered } if *expected == local && *answered == server.to_hex())
        );
        let breach = publish_error(ClientError::Protocol(
            "x".repeat(2 * ERROR_MESSAGE_CHARS_MAX),
        ));
        assert!(
            matches!(&breach, PublishError::MalformedAnswer { message } if message.chars().count() <= ERROR_MESSAGE_CHARS_MAX + 1)
        );
    }
}
