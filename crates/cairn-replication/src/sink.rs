//! Where a link writes to: the receiving store, which stores batches
//! predecessors first and durably, and keeps the link's progress.

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;

use crate::progress::Progress;

/// Why a sink refused a batch or progress.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SinkError {
    /// Some predecessors are neither stored nor earlier in the batch;
    /// nothing of the batch was stored.
    #[error("{} predecessor(s) are missing", .0.len())]
    MissingPredecessors(Vec<Hash>),
    /// The sink cannot write now (storage failure, shutting down,
    /// unreachable): retry later.
    #[error("the receiving store cannot write: {0}")]
    Unavailable(String),
    /// The sink refused the batch for good (a fact it may not store).
    #[error("the receiving store refused the batch: {0}")]
    Refused(String),
}

/// The receiving store, as a link writes to it.
pub trait Sink: Send + Sync {
    /// The receiving store's identity (a link whose source answers with
    /// the same identity is a link to itself).
    fn store_id(&self) -> &str;

    /// Stores `facts`, each of whose predecessors is stored or earlier in
    /// the batch, all or nothing, durably on return; answers how many were
    /// not stored before.
    fn put(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<u64, SinkError>>;

    /// Saves the link's progress after the facts it covers are durable;
    /// answers `false` if the link is no longer this runner's to save
    /// (deleted, made again, or taken over by another server).
    fn save<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<bool, SinkError>>;
}

/// Where a sender keeps a link's progress when the sink is another
/// deployment (an [`HttpSink`](crate::HttpSink)): the sending side saves
/// the bookmark in its own log, after the receiver acknowledged what it
/// covers — the SDK's offline sync keeps it in the embedded store's data
/// directory.
pub trait ProgressKeeper: Send + Sync {
    /// Saves `progress` durably; answers `false` if the link is no longer
    /// this sender's to save.
    fn save<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<bool, SinkError>>;
}
