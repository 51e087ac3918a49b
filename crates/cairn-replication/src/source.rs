//! Where a link reads from: another store's log, read in pages from a
//! bookmark, and single facts by hash (the predecessors a filter did not
//! select). `HttpSource` is the implementation over API v1; the
//! simulation has its own.

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;

/// One entry of a source's log.
#[derive(Clone, Debug)]
pub struct SourceEntry {
    /// Its position in the source's log.
    pub seq: u64,
    /// The fact, verified against its hash.
    pub fact: CanonicalFact,
}

/// A page of a source's log.
#[derive(Clone, Debug)]
pub struct SourcePage {
    /// The source's store identity.
    pub store: String,
    /// The source's last `seq` when it answered.
    pub head: u64,
    /// Entries after the requested position that match the requested
    /// types (and that the link may read), ascending by `seq`.
    pub entries: Vec<SourceEntry>,
    /// Every entry up to this `seq` was examined: the next page starts
    /// after it.
    pub next: u64,
    /// The hash of the entry at `next`, whatever its type, when the
    /// source tells it (it examined it in this answer, and the link may
    /// read it): where the link anchors its bookmark.
    pub next_hash: Option<Hash>,
}

/// Why a source could not answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SourceError {
    /// The source cannot be reached or answered a transient failure
    /// (connection refused or cut, timeout, 5xx, 429): retry later.
    #[error("the source is unavailable: {0}")]
    Unavailable(String),
    /// The source refused the request (401, 403, another 4xx): the link's
    /// definition or credentials need fixing.
    #[error("the source refused the request: {0}")]
    Refused(String),
    /// The source answered something that is not a valid answer: garbage,
    /// a fact whose bytes do not match its hash, entries out of order.
    #[error("the source answered an invalid page: {0}")]
    Invalid(String),
}

/// Another store's log, as a link reads it.
pub trait Source: Send + Sync {
    /// Entries with `seq > after` whose type matches one of `types`, at
    /// most `limit`, waiting up to `wait_ms` for one to arrive.
    fn page<'a>(
        &'a self,
        after: u64,
        types: &'a [String],
        limit: usize,
        wait_ms: u64,
    ) -> BoxFuture<'a, Result<SourcePage, SourceError>>;

    /// The fact `hash`, verified; `None` if the source does not hold it or
    /// the link may not read it.
    fn fact<'a>(
        &'a self,
        hash: &'a Hash,
    ) -> BoxFuture<'a, Result<Option<CanonicalFact>, SourceError>>;
}
