//! The group-commit writer: the single thread that appends to the embedded
//! store.
//!
//! Requests queue on a bounded channel. The writer takes everything that is
//! waiting (up to a fact budget), validates each request on its own (a
//! request with missing predecessors fails alone and leaves nothing behind),
//! writes all accepted requests as one atomic fjall batch, makes the journal
//! durable with one `fdatasync`, publishes the new durable `seq`, and only
//! then answers. Many concurrent writers therefore share one sync.
//!
//! Delivery state changes (see `delivery.rs`) travel the same queue and go
//! into the same batches, so they are ordered with the facts and share
//! their syncs. A group that holds only changes nobody waits for (leases)
//! is committed to the journal without a sync of its own.
//!
//! Identity changes, audit entries and authorship (see `identity.rs`) go
//! into the same batches too; the authorship of a request's facts is
//! staged with them, so both are committed atomically or not at all.
//!
//! Claims and leases (see `coordination.rs`) are decided here, one at a
//! time, against the records as they stand in the group; a decision's
//! record and its fact are staged together. A fenced batch of facts is
//! checked against its lease's record the same way, so no grant can come
//! between the check and the write.
//!
//! Timer changes (see `timers.rs`) and link changes (see `links.rs`) go
//! into the same batches too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_fact::{CanonicalFact, Hash};
use fjall::PersistMode;
use tokio::sync::{mpsc, oneshot};

use super::coordination::{self, CoordinationAnswer, CoordinationOp};
use super::delivery::{self, DeliveryWrite};
use super::digests;
use super::identity::{self, AuditCursor, IdentityChange};
use super::keys;
use super::links::{self as link_records, LinkChange, LinkOutcome};
use super::timers::{self as timer_records, TimerChange, TimerOutcome};
use super::watermark::Watermark;
use super::{Shared, SyncMode, UNSAFE_ACK_AHEAD};
use crate::coordination::{
    check_fence, decide_claim, decide_claim_release, decide_lease, ClaimDecision, ClaimOutcome,
    ClaimRecord, ClaimReleaseDecision, ClaimReleaseOutcome, Fence, LeaseDecision, LeaseOutcome,
    LeaseRecord,
};
use crate::error::WriteError;
use crate::identity::IdentityError;
use crate::store::PutOutcome;

/// One caller's write and the channel its answer goes back on.
pub enum WriteRequest {
    /// A batch of facts.
    Facts {
        facts: Vec<CanonicalFact>,
        /// The identity whose authorship is recorded, if any.
        author: Option<Arc<str>>,
        /// The lease grant the write is fenced by, if any.
        fence: Option<Fence>,
        reply: oneshot::Sender<Result<Vec<PutOutcome>, WriteError>>,
    },
    /// A claim or lease operation (or a read of one's record).
    Coordination {
        op: CoordinationOp,
        reply: oneshot::Sender<Result<CoordinationAnswer, WriteError>>,
    },
    /// Delivery state changes; `reply` is `None` when nobody waits for
    /// them to be durable.
    Delivery {
        write: DeliveryWrite,
        reply: Option<oneshot::Sender<Result<(), WriteError>>>,
    },
    /// An identity change, token uses or audit entries.
    Identity {
        change: IdentityChange,
        reply: oneshot::Sender<Result<(), IdentityError>>,
    },
    /// A timer change.
    Timers {
        change: TimerChange,
        reply: oneshot::Sender<Result<TimerOutcome, WriteError>>,
    },
    /// A replication link change.
    Links {
        change: LinkChange,
        reply: oneshot::Sender<Result<LinkOutcome, WriteError>>,
    },
}

impl WriteRequest {
    fn n_facts(&self) -> usize {
        match self {
            WriteRequest::Facts { facts, .. } => facts.len(),
            WriteRequest::Delivery { .. }
            | WriteRequest::Identity { .. }
            | WriteRequest::Coordination { .. }
            | WriteRequest::Timers { .. }
            | WriteRequest::Links { .. } => 1,
        }
    }

