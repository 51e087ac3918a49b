//! Disk faults under the embedded store, on real files in a temporary
//! directory, with the real store:
//!
//! 1. **A power loss** can only lose or mangle bytes written after the last
//!    sync: the end of the journal, inside the batch that was being written.
//!    Every acknowledged batch must survive byte for byte, the batch being
//!    written must come back whole or not at all, and the store must open
//!    (the durable watermark must not refuse it) and accept writes.
//! 2. **A failing disk** can flip bits in synced files or cut them short:
//!    table files, and journals anywhere (not only at their end). The store
//!    must refuse to open saying that its data is damaged, or serve every
//!    acknowledged fact exactly or answer `ReadError::Corrupt`: never other
//!    bytes, never another fact as a successor; and once it has reported
//!    corruption it must refuse writes. Two outcomes outside that contract
//!    come from the storage engine and are tallied, allowed only for
//!    damaged table files: lsm-tree 2 verifies no block checksums on reads,
//!    so a damaged index table (`by_hash`, `successors`) can lose entries
//!    silently; and it panics or aborts on some damaged table files, which
//!    is why each damage case runs in a child process.
//! 3. **A failed sync** (injected) is not acknowledged, poisons the store
//!    (readers see only acknowledged facts), and after a restart everything
//!    acknowledged is there and writes go on. `conformance.rs` checks one
//!    failed sync of one fact; this adds random failure points, multi-fact
//!    batches, the atomicity of the failed batch at reopen and writes after
//!    it.
//!
//! A crash is emulated by copying the data directory while the store is
//! open (every write had reached the OS, so the copy holds what the disk
//! would) and then damaging only bytes the crash could have lost. Each case
//! is reproducible from its seed: a failing case prints it, and
//! `DISK_FAULTS_SEED=<seed>` runs that one case alone. (Which table files a
//! damage case finds depends on when fjall's background flushes ran, so its
//! seed picks the same damage only when they ran alike.)

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_fact::{CanonicalFact, Hash};
use cairn_store::{
    EmbeddedOptions, EmbeddedStore, ReadError, Store, StoredFact, SuccessorsQuery, WriteError,
};
use common::case_runner::{case_seeds, run_cases, runtime, SEED_VARIABLE};
use common::data_files::{
    copy_data_dir, flip_bit, journal_files, journal_written_end, length, overwrite, set_length,
    table_files,
};
use common::fact_source::{AcknowledgedFact, FactSource, NewFact, FACT_TYPE};
use common::seeded_rng::SeededRng;

/// Crash cases (one store each).
const CRASH_CASES: u64 = 200;
/// Damage cases (one store and one child process each).
const DAMAGE_CASES: u64 = 200;
/// Failed-sync cases (one store each).
const FAILED_SYNC_CASES: u64 = 32;
/// Facts per write at most.
const BATCH_FACTS_MAX: u64 = 6;
/// Facts per page when reading the whole log or the successors of a fact.
const PAGE_FACTS: usize = 1000;
/// How often, and how long, opening a store waits for its lock (see [`try_open`]).
const LOCK_WAITS_MAX: usize = 100;
const LOCK_WAIT_INTERVAL: Duration = Duration::from_millis(20);

