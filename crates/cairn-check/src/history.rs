//! The history of a run: every operation the workload attempted, with its
//! outcome and the times it was sent and answered. The oracle judges the
//! run from this record alone (plus what the servers hold at the end).
//!
//! An hour-long run records millions of operations, so the history keeps
//! only what the oracle needs, compactly: each written fact as its hash and
//! a few numbers ([`FactTable`]), each message as a small summary per
//! subscription ([`DeliveryLedger`], which also judges each delivery as the
//! run goes), and every delivery, ack and fault streamed to `history.tsv`
//! ([`HistoryFile`]) rather than kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use cairn_fact::Hash;

use crate::coordination::CoordinationRecords;
use crate::delivery_ledger::DeliveryLedger;
use crate::fact_table::{FactTable, Observation, WriteOutcome};
use crate::history_file::HistoryFile;
use crate::workload::SubscriptionSpec;

/// A message a consumer received, as the history keeps it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// The fact's `seq`.
    pub seq: u64,
    /// Which delivery of the message this was, from 1.
    pub attempt: u64,
    /// The phase of the run (see [`Phase`]).
    pub phase: Phase,
    /// When the pull that returned it was sent, in nanoseconds since the
    /// start of the run.
    pub pull_sent_ns: u64,
    /// When that pull was answered, in nanoseconds since the start of the
    /// run.
    pub pull_answered_ns: u64,
}

/// The parts of a run, which the delivery checks tell apart: dead letters
/// come back on purpose after a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Workload with faults.
    Faults,
    /// Faults healed; consumers settle every message.
    Drain,
    /// Dead letters replayed; consumers ack everything.
    Replay,
    /// After a clean restart of every server: nothing may be delivered.
    AfterRestart,
}

/// A fault the nemesis injected.
#[derive(Clone, Debug)]
pub struct FaultEvent {
    /// What kind of fault.
    pub kind: crate::FaultKind,
    /// The server that answered the read.
    pub server_idx: usize,
    /// Milliseconds into the run when it was injected.
    pub at_ms: u64,
    /// What exactly was done, for the report.
    pub detail: String,
}

/// Counts of operations, for the report.
#[derive(Clone, Debug, Default)]
pub struct OperationCounts {
    /// Write requests sent (every attempt counts).
    pub write_batches: u64,
    /// Reads of one fact by hash.
    pub point_reads: u64,
    /// Pages of the log read.
    pub log_pages: u64,
    /// Pulls sent to subscriptions.
    pub pulls: u64,
    /// Ack requests sent.
    pub acks_sent: u64,
    /// Nack requests sent.
    pub nacks_sent: u64,
    /// Deliberately invalid batches that the server refused as it must.
    pub refused_bad_batches: u64,
    /// Predecessors of served facts read back from the same server at
    /// once ([`crate::ring`]'s probes, with independent stores).
    pub closure_probes: u64,
}

/// One fact of a batch about to be written, as [`Recorded::register_batch`]
/// takes it.
pub struct FactToWrite {
    /// Its hash, as the client computed it.
    pub hash: Hash,
    /// Its predecessors' hashes.
    pub predecessors: Vec<Hash>,
    /// Its ordering key (the hash of its `key` predecessor).
    pub key: Hash,
    /// Consumers always fail it, so it must end in the dead letters.
    pub poison: bool,
    /// The store it is written to (see [`crate::fact_table::WrittenFact`]).
    pub store_idx: u8,
}

/// Everything recorded during a run, shared by the workload's tasks.
pub struct History {
    inner: Mutex<Recorded>,
}

impl History {
    /// An empty history of a run started at `started`, whose consumers use
    /// `subscriptions`, streamed to `file`.
    pub fn new(subscriptions: &[SubscriptionSpec], file: HistoryFile, started: Instant) -> History {
        History {
            inner: Mutex::new(Recorded::new(subscriptions, file, started)),
        }
    }

    /// Runs `record` with the recorded operations locked.
    pub fn with<T>(&self, record: impl FnOnce(&mut Recorded) -> T) -> T {
        record(&mut self.inner.lock().expect("history lock"))
    }