    fn fail(self, error: WriteError) {
        match self {
            WriteRequest::Facts { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            WriteRequest::Delivery { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
            }
            WriteRequest::Identity { reply, .. } => {
                let _ = reply.send(Err(error.into()));
            }
            WriteRequest::Coordination { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            WriteRequest::Timers { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            WriteRequest::Links { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
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
    /// Identity and authorship changes of this group.
    identity: identity::Staged,
    /// Claim and lease records of this group.
    coordination: coordination::Staged,
    /// Timer changes of this group.
    timers: timer_records::Staged,
    /// Link changes of this group.
    links: link_records::Staged,
    /// New facts of this group for the digests.
    digests: digests::Staged,
}

/// A request that passed validation, with the answer to send once durable.
enum Accepted {
    Facts {
        reply: oneshot::Sender<Result<Vec<PutOutcome>, WriteError>>,
        outcomes: Vec<PutOutcome>,
    },
    Delivery {
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
    Identity {
        reply: oneshot::Sender<Result<(), IdentityError>>,
    },
    Coordination {
        reply: oneshot::Sender<Result<CoordinationAnswer, WriteError>>,
        answer: CoordinationAnswer,
    },
    Timers {
        reply: oneshot::Sender<Result<TimerOutcome, WriteError>>,
        outcome: TimerOutcome,
    },
    Links {
        reply: oneshot::Sender<Result<LinkOutcome, WriteError>>,
        outcome: LinkOutcome,
    },
}

impl Accepted {
    fn succeed(self) {
        match self {
            Accepted::Facts { reply, outcomes } => {
                let _ = reply.send(Ok(outcomes));
            }
            Accepted::Delivery { reply } => {
                let _ = reply.send(Ok(()));
            }
            Accepted::Identity { reply } => {
                let _ = reply.send(Ok(()));
            }
            Accepted::Coordination { reply, answer } => {
                let _ = reply.send(Ok(answer));
            }
            Accepted::Timers { reply, outcome } => {
                let _ = reply.send(Ok(outcome));
            }
            Accepted::Links { reply, outcome } => {
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    fn fail(self, error: WriteError) {
        match self {
            Accepted::Facts { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Accepted::Delivery { reply } => {
                let _ = reply.send(Err(error));
            }
            Accepted::Identity { reply } => {
                let _ = reply.send(Err(error.into()));
            }
            Accepted::Coordination { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Accepted::Timers { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Accepted::Links { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Runs until every sender is dropped, then returns after the last group.
pub fn run(
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<WriteRequest>,
    watermark: Watermark,
    audit: AuditCursor,
) {
    let mut writer = Writer {
        last_seq: shared.durable_seq.load(Ordering::Acquire),
        syncs_done: 0,
        watermark,
        audit,
        shared,
    };
    while let Some(first) = requests.blocking_recv() {
        let mut n_facts = first.n_facts();
        let mut group = vec![first];
        while n_facts < writer.shared.options.group_facts_max {
            match requests.try_recv() {
                Ok(request) => {
                    n_facts += request.n_facts();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        writer.pace_for_flushes();
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
    /// Where the audit trail stands.
    audit: AuditCursor,
}

/// The share of fjall's memtable and journal budgets (`write_buffer_bytes`,
/// `journal_bytes_max`) above which the writer paces itself.
const PACING_PRESSURE_FROM: f64 = 0.6;
/// The share at which pacing reaches [`PACING_DELAY_MAX`]. fjall itself
/// reacts from 0.9 on, by sleeping 100 ms (memtables) or 500 ms (journals)
/// inside a commit, and then by halting writes: stalls that every waiting
/// writer sees. Pacing earlier, in short steps, slows writes down smoothly
/// so that flushes catch up before fjall's thresholds are reached.
const PACING_PRESSURE_FULL: f64 = 0.85;
/// The longest pause before one group.
const PACING_DELAY_MAX: Duration = Duration::from_millis(10);
const _: () = assert!(PACING_PRESSURE_FROM < PACING_PRESSURE_FULL && PACING_PRESSURE_FULL < 0.9);

/// The pause before a group at `pressure`, the fuller share of fjall's
/// two budgets: none up to [`PACING_PRESSURE_FROM`], growing linearly to
/// [`PACING_DELAY_MAX`] at [`PACING_PRESSURE_FULL`] and staying there.
fn pacing_delay(pressure: f64) -> Duration {
    if pressure.is_nan() || pressure <= PACING_PRESSURE_FROM {
        return Duration::ZERO;
    }
    let share = ((pressure - PACING_PRESSURE_FROM) / (PACING_PRESSURE_FULL - PACING_PRESSURE_FROM))
        .min(1.0);
    PACING_DELAY_MAX.mul_f64(share)
}

impl Writer {
    /// Pauses before the next group while flushes lag behind the writes
    /// (see [`PACING_PRESSURE_FROM`]): the pause grows from nothing to
    /// [`PACING_DELAY_MAX`] with the fuller of the two budgets. Requests
    /// queue meanwhile and the next group takes more of them, so the
    /// throughput bends instead of stopping.
    fn pace_for_flushes(&self) {
        let options = &self.shared.options;
        let keyspace = &self.shared.keyspace;
        let pressure = f64::max(
            keyspace.write_buffer_size() as f64 / options.write_buffer_bytes as f64,
            keyspace.journal_disk_space() as f64 / options.journal_bytes_max as f64,
        );
        let delay = pacing_delay(pressure);
        if delay.is_zero() {
            return;
        }
        std::thread::sleep(delay);
        self.shared
            .paced_nanos
            .fetch_add(delay.as_nanos() as u64, Ordering::Relaxed);
    }

    fn commit_group(&mut self, requests: Vec<WriteRequest>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for request in requests {
                request.fail(WriteError::Poisoned);
            }
            return;
        }
        let mut group = Group {
            batch: self.shared.keyspace.batch(),
            new_facts: HashMap::new(),
            next_seq: self.last_seq + 1,
            n_new_bytes: 0,
            identity: identity::Staged::default(),
            coordination: coordination::Staged::default(),
            timers: timer_records::Staged::default(),
            links: link_records::Staged::default(),
            digests: digests::Staged::default(),
        };
        let mut accepted = Vec::with_capacity(requests.len());
        let mut n_delivery_writes = 0;
        for request in requests {
            match request {
                WriteRequest::Facts {
                    facts,
                    author,
                    fence,
                    reply,
                } => {
                    let validated = self
                        .check_fence(&group, fence.as_ref())
                        .and_then(|()| self.validate(&facts, &group.new_facts))
                        .and_then(|existing| {
                            // Authorship is worked out before anything is staged,
                            // so that a failed read leaves the request out whole.
                            let authorship = match &author {
                                None => Vec::new(),
                                Some(author) => identity::authorship_changes(
                                    &self.shared,
                                    &group.identity,
                                    author,
                                    &facts,
                                    &existing,
                                    &group.new_facts,
                                )?,
                            };
                            Ok((existing, authorship))
                        });
                    match validated {
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                        Ok((existing, authorship)) => {
                            // The facts this request inserts get the seqs
                            // from here on, consecutively.
                            let first_seq = group.next_seq;
                            let outcomes = self.stage(&mut group, &facts, existing);
                            if let Some(author) = &author {
                                if group.next_seq > first_seq {
                                    identity::stage_author_range(
                                        &mut group.identity,
                                        first_seq,
                                        group.next_seq - 1,
                                        author,
                                    );
                                }
                            }
                            identity::stage_authorship(
                                &self.shared,
                                &mut group.batch,
                                &mut group.identity,
                                authorship,
                            );
                            accepted.push(Accepted::Facts { reply, outcomes });
                        }
                    }
                }
                WriteRequest::Identity { change, reply } => {
                    let staged = identity::stage_change(
                        &self.shared,
                        &mut group.batch,
                        &mut group.identity,
                        &mut self.audit,
                        change,
                    );
                    match staged {
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                        Ok(()) => accepted.push(Accepted::Identity { reply }),
                    }
                }
                WriteRequest::Coordination { op, reply } => match self.coordinate(&mut group, op) {
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                    Ok(answer) => accepted.push(Accepted::Coordination { reply, answer }),
                },
                WriteRequest::Timers { change, reply } => {
                    match timer_records::stage_change(
                        &self.shared,
                        &mut group.batch,
                        &mut group.timers,
                        change,
                    ) {
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                        Ok(outcome) => accepted.push(Accepted::Timers { reply, outcome }),
                    }
                }
                WriteRequest::Links { change, reply } => {
                    match link_records::stage_change(
                        &self.shared,
                        &mut group.batch,
                        &mut group.links,
                        change,
                    ) {
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                        Ok(outcome) => accepted.push(Accepted::Links { reply, outcome }),
                    }
                }
                WriteRequest::Delivery { write, reply } => {
                    match delivery::stage(&self.shared, &mut group.batch, write) {
                        Err(error) => {
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(error));
                            }
                        }
                        Ok(()) => {
                            n_delivery_writes += 1;
                            if let Some(reply) = reply {
                                accepted.push(Accepted::Delivery { reply });
                            }
                        }
                    }
                }
            }
        }
        identity::write_author_ranges(&self.shared, &mut group.batch, &mut group.identity);
        let n_new_facts = group.new_facts.len() as u64;
        // Entries besides new facts: delivery, identity, authorship,
        // claims, leases, timers and links.
        let n_other_writes = n_delivery_writes
            + group.identity.n_writes
            + group.coordination.n_writes
            + group.timers.n_writes
            + group.links.n_writes;
        if accepted.is_empty() && n_new_facts == 0 && n_other_writes == 0 {
            return;
        }
        if self.shared.options.sync_mode == SyncMode::UnsafeAckBeforeWrite {
            for request in accepted.drain(..) {
                request.succeed();
            }
            std::thread::sleep(UNSAFE_ACK_AHEAD);
        }
        let started = Instant::now();
        // A sync is needed when someone waits for one; a group of facts that
        // were all stored already needs neither a commit nor a sync, since
        // the facts are durable.
        let needs_sync = n_new_facts > 0 || !accepted.is_empty();
        let durable = if n_new_facts == 0 && n_other_writes == 0 {
            Ok(())
        } else if needs_sync {
            group.batch.commit().and_then(|()| self.sync())
        } else {
            group.batch.commit()
        };
        match durable {
            Ok(()) => {
                if let Some(revision) = group.identity.revision {
                    self.shared
                        .identity_revision
                        .store(revision, Ordering::Release);
                }
                timer_records::apply_pending_delta(&self.shared, group.timers.pending_delta);
                if n_new_facts > 0 {
                    self.last_seq = group.next_seq - 1;
                    if let Err(error) = self.watermark.record(self.last_seq, false) {
                        // The facts are durable; only the damage check at open is weaker.
                        tracing::error!(%error, "cannot record the durable watermark");
                    }
                    self.shared
                        .record_commit(n_new_facts, group.n_new_bytes, started.elapsed());
                    digests::committed(&self.shared, group.digests, self.last_seq);
                    self.shared.publish_durable_seq(self.last_seq);
                }
                for request in accepted {
                    request.succeed();
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; the store is poisoned and refuses writes");
                self.shared.poisoned.store(true, Ordering::Release);
                // Every request of the group fails with the same cause.
                let error = Arc::new(error);
                for request in accepted {
                    request.fail(WriteError::storage_caused_by(
                        error.to_string(),
                        Arc::clone(&error),
                    ));
                }
            }
        }
    }

    /// Refuses a fenced write whose fence is not its lease's current grant.
    fn check_fence(&self, group: &Group, fence: Option<&Fence>) -> Result<(), WriteError> {
        let Some(fence) = fence else {
            return Ok(());
        };
        let record: Option<LeaseRecord> = group
            .coordination
            .read(&self.shared, &coordination::lease_key(&fence.name))?;
        check_fence(record.as_ref(), fence)
    }

    /// Decides a claim or lease operation against the group's view of its
    /// record, staging the new record and the decision's fact together.
    fn coordinate(
        &self,
        group: &mut Group,
        op: CoordinationOp,
    ) -> Result<CoordinationAnswer, WriteError> {
        let deployment = &self.shared.deployment;
        match op {
            CoordinationOp::ReadClaim { key } => {
                let record = group
                    .coordination
                    .read(&self.shared, &coordination::claim_key(&key))?;
                Ok(CoordinationAnswer::ClaimRecord(record))
            }
            CoordinationOp::ReadLease { name } => {
                let record = group
                    .coordination
                    .read(&self.shared, &coordination::lease_key(&name))?;
                Ok(CoordinationAnswer::LeaseRecord(record))
            }
            CoordinationOp::Claim { key, fact } => {
                let record_key = coordination::claim_key(&key);
                let record: Option<ClaimRecord> =
                    group.coordination.read(&self.shared, &record_key)?;
                match decide_claim(record.as_ref(), &key, &fact, deployment) {
                    ClaimDecision::Held { won } => {
                        let record = record.expect("a held claim has a record");
                        Ok(CoordinationAnswer::Claim(ClaimOutcome { record, won }))
                    }
                    ClaimDecision::Win {
                        claimed,
                        generation,
                    } => {
                        let seq = self.stage_server_fact(group, &claimed)?;
                        let record =
                            ClaimRecord::won(record, &key, fact, generation, claimed.hash, seq);
                        group.coordination.write(
                            &self.shared,
                            &mut group.batch,
                            record_key,
                            &record,
                        );
                        Ok(CoordinationAnswer::Claim(ClaimOutcome {
                            record,
                            won: true,
                        }))
                    }
                }
            }
            CoordinationOp::ReleaseClaim { key, fact } => {
                let record_key = coordination::claim_key(&key);
                let record: Option<ClaimRecord> =
                    group.coordination.read(&self.shared, &record_key)?;
                match decide_claim_release(record.as_ref(), &fact, deployment) {
                    ClaimReleaseDecision::Answer(answer) => {
                        Ok(CoordinationAnswer::ReleaseClaim(answer))
                    }
                    ClaimReleaseDecision::Release { released } => {
                        let seq = self.stage_server_fact(group, &released)?;
                        let record = record
                            .expect("a released claim has a record")
                            .released(released.hash, seq);
                        group.coordination.write(
                            &self.shared,
                            &mut group.batch,
                            record_key,
                            &record,
                        );
                        Ok(CoordinationAnswer::ReleaseClaim(
                            ClaimReleaseOutcome::Released(record),
                        ))
                    }
                }
            }
            CoordinationOp::Lease { request, now_ms } => {
                let record_key = coordination::lease_key(request.name());
                let record: Option<LeaseRecord> =
                    group.coordination.read(&self.shared, &record_key)?;
                let record = match decide_lease(record.as_ref(), &request, now_ms, deployment) {
                    LeaseDecision::Answer(answer) => return Ok(CoordinationAnswer::Lease(answer)),
                    LeaseDecision::Write(record) => record,
                    LeaseDecision::WriteWithFact { record, fact } => {
                        self.stage_server_fact(group, &fact)?;
                        record
                    }
                };
                group
                    .coordination
                    .write(&self.shared, &mut group.batch, record_key, &record);
                Ok(CoordinationAnswer::Lease(LeaseOutcome::Granted(record)))
            }
        }
    }

    /// Validates and stages one fact the server writes for a decision,
    /// returning its seq.
    fn stage_server_fact(
        &self,
        group: &mut Group,
        fact: &CanonicalFact,
    ) -> Result<u64, WriteError> {
        let facts = std::slice::from_ref(fact);
        let existing = self.validate(facts, &group.new_facts)?;
        let outcomes = self.stage(group, facts, existing);
        Ok(outcomes[0].seq)
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
                    group.digests.add(&fact.fact.type_name, fact.hash);
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

    /// The seq of `hash` if it is stored. Damaged data poisons the store,
    /// like on a read.
    fn stored_seq(&self, hash: &Hash) -> Result<Option<u64>, WriteError> {
        let shared = &self.shared;
        let value = shared.by_hash.get(hash.as_bytes()).map_err(|error| {
            let error = shared.engine_error(error);
            WriteError::storage_caused_by(error.to_string(), error)
        })?;
        match value {
            None => Ok(None),
            Some(bytes) => keys::decode_seq(&bytes).map(Some).ok_or_else(|| {
                let error = shared.corrupt(format!("malformed hash index entry for {hash}"));
                WriteError::storage_caused_by(error.to_string(), error)
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pacing starts at its threshold, grows with the pressure, never
    /// exceeds its maximum, and reaches it before fjall's own stalls (0.9).
    #[test]
    fn pacing_grows_with_pressure_and_is_bounded() {
        assert_eq!(pacing_delay(0.0), Duration::ZERO);
        assert_eq!(pacing_delay(PACING_PRESSURE_FROM), Duration::ZERO);
        assert_eq!(pacing_delay(f64::NAN), Duration::ZERO);
        let mut previous = Duration::ZERO;
        for step in 0..=100 {
            let delay = pacing_delay(PACING_PRESSURE_FROM + step as f64 * 0.005);
            assert!(delay >= previous, "pacing shrank at step {step}");
            assert!(delay <= PACING_DELAY_MAX);
            previous = delay;
        }
        assert_eq!(pacing_delay(0.9), PACING_DELAY_MAX);
        assert_eq!(pacing_delay(5.0), PACING_DELAY_MAX);
    }
}