/// Opens a store, waiting a little while its lock is taken: a child process
/// that the damage test starts holds copies of this process's open files
/// from its fork until its exec closes them, among them the lock of a store
/// that another test may have closed meanwhile and now reopens.
fn try_open(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, ReadError> {
    for _ in 0..LOCK_WAITS_MAX {
        match EmbeddedStore::open(dir, options.clone()) {
            Err(ReadError::Storage { message, .. }) if message.contains("in use by another") => {
                std::thread::sleep(LOCK_WAIT_INTERVAL);
            }
            result => return result,
        }
    }
    EmbeddedStore::open(dir, options)
}

fn open(dir: &Path, options: EmbeddedOptions) -> EmbeddedStore {
    try_open(dir, options)
        .unwrap_or_else(|error| panic!("cannot open the store in {}: {error}", dir.display()))
}

fn canonical_facts(batch: &[NewFact]) -> Vec<CanonicalFact> {
    batch.iter().map(|new| new.fact.clone()).collect()
}

fn acknowledged(batch: &[NewFact], seqs: impl IntoIterator<Item = u64>) -> Vec<AcknowledgedFact> {
    batch
        .iter()
        .zip(seqs)
        .map(|(new, seq)| AcknowledgedFact {
            fact: new.fact.clone(),
            parent: new.parent,
            seq,
        })
        .collect()
}

/// Writes `batch` as one request and returns it as acknowledged.
async fn write_batch(store: &EmbeddedStore, batch: &[NewFact]) -> Vec<AcknowledgedFact> {
    let outcomes = store
        .put_facts(canonical_facts(batch))
        .await
        .expect("the batch is acknowledged");
    assert!(outcomes.iter().all(|outcome| outcome.inserted));
    acknowledged(batch, outcomes.iter().map(|outcome| outcome.seq))
}

fn hashes(facts: &[AcknowledgedFact]) -> Vec<Hash> {
    facts
        .iter()
        .map(|acknowledged| acknowledged.fact.hash)
        .collect()
}

fn stored(acknowledged: &AcknowledgedFact) -> StoredFact {
    StoredFact {
        hash: acknowledged.fact.hash,
        seq: acknowledged.seq,
        canonical: acknowledged.fact.canonical.clone(),
    }
}

fn successors_query(parent: Hash) -> SuccessorsQuery {
    SuccessorsQuery {
        predecessor: parent,
        type_name: FACT_TYPE.to_string(),
        role: None,
        without_types: Vec::new(),
        after_seq: 0,
        limit: PAGE_FACTS,
    }
}

/// The acknowledged children of each parent, in seq order.
fn children_by_parent(facts: &[AcknowledgedFact]) -> BTreeMap<Hash, Vec<StoredFact>> {
    let mut children: BTreeMap<Hash, Vec<StoredFact>> = BTreeMap::new();
    for acknowledged in facts {
        if let Some(parent) = acknowledged.parent {
            children
                .entry(parent)
                .or_default()
                .push(stored(acknowledged));
        }
    }
    children
}

/// Reads the whole log, page by page.
async fn whole_log(store: &EmbeddedStore) -> Result<Vec<StoredFact>, ReadError> {
    let mut log = Vec::new();
    loop {
        let page = store.log(log.len() as u64, PAGE_FACTS).await?;
        if page.facts.is_empty() {
            return Ok(log);
        }
        log.extend(page.facts);
    }
}

/// Checks that the store holds exactly `expected` (dense seqs from 1, in
/// order), reached by hash, in the log and as successors, and none of
/// `absent`.
async fn assert_holds_exactly(
    store: &EmbeddedStore,
    expected: &[AcknowledgedFact],
    absent: &[CanonicalFact],
) {
    let expected_stored: Vec<StoredFact> = expected.iter().map(stored).collect();
    assert_eq!(store.stats().last_seq, expected.len() as u64, "last seq");
    for fact in &expected_stored {
        let read = store.get_fact(&fact.hash).await.expect("read by hash");
        assert_eq!(read.as_ref(), Some(fact), "fact with seq {}", fact.seq);
    }
    for fact in absent {
        let read = store.get_fact(&fact.hash).await.expect("read by hash");
        assert_eq!(read, None, "a fact that was not acknowledged");
    }
    let log = whole_log(store).await.expect("log");
    assert!(
        log == expected_stored,
        "the log differs from the acknowledged facts"
    );
    for (parent, children) in children_by_parent(expected) {
        let page = store
            .successors(&successors_query(parent))
            .await
            .expect("successors");
        assert!(page.facts == children, "successors of {parent}");
    }
}

// ---------------------------------------------------------------------------
// 1. A power loss during a write.
// ---------------------------------------------------------------------------

/// What a power loss did to the batch that was being written: the bytes
/// between the journal's written end before it and after it.
#[derive(Clone, Copy, Debug)]
enum TornWrite {
    /// Every byte reached the disk, but the sync had not returned.
    Complete,
    /// The file ends at `at` (its new length had reached the disk).
    Truncated { at: u64 },
    /// The bytes from `from` on never reached the disk (zeros).
    Zeroed { from: u64 },
    /// The bytes from `from` on are garbage.
    Garbage { from: u64 },
    /// Each `sector_bytes` block of the file that the batch touches reached
    /// the disk or not, independently: the disk, or the page cache writing
    /// dirty pages back, stored them in any order.
    TornSectors { sector_bytes: u64 },
}

impl TornWrite {
    fn random(rng: &mut SeededRng, start: u64, end: u64) -> TornWrite {
        let inside = rng.in_range(start, end);
        match rng.in_range(0, 6) {
            0 => TornWrite::Complete,
            1 => TornWrite::Truncated { at: inside },
            2 => TornWrite::Zeroed { from: inside },
            3 => TornWrite::Garbage { from: inside },
            4 => TornWrite::TornSectors { sector_bytes: 512 },
            _ => TornWrite::TornSectors { sector_bytes: 4096 },
        }
    }

    fn kind(self) -> &'static str {
        match self {
            TornWrite::Complete => "complete",
            TornWrite::Truncated { .. } => "truncated",
            TornWrite::Zeroed { .. } => "zeroed",
            TornWrite::Garbage { .. } => "garbage",
            TornWrite::TornSectors { sector_bytes: 512 } => "torn 512 B sectors",
            TornWrite::TornSectors { .. } => "torn 4 KiB pages",
        }
    }

    /// Applies the damage to `journal`, whose batch being written spans
    /// `start..end`.
    fn apply(self, rng: &mut SeededRng, journal: &Path, start: u64, end: u64) {
        let zeros = |from: u64, to: u64| vec![0; (to - from) as usize];
        match self {
            TornWrite::Complete => {}
            TornWrite::Truncated { at } => set_length(journal, at),
            TornWrite::Zeroed { from } => overwrite(journal, from, &zeros(from, end)),
            TornWrite::Garbage { from } => {
                let mut garbage = zeros(from, end);
                rng.fill(&mut garbage);
                overwrite(journal, from, &garbage);
            }
            TornWrite::TornSectors { sector_bytes } => {
                let mut sector_start = start / sector_bytes * sector_bytes;
                while sector_start < end {
                    if rng.one_in(2) {
                        // The sector on disk still holds its old content:
                        // the synced bytes before `start`, zeros after.
                        let lost_from = sector_start.max(start);
                        let lost_to = (sector_start + sector_bytes).min(end);
                        overwrite(journal, lost_from, &zeros(lost_from, lost_to));
                    }
                    sector_start += sector_bytes;
                }
            }
        }
    }
}

