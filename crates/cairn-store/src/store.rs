//! The `Store` trait: the contract between Cairn's HTTP layer and any
//! storage backend, and the plain data types that cross it.

use std::future::Future;

use cairn_fact::{CanonicalFact, Hash};
use tokio::sync::watch;

use crate::error::{ReadError, WriteError};

/// A fact as stored: its identity, its position in this store's log and its
/// canonical bytes (which are also its JSON representation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFact {
    /// BLAKE3 of `canonical`.
    pub hash: Hash,
    /// Position in this store's local log (1-based, gap-free).
    pub seq: u64,
    /// RFC 8785 canonical JSON of the fact.
    pub canonical: Vec<u8>,
}

/// The result of writing one fact of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The fact's hash.
    pub hash: Hash,
    /// Its sequence number (the existing one if it was already stored).
    pub seq: u64,
    /// False when the fact was already stored (or earlier in the same batch).
    pub inserted: bool,
}

/// A page of facts in `seq` order; `next_seq` is the `after` value for the
/// following page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The facts, ascending by `seq`.
    pub facts: Vec<StoredFact>,
    /// The highest `seq` covered by this page (the request's `after` if empty).
    pub next_seq: u64,
}

/// Successors of one fact: facts of type `type_name` naming `predecessor`
/// (in `role`, or in any role), optionally excluding those that have a
/// successor of one of the `without_types`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessorsQuery {
    /// The fact whose successors are listed.
    pub predecessor: Hash,
    /// Only successors of this type.
    pub type_name: String,
    /// Only successors naming the predecessor in this role.
    pub role: Option<String>,
    /// Exclude successors that themselves have a successor of any of these types.
    pub without_types: Vec<String>,
    /// Only successors with `seq` greater than this.
    pub after_seq: u64,
    /// At most this many facts.
    pub limit: usize,
}

/// Counters describing a store, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    /// Highest durable sequence number (= number of facts stored).
    pub last_seq: u64,
    /// New facts written since the process started.
    pub facts_inserted: u64,
    /// Canonical bytes of new facts written since the process started.
    pub bytes_inserted: u64,
    /// Number of durable commits (each one fsync shared by a group of writers).
    pub syncs: u64,
    /// Total seconds spent in those syncs.
    pub sync_seconds: f64,
    /// Total seconds the writer paused so that the storage engine's
    /// flushes could catch up with the writes (0 where nothing paces).
    pub paced_seconds: f64,
    /// Histogram of facts per sync: `(upper_bound, cumulative_count)`.
    pub facts_per_sync_buckets: Vec<(u64, u64)>,
    /// Bytes the store occupies on disk.
    pub disk_bytes: u64,
    /// True once a storage failure made the store refuse writes.
    pub poisoned: bool,
    /// Connection pool and query latency, for a store over a database.
    pub database: Option<DatabaseStats>,
}

/// Connection pool use and query latency of a store over a database.
#[derive(Clone, Debug, Default)]
pub struct DatabaseStats {
    /// Connections open.
    pub pool_open: u32,
    /// Connections open and idle.
    pub pool_idle: u32,
    /// Connections allowed at most.
    pub pool_max: u32,
    /// Histogram of query durations: `(upper_bound_seconds, cumulative_count)`.
    pub query_seconds_buckets: Vec<(f64, u64)>,
    /// Total seconds spent in queries.
    pub query_seconds_sum: f64,
    /// Whether commits wait for a synchronous standby, as last read
    /// (`None` if unknown).
    pub replication: Option<crate::postgres::ReplicationStats>,
}