    /// Records a violation noticed during the run under the check `check`.
    pub fn violation(&self, check: &str, detail: String) {
        self.with(|recorded| recorded.live_violations.push((check.to_string(), detail)));
    }

    /// Takes the record out, once every task that records is done, leaving
    /// an empty one behind.
    pub fn take(&self) -> Recorded {
        self.with(|recorded| {
            let empty = Recorded::new(&[], HistoryFile::default(), recorded.started);
            std::mem::replace(recorded, empty)
        })
    }
}

/// The recorded operations.
pub struct Recorded {
    /// When the run started: times are kept relative to it.
    started: Instant,
    /// Facts written, by index and by hash.
    pub facts: FactTable,
    /// The facts of every batch, batch after batch in order of first
    /// attempt (by fact index); `batch_ends[batch_idx]` is where a batch's
    /// facts end.
    batch_fact_idxs: Vec<u32>,
    batch_ends: Vec<u32>,
    /// Acknowledged facts in order of acknowledgement (for point reads).
    pub acked_order: Vec<u32>,
    /// What the consumers received and acknowledged.
    pub deliveries: DeliveryLedger,
    /// Hashes read back that are not facts of the run (phantoms, reported
    /// as they are read), by hash and store: each must stay with the seq
    /// it was read at.
    pub observed_unwritten: HashMap<(Hash, usize), Observation>,
    /// With independent stores: the first read of a written fact on a
    /// store other than its own (a replica), by fact index and store.
    pub observed_replicas: HashMap<(u32, usize), Observation>,
    /// True when every server has a store of its own (a ring of
    /// deployments linked by replication): a `seq` then means something
    /// only on the server that answered it. False when the servers share
    /// one store (one embedded server, or servers over one PostgreSQL).
    pub independent_stores: bool,
    /// Claims, lease grants and fenced writes with their answers.
    pub coordination: CoordinationRecords,
    /// Every fault injected, in order.
    pub faults: Vec<FaultEvent>,
    /// Operations counted by kind.
    pub counts: OperationCounts,
    /// Violations seen while the run was going (a wrong read, a phantom,
    /// a redelivery).
    pub live_violations: Vec<(String, String)>,
    file: HistoryFile,
}

impl Recorded {
    fn new(subscriptions: &[SubscriptionSpec], file: HistoryFile, started: Instant) -> Recorded {
        Recorded {
            started,
            facts: FactTable::default(),
            batch_fact_idxs: Vec::new(),
            batch_ends: Vec::new(),
            acked_order: Vec::new(),
            deliveries: DeliveryLedger::new(subscriptions),
            observed_unwritten: HashMap::new(),
            observed_replicas: HashMap::new(),
            independent_stores: false,
            coordination: CoordinationRecords::default(),
            faults: Vec::new(),
            counts: OperationCounts::default(),
            live_violations: Vec::new(),
            file,
        }
    }

