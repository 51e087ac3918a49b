//! The embedded store: one data directory, no other process.
//!
//! Facts and their indexes live in one fjall keyspace (an LSM tree with a
//! write-ahead journal), in thirteen partitions:
//!
//! | partition    | key                                   | value               |
//! |--------------|---------------------------------------|---------------------|
//! | `facts`      | seq (u64 BE)                          | hash ‖ canonical    |
//! | `by_hash`    | hash                                  | seq (u64 BE)        |
//! | `successors` | predecessor ‖ type ‖ 0 ‖ seq ‖ role   | empty               |
//! | `by_type`    | type ‖ 0 ‖ seq                        | empty               |
//! | `delivery`   | see `delivery.rs`                     | delivery records    |
//! | `identities` | see `identity.rs`                     | identities, tokens  |
//! | `audit`      | seq (u64 BE)                          | audit record        |
//! | `authors`    | see `identity.rs`                     | authorship          |
//! | `coordination` | see `coordination.rs`               | claims, leases      |
//! | `timers`     | see `timers.rs`                       | durable timers      |
//! | `links`      | see `links.rs`                        | replication links   |
//! | `digests`    | see `digests.rs`                      | digest checkpoint   |
//! | `meta`       | `format`, `deployment`                | format version, the deployment's identity |
//!
//! All partitions of one group commit go into one atomic batch, so they are
//! always consistent with each other. See `docs/design.md` for the commit
//! and fsync sequence and what a crash leaves behind.

mod coordination;
mod delivery;
mod digests;
mod identity;
mod journal_check;
mod keys;
mod links;
mod timers;
mod watermark;
mod writer;

use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_fact::{parse_json, CanonicalFact, Fact, Hash, JSON_DEPTH_MAX};
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{ReadError, SourceError, WriteError};
use crate::store::{
    cumulative_buckets, Page, PutOutcome, Store, StoreStats, StoredFact, SuccessorsQuery,
};
use writer::WriteRequest;

/// The on-disk format version this code reads and writes.
const FORMAT_VERSION: &[u8] = b"1";
/// Memtables fjall flushes per wake-up of its flush worker (its
/// `flush_workers` setting is this task limit; there is one flush thread).
/// At open, fjall queues the memtables recovered from the journals without
/// waking the worker, and later wakes it once per new memtable; with the
/// default (the number of cores, 2 here) the recovered backlog could stay
/// queued behind newer work, the oldest journal was never deleted, and fjall
/// halted all writes for good ("too many journals"). We saw that in several
/// restarts after heavy writes (`bench/scale.sh`, 1 million facts). The
/// backlog is at most 32 journals (the default `journal_bytes_max` / 32 MiB)
/// times 12 partitions written after creation (all but `meta`), so with 512
/// one wake-up flushes all of it.
const FLUSH_TASKS_PER_WAKEUP: usize = 512;
const _: () =
    assert!(FLUSH_TASKS_PER_WAKEUP as u64 >= JOURNAL_BYTES_MAX_DEFAULT / (32 * 1024 * 1024) * 12);
/// The default journal budget. fjall counts every journal at its
/// preallocated 32 MiB, while one holds what the writes of one memtable
/// rotation left (6–10 MiB of real bytes under bulk ingest): 1 GiB is 32
/// journals. The index partitions' memtables fill several times more slowly
/// than `facts`' and keep older journals alive until they are flushed, so
/// with 256 MiB (8 journals) bulk ingest reached fjall's journal stall
/// (500 ms sleeps, then a halt) every second or two. Recovery after a crash
/// replays only the real bytes; `bench/scale.sh` measures the restart.
const JOURNAL_BYTES_MAX_DEFAULT: u64 = 1024 * 1024 * 1024;
/// How long a clean close waits for the memtables to be written to tables.
const CLOSE_FLUSH_WAIT_MAX: Duration = Duration::from_secs(60);
/// Target size of the tables of the partitions with a bloom filter
/// (`by_hash`, `authors`): see where they are opened.
const FILTERED_TABLE_BYTES: u32 = 16 * 1024 * 1024;
/// Upper bounds of the facts-per-sync histogram buckets.
const FACTS_PER_SYNC_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384];
/// Successor index entries examined per query at most, so that a query whose
/// candidates are mostly excluded by `without` stays bounded; the page then
/// ends early and `next_seq` lets the caller continue.
const SUCCESSOR_ENTRIES_SCANNED_MAX: usize = 100_000;

/// How long the unsafe negative-control mode holds acknowledged writes in
/// memory before writing them.
pub const UNSAFE_ACK_AHEAD: Duration = Duration::from_millis(50);