/// A store written batch by batch, with what the disk held after each
/// acknowledged batch of its last session, and a copy of its data directory
/// taken while it was open after the last batch.
struct CrashSource {
    /// Facts acknowledged in an earlier session (closed cleanly).
    earlier_session: Vec<AcknowledgedFact>,
    /// The tables the earlier session left, relative to the data directory.
    earlier_tables: Vec<PathBuf>,
    /// The batches of the last session.
    batches: Vec<Vec<AcknowledgedFact>>,
    /// `written_ends[i]`: the journal's written end after `i` batches of the last session.
    written_ends: Vec<u64>,
    /// `watermarks[i]`: the `durable-seq` file after `i` batches of the last session.
    watermarks: Vec<Vec<u8>>,
    /// The copy of the data directory (`image/data`).
    image: tempfile::TempDir,
}

fn durable_seq_file(data_dir: &Path) -> PathBuf {
    data_dir.join("durable-seq")
}

/// The only journal of the store in `data_dir`. The crash model needs one
/// journal and no table files but the earlier session's (a clean close
/// writes its memtables to tables): the batches only append to that
/// journal.
fn only_journal(data_dir: &Path, earlier_tables: &[PathBuf]) -> PathBuf {
    let journals = journal_files(data_dir);
    assert_eq!(journals.len(), 1, "one journal: {journals:?}");
    assert_eq!(
        relative_table_files(data_dir),
        earlier_tables,
        "no table files but the earlier session's"
    );
    journals[0].clone()
}

/// The table files of the store in `data_dir`, relative to it, so that
/// those of a copy compare equal.
fn relative_table_files(data_dir: &Path) -> Vec<PathBuf> {
    table_files(data_dir)
        .into_iter()
        .map(|table| {
            table
                .strip_prefix(data_dir)
                .expect("a table in the data directory")
                .to_path_buf()
        })
        .collect()
}

async fn write_crash_source(rng: &mut SeededRng, facts: &mut FactSource) -> CrashSource {
    let source = tempfile::tempdir().expect("a temporary directory");
    let data_dir = source.path().join("data");
    let mut earlier_session: Vec<AcknowledgedFact> = Vec::new();
    // After an earlier session, its facts are in tables (a clean close
    // writes the memtables out) and the watermark holds its last seq;
    // without one, there are no tables and the watermark is 0.
    if rng.one_in(2) {
        let store = open(&data_dir, EmbeddedOptions::default());
        for _ in 0..rng.in_range(0, 4) {
            let batch = facts.batch(rng, &hashes(&earlier_session), BATCH_FACTS_MAX);
            earlier_session.extend(write_batch(&store, &batch).await);
        }
        store.close();
    }
    let earlier_tables = if data_dir.exists() {
        relative_table_files(&data_dir)
    } else {
        Vec::new()
    };
    let store = open(&data_dir, EmbeddedOptions::default());
    let journal = only_journal(&data_dir, &earlier_tables);
    let read_watermark = || std::fs::read(durable_seq_file(&data_dir)).expect("the watermark");
    let mut written_ends = vec![journal_written_end(&journal, 0)];
    let mut watermarks = vec![read_watermark()];
    let mut batches: Vec<Vec<AcknowledgedFact>> = Vec::new();
    let mut stored_hashes = hashes(&earlier_session);
    for _ in 0..rng.in_range(1, 9) {
        let batch = facts.batch(rng, &stored_hashes, BATCH_FACTS_MAX);
        let written = write_batch(&store, &batch).await;
        stored_hashes.extend(hashes(&written));
        batches.push(written);
        assert_eq!(only_journal(&data_dir, &earlier_tables), journal);
        let previous_end = *written_ends.last().expect("an end");
        written_ends.push(journal_written_end(&journal, previous_end));
        watermarks.push(read_watermark());
    }
    let image = tempfile::tempdir().expect("a temporary directory");
    copy_data_dir(&data_dir, &image.path().join("data"));
    store.close();
    CrashSource {
        earlier_session,
        earlier_tables,
        batches,
        written_ends,
        watermarks,
        image,
    }
}

