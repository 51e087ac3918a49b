//! The history of a run: every operation the workload attempted, with its
//! outcome and the times it was sent and answered. The oracle judges the
//! run from this record alone (plus what the servers hold at the end).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// What the client knows about a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Answered with the fact's `seq`: it must be durable.
    Acked {
        /// The `seq` the server assigned.
        seq: u64,
    },
    /// Refused with a 4xx: it must not be stored (unless another attempt
    /// of the same fact was acknowledged).
    Refused {
        /// The error code of the refusal.
        code: String,
    },
    /// No definite answer: stored or not, the oracle may not assume either.
    Unknown,
    /// Registered before its first attempt; no answer yet.
    Pending,
}

/// One fact the workload tried to write.
#[derive(Clone, Debug)]
pub struct WrittenFact {
    /// Its canonical bytes, as the client computed them.
    pub canonical: Vec<u8>,
    /// Its predecessors' hashes (hex).
    pub predecessors: Vec<String>,
    /// Its ordering key (hex hash of its `key` predecessor).
    pub key: String,
    /// Consumers always fail it, so it must end in the dead letters.
    pub poison: bool,
    /// The batch it was (first) written in.
    pub batch_idx: usize,
    /// The best outcome seen over all attempts (acked beats unknown beats
    /// refused beats pending).
    pub outcome: WriteOutcome,
}

/// A message a consumer received.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The subscription it came from.
    pub subscription: String,
    /// The message's fact (hex hash).
    pub hash: String,
    /// The fact's `seq`.
    pub seq: u64,
    /// Which delivery of the message this was, from 1.
    pub attempt: u64,
    /// When the pull that returned it was sent and answered.
    pub pull_sent: Instant,
    /// When the pull that returned it was answered.
    pub pull_answered: Instant,
    /// The phase of the run (see [`Phase`]).
    pub phase: Phase,
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

/// An ack answered `"acked"`.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The subscription of the acknowledged message.
    pub subscription: String,
    /// The acknowledged message's fact (hex hash).
    pub hash: String,
    /// When the ack was answered.
    pub answered: Instant,
    /// The phase of the run the ack was answered in.
    pub phase: Phase,
}

/// A read that returned a fact (point read or log page).
#[derive(Clone, Debug)]
pub struct ObservedFact {
    /// The fact read (hex hash).
    pub hash: String,
    /// The `seq` it was read at.
    pub seq: u64,
    /// The server that answered the read.
    pub server_idx: usize,
}

/// A fault the nemesis injected.
#[derive(Clone, Debug)]
pub struct FaultEvent {
    /// What kind of fault.
    pub kind: crate::FaultKind,
    /// The server it hit.
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
}

/// Everything recorded during a run, shared by the workload's tasks.
#[derive(Default)]
pub struct History {
    /// The record, behind one lock: the tasks append to it briefly.
    pub inner: Mutex<Recorded>,
}

/// The recorded operations.
#[derive(Default)]
pub struct Recorded {
    /// Facts written, by hash (hex).
    pub facts: HashMap<String, WrittenFact>,
    /// Facts of batches in order of first attempt, by batch index.
    pub batches: Vec<Vec<String>>,
    /// Acknowledged facts in order of acknowledgement (for point reads).
    pub acked_order: Vec<String>,
    /// Every message consumers received, in order of the answers.
    pub deliveries: Vec<Delivery>,
    /// Every ack answered `"acked"`, in order of the answers.
    pub acks: Vec<Ack>,
    /// Facts read back: each must stay durable with the seq it was read at.
    pub observed: HashMap<String, ObservedFact>,
    /// Every fault injected, in order.
    pub faults: Vec<FaultEvent>,
    /// Operations counted by kind.
    pub counts: OperationCounts,
    /// Violations seen while the run was going (a wrong read, a phantom).
    pub live_violations: Vec<(String, String)>,
}

impl History {
    /// Runs `record` with the recorded operations locked.
    pub fn with<T>(&self, record: impl FnOnce(&mut Recorded) -> T) -> T {
        record(&mut self.inner.lock().expect("history lock"))
    }

    /// Records a violation noticed during the run under the check `check`.
    pub fn violation(&self, check: &str, detail: String) {
        self.with(|recorded| recorded.live_violations.push((check.to_string(), detail)));
    }
}

impl Recorded {
    /// Facts whose write was acknowledged.
    pub fn acked(&self) -> impl Iterator<Item = (&String, &WrittenFact)> {
        self.facts
            .iter()
            .filter(|(_, fact)| matches!(fact.outcome, WriteOutcome::Acked { .. }))
    }

    /// Records the outcome of one attempt at a fact, keeping the best.
    pub fn settle(&mut self, hash: &str, outcome: WriteOutcome) {
        let Some(fact) = self.facts.get_mut(hash) else {
            return;
        };
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
}
