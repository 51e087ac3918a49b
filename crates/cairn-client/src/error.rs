//! The SDK's error type, shaped by what the caller can do about each case:
//! retry later ([`ClientError::Unavailable`]), fix the input
//! ([`ClientError::Api`] with a 4xx status, [`ClientError::Fact`],
//! [`ClientError::Serialize`]), or treat the server's answer as suspect
//! ([`ClientError::HashMismatch`], [`ClientError::Protocol`]).

use cairn_fact::{FactError, Hash};

/// Result type of the SDK.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong in a call of the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error that retrying will not fix (a 4xx
    /// other than 429, or a 5xx other than 502/503/504). `code` is the
    /// server's stable error code (for example `missing_predecessors`).
    #[error("server answered {status} {code}: {message}")]
    Api {
        /// HTTP status of the answer.
        status: u16,
        /// The server's stable snake_case error code.
        code: String,
        /// The server's human-readable message.
        message: String,
        /// Further members of the server's error object (for example
        /// `missing`, the hashes of missing predecessors).
        details: serde_json::Map<String, serde_json::Value>,
    },
    /// No endpoint answered usefully within the bounded attempts: connection
    /// failures, timeouts, 429 or 502/503/504 on every try.
    #[error("no endpoint answered after {attempts} attempt(s); last error: {last_error}")]
    Unavailable {
        /// Attempts made (across all endpoints).
        attempts: u32,
        /// Description of the last failure.
        last_error: String,
    },
    /// The fact built on the client is not a valid fact.
    #[error("invalid fact: {0}")]
    Fact(#[from] FactError),
    /// A typed value could not be turned into a fact's `fields`.
    #[error("cannot serialize {type_name}: {message}")]
    Serialize {
        /// The fact type being serialized.
        type_name: &'static str,
        /// Why serialization failed.
        message: String,
    },
    /// A fact read from the server could not be turned into the typed value.
    #[error("cannot deserialize fact {hash} as {type_name}: {message}")]
    Deserialize {
        /// The fact's hash.
        hash: Hash,
        /// The expected fact type.
        type_name: &'static str,
        /// Why deserialization failed.
        message: String,
    },
    /// A fact read as a typed value has another type.
    #[error("fact {hash} has type {found:?}, expected {expected:?}")]
    TypeMismatch {
        /// The fact's hash.
        hash: Hash,
        /// The type asked for.
        expected: &'static str,
        /// The type the fact has.
        found: String,
    },
    /// The server reported a different hash than the client computed for
    /// the same fact: one of the two canonicalizers is wrong.
    #[error("the server hashed a fact to {server}, the client to {local}")]
    HashMismatch {
        /// The hash computed by the client.
        local: Hash,
        /// The hash reported by the server.
        server: Hash,
    },
    /// The server's answer does not follow the API contract.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The client was configured wrongly (no endpoint, an invalid URL).
    #[error("invalid client options: {0}")]
    InvalidOptions(String),
    /// The subscription does not exist on the server.
    #[error("no subscription named {name:?}")]
    UnknownSubscription {
        /// The subscription's name.
        name: String,
    },
    /// No reply to a request arrived in time.
    #[error("no reply of type {reply_type} to request {request} within {waited_ms} ms")]
    ReplyTimeout {
        /// The request fact's hash.
        request: Hash,
        /// The reply type awaited.
        reply_type: &'static str,
        /// How long the client waited.
        waited_ms: u64,
    },
    /// The client was closed ([`crate::Client::close`], by this clone or
    /// another): no call is sent any more. Not retryable.
    #[error("the client was closed; no more calls are sent")]
    Closed,
    /// An embedded node could not start: its store could not be opened
    /// (for example because another process has it) or its listen address
    /// could not be bound.
    #[error("the embedded Cairn node cannot start: {0}")]
    Embedded(String),
    /// A reply fact does not name its request as a predecessor, so the
    /// requester would never find it.
    #[error("the reply does not name request {request} as a predecessor")]
    ReplyNotLinked {
        /// The request fact's hash.
        request: Hash,
    },
    /// [`Client::wait_for_fact`](crate::Client::wait_for_fact) gave up: the
    /// fact was not stored in time.
    #[error("fact {hash} was not stored within {waited_ms} ms")]
    NotStored {
        /// The fact waited for.
        hash: Hash,
        /// How long the call waited.
        waited_ms: u64,
    },
    /// A sync with a remote deployment (`RemoteSync::wait_caught_up`) was
    /// not caught up in both directions in time.
    #[error("sync {name:?} was not caught up within {waited_ms} ms: {detail}")]
    NotCaughtUp {
        /// The sync's name.
        name: String,
        /// How long the call waited.
        waited_ms: u64,
        /// Where each direction stood, and its last error.
        detail: String,
    },
}

impl ClientError {
    /// The server's error code, if the server answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The breaking changes of a schema registration refused with `409
    /// incompatible_schema` (its `breaking` details); empty for any other
    /// error.
    pub fn breaking_changes(&self) -> Vec<cairn_api::BreakingChange> {
        self.detail_list("breaking")
    }

    /// The schema violations of a write refused with `422
    /// schema_violation` (its `violations` details, each a JSON pointer
    /// into the fact and the rule it breaks); empty for any other error.
    pub fn violations(&self) -> Vec<cairn_api::Violation> {
        self.detail_list("violations")
    }

    /// The list in the error details under `key`, read as `T`s; empty if
    /// there is none (or it does not read as such).
    fn detail_list<T: serde::de::DeserializeOwned>(&self, key: &str) -> Vec<T> {
        match self {
            ClientError::Api { details, .. } => details
                .get(key)
                .and_then(|list| serde_json::from_value(list.clone()).ok())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Whether trying the same call again later may succeed: the service
    /// was unavailable or overloaded. Input errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unavailable { .. } => true,
            ClientError::Api { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

/// Whether an HTTP status means "try again, perhaps elsewhere": overloaded
/// (429) or a gateway or server that is not ready (502, 503, 504).
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}