/// What became of the batch in flight in one crash case.
struct CrashOutcome {
    torn_write: &'static str,
    in_flight_kept: bool,
}

async fn crash_case(seed: u64) -> CrashOutcome {
    let mut rng = SeededRng::new(seed);
    let mut facts = FactSource::new(seed);
    let source = write_crash_source(&mut rng, &mut facts).await;

    // The power went out while batch `in_flight` was written: the batches
    // before it were acknowledged, it was not, the later ones never began.
    let in_flight = rng.in_range(0, source.batches.len() as u64) as usize;
    let start = source.written_ends[in_flight];
    let end = source.written_ends[in_flight + 1];
    let data_dir = source.image.path().join("data");
    let journal = only_journal(&data_dir, &source.earlier_tables);
    let copied_length = length(&journal);
    let preallocated = copied_length > *source.written_ends.last().expect("an end");
    set_length(&journal, end);
    let torn_write = TornWrite::random(&mut rng, start, end);
    torn_write.apply(&mut rng, &journal, start, end);
    if preallocated && !matches!(torn_write, TornWrite::Truncated { .. }) {
        set_length(&journal, copied_length);
    }
    std::fs::write(durable_seq_file(&data_dir), &source.watermarks[in_flight])
        .expect("restore the watermark");

    let mut before: Vec<AcknowledgedFact> = source.earlier_session.clone();
    before.extend(source.batches[..in_flight].iter().flatten().cloned());
    let in_flight_batch = &source.batches[in_flight];
    let never_written: Vec<CanonicalFact> = source.batches[in_flight + 1..]
        .iter()
        .flatten()
        .map(|acknowledged| acknowledged.fact.clone())
        .collect();

    let store = try_open(&data_dir, EmbeddedOptions::default()).unwrap_or_else(|error| {
        panic!(
            "the store does not open after a crash that lost only unsynced bytes \
             ({torn_write:?} in {start}..{end}, pre-allocated journal: {preallocated}): {error}"
        )
    });
    let in_flight_kept = store.stats().last_seq != before.len() as u64;
    let mut expected = before;
    let mut absent = never_written.clone();
    if in_flight_kept {
        expected.extend(in_flight_batch.iter().cloned());
    } else {
        absent.extend(
            in_flight_batch
                .iter()
                .map(|acknowledged| acknowledged.fact.clone()),
        );
    }
    if matches!(torn_write, TornWrite::Complete) {
        assert!(
            in_flight_kept,
            "a batch that reached the disk whole is recovered"
        );
    }
    // Also checks that the batch in flight is there whole or not at all.
    assert_holds_exactly(&store, &expected, &absent).await;
    assert!(!store.stats().poisoned);

    // The store accepts writes: the client retries the unanswered batch
    // (writes are idempotent) with a new fact.
    let mut retry: Vec<NewFact> = in_flight_batch
        .iter()
        .map(|acknowledged| NewFact {
            fact: acknowledged.fact.clone(),
            parent: acknowledged.parent,
        })
        .collect();
    let parents = hashes(&expected);
    retry.extend(facts.batch(&mut rng, &parents, 1));
    let outcomes = store
        .put_facts(canonical_facts(&retry))
        .await
        .expect("a write after the crash");
    for (new, outcome) in retry.iter().zip(&outcomes) {
        let existing = expected
            .iter()
            .find(|acknowledged| acknowledged.fact.hash == new.fact.hash);
        let expected_seq = existing.map_or(expected.len() as u64 + 1, |existing| existing.seq);
        assert_eq!(
            (outcome.seq, outcome.inserted),
            (expected_seq, existing.is_none())
        );
        if existing.is_none() {
            expected.extend(acknowledged(std::slice::from_ref(new), [outcome.seq]));
        }
    }
    store.close();
    drop(store);
    let reopened = open(&data_dir, EmbeddedOptions::default());
    assert_holds_exactly(&reopened, &expected, &never_written).await;
    reopened.close();
    CrashOutcome {
        torn_write: torn_write.kind(),
        in_flight_kept,
    }
}

#[test]
fn a_crash_loses_only_unacknowledged_writes() {
    let started = Instant::now();
    let seeds = case_seeds(1_000, CRASH_CASES);
    let tally: Mutex<BTreeMap<(&'static str, &'static str), u64>> = Mutex::default();
    let tally_of_cases = &tally;
    run_cases(
        "a_crash_loses_only_unacknowledged_writes",
        &seeds,
        |seed| async move {
            let outcome = crash_case(seed).await;
            let in_flight = if outcome.in_flight_kept {
                "kept"
            } else {
                "lost"
            };
            *tally_of_cases
                .lock()
                .expect("the tally")
                .entry((outcome.torn_write, in_flight))
                .or_default() += 1;
        },
    );
    eprintln!(
        "{} crash cases in {:.1} s; (torn write, batch in flight): cases {:?}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        tally.into_inner().expect("the tally")
    );
}