/// How the store makes a commit durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` the journal before acknowledging (the default).
    Data,
    /// **Unsafe, for negative-control tests only**: acknowledge each group
    /// as soon as it is validated, then wait [`UNSAFE_ACK_AHEAD`] before
    /// writing it, without a sync. A crash in that window loses
    /// acknowledged writes, which the durability tests must detect.
    UnsafeAckBeforeWrite,
}

/// Settings of an embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// How commits are made durable.
    pub sync_mode: SyncMode,
    /// Block cache size of the storage engine.
    pub cache_bytes: u64,
    /// Memory for memtables (all partitions) before writes stall for flushes.
    pub write_buffer_bytes: u64,
    /// Size at which one partition's memtable is sealed and flushed.
    pub memtable_bytes: u32,
    /// Journal size before memtables are flushed; bounds recovery time at start.
    pub journal_bytes_max: u64,
    /// Facts gathered into one group commit at most.
    pub group_facts_max: usize,
    /// Write requests waiting for the writer at most (backpressure).
    pub queued_requests_max: usize,
    /// Test-only fault injection: every sync after this many fails.
    pub fail_sync_after: Option<u64>,
    /// Whether a clean close writes every memtable to a table (the
    /// default), so that the next open replays no journal. Tests turn it
    /// off to leave the journals as a crash leaves them.
    pub flush_memtables_at_close: bool,
    /// Audit entries kept at most ([`crate::AUDIT_ENTRIES_MAX`]; tests set
    /// fewer to see the oldest go).
    pub audit_entries_max: u64,
    /// New facts between two checkpoints of the digests at most (see
    /// `digests.rs`; tests set fewer to see checkpoints and replays).
    pub digest_checkpoint_facts: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            sync_mode: SyncMode::Data,
            cache_bytes: 16 * 1024 * 1024,
            write_buffer_bytes: 32 * 1024 * 1024,
            memtable_bytes: 8 * 1024 * 1024,
            journal_bytes_max: JOURNAL_BYTES_MAX_DEFAULT,
            group_facts_max: 20_000,
            queued_requests_max: 4096,
            fail_sync_after: None,
            flush_memtables_at_close: true,
            audit_entries_max: crate::AUDIT_ENTRIES_MAX,
            digest_checkpoint_facts: digests::CHECKPOINT_FACTS,
        }
    }
}

/// State shared between the store handle (readers) and the writer thread.
struct Shared {
    options: EmbeddedOptions,
    keyspace: Keyspace,
    facts: PartitionHandle,
    by_hash: PartitionHandle,
    successors: PartitionHandle,
    by_type: PartitionHandle,
    /// Subscriptions' delivery state (see `delivery.rs`).
    delivery: PartitionHandle,
    /// Identities, their tokens and the identity revision (see `identity.rs`).
    identities: PartitionHandle,
    /// The audit trail, by seq.
    audit: PartitionHandle,
    /// Who wrote each fact written by an identity, by hash.
    authors: PartitionHandle,
    /// Claims and leases (see `coordination.rs`).
    coordination: PartitionHandle,
    /// This deployment's identity (see [`crate::CoordinationStore::deployment`]).
    deployment: String,
    /// Durable timers and their time index (see `timers.rs`).
    timers: PartitionHandle,
    /// Replication links (see `links.rs`).
    links: PartitionHandle,
    /// The checkpoint of the digests (see `digests.rs`).
    digests_partition: PartitionHandle,
    /// The digests of the durable facts, kept by the writer.
    digests: Mutex<digests::DigestState>,
    /// The identity revision of the last durable group.
    identity_revision: AtomicU64,
    /// Timers with an attempt pending (entries of the timers' time index),
    /// as of the last durable group: counted once at open, then kept by
    /// the writer, so that the gauge never scans the index.
    timers_pending: AtomicU64,
    /// Highest seq that is durable; readers never look past it.
    durable_seq: AtomicU64,
    durable_seq_watch: watch::Sender<u64>,
    poisoned: AtomicBool,
    facts_inserted: AtomicU64,
    bytes_inserted: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
    /// Time the writer paused for flushes to catch up (see `writer.rs`).
    paced_nanos: AtomicU64,
    facts_per_sync: [AtomicU64; FACTS_PER_SYNC_BUCKETS.len() + 1],
}