    /// Nanoseconds from the start of the run to `at`.
    pub fn ns_since_start(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.started);
        u64::try_from(elapsed.as_nanos()).expect("a run lasts less than 584 years")
    }

    /// Registers the facts of a batch about to be written (before its
    /// first attempt, so a reader that sees them early does not take them
    /// for phantoms).
    pub fn register_batch(&mut self, batch: Vec<FactToWrite>) {
        for fact in batch {
            let fact_idx = self.facts.register(
                fact.hash,
                fact.predecessors,
                fact.key,
                fact.poison,
                fact.store_idx,
            );
            self.batch_fact_idxs.push(fact_idx);
        }
        self.batch_ends.push(
            u32::try_from(self.batch_fact_idxs.len()).expect("fewer than 2^32 facts in a run"),
        );
    }

    /// The facts of every batch (by fact index), in order of first attempt.
    pub fn batches(&self) -> impl Iterator<Item = &[u32]> {
        let starts = std::iter::once(0).chain(self.batch_ends.iter().copied());
        starts
            .zip(&self.batch_ends)
            .map(|(start, &end)| &self.batch_fact_idxs[start as usize..end as usize])
    }

    /// Records the outcome of one attempt at a fact, keeping the best.
    pub fn settle(&mut self, hash: &Hash, outcome: WriteOutcome) {
        let Some(fact_idx) = self.facts.idx_of(hash) else {
            return;
        };
        let fact = self.facts.get_mut(fact_idx);
        let better = match (&fact.outcome, &outcome) {
            (WriteOutcome::Acked { .. }, _) => false,
            (_, WriteOutcome::Acked { .. }) => true,
            (WriteOutcome::Pending, _) => true,
            (WriteOutcome::Refused { .. }, WriteOutcome::Unknown) => true,
            _ => false,
        };
        if better {
            fact.outcome = outcome;
        }
    }

    /// The store that server `server_idx` serves (see
    /// [`Recorded::independent_stores`]).
    pub fn store_of(&self, server_idx: usize) -> usize {
        if self.independent_stores {
            server_idx
        } else {
            0
        }
    }

    /// Records that server `server_idx` returned `hash` at `seq`; a fact
    /// read at two different seqs of one store is a violation.
    pub fn observe(&mut self, server_idx: usize, hash: &Hash, seq: u64) {
        let seen_now = Observation { seq, server_idx };
        let store_idx = self.store_of(server_idx);
        let observed = match self.facts.idx_of(hash) {
            Some(fact_idx) if usize::from(self.facts.get(fact_idx).store_idx) == store_idx => *self
                .facts
                .get_mut(fact_idx)
                .observed
                .get_or_insert(seen_now),
            Some(fact_idx) => *self
                .observed_replicas
                .entry((fact_idx, store_idx))
                .or_insert(seen_now),
            None => *self
                .observed_unwritten
                .entry((*hash, store_idx))
                .or_insert(seen_now),
        };
        if observed.seq != seq {
            let detail = format!(
                "{hash} was read at seq {} (server {}) and at seq {seq} (server {server_idx})",
                observed.seq, observed.server_idx
            );
            self.live_violations
                .push(("acknowledged facts keep their seq".into(), detail));
        }
    }

    /// Records a delivery of the written fact `fact_idx` (whose hash is
    /// spelled `hash_text`) to subscription `subscription_idx`, and judges
    /// what can be judged of it.
    pub fn record_delivery(
        &mut self,
        subscription_idx: usize,
        fact_idx: u32,
        hash_text: &str,
        delivery: Delivery,
    ) {
        let name = &self.deliveries.subscription(subscription_idx).name;
        self.file.delivery(name, hash_text, &delivery);
        self.deliveries.record_delivery(
            subscription_idx,
            fact_idx,
            delivery,
            &self.facts,
            &mut self.live_violations,
        );
    }

    /// Registers an ack about to be sent; its ticket goes to
    /// [`Recorded::ack_answered`] once its answer is recorded (or lost).
    pub fn ack_sent(&mut self) -> u64 {
        self.deliveries.ack_sent()
    }

    /// Records an ack of the message `hash_text` that was answered
    /// `"acked"` at `answered`.
    pub fn record_ack(
        &mut self,
        subscription_idx: usize,
        hash_text: &str,
        phase: Phase,
        answered: Instant,
    ) {
        let answered_ns = self.ns_since_start(answered);
        let name = &self.deliveries.subscription(subscription_idx).name;
        self.file.ack(name, hash_text, phase, answered_ns);
        self.deliveries
            .record_ack(subscription_idx, hash_text, phase, answered_ns, &self.facts);
    }

    /// Marks the ack with `ticket` as answered and recorded (or lost).
    pub fn ack_answered(&mut self, ticket: u64) {
        self.deliveries
            .ack_answered(ticket, &self.facts, &mut self.live_violations);
    }

    /// Records a fault the nemesis injected.
    pub fn record_fault(&mut self, fault: FaultEvent) {
        self.file.fault(&fault);
        self.faults.push(fault);
    }

    /// Once every task that records is done: judges the deliveries still
    /// waiting for acks and writes the rest of `history.tsv`; the error
    /// met writing it, if any.
    pub fn finish(&mut self) -> Result<(), String> {
        self.deliveries
            .finish(&self.facts, &mut self.live_violations);
        self.file.finish()
    }
}