// ---------------------------------------------------------------------------
// 2. Damage to synced data.
// ---------------------------------------------------------------------------

/// The damage test, by name: a child process runs it for one seed.
const DAMAGE_TEST: &str = "damage_to_synced_data_is_detected_and_never_served";
/// Set in a child process: the seed of the one damage case it runs.
const DAMAGE_CHILD_SEED_VARIABLE: &str = "DISK_FAULTS_DAMAGE_CHILD_SEED";
/// A child prints the damage it made on a line starting with this...
const DAMAGE_LINE: &str = "disk fault: ";
/// ...and the outcome of its case on a line starting with this.
const OUTCOME_LINE: &str = "disk fault outcome: ";

/// Small memtables, so that a few hundred KiB of facts are flushed into
/// table files of every partition.
fn flushing_options() -> EmbeddedOptions {
    EmbeddedOptions {
        memtable_bytes: 32 * 1024,
        ..EmbeddedOptions::default()
    }
}

/// One fault of a failing disk, in a file that was synced.
#[derive(Clone, Debug)]
enum Damage {
    /// One bit of a table file flipped.
    TableBitFlip {
        table: PathBuf,
        offset: u64,
        bit: u8,
    },
    /// A table file cut short.
    TableTruncated { table: PathBuf, at: u64 },
    /// One bit of a journal's written part flipped.
    JournalBitFlip {
        journal: PathBuf,
        offset: u64,
        bit: u8,
    },
    /// A journal cut inside its written part (not only at its end).
    JournalTruncated { journal: PathBuf, at: u64 },
}

/// The partition directory of a table file (`partitions/<name>/segments/<id>`).
fn partition_of(table: &Path) -> PathBuf {
    table
        .parent()
        .and_then(Path::parent)
        .expect("a table's partition")
        .to_path_buf()
}

impl Damage {
    fn random(rng: &mut SeededRng, data_dir: &Path) -> Damage {
        let tables = table_files(data_dir);
        let journals: Vec<(PathBuf, u64)> = journal_files(data_dir)
            .into_iter()
            .map(|journal| {
                let written_end = journal_written_end(&journal, 0);
                (journal, written_end)
            })
            .filter(|(_, written_end)| *written_end > 0)
            .collect();
        let bit = rng.in_range(0, 8) as u8;
        if !tables.is_empty() && (journals.is_empty() || rng.one_in(2)) {
            // A partition first, so that the small index partitions are
            // hit as often as the large `facts` partition.
            let mut partitions: Vec<PathBuf> =
                tables.iter().map(|table| partition_of(table)).collect();
            partitions.dedup();
            let partition = rng.pick(&partitions).clone();
            let in_partition: Vec<&PathBuf> = tables
                .iter()
                .filter(|table| partition_of(table) == partition)
                .collect();
            let table = (*rng.pick(&in_partition)).clone();
            let offset = rng.in_range(0, length(&table));
            if rng.one_in(2) {
                Damage::TableBitFlip { table, offset, bit }
            } else {
                Damage::TableTruncated { table, at: offset }
            }
        } else {
            let (journal, written_end) = rng.pick(&journals).clone();
            let offset = rng.in_range(0, written_end);
            if rng.one_in(2) {
                Damage::JournalBitFlip {
                    journal,
                    offset,
                    bit,
                }
            } else {
                Damage::JournalTruncated {
                    journal,
                    at: offset,
                }
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Damage::TableBitFlip { .. } => "table bit flip",
            Damage::TableTruncated { .. } => "table truncated",
            Damage::JournalBitFlip { .. } => "journal bit flip",
            Damage::JournalTruncated { .. } => "journal truncated",
        }
    }

    fn apply(&self) {
        match self {
            Damage::TableBitFlip { table, offset, bit } => flip_bit(table, *offset, *bit),
            Damage::TableTruncated { table, at } => set_length(table, *at),
            Damage::JournalBitFlip {
                journal,
                offset,
                bit,
            } => flip_bit(journal, *offset, *bit),
            Damage::JournalTruncated { journal, at } => set_length(journal, *at),
        }
    }

    /// True for a bit flip in a table of an index partition: lsm-tree 2
    /// verifies no block checksums on reads, so such a flip can lose index
    /// entries without any error (see the module comment).
    fn may_lose_index_entries(&self) -> bool {
        match self {
            Damage::TableBitFlip { table, .. } => {
                let partition = partition_of(table);
                partition.ends_with("by_hash") || partition.ends_with("successors")
            }
            _ => false,
        }
    }
}

/// How a damaged store answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum DamageOutcome {
    /// It refused to open, saying its data is damaged.
    RefusedToOpen,
    /// It opened, reported corruption on reads and refused writes.
    ReportedAtRead,
    /// It opened and served every acknowledged fact exactly (the damage hit
    /// bytes no read needed), and accepted writes.
    NoEffect,
    /// An index table lost entries without any error: some acknowledged
    /// facts are absent by hash or as successors (allowed only for
    /// [`Damage::may_lose_index_entries`]).
    IndexEntriesLostSilently,
    /// The storage engine panicked or aborted the process (allowed only for
    /// damaged table files).
    EngineCrashed,
}

