//! Every stable error code of API v1 with its HTTP status and a one-line
//! meaning, and the JSON body every error answer carries:
//! `{"error": {"code", "message", ...}}`.

use serde::{Deserialize, Serialize};

/// Defines [`ErrorCode`] from one table: variant, code, status, meaning.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:literal, $meaning:literal;)+) => {
        /// A stable error code: what went wrong, in a form a program can
        /// act on. The code never changes meaning; new codes may be added.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(
                #[doc = $meaning]
                $variant,
            )+
        }

        impl ErrorCode {
            /// Every code, in the contract's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as it appears in the error body.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status answered with this code.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// What the code means, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)+
                }
            }
        }
    };
}

error_codes! {
    // 400: the request is malformed or invalid; fix it before retrying.
    MalformedJson = "malformed_json", 400, "The body is not valid JSON.";
    InvalidUtf8 = "invalid_utf8", 400, "The body is not valid UTF-8.";
    NestingTooDeep = "nesting_too_deep", 400, "JSON nests deeper than the limit (64 levels inside a fact).";
    DuplicateKey = "duplicate_key", 400, "A JSON object has the same key twice.";
    IntegerOutOfRange = "integer_out_of_range", 400, "A number cannot be represented exactly as a double (send it as a string).";
    NonFiniteNumber = "non_finite_number", 400, "A number is not finite.";
    InvalidUnicode = "invalid_unicode", 400, "A string holds a lone surrogate.";
    InvalidFact = "invalid_fact", 400, "A fact is not an object with exactly type, fields and predecessors.";
    InvalidType = "invalid_type", 400, "A type name does not match the type grammar.";
    InvalidRole = "invalid_role", 400, "A role name does not match the role grammar.";
    InvalidPredecessor = "invalid_predecessor", 400, "A predecessor is not a hash or a non-empty array of hashes.";
    InvalidHash = "invalid_hash", 400, "A hash is not 64 lowercase hexadecimal characters.";
    EmptyBatch = "empty_batch", 400, "A batch of facts holds no fact.";
    InvalidRequest = "invalid_request", 400, "The body does not have the shape or the values the endpoint takes.";
    InvalidDefinition = "invalid_definition", 400, "The subscription's name or definition is not acceptable.";
    InvalidLink = "invalid_link", 400, "The link's name or definition is not acceptable (a malformed URL, an invalid type pattern; the message says which); nothing changed.";
    InvalidSchema = "invalid_schema", 400, "The schema registration is not acceptable: not a JSON Schema (draft 2020-12), too large, a reference that is not local, an invalid upcast or predecessor constraint (the message says which); nothing changed.";
    InvalidTimer = "invalid_timer", 400, "The timer's name, schedule or template fact is not acceptable (the message says which); nothing changed.";
    InvalidService = "invalid_service", 400, "The service declaration is not acceptable: a malformed name, identity or type, a list too long, a name unlike the path's, an unknown member (the message says which); nothing changed.";
    MissingParameter = "missing_parameter", 400, "A required query parameter is absent.";
    UnknownParameter = "unknown_parameter", 400, "A query parameter is not one the endpoint takes.";
    InvalidParameter = "invalid_parameter", 400, "A query parameter is malformed or repeated.";
    ParameterOutOfRange = "parameter_out_of_range", 400, "A query parameter is outside its range.";
    MalformedHttp = "malformed_http", 400, "The HTTP request itself is malformed (request line, headers or framing).";
    WebsocketRequired = "websocket_required", 400, "The stream endpoint needs a WebSocket upgrade request.";
    IncompleteBody = "incomplete_body", 400, "The body ended before its declared length.";
    CreditExceeded = "credit_exceeded", 400, "A stream's outstanding credit would exceed the limit (only in a stream's error frame).";
    ReservedType = "reserved_type", 400, "A fact's type starts with Cairn., which only the server writes (the error names the fact's index).";
    InvalidFence = "invalid_fence", 400, "The Cairn-Fence header is not <lease name>=<positive integer>, or is sent more than once.";
    InvalidIfMatch = "invalid_if_match", 400, "The If-Match header is not * or one subscription generation (\"3\" or 3).";
    // 404: the resource does not exist.
    Unauthenticated = "unauthenticated", 401, "No access token, or one that is malformed, unknown, expired or revoked (answered with WWW-Authenticate: Bearer).";
    Forbidden = "forbidden", 403, "The access token is valid but its identity lacks the permission the message names; nothing changed.";
    NotFound = "not_found", 404, "No fact, blob or endpoint with that name.";
    UnknownSubscription = "unknown_subscription", 404, "No subscription with that name.";
    UnknownIdentity = "unknown_identity", 404, "No identity with that name (or it was revoked).";
    UnknownLink = "unknown_link", 404, "No replication link with that name.";
    UnknownSchema = "unknown_schema", 404, "No schema is registered for that type (or at that version).";
    UnknownTimer = "unknown_timer", 404, "No timer with that name (or the caller may not read its template's type).";
    UnknownService = "unknown_service", 404, "No service declaration with that name.";
    NotADeadLetter = "not_a_dead_letter", 404, "The message is not a dead letter of this subscription.";
    // 405, 409, 412, 413, 414, 415, 422: the request cannot be done as asked.
    MethodNotAllowed = "method_not_allowed", 405, "The endpoint exists but not with this method.";
    SubscriptionConflict = "subscription_conflict", 409, "A subscription with that name differs in what cannot change (type, predecessor, ordering_key, start).";
    IdentityExists = "identity_exists", 409, "An identity with that name exists (rotate its token instead).";
    NotClaimHolder = "not_claim_holder", 409, "The fact does not hold the claim (the error's `holder` names the fact that does, or is null); nothing changed.";
    LeaseHeld = "lease_held", 409, "Another holder's grant of the lease is current (the error's `holder` and `expires_at` say whose and until when).";
    StaleFence = "stale_fence", 409, "The fence is not the lease's current grant: a later grant exists or it was released (`current` is the current fence, if any); nothing changed.";
    LinkConflict = "link_conflict", 409, "A link with that name has another source or other types, which cannot change (delete it and create it again).";
    IncompatibleSchema = "incompatible_schema", 409, "The new schema version breaks its declared compatibility with earlier versions; `breaking` lists each change, nothing was registered.";
    SchemaConflict = "schema_conflict", 409, "Another schema is registered at that version, or the version does not follow the latest one; nothing was registered.";
    TooManyLinks = "too_many_links", 409, "The deployment keeps no more replication links.";
    TooManySubscriptions = "too_many_subscriptions", 409, "The server keeps no more subscriptions.";
    TooManyServices = "too_many_services", 409, "The deployment keeps no more service declarations.";
    RequestTooLarge = "request_too_large", 413, "The request body is larger than the limit.";
    BatchTooLarge = "batch_too_large", 413, "A batch holds more facts than the limit.";
    FactTooLarge = "fact_too_large", 413, "A fact's canonical form is larger than the limit.";
    BlobTooLarge = "blob_too_large", 413, "A blob is larger than the limit.";
    UriTooLong = "uri_too_long", 414, "The request's URI is longer than the limit.";
    HeadersTooLarge = "headers_too_large", 431, "The request's headers are larger than the limit.";
    UnsupportedMediaType = "unsupported_media_type", 415, "The body's Content-Type is not one the endpoint takes.";
    GenerationMismatch = "generation_mismatch", 412, "The subscription is not at the generation If-Match names (or does not exist); nothing changed.";
    MissingPredecessors = "missing_predecessors", 422, "Predecessors are neither stored nor earlier in the batch (listed in `missing`).";
    LinkToSelf = "link_to_self", 422, "The link's source answers with this deployment's own identity: a link to itself.";
    SchemaViolation = "schema_violation", 422, "A fact does not conform to its type's schema; `violations` names each error (at most 20) by JSON pointer and rule, and nothing was stored.";
    SchemaRequired = "schema_required", 422, "The server runs with --require-schemas and a fact's type has no schema; nothing was stored.";
    UnknownType = "unknown_type", 422, "A service declaration names types this deployment has never seen written nor another service declare (`types` lists them); register with allow_unknown_types=true for a first deployment. Nothing changed.";
    UpcastFailed = "upcast_failed", 422, "A stored fact cannot be read as the version asked for: an upcast operation does not apply to it (the message says which).";
    BlobHashMismatch = "blob_hash_mismatch", 422, "The uploaded bytes do not hash to the hash in the path.";
    // 429, 503: try again later; the request changed nothing or is safe to retry.
    RateLimited = "rate_limited", 429, "The identity's request or write rate is above its limit; retry after Retry-After seconds.";
    Overloaded = "overloaded", 429, "The server handles too many requests; retry with backoff.";
    Timeout = "timeout", 503, "The request took longer than the server allows.";
    StoreUnavailable = "store_unavailable", 503, "The database cannot be reached or does not answer in time; retrying is safe.";
    StorePoisoned = "store_poisoned", 503, "The store refuses writes after a storage failure until it is restarted.";
    ShuttingDown = "shutting_down", 503, "The server is shutting down; retry on another server or later.";
    StorageFailure = "storage_failure", 503, "The storage failed (the store then refuses writes); nothing was acknowledged.";
    // 502: another deployment this one asked failed.
    SourceUnavailable = "source_unavailable", 502, "A replication link's source could not be reached, refused, or answered something invalid (the message says which); nothing that breaks the closure was stored.";
    // 500: the server failed; the request may be retried, and an operator should look.
    CorruptData = "corrupt_data", 500, "Stored data failed its checks and is not served.";
    CorruptFact = "corrupt_fact", 500, "A stored fact does not match its hash.";
    Internal = "internal", 500, "An unexpected failure inside the server.";
}

impl ErrorCode {
    /// The code with this text, if it is one.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The body of every error answer: `{"error": {"code", "message", ...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The error object of an error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorObject {
    /// A stable snake_case code (see [`ErrorCode`]); a client may meet
    /// codes newer than it knows.
    pub code: String,
    /// A human sentence saying what went wrong and what to do.
    pub message: String,
    /// Further members of some codes: `missing` (hashes) for
    /// `missing_predecessors`, `index` (of the offending fact) for errors
    /// in a batch.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{text}"
            );
            assert_eq!(ErrorCode::parse(text), Some(*code));
            assert!((400..600).contains(&code.status()), "{text}");
            assert!(code.meaning().ends_with('.'), "{text}");
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }
}
