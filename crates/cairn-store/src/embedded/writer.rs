//! The group-commit writer: the single thread that appends to the embedded
//! store.
//!
//! Requests queue on a bounded channel. The writer takes everything that is
//! waiting (up to a fact budget), validates each request on its own (a
//! request with missing predecessors fails alone and leaves nothing behind),
//! writes all accepted requests as one atomic fjall batch, makes the journal
//! durable with one `fdatasync`, publishes the new durable `seq`, and only
//! then answers. Many concurrent writers therefore share one sync.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use cairn_fact::{CanonicalFact, Hash};
use fjall::PersistMode;
use tokio::sync::{mpsc, oneshot};

use super::keys;
use super::watermark::Watermark;
use super::{Shared, SyncMode, UNSAFE_ACK_AHEAD};
use crate::error::WriteError;
use crate::store::PutOutcome;

/// One caller's batch and the channel its answer goes back on.
pub struct WriteRequest {
    pub facts: Vec<CanonicalFact>,
    pub reply: oneshot::Sender<Result<Vec<PutOutcome>, WriteError>>,
}

/// The facts of one group commit being assembled.
struct Group {
    /// Every entry of the group's new facts, written atomically.
    batch: fjall::Batch,
    /// New facts of this group and their sequence numbers.
    new_facts: HashMap<Hash, u64>,
    /// The sequence number the next new fact gets.
    next_seq: u64,
    /// Canonical bytes of the new facts.
    n_new_bytes: u64,
}

/// A request that passed validation, with the outcomes to send once durable.
struct Accepted {
    reply: oneshot::Sender<Result<Vec<PutOutcome>, WriteError>>,
    outcomes: Vec<PutOutcome>,
}

