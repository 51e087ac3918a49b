//! Errors of the storage layer, one enum per kind of operation, shaped by
//! what the caller can do about them: fix the input, retry later, or stop.

use cairn_fact::Hash;

/// Why a batch of facts was not written. A failed write changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Some predecessors are neither stored nor earlier in the same batch.
    /// The caller can fix the input (write the predecessors first).
    #[error("{} predecessor(s) are not stored and not earlier in the batch", missing.len())]
    MissingPredecessors {
        /// The unknown predecessor hashes, each listed once, in first-seen order.
        missing: Vec<Hash>,
    },
    /// An earlier write or sync failed, so the on-disk state is unknown; the
    /// store refuses writes until it is reopened.
    #[error("the store refuses writes after an earlier storage failure; restart the server")]
    Poisoned,
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The storage engine failed; the store is now poisoned.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Stored data the write had to read failed verification (a fact that
    /// does not match its hash or does not parse); nothing was written.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be reached (or did not answer in time). The batch
    /// was not acknowledged: it is either not stored at all or, if the
    /// connection broke during the commit, stored whole. Writes are
    /// idempotent, so retrying is safe.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Stored data failed verification; the store stops serving it.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The storage engine failed to read.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The database cannot be reached (or did not answer in time).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl From<fjall::Error> for ReadError {
    fn from(error: fjall::Error) -> Self {
        ReadError::Storage(error.to_string())
    }
}