/// Writes facts into a store that flushes often, in two or three sessions
/// (the later ones flush what the earlier ones left in journals), and
/// returns the acknowledged facts in seq order.
async fn write_damage_source(
    rng: &mut SeededRng,
    facts: &mut FactSource,
    data_dir: &Path,
) -> Vec<AcknowledgedFact> {
    let mut acknowledged: Vec<AcknowledgedFact> = Vec::new();
    for _ in 0..rng.in_range(2, 3) {
        let store = open(data_dir, flushing_options());
        for _ in 0..rng.in_range(4, 14) {
            let batch = facts.batch(rng, &hashes(&acknowledged), BATCH_FACTS_MAX);
            acknowledged.extend(write_batch(&store, &batch).await);
        }
        store.close();
    }
    acknowledged
}

/// True when `result` reports corruption (which must have poisoned the
/// store); any other read error fails the test.
fn corruption_reported<T>(
    store: &EmbeddedStore,
    result: &Result<T, ReadError>,
    damage: &Damage,
) -> bool {
    match result {
        Err(ReadError::Corrupt { .. }) => {
            assert!(
                store.stats().poisoned,
                "corruption reported without poisoning"
            );
            true
        }
        Err(other) => panic!("a read failed with {other:?}, not Corrupt ({damage:?})"),
        Ok(_) => false,
    }
}

/// Reads every acknowledged fact by hash, the whole log and the successors
/// of every parent, and checks that each answer is exact or `Corrupt`.
/// Returns how many acknowledged facts were missing from answers without
/// any report of corruption; the caller decides whether that is allowed.
async fn read_everything(
    store: &EmbeddedStore,
    acknowledged: &[AcknowledgedFact],
    damage: &Damage,
) -> usize {
    let mut n_missing = 0;
    for fact in acknowledged.iter().map(stored) {
        let read = store.get_fact(&fact.hash).await;
        if corruption_reported(store, &read, damage) {
            continue;
        }
        match read.expect("not an error") {
            Some(read) => assert!(
                read == fact,
                "served other bytes for seq {} ({damage:?})",
                fact.seq
            ),
            None => n_missing += usize::from(!store.stats().poisoned),
        }
    }
    let log = whole_log(store).await;
    if !corruption_reported(store, &log, damage) {
        let log = log.expect("not an error");
        for fact in &log {
            let expected = acknowledged
                .get(fact.seq as usize - 1)
                .map(stored)
                .unwrap_or_else(|| {
                    panic!("the log holds an unknown seq {} ({damage:?})", fact.seq)
                });
            assert!(
                *fact == expected,
                "the log served other bytes for seq {} ({damage:?})",
                fact.seq
            );
        }
        // Once corruption is reported, the log may stop at the damage.
        if !store.stats().poisoned {
            assert_eq!(
                log.len(),
                acknowledged.len(),
                "the log lost facts silently ({damage:?})"
            );
        }
    }
    for (parent, children) in children_by_parent(acknowledged) {
        let page = store.successors(&successors_query(parent)).await;
        if corruption_reported(store, &page, damage) {
            continue;
        }
        let page = page.expect("not an error");
        for fact in &page.facts {
            assert!(
                children.contains(fact),
                "a wrong successor of {parent} ({damage:?})"
            );
        }
        if !store.stats().poisoned {
            n_missing += children.len() - page.facts.len();
        }
    }
    n_missing
}

/// One damage case, in the process that runs it.
async fn damage_case(seed: u64) -> DamageOutcome {
    let mut rng = SeededRng::new(seed);
    let mut facts = FactSource::new(seed);
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let data_dir = temporary.path().join("data");
    let acknowledged = write_damage_source(&mut rng, &mut facts, &data_dir).await;
    let damage = Damage::random(&mut rng, &data_dir);
    // Printed first, so that the parent knows it even if the engine aborts.
    println!("{DAMAGE_LINE}{}", damage.kind());
    damage.apply();
    let store = match try_open(&data_dir, flushing_options()) {
        Ok(store) => store,
        Err(ReadError::Corrupt { message, .. }) => {
            assert!(message.contains("damaged"), "{message}");
            return DamageOutcome::RefusedToOpen;
        }
        Err(ReadError::Storage { message, .. }) => {
            assert!(message.contains("cannot open"), "{message}");
            return DamageOutcome::RefusedToOpen;
        }
        Err(other) => panic!("unexpected error at open: {other:?}"),
    };
    let n_missing = read_everything(&store, &acknowledged, &damage).await;
    assert!(
        n_missing == 0 || damage.may_lose_index_entries(),
        "{n_missing} acknowledged facts missing from answers without a report of corruption \
         ({damage:?})"
    );
    let new_fact = facts.batch(&mut rng, &[], 1);
    let write = store.put_facts(canonical_facts(&new_fact)).await;
    let outcome = if store.stats().poisoned {
        assert!(
            matches!(write, Err(WriteError::Poisoned)),
            "a write on top of reported corruption: {write:?}"
        );
        DamageOutcome::ReportedAtRead
    } else {
        write.expect("a write to a store that reported no corruption");
        if n_missing == 0 {
            DamageOutcome::NoEffect
        } else {
            DamageOutcome::IndexEntriesLostSilently
        }
    };
    store.close();
    outcome
}

