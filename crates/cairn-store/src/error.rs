//! Errors of the storage layer, one enum per kind of operation, shaped by
//! what the caller can do about them: fix the input, retry later, or stop.
//!
//! A failure below the store (fjall's, the file system's, the database
//! driver's) travels as the error's `source()`, typed, for callers that
//! inspect it (an `io::ErrorKind`, a SQLSTATE). The message still quotes
//! it, as it always has: the HTTP API's error bodies show the message alone,
//! and an operator reading one needs the underlying cause, so a printer of
//! the whole chain shows that cause twice.

use cairn_fact::Hash;

/// The underlying error of a store error: from fjall, the file system, the
/// database driver, or another store error.
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a batch of facts was not written. A failed write changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("storage failure: {message}")]
    Storage {
        /// What failed, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// Stored data the write had to read failed verification (a fact that
    /// does not match its hash or does not parse); nothing was written.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A fenced write's fence is not the current grant of its lease: a
    /// later grant exists, or it was released (or never granted). Nothing
    /// was written; the writer has lost the lease and must not retry.
    #[error("fence {fence} of lease {name:?} is stale{}", match current {
        Some(current) => format!(": the current grant is fence {current}"),
        None => ": the lease has no current grant".to_string(),
    })]
    StaleFence {
        /// The lease's name.
        name: String,
        /// The fence the write carried.
        fence: u64,
        /// The current grant's fence, if the lease is held.
        current: Option<u64>,
    },
    /// The database cannot be reached (or did not answer in time). The batch
    /// was not acknowledged: it is either not stored at all or, if the
    /// connection broke during the commit, stored whole. Writes are
    /// idempotent, so retrying is safe.
    #[error("the database is unavailable: {message}")]
    Unavailable {
        /// What failed, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
}

impl WriteError {
    /// A storage failure that no underlying error explains.
    pub fn storage(message: impl Into<String>) -> WriteError {
        WriteError::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// A storage failure caused by `source`; `message` quotes it.
    pub fn storage_caused_by(
        message: impl Into<String>,
        source: impl Into<SourceError>,
    ) -> WriteError {
        WriteError::Storage {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Stored data failed verification; the store stops serving it.
    #[error("stored data is corrupt: {message}")]
    Corrupt {
        /// What is damaged, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// The storage engine failed to read.
    #[error("storage failure: {message}")]
    Storage {
        /// What failed, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// The database cannot be reached (or did not answer in time).
    #[error("the database is unavailable: {message}")]
    Unavailable {
        /// What failed, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
}

impl ReadError {
    /// Corruption that no underlying error explains: stored data
    /// contradicts itself.
    pub fn corrupt(message: impl Into<String>) -> ReadError {
        ReadError::Corrupt {
            message: message.into(),
            source: None,
        }
    }

    /// Corruption that `source` reported; `message` quotes it.
    pub fn corrupt_caused_by(
        message: impl Into<String>,
        source: impl Into<SourceError>,
    ) -> ReadError {
        ReadError::Corrupt {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A storage failure that no underlying error explains.
    pub fn storage(message: impl Into<String>) -> ReadError {
        ReadError::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// A storage failure caused by `source`; `message` quotes it.
    pub fn storage_caused_by(
        message: impl Into<String>,
        source: impl Into<SourceError>,
    ) -> ReadError {
        ReadError::Storage {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl From<fjall::Error> for ReadError {
    fn from(error: fjall::Error) -> Self {
        ReadError::storage_caused_by(error.to_string(), error)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    #[test]
    fn a_storage_failure_keeps_its_message_and_exposes_its_cause() {
        let cause = io::Error::new(io::ErrorKind::PermissionDenied, "denied");
        let error = ReadError::storage_caused_by(format!("cannot create /data: {cause}"), cause);
        assert_eq!(
            error.to_string(),
            "storage failure: cannot create /data: denied"
        );
        let source = error.source().expect("the cause is the source");
        let cause = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(cause.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_failure_without_cause_has_no_source() {
        let error = WriteError::storage("unexpected position 3");
        assert_eq!(error.to_string(), "storage failure: unexpected position 3");
        assert!(error.source().is_none());
    }
}