/// Runs until every sender is dropped, then returns after the last group.
pub fn run(shared: Arc<Shared>, mut requests: mpsc::Receiver<WriteRequest>, watermark: Watermark) {
    let mut writer = Writer {
        last_seq: shared.durable_seq.load(Ordering::Acquire),
        syncs_done: 0,
        watermark,
        shared,
    };
    while let Some(first) = requests.blocking_recv() {
        let mut n_facts = first.facts.len();
        let mut group = vec![first];
        while n_facts < writer.shared.options.group_facts_max {
            match requests.try_recv() {
                Ok(request) => {
                    n_facts += request.facts.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        writer.commit_group(group);
    }
    if !writer.shared.poisoned.load(Ordering::Acquire) {
        if let Err(error) = writer.watermark.record(writer.last_seq, true) {
            tracing::error!(%error, "cannot record the durable watermark at close");
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    /// Highest seq assigned and durable.
    last_seq: u64,
    syncs_done: u64,
    watermark: Watermark,
}

impl Writer {
    fn commit_group(&mut self, requests: Vec<WriteRequest>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for request in requests {
                let _ = request.reply.send(Err(WriteError::Poisoned));
            }
            return;
        }
        let mut group = Group {
            batch: self.shared.keyspace.batch(),
            new_facts: HashMap::new(),
            next_seq: self.last_seq + 1,
            n_new_bytes: 0,
        };
        let mut accepted = Vec::with_capacity(requests.len());
        for request in requests {
            match self.validate(&request.facts, &group.new_facts) {
                Err(error) => {
                    let _ = request.reply.send(Err(error));
                }
                Ok(existing) => {
                    let outcomes = self.stage(&mut group, &request.facts, existing);
                    accepted.push(Accepted {
                        reply: request.reply,
                        outcomes,
                    });
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        if self.shared.options.sync_mode == SyncMode::UnsafeAckBeforeWrite {
            for request in accepted.drain(..) {
                let _ = request.reply.send(Ok(request.outcomes));
            }
            std::thread::sleep(UNSAFE_ACK_AHEAD);
        }
        let started = Instant::now();
        let n_new_facts = group.new_facts.len() as u64;
        let durable = if n_new_facts == 0 {
            Ok(())
        } else {
            group.batch.commit().and_then(|()| self.sync())
        };
        match durable {
            Ok(()) => {
                self.last_seq = group.next_seq - 1;
                if let Err(error) = self.watermark.record(self.last_seq, false) {
                    // The facts are durable; only the damage check at open is weaker.
                    tracing::error!(%error, "cannot record the durable watermark");
                }
                self.shared
                    .record_commit(n_new_facts, group.n_new_bytes, started.elapsed());
                self.shared.publish_durable_seq(self.last_seq);
                for request in accepted {
                    let _ = request.reply.send(Ok(request.outcomes));
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; the store is poisoned and refuses writes");
                self.shared.poisoned.store(true, Ordering::Release);
                for request in accepted {
                    let _ = request
                        .reply
                        .send(Err(WriteError::Storage(error.to_string())));
                }
            }
        }
    }

    /// Adds the new facts of a validated request to the group, assigning
    /// their sequence numbers, and returns the request's outcomes.
    fn stage(
        &self,
        group: &mut Group,
        facts: &[CanonicalFact],
        existing: Vec<Option<u64>>,
    ) -> Vec<PutOutcome> {
        let mut outcomes = Vec::with_capacity(facts.len());
        for (fact, existing_seq) in facts.iter().zip(existing) {
            let known = existing_seq.or_else(|| group.new_facts.get(&fact.hash).copied());
            let (seq, inserted) = match known {
                Some(seq) => (seq, false),
                None => {
                    let seq = group.next_seq;
                    group.next_seq += 1;
                    self.add_to_batch(&mut group.batch, fact, seq);
                    group.new_facts.insert(fact.hash, seq);
                    group.n_new_bytes += fact.canonical.len() as u64;
                    (seq, true)
                }
            };
            outcomes.push(PutOutcome {
                hash: fact.hash,
                seq,
                inserted,
            });
        }
        outcomes
    }

    /// Checks one request against the store and the current group. Returns,
    /// for each fact, its seq if it is already durable, or `None`.
    fn validate(
        &self,
        facts: &[CanonicalFact],
        group_new_facts: &HashMap<Hash, u64>,
    ) -> Result<Vec<Option<u64>>, WriteError> {
        let mut existing = Vec::with_capacity(facts.len());
        let mut earlier_in_request: HashSet<Hash> = HashSet::with_capacity(facts.len());
        let mut missing = Vec::new();
        let mut missing_seen = HashSet::new();
        for fact in facts {
            let stored_seq = self.stored_seq(&fact.hash)?;
            existing.push(stored_seq);
            if stored_seq.is_some() || group_new_facts.contains_key(&fact.hash) {
                continue;
            }
            if earlier_in_request.contains(&fact.hash) {
                continue;
            }
            for (_, predecessor) in fact.fact.all_predecessors() {
                let known = earlier_in_request.contains(predecessor)
                    || group_new_facts.contains_key(predecessor)
                    || self.stored_seq(predecessor)?.is_some();
                if !known && missing_seen.insert(*predecessor) {
                    missing.push(*predecessor);
                }
            }
            earlier_in_request.insert(fact.hash);
        }
        if missing.is_empty() {
            Ok(existing)
        } else {
            Err(WriteError::MissingPredecessors { missing })
        }
    }

    fn stored_seq(&self, hash: &Hash) -> Result<Option<u64>, WriteError> {
        let value = self
            .shared
            .by_hash
            .get(hash.as_bytes())
            .map_err(|error| WriteError::Storage(error.to_string()))?;
        match value {
            None => Ok(None),
            Some(bytes) => keys::decode_seq(&bytes)
                .map(Some)
                .ok_or_else(|| WriteError::Storage(format!("corrupt hash index entry for {hash}"))),
        }
    }

    fn add_to_batch(&self, batch: &mut fjall::Batch, fact: &CanonicalFact, seq: u64) {
        let shared = &self.shared;
        batch.insert(
            &shared.facts,
            keys::seq_key(seq),
            keys::fact_value(&fact.hash, &fact.canonical),
        );
        batch.insert(&shared.by_hash, fact.hash.as_bytes(), keys::seq_key(seq));
        batch.insert(
            &shared.by_type,
            keys::type_key(&fact.fact.type_name, seq),
            [],
        );
        for (role, predecessor) in fact.fact.all_predecessors() {
            batch.insert(
                &shared.successors,
                keys::successor_key(predecessor, &fact.fact.type_name, seq, role),
                [],
            );
        }
    }

    fn sync(&mut self) -> Result<(), fjall::Error> {
        self.syncs_done += 1;
        if let Some(fail_after) = self.shared.options.fail_sync_after {
            if self.syncs_done > fail_after {
                return Err(fjall::Error::Io(std::io::Error::other(
                    "injected sync failure",
                )));
            }
        }
        match self.shared.options.sync_mode {
            SyncMode::Data => self.shared.keyspace.persist(PersistMode::SyncData),
            SyncMode::UnsafeAckBeforeWrite => Ok(()),
        }
    }
}