/// Runs one damage case in a child process (this test binary, running the
/// damage test for that seed alone), because lsm-tree 2 panics on some
/// damaged table files while fjall holds a lock, and the panic while
/// unwinding, or an allocation of hundreds of GiB it attempts on others,
/// aborts the process. Returns the damage kind and the outcome.
fn damage_case_in_child(seed: u64) -> (String, DamageOutcome) {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([DAMAGE_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(DAMAGE_CHILD_SEED_VARIABLE, seed.to_string())
        .env_remove(SEED_VARIABLE)
        .output()
        .expect("run a damage case in a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line_after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.split_once(prefix).map(|(_, rest)| rest))
            .map(str::to_string)
    };
    let kind = line_after(DAMAGE_LINE).unwrap_or_default();
    if output.status.success() {
        let outcome = match line_after(OUTCOME_LINE).as_deref() {
            Some("RefusedToOpen") => DamageOutcome::RefusedToOpen,
            Some("ReportedAtRead") => DamageOutcome::ReportedAtRead,
            Some("NoEffect") => DamageOutcome::NoEffect,
            Some("IndexEntriesLostSilently") => DamageOutcome::IndexEntriesLostSilently,
            other => panic!("no outcome from the child ({other:?}):\n{stdout}"),
        };
        return (kind, outcome);
    }
    // The first panic tells whether the engine crashed or a check failed.
    let first_panic = stderr.lines().find(|line| line.contains("panicked at"));
    let engine_crashed = stderr.contains("memory allocation of")
        || first_panic.is_some_and(|line| line.contains("/lsm-tree-") || line.contains("/fjall-"));
    assert!(
        engine_crashed && kind.starts_with("table"),
        "the damage case failed in its child process ({kind}):\n{stderr}"
    );
    (kind, DamageOutcome::EngineCrashed)
}

#[test]
fn damage_to_synced_data_is_detected_and_never_served() {
    if let Ok(seed) = std::env::var(DAMAGE_CHILD_SEED_VARIABLE) {
        let seed = seed.parse().expect("a seed");
        let outcome = runtime().block_on(damage_case(seed));
        println!("{OUTCOME_LINE}{outcome:?}");
        return;
    }
    let started = Instant::now();
    let seeds = case_seeds(2_000, DAMAGE_CASES);
    let tally: Mutex<BTreeMap<(String, DamageOutcome), u64>> = Mutex::default();
    let tally_of_cases = &tally;
    run_cases(DAMAGE_TEST, &seeds, |seed| async move {
        let outcome = damage_case_in_child(seed);
        *tally_of_cases
            .lock()
            .expect("the tally")
            .entry(outcome)
            .or_default() += 1;
    });
    eprintln!(
        "{} damage cases in {:.1} s; (damage, outcome): cases {:?}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        tally.into_inner().expect("the tally")
    );
}

/// A bit flipped in the seq of a `successors` table entry (lsm-tree 2
/// verifies no block checksums on reads) made the store serve, as a
/// successor, a fact that does not name the predecessor. The store now
/// checks every successor it serves, reports corruption and refuses writes.
#[test]
fn a_damaged_successors_entry_does_not_serve_another_fact() {
    runtime().block_on(async {
        let temporary = tempfile::tempdir().expect("a temporary directory");
        let data_dir = temporary.path().join("data");
        // Tiny memtables: the successors partition is flushed to a table.
        let options = EmbeddedOptions {
            memtable_bytes: 1024,
            ..EmbeddedOptions::default()
        };
        let store = open(&data_dir, options.clone());
        let mut rng = SeededRng::new(7);
        let mut facts = FactSource::new(7);
        let root = write_batch(&store, &facts.batch(&mut rng, &[], 1)).await;
        let root = root[0].fact.hash;
        // Children of the root at odd seqs, facts without parent at even ones.
        for _ in 0..20 {
            let mut pair = facts.batch(&mut rng, &[], 1);
            let mut child = facts.batch(&mut rng, &[root], 1);
            while child[0].parent.is_none() {
                child = facts.batch(&mut rng, &[root], 1);
            }
            pair.append(&mut child);
            write_batch(&store, &pair).await;
        }
        // The first entry of the root in a successors table: the root's
        // hash, the type, a zero byte, then the child's seq (3) big-endian.
        let mut entry_prefix = root.as_bytes().to_vec();
        entry_prefix.extend_from_slice(FACT_TYPE.as_bytes());
        entry_prefix.push(0);
        // Each copy of the entry in a successors table, with the offset of
        // the seq after it.
        let copies = |data_dir: &Path| -> Vec<(PathBuf, u64)> {
            table_files(data_dir)
                .iter()
                .filter(|table| partition_of(table).ends_with("successors"))
                .filter_map(|table| {
                    let bytes = std::fs::read(table).ok()?;
                    let at = bytes
                        .windows(entry_prefix.len())
                        .position(|window| window == entry_prefix)?;
                    Some((table.clone(), (at + entry_prefix.len()) as u64))
                })
                .collect()
        };
        // Memtables are flushed in the background, and closing does not
        // flush them: wait (bounded) until the entry is in a table, so a
        // slow machine cannot leave it in the journal alone.
        let deadline = Instant::now() + Duration::from_secs(60);
        while copies(&data_dir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the successors memtable was not flushed within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        store.close();
        drop(store);

        // Every copy is damaged (a table compacted away may still be on
        // disk beside the one that replaced it): seq 3 becomes seq 2, a
        // fact without parent.
        let damaged = copies(&data_dir);
        assert!(
            !damaged.is_empty(),
            "no successors table holds the root's entries"
        );
        for (table, entry_at) in &damaged {
            flip_bit(table, entry_at + 7, 0);
        }

        let store = open(&data_dir, options);
        let page = store.successors(&successors_query(root)).await;
        assert!(matches!(page, Err(ReadError::Corrupt { .. })), "{page:?}");
        let write = store
            .put_facts(canonical_facts(&facts.batch(&mut rng, &[], 1)))
            .await;
        assert!(matches!(write, Err(WriteError::Poisoned)), "{write:?}");
        store.close();
    });
}

// ---------------------------------------------------------------------------
// 3. A failed sync.
// ---------------------------------------------------------------------------

async fn failed_sync_case(seed: u64) {
    let mut rng = SeededRng::new(seed);
    let mut facts = FactSource::new(seed);
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let data_dir = temporary.path().join("data");
    let syncs_before_failure = rng.in_range(0, 6);
    let failing = EmbeddedOptions {
        fail_sync_after: Some(syncs_before_failure),
        ..EmbeddedOptions::default()
    };
    let store = open(&data_dir, failing);
    let mut before: Vec<AcknowledgedFact> = Vec::new();
    let mut n_acknowledged_batches = 0;
    // One request at a time: each is a group of its own, with one sync.
    let failed_batch = loop {
        let batch = facts.batch(&mut rng, &hashes(&before), BATCH_FACTS_MAX);
        match store.put_facts(canonical_facts(&batch)).await {
            Ok(outcomes) => {
                before.extend(acknowledged(&batch, outcomes.iter().map(|o| o.seq)));
                n_acknowledged_batches += 1;
            }
            Err(WriteError::Storage { .. }) => break batch,
            Err(other) => panic!("a write failed with {other:?}, not with the injected failure"),
        }
    };
    assert_eq!(n_acknowledged_batches, syncs_before_failure);
    // Poisoned: every later write is refused, readers see only what was
    // acknowledged.
    for _ in 0..3 {
        let write = store
            .put_facts(canonical_facts(&facts.batch(
                &mut rng,
                &[],
                BATCH_FACTS_MAX,
            )))
            .await;
        assert!(matches!(write, Err(WriteError::Poisoned)), "{write:?}");
    }
    assert!(store.stats().poisoned);
    assert_holds_exactly(&store, &before, &canonical_facts(&failed_batch)).await;
    store.close();
    drop(store);

    let reopened = open(&data_dir, EmbeddedOptions::default());
    assert!(!reopened.stats().poisoned);
    // The failed batch was never acknowledged: it may have reached the
    // disk (the close syncs the journal), but only whole.
    let mut expected = before.clone();
    let failed_kept = reopened.stats().last_seq != before.len() as u64;
    let first_failed_seq = before.len() as u64 + 1;
    if failed_kept {
        expected.extend(acknowledged(&failed_batch, first_failed_seq..));
    }
    let absent = if failed_kept {
        Vec::new()
    } else {
        canonical_facts(&failed_batch)
    };
    assert_holds_exactly(&reopened, &expected, &absent).await;
    let after = facts.batch(&mut rng, &hashes(&expected), BATCH_FACTS_MAX);
    let written = write_batch(&reopened, &after).await;
    assert_eq!(
        written[0].seq,
        expected.len() as u64 + 1,
        "writes go on after the reopen"
    );
    reopened.close();
}

#[test]
fn a_failed_sync_is_not_acknowledged_and_poisons_the_store_until_reopened() {
    let seeds = case_seeds(3_000, FAILED_SYNC_CASES);
    run_cases(
        "a_failed_sync_is_not_acknowledged_and_poisons_the_store_until_reopened",
        &seeds,
        failed_sync_case,
    );
}