impl Shared {
    /// Writes every partition's memtable to a table at a clean close, and
    /// waits until fjall has deleted every journal but the active, empty
    /// one: the next open then replays nothing. Without it, a restart
    /// rebuilt up to the whole write buffer from the journals, which took
    /// time and kept the rebuilt memtables in memory until they filled and
    /// were flushed (`bench/heap.sh`, restart). fjall has no public call
    /// for this; `rotate_memtable` is its own (doc-hidden) way to seal a
    /// partition's memtable and queue its flush, and a sealed journal is
    /// deleted only once every partition has flushed what it holds, so one
    /// journal left means everything is in tables. Opening an open
    /// partition returns its handle and ignores the options. Past
    /// [`CLOSE_FLUSH_WAIT_MAX`] the close goes on: the next open replays
    /// what is left, as after a crash.
    fn flush_memtables(&self) -> fjall::Result<()> {
        for name in self.keyspace.list_partitions() {
            self.keyspace
                .open_partition(&name, PartitionCreateOptions::default())?
                .rotate_memtable()?;
        }
        let deadline = Instant::now() + CLOSE_FLUSH_WAIT_MAX;
        while self.keyspace.journal_count() > 1 {
            if Instant::now() > deadline {
                tracing::warn!(
                    journals = self.keyspace.journal_count(),
                    "memtables not yet flushed at close; the next open replays their journals"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn record_commit(&self, n_facts: u64, n_bytes: u64, sync_time: Duration) {
        self.facts_inserted.fetch_add(n_facts, Ordering::Relaxed);
        self.bytes_inserted.fetch_add(n_bytes, Ordering::Relaxed);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.sync_nanos
            .fetch_add(sync_time.as_nanos() as u64, Ordering::Relaxed);
        let bucket = FACTS_PER_SYNC_BUCKETS
            .iter()
            .position(|&upper| n_facts <= upper)
            .unwrap_or(FACTS_PER_SYNC_BUCKETS.len());
        self.facts_per_sync[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn publish_durable_seq(&self, seq: u64) {
        self.durable_seq.store(seq, Ordering::Release);
        self.durable_seq_watch.send_replace(seq);
    }

    /// Reads and verifies the fact at `seq`.
    fn fact_at(&self, seq: u64) -> Result<StoredFact, ReadError> {
        let value = self
            .facts
            .get(keys::seq_key(seq))
            .map_err(|error| self.engine_error(error))?
            .ok_or_else(|| self.corrupt(format!("fact with seq {seq} is indexed but missing")))?;
        self.verified_record(seq, &value)
    }

    /// The facts at `seqs` (ascending, each indexed, so each must exist),
    /// in that order. A run of consecutive seqs is read with one range scan
    /// of the `facts` partition, which decodes each of its blocks once,
    /// instead of one point read per fact, which decodes a block per fact:
    /// the pages of a subscription usually are such runs.
    fn facts_at(&self, seqs: &[u64]) -> Result<Vec<StoredFact>, ReadError> {
        debug_assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]));
        let mut facts = Vec::with_capacity(seqs.len());
        let mut rest = seqs;
        while let Some(&first) = rest.first() {
            let run = 1 + rest
                .windows(2)
                .take_while(|pair| pair[1] == pair[0] + 1)
                .count();
            let last = rest[run - 1];
            if run == 1 {
                facts.push(self.fact_at(first)?);
            } else {
                let mut expected = first;
                for entry in self.facts.range(keys::seq_key(first)..=keys::seq_key(last)) {
                    let (key, value) = entry.map_err(|error| self.engine_error(error))?;
                    let seq = keys::decode_seq(&key).ok_or_else(|| {
                        self.corrupt("malformed key in the facts partition".into())
                    })?;
                    if seq != expected {
                        return Err(self
                            .corrupt(format!("fact with seq {expected} is indexed but missing")));
                    }
                    facts.push(self.verified_record(seq, &value)?);
                    expected += 1;
                }
                if expected != last + 1 {
                    return Err(
                        self.corrupt(format!("fact with seq {expected} is indexed but missing"))
                    );
                }
            }
            rest = &rest[run..];
        }
        Ok(facts)
    }

    /// Decodes a `facts` record and checks its bytes against its hash.
    fn verified_record(&self, seq: u64, value: &[u8]) -> Result<StoredFact, ReadError> {
        let (hash, canonical) = keys::split_fact_value(value)
            .ok_or_else(|| self.corrupt(format!("fact with seq {seq} has a truncated record")))?;
        if Hash::of_bytes(canonical) != hash {
            return Err(self.corrupt(format!(
                "fact with seq {seq} does not match its hash {hash}"
            )));
        }
        Ok(StoredFact {
            hash,
            seq,
            canonical: canonical.to_vec(),
        })
    }

    /// Checks that `fact`, reached through a `successors` index entry, is
    /// of `type_name` and names `predecessor` in `role`. The storage engine
    /// does not verify its blocks on reads (lsm-tree 2 checks no block
    /// checksums), so a damaged entry could lead to any fact, which must not
    /// be served as a successor.
    fn check_successor(
        &self,
        fact: &StoredFact,
        predecessor: &Hash,
        type_name: &str,
        role: &[u8],
    ) -> Result<(), ReadError> {
        let parsed = parse_json(&fact.canonical, JSON_DEPTH_MAX)
            .ok()
            .and_then(|value| Fact::from_value(&value).ok());
        let names_predecessor = parsed.is_some_and(|parsed| {
            parsed.type_name == type_name
                && parsed.all_predecessors().any(|(named_role, named)| {
                    named == predecessor && named_role.as_bytes() == role
                })
        });
        if names_predecessor {
            Ok(())
        } else {
            Err(self.corrupt(format!(
                "the successors index lists the fact with seq {} under {predecessor}, \
                 which it does not name",
                fact.seq
            )))
        }
    }

    /// Maps an error of the storage engine on a read: malformed data is
    /// corruption, which poisons the store; an I/O failure does not.
    fn engine_error(&self, error: fjall::Error) -> ReadError {
        if is_io_failure(&error) {
            ReadError::storage_caused_by(error.to_string(), error)
        } else {
            let message = format!("the storage engine read damaged data: {error}");
            self.record_corruption(message, Some(error.into()))
        }
    }

    /// Records corruption: the store stops accepting writes on top of it.
    fn corrupt(&self, message: String) -> ReadError {
        self.record_corruption(message, None)
    }

    /// Records corruption that `source`, if given, reported: the store
    /// stops accepting writes on top of it.
    fn record_corruption(&self, message: String, source: Option<SourceError>) -> ReadError {
        tracing::error!(%message, "stored data is corrupt; refusing further writes");
        self.poisoned.store(true, Ordering::Release);
        ReadError::Corrupt { message, source }
    }

    fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// True when `candidate` has a durable successor of `type_name` in any role.
    fn has_successor_of_type(&self, candidate: &Hash, type_name: &str) -> Result<bool, ReadError> {
        let durable = self.durable_seq();
        let prefix = keys::successor_prefix(candidate, type_name);
        let end = keys::successor_prefix_end(candidate, type_name);
        for entry in self.successors.range(prefix.clone()..end) {
            let (key, _) = entry.map_err(|error| self.engine_error(error))?;
            let (seq, _) = keys::split_successor_suffix(&key[prefix.len()..])
                .ok_or_else(|| self.corrupt("malformed successor index key".into()))?;
            if seq <= durable {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Opens fjall's keyspace in `dir/store`, after the journal checks fjall
/// does not make, dropping a torn last batch fjall refuses to recover from
/// (see `journal_check.rs`).
fn open_keyspace(dir: &Path, options: &EmbeddedOptions) -> Result<Keyspace, ReadError> {
    let store_dir = dir.join("store");
    let journals_dir = store_dir.join("journals");
    let open = || {
        Config::new(&store_dir)
            .manual_journal_persist(true)
            .flush_workers(FLUSH_TASKS_PER_WAKEUP)
            .cache_size(options.cache_bytes)
            .max_write_buffer_size(options.write_buffer_bytes)
            .max_journaling_size(options.journal_bytes_max)
            .open()
    };
    journal_check::prepare(dir, &journals_dir)?;
    let error = match open() {
        Ok(keyspace) => return Ok(keyspace),
        Err(error @ fjall::Error::JournalRecovery(_)) => error,
        Err(error) => return Err(open_error(&store_dir, error)),
    };
    let cannot_set_aside = |io_error: std::io::Error| {
        ReadError::storage_caused_by(
            format!("cannot set aside the last batch of the journal after {error}: {io_error}"),
            io_error,
        )
    };
    let Some(set_aside) =
        journal_check::SetAsideBatch::take_last(dir, &journals_dir).map_err(cannot_set_aside)?
    else {
        return Err(open_error(&store_dir, error));
    };
    let batch = set_aside.describe();
    match open() {
        Ok(keyspace) => {
            tracing::warn!(
                %batch, %error,
                "dropped the journal's last batch: a crash tore it while it was written, \
                 before it was synced and acknowledged"
            );
            set_aside.drop_batch().map_err(cannot_set_aside)?;
            Ok(keyspace)
        }
        Err(_) => {
            set_aside.put_back().map_err(|io_error| {
                ReadError::storage_caused_by(
                    format!("cannot put back {batch}: {io_error}"),
                    io_error,
                )
            })?;
            Err(open_error(&store_dir, error))
        }
    }
}

/// True when `error` is a failure to do I/O, not malformed data (a file
/// shorter than its index says, or bytes that do not decode, are damage).
fn is_io_failure(error: &fjall::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(io_error) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            return !matches!(
                io_error.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::InvalidData | ErrorKind::InvalidInput
            );
        }
        source = error.source();
    }
    false
}

/// The error of a failed open: the storage engine found damaged data, or
/// could not do I/O.
fn open_error(store_dir: &Path, error: fjall::Error) -> ReadError {
    if is_io_failure(&error) {
        ReadError::storage_caused_by(
            format!("cannot open the store in {}: {error}", store_dir.display()),
            error,
        )
    } else {
        ReadError::corrupt_caused_by(
            format!(
                "the data files in {} are damaged ({error}); restore from a replica or backup",
                store_dir.display()
            ),
            error,
        )
    }
}

/// The default, embedded store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Held for the store's lifetime: one process per data directory.
    _lock_file: File,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`. Only recovery of the journal
    /// tail runs at open, so start-up time does not grow with the store.
    pub fn open(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, ReadError> {
        std::fs::create_dir_all(dir).map_err(|error| {
            ReadError::storage_caused_by(format!("cannot create {}: {error}", dir.display()), error)
        })?;
        let lock_path = dir.join("LOCK");
        let lock_file = File::create(&lock_path).map_err(|error| {
            ReadError::storage_caused_by(
                format!("cannot create {}: {error}", lock_path.display()),
                error,
            )
        })?;
        lock_file.try_lock().map_err(|_| {
            ReadError::storage(format!(
                "{} is in use by another Cairn process",
                dir.display()
            ))
        })?;
        let keyspace = open_keyspace(dir, &options)?;
        // Fact records are JSON and compress well; index keys are mostly
        // hashes, which do not, so compressing them would only cost CPU.
        // Bloom filters pay only for point lookups of keys that may be
        // absent: `by_hash` (every write checks whether a fact is new).
        // `facts` is looked up only by seqs known to exist, and the other
        // indexes are only scanned, so their filters would be memory for
        // nothing (about 12 MiB per partition at 10 million facts).
        let compressed = PartitionCreateOptions::default()
            .manual_journal_persist(true)
            .max_memtable_size(options.memtable_bytes);
        let uncompressed = compressed.clone().compression(fjall::CompressionType::None);
        let unfiltered = uncompressed.clone().bloom_filter_bits(None);
        // While fjall writes a table of a filtered partition, it keeps 16
        // bytes per key in one growing vector to build the filter at the
        // end: with its default 64 MiB tables of `by_hash` (1.5 million
        // keys) that vector reached 32 MiB, and 48 MiB while it grew — the
        // largest single item of the ingest's heap profile
        // (`bench/heap.sh`). Smaller tables bound it (fjall keeps an
        // existing partition's recorded settings).
        let filtered = uncompressed.compaction_strategy(fjall::compaction::Strategy::Leveled(
            fjall::compaction::Leveled {
                target_size: FILTERED_TABLE_BYTES,
                ..Default::default()
            },
        ));
        let facts = keyspace.open_partition("facts", compressed.bloom_filter_bits(None))?;
        let by_hash = keyspace.open_partition("by_hash", filtered.clone())?;
        let successors = keyspace.open_partition("successors", unfiltered.clone())?;
        let by_type = keyspace.open_partition("by_type", unfiltered.clone())?;
        let delivery = keyspace.open_partition("delivery", unfiltered.clone())?;
        // Partitions a store of an earlier version lacks are created empty.
        // `authors` keeps its bloom filter: a fact written again is looked
        // up there, and most facts have no authorship record.
        let identities = keyspace.open_partition("identities", unfiltered.clone())?;
        let audit = keyspace.open_partition("audit", unfiltered.clone())?;
        let authors = keyspace.open_partition("authors", filtered)?;
        let coordination = keyspace.open_partition("coordination", unfiltered.clone())?;
        let timers = keyspace.open_partition("timers", unfiltered.clone())?;
        let links = keyspace.open_partition("links", unfiltered.clone())?;
        let digests_partition = keyspace.open_partition("digests", unfiltered.clone())?;
        let meta = keyspace.open_partition("meta", unfiltered)?;
        let store_dir = dir.join("store");
        let damaged = |error: fjall::Error| open_error(&store_dir, error);
        match meta.get("format").map_err(damaged)? {
            None => {
                meta.insert("format", FORMAT_VERSION)?;
                keyspace.persist(fjall::PersistMode::SyncAll)?;
            }
            Some(version) if &*version == FORMAT_VERSION => {}
            Some(version) => {
                return Err(ReadError::storage(format!(
                    "unsupported store format {:?} (this build reads {:?})",
                    String::from_utf8_lossy(&version),
                    String::from_utf8_lossy(FORMAT_VERSION)
                )))
            }
        }
        let deployment = coordination::deployment(&meta, &keyspace).map_err(damaged)?;
        let last_seq = match facts.last_key_value().map_err(damaged)? {
            None => 0,
            Some((key, _)) => keys::decode_seq(&key)
                .ok_or_else(|| ReadError::corrupt("malformed key in the facts partition"))?,
        };
        let (watermark, watermark_seq) =
            watermark::Watermark::open(dir).map_err(ReadError::corrupt)?;
        if last_seq < watermark_seq {
            return Err(ReadError::corrupt(format!(
                "the store holds facts up to seq {last_seq}, but facts up to seq {watermark_seq} \
                 were durable: data files are damaged; restore from a replica or backup"
            )));
        }
        let digest_state = digests::load(&digests_partition, &facts, last_seq)?;
        let (durable_seq_watch, _) = watch::channel(last_seq);
        let shared = Arc::new(Shared {
            options: options.clone(),
            keyspace,
            facts,
            by_hash,
            successors,
            by_type,
            delivery,
            identities,
            audit,
            authors,
            coordination,
            deployment,
            timers,
            links,
            digests_partition,
            digests: Mutex::new(digest_state),
            identity_revision: AtomicU64::new(0),
            timers_pending: AtomicU64::new(0),
            durable_seq: AtomicU64::new(last_seq),
            durable_seq_watch,
            poisoned: AtomicBool::new(false),
            facts_inserted: AtomicU64::new(0),
            bytes_inserted: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            sync_nanos: AtomicU64::new(0),
            paced_nanos: AtomicU64::new(0),
            facts_per_sync: Default::default(),
        });
        if last_seq > 0 {
            // Verify the newest fact and its hash index entry, so that a
            // damaged tail is found at start.
            let newest = shared.fact_at(last_seq)?;
            let indexed = shared
                .by_hash
                .get(newest.hash.as_bytes())
                .map_err(|error| shared.engine_error(error))?;
            if indexed.as_deref().and_then(keys::decode_seq) != Some(last_seq) {
                return Err(shared.corrupt(format!(
                    "the hash index does not lead to the newest fact (seq {last_seq}): \
                     data files are damaged; restore from a replica or backup"
                )));
            }
        }
        let (identity_revision, audit_cursor) = identity::read_state(&shared)?;
        shared
            .identity_revision
            .store(identity_revision, Ordering::Release);
        let timers_pending = timers::count_pending(&shared)?;
        shared
            .timers_pending
            .store(timers_pending, Ordering::Release);
        let (sender, receiver) = mpsc::channel(options.queued_requests_max);
        let writer_shared = Arc::clone(&shared);
        let writer_thread = std::thread::Builder::new()
            .name("cairn-writer".into())
            .spawn(move || writer::run(writer_shared, receiver, watermark, audit_cursor))
            .map_err(|error| {
                ReadError::storage_caused_by(format!("cannot start writer: {error}"), error)
            })?;
        tracing::info!(dir = %dir.display(), last_seq, "embedded store open");
        Ok(EmbeddedStore {
            shared,
            requests: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            _lock_file: lock_file,
        })
    }

    /// Queues a batch of facts for the writer (with the fence it must
    /// carry, if any) and waits for its answer.
    async fn send_facts(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
        fence: Option<crate::coordination::Fence>,
    ) -> Result<Vec<PutOutcome>, WriteError> {
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        self.ask_writer(|reply| WriteRequest::Facts {
            facts,
            author,
            fence,
            reply,
        })
        .await
    }

    /// Sends a request to the writer thread and waits for its answer;
    /// nothing is sent once the store is poisoned or closed.
    async fn ask_writer<T, E: From<WriteError>>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, E>>) -> WriteRequest,
    ) -> Result<T, E> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(WriteError::Poisoned.into());
        }
        let sender = self.requests.lock().expect("lock poisoned").clone();
        let sender = sender.ok_or(WriteError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(request(reply))
            .await
            .map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }

    fn close_writer(&self) {
        let sender = self.requests.lock().expect("lock poisoned").take();
        drop(sender);
        let thread = self.writer_thread.lock().expect("lock poisoned").take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
            digests::checkpoint(&self.shared);
            let flush = self.shared.options.flush_memtables_at_close
                && !self.shared.poisoned.load(Ordering::Acquire);
            if flush {
                if let Err(error) = self.shared.flush_memtables() {
                    tracing::error!(%error, "cannot write the memtables to tables at close");
                }
            }
        }
        if let Err(error) = self.shared.keyspace.persist(fjall::PersistMode::SyncAll) {
            tracing::error!(%error, "final sync at close failed");
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.close_writer();
    }
}

/// Reads, answered synchronously from the keyspace (the `Store` methods
/// wrap them in ready futures).
impl EmbeddedStore {
    fn read_fact(&self, hash: &Hash) -> Result<Option<StoredFact>, ReadError> {
        let shared = &self.shared;
        let seq_bytes = shared
            .by_hash
            .get(hash.as_bytes())
            .map_err(|error| shared.engine_error(error))?;
        let Some(seq_bytes) = seq_bytes else {
            return Ok(None);
        };
        let seq = keys::decode_seq(&seq_bytes)
            .ok_or_else(|| shared.corrupt(format!("malformed hash index entry for {hash}")))?;
        if seq > shared.durable_seq() {
            return Ok(None);
        }
        let fact = shared.fact_at(seq)?;
        if fact.hash != *hash {
            return Err(shared.corrupt(format!("hash index for {hash} points at {}", fact.hash)));
        }
        Ok(Some(fact))
    }

    fn read_successors(&self, query: &SuccessorsQuery) -> Result<Page, ReadError> {
        let shared = &self.shared;
        let durable = shared.durable_seq();
        let prefix = keys::successor_prefix(&query.predecessor, &query.type_name);
        let mut start = prefix.clone();
        start.extend_from_slice(&keys::seq_key(query.after_seq.saturating_add(1)));
        let end = keys::successor_prefix_end(&query.predecessor, &query.type_name);
        let mut page = Page {
            facts: Vec::new(),
            next_seq: query.after_seq,
        };
        // The index is read in rounds: the entries of up to as many
        // successors as the page still lacks, then their facts at once
        // (consecutive seqs in one range scan, see `facts_at`), checked and
        // filtered; another round only if the filters dropped some.
        let mut entries = shared.successors.range(start..end);
        let mut n_scanned = 0;
        let mut last_seq_seen = 0;
        let mut exhausted = false;
        while !exhausted && page.facts.len() < query.limit {
            let wanted = query.limit - page.facts.len();
            let mut candidates: Vec<(u64, Vec<u8>)> = Vec::with_capacity(wanted);
            while candidates.len() < wanted {
                if n_scanned >= SUCCESSOR_ENTRIES_SCANNED_MAX {
                    exhausted = true;
                    break;
                }
                let Some(entry) = entries.next() else {
                    exhausted = true;
                    break;
                };
                n_scanned += 1;
                let (key, _) = entry.map_err(|error| shared.engine_error(error))?;
                let (seq, role) = keys::split_successor_suffix(&key[prefix.len()..])
                    .ok_or_else(|| shared.corrupt("malformed successor index key".into()))?;
                if seq > durable {
                    exhausted = true;
                    break;
                }
                if query
                    .role
                    .as_ref()
                    .is_some_and(|wanted| wanted.as_bytes() != role)
                {
                    continue;
                }
                // A successor naming the predecessor in several roles has one
                // entry per role, adjacent because seq sorts before role.
                if seq == last_seq_seen {
                    continue;
                }
                last_seq_seen = seq;
                candidates.push((seq, role.to_vec()));
            }
            let seqs: Vec<u64> = candidates.iter().map(|(seq, _)| *seq).collect();
            for (fact, (seq, role)) in shared.facts_at(&seqs)?.into_iter().zip(&candidates) {
                page.next_seq = *seq;
                shared.check_successor(&fact, &query.predecessor, &query.type_name, role)?;
                let mut excluded = false;
                for without_type in &query.without_types {
                    if shared.has_successor_of_type(&fact.hash, without_type)? {
                        excluded = true;
                        break;
                    }
                }
                if !excluded {
                    page.facts.push(fact);
                }
            }
        }
        Ok(page)
    }

    /// Steps through the `successors` index one type at a time: the first
    /// entry of a type is its lowest seq, so it alone tells whether the
    /// type has a durable successor (which it checks), and the next seek
    /// starts past [`keys::successor_prefix_end`] of that type, never
    /// reading the other entries of a type.
    fn read_successor_types(
        &self,
        predecessor: &Hash,
        after_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, ReadError> {
        let shared = &self.shared;
        let durable = shared.durable_seq();
        let mut start = match after_type {
            Some(after_type) => keys::successor_prefix_end(predecessor, after_type),
            None => predecessor.as_bytes().to_vec(),
        };
        let mut types = Vec::new();
        while types.len() < limit {
            let Some(entry) = shared.successors.range(start..).next() else {
                break;
            };
            let (key, _) = entry.map_err(|error| shared.engine_error(error))?;
            let Some(after_predecessor) = key.strip_prefix(predecessor.as_bytes()) else {
                break;
            };
            let malformed = || shared.corrupt("malformed successor index key".into());
            let (type_name, suffix) =
                keys::split_successor_type(after_predecessor).ok_or_else(malformed)?;
            let (seq, role) = keys::split_successor_suffix(suffix).ok_or_else(malformed)?;
            // Later entries of this type have higher seqs: none is durable.
            if seq <= durable {
                let fact = shared.fact_at(seq)?;
                shared.check_successor(&fact, predecessor, type_name, role)?;
                types.push(type_name.to_string());
            }
            start = keys::successor_prefix_end(predecessor, type_name);
        }
        Ok(types)
    }

    fn read_log(&self, after_seq: u64, limit: usize) -> Result<Page, ReadError> {
        let shared = &self.shared;
        let durable = shared.durable_seq();
        let mut page = Page {
            facts: Vec::new(),
            next_seq: after_seq,
        };
        let first = after_seq.saturating_add(1);
        if first > durable || limit == 0 {
            return Ok(page);
        }
        let last = durable.min(after_seq.saturating_add(limit as u64));
        for entry in shared
            .facts
            .range(keys::seq_key(first)..=keys::seq_key(last))
        {
            let (key, value) = entry.map_err(|error| shared.engine_error(error))?;
            let seq = keys::decode_seq(&key)
                .ok_or_else(|| shared.corrupt("malformed key in the facts partition".into()))?;
            let expected = page.next_seq + 1;
            if seq != expected {
                return Err(shared.corrupt(format!(
                    "the log has a gap: expected seq {expected}, found {seq}"
                )));
            }
            page.facts.push(shared.verified_record(seq, &value)?);
            page.next_seq = seq;
        }
        if page.next_seq != last {
            return Err(shared.corrupt(format!(
                "the log ends at seq {} before the durable seq {last}",
                page.next_seq
            )));
        }
        Ok(page)
    }
}

impl crate::digests::DigestStore for EmbeddedStore {
    fn digests<'a>(
        &'a self,
        query: &'a crate::digests::DigestQuery,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::digests::DigestAnswer, ReadError>> {
        Box::pin(std::future::ready(digests::answer(&self.shared, query)))
    }
}

impl Store for EmbeddedStore {
    async fn put_facts_by(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
    ) -> Result<Vec<PutOutcome>, WriteError> {
        self.send_facts(facts, author, None).await
    }

    fn get_fact(
        &self,
        hash: &Hash,
    ) -> impl Future<Output = Result<Option<StoredFact>, ReadError>> + Send {
        std::future::ready(self.read_fact(hash))
    }

    fn successors(
        &self,
        query: &SuccessorsQuery,
    ) -> impl Future<Output = Result<Page, ReadError>> + Send {
        std::future::ready(self.read_successors(query))
    }

    fn successor_types(
        &self,
        predecessor: &Hash,
        after_type: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send {
        std::future::ready(self.read_successor_types(predecessor, after_type, limit))
    }

    fn log(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Page, ReadError>> + Send {
        std::future::ready(self.read_log(after_seq, limit))
    }

    async fn ping(&self) -> Result<(), ReadError> {
        Ok(())
    }

    fn close(&self) {
        self.close_writer();
    }

    fn watch_last_seq(&self) -> watch::Receiver<u64> {
        self.shared.durable_seq_watch.subscribe()
    }

    fn stats(&self) -> StoreStats {
        let shared = &self.shared;
        let facts_per_sync_buckets = cumulative_buckets(
            FACTS_PER_SYNC_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(u64::MAX)),
            &shared.facts_per_sync,
        );
        StoreStats {
            last_seq: shared.durable_seq(),
            facts_inserted: shared.facts_inserted.load(Ordering::Relaxed),
            bytes_inserted: shared.bytes_inserted.load(Ordering::Relaxed),
            syncs: shared.syncs.load(Ordering::Relaxed),
            sync_seconds: shared.sync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            paced_seconds: shared.paced_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            facts_per_sync_buckets,
            disk_bytes: shared.keyspace.disk_space(),
            poisoned: shared.poisoned.load(Ordering::Acquire),
            database: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn fact(n: usize) -> CanonicalFact {
        let json = format!(r#"{{"type":"Test.Item","predecessors":{{}},"fields":{{"n":{n}}}}}"#);
        CanonicalFact::from_json(json.as_bytes(), 1 << 20).expect("a valid fact")
    }

    /// `facts_at` reads runs of consecutive seqs with one range scan and
    /// lone seqs with point reads, answers in the order asked, and reports
    /// a seq the index names but the `facts` partition lacks as corruption,
    /// inside a run as well as alone.
    #[test]
    fn facts_at_reads_runs_and_finds_holes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let facts: Vec<CanonicalFact> = (0..8).map(fact).collect();
        runtime
            .block_on(store.put_facts(facts.clone()))
            .expect("write");
        let shared = &store.shared;
        let read = shared.facts_at(&[1, 2, 3, 5, 7, 8]).expect("read");
        let seqs: Vec<u64> = read.iter().map(|fact| fact.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 5, 7, 8]);
        for stored in &read {
            assert_eq!(stored.hash, facts[stored.seq as usize - 1].hash);
        }
        assert!(shared.facts_at(&[]).expect("read nothing").is_empty());

        shared.facts.remove(keys::seq_key(3)).expect("remove");
        let in_run = shared.facts_at(&[2, 3, 4]);
        assert!(
            matches!(&in_run, Err(ReadError::Corrupt { message, .. }) if message.contains("seq 3")),
            "{in_run:?}"
        );
        let at_run_end = shared.facts_at(&[1, 2, 3]);
        assert!(
            matches!(at_run_end, Err(ReadError::Corrupt { .. })),
            "{at_run_end:?}"
        );
        let alone = shared.facts_at(&[1, 3, 5]);
        assert!(matches!(alone, Err(ReadError::Corrupt { .. })), "{alone:?}");
    }
}