/// The storage contract every backend keeps.
///
/// * **Durable on return.** If `put_facts` returns `Ok`, every fact of the
///   batch is on stable storage and survives a crash of the process or the
///   machine. Nothing is reported as written before that.
/// * **All or nothing.** A batch is written atomically: on `Err` nothing of
///   it is stored and no sequence number is used.
/// * **Predecessors first.** A fact is stored only if each of its
///   predecessors is already stored or appears earlier in the same batch;
///   otherwise the whole batch fails with `MissingPredecessors`.
/// * **Idempotent.** Writing a stored fact again changes nothing and reports
///   its existing `seq` with `inserted: false`.
/// * **Immutable, append-only.** A committed fact is never rewritten; `seq`
///   values are assigned in commit order, start at 1 and have no gaps.
/// * **Reads see only durable facts**, and every fact read is verified
///   against its hash; a mismatch is `ReadError::Corrupt`, never wrong data.
/// * **Poisoning.** After a failed write or sync the store refuses further
///   writes (`WriteError::Poisoned`) until it is reopened.
/// * **Availability.** [`Store::ping`] answers whether the storage can be
///   reached now (a database server may go away and come back).
///
/// Delivery state is kept beside the facts: a store whose subscriptions run
/// in the server's memory implements [`DeliveryStore`](crate::DeliveryStore)
/// (the embedded store); the PostgreSQL store keeps it in shared tables.
pub trait Store: Send + Sync + 'static {
    /// Writes a batch of validated facts; see the trait contract.
    fn put_facts(
        &self,
        facts: Vec<CanonicalFact>,
    ) -> impl Future<Output = Result<Vec<PutOutcome>, WriteError>> + Send {
        self.put_facts_by(facts, None)
    }

    /// Writes a batch as [`Store::put_facts`] does, and records `author`
    /// (an identity's name) as the author of each fact it stores, and as
    /// one more writer of each fact that was stored already (at most
    /// [`crate::AUTHORS_AGAIN_MAX`] besides the first), atomically with the
    /// facts. `None` records nothing.
    fn put_facts_by(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
    ) -> impl Future<Output = Result<Vec<PutOutcome>, WriteError>> + Send;

    /// Returns the fact with this hash, if it is stored.
    fn get_fact(
        &self,
        hash: &Hash,
    ) -> impl Future<Output = Result<Option<StoredFact>, ReadError>> + Send;

    /// Lists successors per `query`, ascending by `seq`.
    fn successors(
        &self,
        query: &SuccessorsQuery,
    ) -> impl Future<Output = Result<Page, ReadError>> + Send;

    /// Lists the distinct types of the durable facts that name
    /// `predecessor` as a predecessor, in any role: the types whose
    /// [`Store::successors`] query (without `role` and `without_types`)
    /// would list at least one fact.
    ///
    /// * **Sorted** by byte order (the order of `str`), each type once,
    ///   only types after `after_type` (exclusive) if it is given, at most
    ///   `limit`; fewer than `limit` means there are no more. The caller
    ///   pages with the last type of one answer as the next `after_type`.
    /// * **Bounded work**: the cost grows with the number of types
    ///   returned, never with the number of successors of one type (a
    ///   store steps from one type to the next through its successors
    ///   index instead of reading every entry).
    /// * A fact that has no successors, or is not stored, has no types
    ///   (`Ok` and empty, like [`Store::successors`]).
    /// * A store whose index can be damaged without its storage engine
    ///   noticing (the embedded one) checks each type against a fact of
    ///   that type that names `predecessor`: a damaged index is
    ///   `ReadError::Corrupt`, never a type without such a fact.
    fn successor_types(
        &self,
        predecessor: &Hash,
        after_type: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send;

    /// Lists the log: facts with `seq > after_seq`, ascending, at most `limit`.
    fn log(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Page, ReadError>> + Send;

    /// Checks that the storage can be reached now.
    fn ping(&self) -> impl Future<Output = Result<(), ReadError>> + Send;

    /// Watches the highest durable `seq`; it changes whenever facts become
    /// durable, which is what long-polling readers wait for.
    fn watch_last_seq(&self) -> watch::Receiver<u64>;

    /// Current counters.
    fn stats(&self) -> StoreStats;

    /// Stops accepting writes, finishes the queued ones durably and releases
    /// the storage. Blocks until done; idempotent.
    fn close(&self);
}

/// Cumulative histogram buckets, `(upper_bound, count at or below it)`,
/// from per-bucket counters; `bounds` ends with the +Inf bound.
pub(crate) fn cumulative_buckets<B>(
    bounds: impl Iterator<Item = B>,
    counts: &[std::sync::atomic::AtomicU64],
) -> Vec<(B, u64)> {
    let mut cumulative = 0;
    bounds
        .zip(counts)
        .map(|(upper, count)| {
            cumulative += count.load(std::sync::atomic::Ordering::Relaxed);
            (upper, cumulative)
        })
        .collect()
}
