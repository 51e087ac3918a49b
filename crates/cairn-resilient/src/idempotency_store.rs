//! The narrow storage contract behind [`crate::IdempotencyLayer`], so that a
//! service can keep answers in its own durable store; the crate ships an
//! in-memory one ([`crate::InMemoryIdempotencyStore`]).

use std::future::Future;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;

/// What an answer is stored under: the same key on another route is another entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreKey {
    /// The request's method.
    pub method: Method,
    /// The request's path (without query).
    pub path: String,
    /// The `Idempotency-Key` value.
    pub idempotency_key: String,
}

impl StoreKey {
    /// Approximate bytes the key takes in memory, for byte-bounded stores.
    pub fn size_bytes(&self) -> usize {
        self.method.as_str().len() + self.path.len() + self.idempotency_key.len()
    }
}

/// BLAKE3 of method, path with query, and body: a repeated key must come with
/// the same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(pub [u8; 32]);

impl RequestFingerprint {
    /// Fingerprints one request. The NUL separators cannot occur in a method
    /// or a path, so distinct requests cannot hash the same concatenation.
    pub fn of(method: &Method, path_and_query: &str, body: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(method.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(path_and_query.as_bytes());
        hasher.update(b"\0");
        hasher.update(body);
        RequestFingerprint(*hasher.finalize().as_bytes())
    }
}

/// A complete answer, as replayed for a repeated key.
#[derive(Clone, Debug)]
pub struct StoredAnswer {
    /// The answer's status (2xx or 4xx).
    pub status: StatusCode,
    /// The answer's headers, hop-by-hop ones removed.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl StoredAnswer {
    /// Approximate bytes the answer takes in memory, for byte-bounded stores.
    pub fn size_bytes(&self) -> usize {
        let headers_bytes: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        headers_bytes + self.body.len()
    }
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Clone, Debug)]
pub enum BeginOutcome {
    /// The key was free and is now claimed by this request: run the handler.
    Started,
    /// The same request holds the key and has not finished.
    InProgress,
    /// The same request already finished; this is its answer.
    Completed(StoredAnswer),
    /// The key was used by a different request.
    FingerprintMismatch,
}

/// A store that could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("idempotency store failed: {reason}")]
pub struct IdempotencyStoreError {
    /// What went wrong.
    pub reason: String,
}

/// Where the layer keeps keys and answers.
///
/// Contract: `begin` is atomic per key (two concurrent `begin`s for one free
/// key give one `Started`); after `begin` returned `Started`, the entry stays
/// in progress until `complete` or `release`, or until the store's own expiry;
/// `complete` makes later `begin`s with the same fingerprint return the
/// answer; `release` frees an in-progress key so a retry can run the handler.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for the request with `fingerprint`, or reports who holds it.
    fn begin(
        &self,
        key: &StoreKey,
        fingerprint: RequestFingerprint,
    ) -> impl Future<Output = Result<BeginOutcome, IdempotencyStoreError>> + Send;

    /// Stores the answer of the request that claimed `key`.
    fn complete(
        &self,
        key: &StoreKey,
        answer: StoredAnswer,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send;

    /// Frees `key` if it is still in progress (the answer was not storable).
    fn release(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send;
}
