//! The claim batcher of the PostgreSQL store: a server's concurrent claims
//! and claim releases, decided together.
//!
//! Every write to the log takes the `cairn_log_head` row and holds it until
//! commit (gap-free seqs, `migrations/0001_facts.sql`), so one transaction
//! per claim made a server's claims commit one after another, each holding
//! that row for several round trips. Here one task takes every claim
//! waiting (up to [`crate::limits::CLAIM_BATCH_MAX`]) and decides them
//! together, in two round trips whatever the batch's size:
//!
//! 1. one snapshot read, without locks ([`READ_STATEMENT`]): each key's
//!    record, and whether each claimed fact is stored;
//! 2. the decisions, in memory, in arrival order, by the rules of
//!    [`crate::coordination`] — a second claim of a key in the same batch
//!    sees the first one's decision, exactly as if they had come one after
//!    another. If nothing changes (every claim held), the snapshot's
//!    answers are final;
//! 3. one call of `cairn_apply_claims` (migration 9), committed with its
//!    statement: it locks every key's row in key order (so two servers'
//!    batches cannot deadlock; the head's row comes last, taken by
//!    `cairn_put_facts`), and if every record is still the one read, writes
//!    all new `Cairn.Claimed` and `Cairn.ClaimReleased` facts with one
//!    `cairn_put_facts` and the changed records, their seqs filled in; if
//!    one changed (another server decided in between) it writes nothing and
//!    the batch is decided again. No round trip crosses the network while
//!    the head's lock is held.
//!
//! After [`crate::limits::CLAIM_OPTIMISTIC_ATTEMPTS_MAX`] conflicts, the
//! batch is decided under the keys' row locks instead: `BEGIN`, one
//! statement that makes and locks every key's row in key order and reads
//! it ([`LOCK_STATEMENT`]), the decisions, `cairn_apply_claims`, `COMMIT`.
//! Every waiter is answered once its batch committed.
//!
//! A claim whose fact is not stored fails alone (`MissingPredecessors`),
//! where a claim on its own would have failed; it does not fail the batch.
//! A failure of the transaction (a statement, the commit, the deadline)
//! answers every claim of the batch with that error: claims and releases
//! are idempotent, so the callers retry safely, and a commit whose outcome
//! is unknown is answered alike by the retry. The answers, facts and seqs
//! are those the same claims give one by one: a decision's seq is the seq
//! `cairn_put_facts` gives its fact, filled into the records once known.
//!
//! Shape: [`ClaimBatcherOptions`] → [`ClaimBatcher::build`] →
//! [`ClaimBatcher::run`] until its shutdown token is cancelled (or its
//! handles are gone), used through the cheap [`ClaimBatcherHandle`]. The
//! queue is bounded ([`crate::limits::CLAIM_QUEUE_MAX`]); a caller waits
//! for its answer at most twice the store's operation deadline (a batch
//! ahead of it and its own).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_fact::{CanonicalFact, Hash};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::errors::write_error;
use super::transaction::{self, TransactionConnection};
use super::{advance_head, BatchArrays, Counters};
use crate::coordination::{
    decide_claim, decide_claim_release, ClaimDecision, ClaimHolder, ClaimOutcome, ClaimRecord,
    ClaimReleaseDecision, ClaimReleaseOutcome,
};
use crate::error::WriteError;
use crate::limits::{
    CLAIM_BATCHES_IN_FLIGHT_MAX, CLAIM_BATCH_MAX, CLAIM_OPTIMISTIC_ATTEMPTS_MAX, CLAIM_QUEUE_MAX,
};

/// Makes and locks the row of every key of a batch (`$1`, distinct), in
/// key order, answering each key's latest record; and answers whether each
/// claimed fact (`$2`, distinct) is stored. A conflicting row is updated to
/// itself only to be locked and returned in the same statement. Facts are
/// looked up one by one with a scalar subquery: planned while `cairn_facts`
/// was small (a new deployment), an `EXISTS` becomes a join, or a subplan
/// that hashes the whole table, on every execution as the table grows;
/// a scalar subquery stays a lookup by the index.
const LOCK_STATEMENT: &str = "
    WITH locked AS (
        INSERT INTO cairn_claims AS c (key)
        SELECT k.key FROM unnest($1::text[]) AS k(key) ORDER BY k.key
        ON CONFLICT (key) DO UPDATE SET record = c.record
        RETURNING c.key, c.record
    )
    SELECT key, record, NULL::bytea AS claimed_fact, NULL::boolean AS stored FROM locked
    UNION ALL
    SELECT NULL, NULL, s.fact,
           coalesce((SELECT true FROM cairn_facts f WHERE f.hash = s.fact), false)
    FROM unnest($2::bytea[]) AS s(fact)";

/// Reads the record of every key of a batch (`$1`, distinct) and answers
/// whether each claimed fact (`$2`, distinct) is stored, in one snapshot
/// and without locks (the optimistic path). Every lookup is a subquery per
/// element, so that it stays a lookup by the index whatever the tables'
/// statistics (see [`LOCK_STATEMENT`]).
const READ_STATEMENT: &str = "
    SELECT k.key, (SELECT c.record FROM cairn_claims c WHERE c.key = k.key) AS record,
           NULL::bytea AS claimed_fact, NULL::boolean AS stored
    FROM unnest($1::text[]) AS k(key)
    UNION ALL
    SELECT NULL, NULL, s.fact,
           coalesce((SELECT true FROM cairn_facts f WHERE f.hash = s.fact), false)
    FROM unnest($2::bytea[]) AS s(fact)";

/// Applies a batch's decisions (migration 9).
const APPLY_STATEMENT: &str = "
    SELECT ord, fact_seq, conflict
    FROM cairn_apply_claims($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Settings of a claim batcher.
#[derive(Clone, Debug)]
pub struct ClaimBatcherOptions {
    /// Claims and releases decided in one transaction at most.
    pub batch_claims_max: usize,
    /// Claims and releases waiting for a batch at most.
    pub queue_claims_max: usize,
    /// Batches decided at once at most, each on its own connection.
    pub batches_in_flight_max: usize,
    /// Optimistic attempts at a batch before it is decided under row
    /// locks; 0 decides every batch under row locks.
    pub optimistic_attempts_max: usize,
}

impl Default for ClaimBatcherOptions {
    fn default() -> Self {
        ClaimBatcherOptions {
            batch_claims_max: CLAIM_BATCH_MAX,
            queue_claims_max: CLAIM_QUEUE_MAX,
            batches_in_flight_max: CLAIM_BATCHES_IN_FLIGHT_MAX,
            optimistic_attempts_max: CLAIM_OPTIMISTIC_ATTEMPTS_MAX,
        }
    }
}

/// What the batcher shares with its store.
pub(super) struct ClaimBatcherParts {
    pub(super) pool: PgPool,
    pub(super) deployment: String,
    /// How long one batch's transaction may take, waiting for a
    /// connection included (the store's operation deadline).
    pub(super) operation_timeout: Duration,
    pub(super) last_seq: watch::Sender<u64>,
    pub(super) counters: Arc<Counters>,
}

/// A claim or a release of one.
#[derive(Debug)]
enum ClaimOp {
    Claim { key: String, fact: Hash },
    Release { key: String, fact: Hash },
}

impl ClaimOp {
    fn key(&self) -> &str {
        match self {
            ClaimOp::Claim { key, .. } | ClaimOp::Release { key, .. } => key,
        }
    }
}

/// The answer to a [`ClaimOp`] of the same kind.
#[derive(Debug)]
enum ClaimOpAnswer {
    Claim(ClaimOutcome),
    Release(ClaimReleaseOutcome),
}

struct ClaimRequest {
    op: ClaimOp,
    reply: oneshot::Sender<Result<ClaimOpAnswer, WriteError>>,
}

/// The sending side: cheap to clone, one per caller if needed.
#[derive(Clone)]
pub(super) struct ClaimBatcherHandle {
    requests: mpsc::Sender<ClaimRequest>,
    answer_timeout: Duration,
}

/// The task that decides batches; see the module documentation.
pub(super) struct ClaimBatcher {
    options: ClaimBatcherOptions,
    parts: Arc<ClaimBatcherParts>,
    requests: mpsc::Receiver<ClaimRequest>,
}

impl ClaimBatcher {
    /// The batcher and the handle that feeds it.
    pub(super) fn build(
        options: ClaimBatcherOptions,
        parts: ClaimBatcherParts,
    ) -> (ClaimBatcher, ClaimBatcherHandle) {
        assert!(
            options.batch_claims_max > 0
                && options.queue_claims_max > 0
                && options.batches_in_flight_max > 0
        );
        let (sender, requests) = mpsc::channel(options.queue_claims_max);
        let handle = ClaimBatcherHandle {
            requests: sender,
            answer_timeout: parts.operation_timeout * 2,
        };
        let batcher = ClaimBatcher {
            options,
            parts: Arc::new(parts),
            requests,
        };
        (batcher, handle)
    }

    /// Decides batches until `shutdown` is cancelled or every handle is
    /// dropped: whenever fewer than `batches_in_flight_max` are under way
    /// and claims wait, they become the next batch. Batches under way are
    /// finished (their deadline bounds them); what waits then, and what
    /// comes later, is answered `Closed`.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut in_flight = JoinSet::new();
        loop {
            if in_flight.len() >= self.options.batches_in_flight_max {
                if let Some(finished) = in_flight.join_next().await {
                    report_panic(finished);
                }
                continue;
            }
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                    report_panic(finished);
                    continue;
                }
                request = self.requests.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < self.options.batch_claims_max {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let parts = Arc::clone(&self.parts);
            let attempts_max = self.options.optimistic_attempts_max;
            in_flight.spawn(async move { parts.decide_batch(batch, attempts_max).await });
        }
        while let Some(finished) = in_flight.join_next().await {
            report_panic(finished);
        }
        self.requests.close();
        while let Some(request) = self.requests.recv().await {
            let _ = request.reply.send(Err(WriteError::Closed));
        }
    }
}

/// A batch that panicked (a bug) has dropped its replies: its callers are
/// answered `Closed`, and the batcher goes on with the next batch.
fn report_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        tracing::error!(%error, "a claim batch failed unexpectedly");
    }
}

impl ClaimBatcherParts {
    async fn decide_batch(&self, batch: Vec<ClaimRequest>, optimistic_attempts_max: usize) {
        // A caller that gave up (its deadline, a client gone) is not
        // decided: it was told nothing, and a retry decides it.
        let (ops, replies): (Vec<ClaimOp>, Vec<_>) = batch
            .into_iter()
            .filter(|request| !request.reply.is_closed())
            .map(|request| (request.op, request.reply))
            .unzip();
        if ops.is_empty() {
            return;
        }
        let started = Instant::now();
        let operation_timeout = self.operation_timeout;
        let decided = tokio::time::timeout(
            operation_timeout,
            self.decide_ops(&ops, optimistic_attempts_max),
        )
        .await
        .unwrap_or_else(|_| {
            Err(WriteError::Unavailable {
                message: format!(
                    "no answer from the database within {} ms",
                    operation_timeout.as_millis()
                ),
                source: None,
            })
        });
        self.counters.observe_query(started.elapsed());
        match decided {
            Ok((answers, head)) => {
                if let Some(head) = head {
                    advance_head(&self.last_seq, head);
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                tracing::debug!(%error, n_claims = ops.len(), "a claim batch failed");
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(shared_error(&error)));
                }
            }
        }
    }

    /// Decides the batch: optimistically first (read, decide, apply: two
    /// round trips, or one if nothing changes), and, after
    /// `optimistic_attempts_max` conflicts with other servers' decisions,
    /// under the keys' row locks. An answer per op, in order,
    /// and the highest seq written, if any.
    async fn decide_ops(
        &self,
        ops: &[ClaimOp],
        optimistic_attempts_max: usize,
    ) -> Result<Decided, WriteError> {
        for _ in 0..optimistic_attempts_max {
            let rows = sqlx::query(READ_STATEMENT)
                .bind(distinct_keys(ops))
                .bind(claimed_facts(ops))
                .fetch_all(&self.pool)
                .await
                .map_err(write_error)?;
            let read = Read::from_rows(&rows)?;
            let (answers, decisions) = self.decide_on(ops, &read)?;
            if decisions.facts.is_empty() {
                // Nothing changes: the answers are those of the records
                // as one snapshot saw them.
                return Ok((answers, None));
            }
            if let Some(seqs) = apply(&self.pool, &read, &decisions).await? {
                return Ok(answered(answers, &seqs));
            }
        }
        self.decide_locked(ops).await
    }

    /// Decides the batch under the row locks of its keys (the fallback
    /// when other servers keep deciding on the same keys).
    async fn decide_locked(&self, ops: &[ClaimOp]) -> Result<Decided, WriteError> {
        let mut connection = TransactionConnection::acquire(&self.pool)
            .await
            .map_err(write_error)?;
        let mut transaction = connection.begin().await.map_err(write_error)?;
        let rows = sqlx::query(LOCK_STATEMENT)
            .bind(distinct_keys(ops))
            .bind(claimed_facts(ops))
            .fetch_all(&mut *transaction)
            .await
            .map_err(write_error)?;
        let read = Read::from_rows(&rows)?;
        let (answers, decisions) = self.decide_on(ops, &read)?;
        if decisions.facts.is_empty() {
            // Nothing changed: every claim was held, every release refused
            // or answered again. Nothing to commit.
            transaction.rollback().await.map_err(write_error)?;
            return Ok((answers, None));
        }
        let Some(seqs) = apply(&mut *transaction, &read, &decisions).await? else {
            return Err(WriteError::storage(
                "claim batch: a locked record changed under its lock",
            ));
        };
        transaction::commit(transaction)
            .await
            .map_err(write_error)?;
        Ok(answered(answers, &seqs))
    }

    /// Decides every op in order on the records read.
    fn decide_on<'r>(
        &'r self,
        ops: &[ClaimOp],
        read: &Read,
    ) -> Result<(Vec<Result<ClaimOpAnswer, WriteError>>, Decisions<'r>), WriteError> {
        let mut decisions =
            Decisions::new(&self.deployment, read.records.clone(), read.stored.clone());
        let answers = ops
            .iter()
            .map(|op| decisions.decide(op))
            .collect::<Result<_, _>>()?;
        Ok((answers, decisions))
    }
}

/// The answers of a batch, and the highest seq it wrote, if any.
type Decided = (Vec<Result<ClaimOpAnswer, WriteError>>, Option<u64>);

/// The batch's keys, each once.
fn distinct_keys(ops: &[ClaimOp]) -> Vec<&str> {
    ops.iter()
        .map(ClaimOp::key)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// The facts the batch's claims name, each once.
fn claimed_facts(ops: &[ClaimOp]) -> Vec<&[u8]> {
    ops.iter()
        .filter_map(|op| match op {
            ClaimOp::Claim { fact, .. } => Some(fact.as_bytes().as_slice()),
            ClaimOp::Release { .. } => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// The answers with the seqs of the facts written filled in.
fn answered(answers: Vec<Result<ClaimOpAnswer, WriteError>>, seqs: &HashMap<Hash, u64>) -> Decided {
    let answers = answers
        .into_iter()
        .map(|answer| answer.map(|answer| fill_answer_seqs(answer, seqs)))
        .collect();
    (answers, seqs.values().copied().max())
}

/// Applies `decisions`, made on `read`, with `cairn_apply_claims`
/// (migration 9): the seq of each fact written, by hash, or `None` if a
/// record changed since it was read (nothing was written).
async fn apply<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    read: &Read,
    decisions: &Decisions<'_>,
) -> Result<Option<HashMap<Hash, u64>>, WriteError> {
    let arrays = BatchArrays::new(&decisions.facts);
    let ords: HashMap<Hash, i32> = decisions
        .facts
        .iter()
        .zip(&arrays.positions)
        .map(|(fact, &(position, _))| (fact.hash, position as i32 + 1))
        .collect();
    let ord_of = |hash: &Hash| ords.get(hash).copied().unwrap_or(0);
    let mut changed_keys = Vec::with_capacity(decisions.changed.len());
    let mut changed_records = Vec::with_capacity(decisions.changed.len());
    let mut claimed_ords = Vec::with_capacity(decisions.changed.len());
    let mut released_ords = Vec::with_capacity(decisions.changed.len());
    for key in &decisions.changed {
        let Some(Some(record)) = decisions.records.get(key) else {
            return Err(WriteError::storage(format!(
                "claim batch: the changed key {key:?} has no record"
            )));
        };
        changed_keys.push(key.as_str());
        changed_records.push(serde_json::to_string(record).expect("a record serializes"));
        claimed_ords.push(record.holder.as_ref().map_or(0, |h| ord_of(&h.claimed)));
        released_ords.push(record.released.as_ref().map_or(0, |r| ord_of(&r.released)));
    }
    let (keys, expected): (Vec<&str>, Vec<Option<&str>>) = read
        .texts
        .iter()
        .map(|(key, text)| (key.as_str(), text.as_deref()))
        .unzip();
    let query = sqlx::query(APPLY_STATEMENT)
        .bind(&keys)
        .bind(&expected)
        .bind(&changed_keys)
        .bind(&changed_records)
        .bind(&claimed_ords)
        .bind(&released_ords);
    let rows = arrays
        .bind_to(query)
        .fetch_all(executor)
        .await
        .map_err(write_error)?;
    let mut seq_of_ord: HashMap<i32, u64> = HashMap::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<bool, _>("conflict").map_err(write_error)? {
            return Ok(None);
        }
        let ord: i32 = row.try_get("ord").map_err(write_error)?;
        let seq: i64 = row.try_get("fact_seq").map_err(write_error)?;
        seq_of_ord.insert(ord, seq as u64);
    }
    let mut seqs = HashMap::with_capacity(ords.len());
    for (hash, ord) in ords {
        let Some(&seq) = seq_of_ord.get(&ord) else {
            return Err(WriteError::storage(format!(
                "claim batch: no seq for fact {ord}"
            )));
        };
        seqs.insert(hash, seq);
    }
    Ok(Some(seqs))
}

impl ClaimBatcherHandle {
    /// Claims `key` for `fact` (see [`crate::CoordinationStore::claim`]).
    pub(super) async fn claim(&self, key: &str, fact: Hash) -> Result<ClaimOutcome, WriteError> {
        let op = ClaimOp::Claim {
            key: key.to_string(),
            fact,
        };
        match self.decide(op).await? {
            ClaimOpAnswer::Claim(outcome) => Ok(outcome),
            ClaimOpAnswer::Release(_) => Err(WriteError::storage(
                "claim batch: a release answer to a claim",
            )),
        }
    }

    /// Releases `key` held by `fact` (see
    /// [`crate::CoordinationStore::release_claim`]).
    pub(super) async fn release(
        &self,
        key: &str,
        fact: Hash,
    ) -> Result<ClaimReleaseOutcome, WriteError> {
        let op = ClaimOp::Release {
            key: key.to_string(),
            fact,
        };
        match self.decide(op).await? {
            ClaimOpAnswer::Release(outcome) => Ok(outcome),
            ClaimOpAnswer::Claim(_) => Err(WriteError::storage(
                "claim batch: a claim answer to a release",
            )),
        }
    }

    async fn decide(&self, op: ClaimOp) -> Result<ClaimOpAnswer, WriteError> {
        let (reply, answer) = oneshot::channel();
        let answered = async {
            self.requests
                .send(ClaimRequest { op, reply })
                .await
                .map_err(|_| WriteError::Closed)?;
            // Dropped unanswered only if the batcher stopped.
            answer.await.map_err(|_| WriteError::Closed)?
        };
        tokio::time::timeout(self.answer_timeout, answered)
            .await
            .unwrap_or_else(|_| {
                Err(WriteError::Unavailable {
                    message: format!(
                        "the claim was not decided within {} ms",
                        self.answer_timeout.as_millis()
                    ),
                    source: None,
                })
            })
    }
}

/// What a batch decides on: each key's record (`None`: never decided) and
/// the claimed facts that are stored.
struct Read {
    /// Each key of the batch with its record's text as read, which
    /// `cairn_apply_claims` compares with the record it locks.
    texts: Vec<(String, Option<String>)>,
    records: HashMap<String, Option<ClaimRecord>>,
    stored: HashSet<Hash>,
}

impl Read {
    /// From the rows of [`READ_STATEMENT`] or [`LOCK_STATEMENT`].
    fn from_rows(rows: &[PgRow]) -> Result<Read, WriteError> {
        let mut read = Read {
            texts: Vec::with_capacity(rows.len()),
            records: HashMap::with_capacity(rows.len()),
            stored: HashSet::new(),
        };
        for row in rows {
            if let Some(fact) = row
                .try_get::<Option<Vec<u8>>, _>("claimed_fact")
                .map_err(write_error)?
            {
                let fact = <[u8; 32]>::try_from(fact)
                    .map_err(|_| WriteError::storage("claim batch: a malformed fact hash"))?;
                if row.try_get::<bool, _>("stored").map_err(write_error)? {
                    read.stored.insert(Hash(fact));
                }
                continue;
            }
            let key: String = row.try_get("key").map_err(write_error)?;
            let text: Option<String> = row.try_get("record").map_err(write_error)?;
            let record = text
                .as_deref()
                .map(|text| {
                    serde_json::from_str::<ClaimRecord>(text).map_err(|error| {
                        WriteError::Corrupt(format!("malformed coordination record: {error}"))
                    })
                })
                .transpose()?;
            read.records.insert(key.clone(), record);
            read.texts.push((key, text));
        }
        Ok(read)
    }
}

/// The decisions of one batch so far: the facts to write and the keys
/// whose records changed. Seqs of the facts of this batch are 0 until
/// they are written ([`fill_seqs`]).
struct Decisions<'a> {
    deployment: &'a str,
    /// Each key's record as the decisions so far left it.
    records: HashMap<String, Option<ClaimRecord>>,
    /// Claimed facts that are stored.
    stored: HashSet<Hash>,
    /// The facts to write, in decision order.
    facts: Vec<CanonicalFact>,
    /// The hashes of `facts` (a claim may name a fact decided earlier in
    /// the batch, as it could name one committed by an earlier claim).
    decided: HashSet<Hash>,
    /// Keys whose records changed, each once, in first-change order.
    changed: Vec<String>,
}

impl<'a> Decisions<'a> {
    fn new(
        deployment: &'a str,
        records: HashMap<String, Option<ClaimRecord>>,
        stored: HashSet<Hash>,
    ) -> Decisions<'a> {
        Decisions {
            deployment,
            records,
            stored,
            facts: Vec::new(),
            decided: HashSet::new(),
            changed: Vec::new(),
        }
    }

    /// Decides `op` against the records as the batch left them. The outer
    /// error fails the batch; the inner one answers this op alone.
    fn decide(&mut self, op: &ClaimOp) -> Result<Result<ClaimOpAnswer, WriteError>, WriteError> {
        let Some(record) = self.records.get_mut(op.key()) else {
            return Err(WriteError::storage(format!(
                "claim batch: the key {:?} was not locked",
                op.key()
            )));
        };
        let answer = match op {
            ClaimOp::Claim { key, fact } => {
                match decide_claim(record.as_ref(), key, fact, self.deployment) {
                    ClaimDecision::Held { won } => {
                        let record = record.clone().expect("a held claim has a record");
                        ClaimOpAnswer::Claim(ClaimOutcome { record, won })
                    }
                    ClaimDecision::Win {
                        claimed,
                        generation,
                    } => {
                        if !self.stored.contains(fact) && !self.decided.contains(fact) {
                            return Ok(Err(WriteError::MissingPredecessors {
                                missing: vec![*fact],
                            }));
                        }
                        let won = ClaimRecord::won(
                            record.take(),
                            key,
                            *fact,
                            generation,
                            claimed.hash,
                            0,
                        );
                        *record = Some(won.clone());
                        self.wrote(key, claimed);
                        ClaimOpAnswer::Claim(ClaimOutcome {
                            record: won,
                            won: true,
                        })
                    }
                }
            }
            ClaimOp::Release { key, fact } => {
                match decide_claim_release(record.as_ref(), fact, self.deployment) {
                    ClaimReleaseDecision::Answer(answer) => ClaimOpAnswer::Release(answer),
                    ClaimReleaseDecision::Release { released } => {
                        let freed = record
                            .take()
                            .expect("a released claim has a record")
                            .released(released.hash, 0);
                        *record = Some(freed.clone());
                        self.wrote(key, released);
                        ClaimOpAnswer::Release(ClaimReleaseOutcome::Released(freed))
                    }
                }
            }
        };
        Ok(Ok(answer))
    }

    fn wrote(&mut self, key: &str, fact: CanonicalFact) {
        self.decided.insert(fact.hash);
        self.facts.push(fact);
        if !self.changed.iter().any(|changed| changed == key) {
            self.changed.push(key.to_string());
        }
    }
}

/// Fills in the seqs of the facts this batch wrote (`seqs`, by hash) that
/// `record` names; seqs of facts written earlier are kept.
fn fill_seqs(record: &mut ClaimRecord, seqs: &HashMap<Hash, u64>) {
    if let Some(holder) = record.holder.as_mut() {
        fill_holder_seq(holder, seqs);
    }
    if let Some(release) = record.released.as_mut() {
        if let Some(&seq) = seqs.get(&release.released) {
            release.released_seq = seq;
        }
    }
}

fn fill_holder_seq(holder: &mut ClaimHolder, seqs: &HashMap<Hash, u64>) {
    if let Some(&seq) = seqs.get(&holder.claimed) {
        holder.claimed_seq = seq;
    }
}

fn fill_answer_seqs(answer: ClaimOpAnswer, seqs: &HashMap<Hash, u64>) -> ClaimOpAnswer {
    match answer {
        ClaimOpAnswer::Claim(mut outcome) => {
            fill_seqs(&mut outcome.record, seqs);
            ClaimOpAnswer::Claim(outcome)
        }
        ClaimOpAnswer::Release(ClaimReleaseOutcome::Released(mut record)) => {
            fill_seqs(&mut record, seqs);
            ClaimOpAnswer::Release(ClaimReleaseOutcome::Released(record))
        }
        ClaimOpAnswer::Release(ClaimReleaseOutcome::NotHolder(mut holder)) => {
            if let Some(holder) = holder.as_mut() {
                fill_holder_seq(holder, seqs);
            }
            ClaimOpAnswer::Release(ClaimReleaseOutcome::NotHolder(holder))
        }
    }
}

/// One copy, for each waiter of a failed batch, of the error that failed
/// it: the same kind (so each caller does what it would do alone), the
/// shared cause as its source.
fn shared_error(error: &Arc<WriteError>) -> WriteError {
    let source = || Some(Box::new(Arc::clone(error)) as crate::error::SourceError);
    match &**error {
        WriteError::MissingPredecessors { missing } => WriteError::MissingPredecessors {
            missing: missing.clone(),
        },
        WriteError::Poisoned => WriteError::Poisoned,
        WriteError::Closed => WriteError::Closed,
        WriteError::Storage { message, .. } => WriteError::Storage {
            message: message.clone(),
            source: source(),
        },
        WriteError::Corrupt(message) => WriteError::Corrupt(message.clone()),
        WriteError::StaleFence {
            name,
            fence,
            current,
        } => WriteError::StaleFence {
            name: name.clone(),
            fence: *fence,
            current: *current,
        },
        WriteError::Unavailable { message, .. } => WriteError::Unavailable {
            message: message.clone(),
            source: source(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "d1";

    fn hash(n: u8) -> Hash {
        Hash::of_bytes(&[n])
    }

    fn claim(key: &str, fact: Hash) -> ClaimOp {
        ClaimOp::Claim {
            key: key.into(),
            fact,
        }
    }

    /// Decides `ops` as a batch over keys never decided before, with
    /// `stored` the stored claimed facts.
    fn decide_all(
        ops: &[ClaimOp],
        stored: &[Hash],
    ) -> (Vec<Result<ClaimOpAnswer, WriteError>>, Vec<CanonicalFact>) {
        let records: HashMap<String, Option<ClaimRecord>> =
            ops.iter().map(|op| (op.key().to_string(), None)).collect();
        let mut decisions = Decisions::new(DEPLOYMENT, records, stored.iter().copied().collect());
        let answers = ops.iter().map(|op| decisions.decide(op).unwrap()).collect();
        (answers, decisions.facts)
    }

    fn won(answer: &Result<ClaimOpAnswer, WriteError>) -> (bool, Hash, u64) {
        match answer {
            Ok(ClaimOpAnswer::Claim(outcome)) => (
                outcome.won,
                outcome.record.holder.as_ref().unwrap().fact,
                outcome.record.generation,
            ),
            other => panic!("expected a claim outcome, got {other:?}"),
        }
    }

    #[test]
    fn later_claims_of_a_key_in_a_batch_see_the_first_decision() {
        let ops = [
            claim("k", hash(1)),
            claim("k", hash(2)),
            claim("k", hash(1)),
        ];
        let (answers, facts) = decide_all(&ops, &[hash(1), hash(2)]);
        assert_eq!(won(&answers[0]), (true, hash(1), 1));
        assert_eq!(won(&answers[1]), (false, hash(1), 1));
        assert_eq!(won(&answers[2]), (true, hash(1), 1));
        assert_eq!(facts.len(), 1, "one Cairn.Claimed fact");
    }

    #[test]
    fn a_claim_of_a_missing_fact_fails_alone() {
        let ops = [claim("a", hash(9)), claim("b", hash(1))];
        let (answers, facts) = decide_all(&ops, &[hash(1)]);
        assert!(matches!(
            &answers[0],
            Err(WriteError::MissingPredecessors { missing }) if missing == &vec![hash(9)]
        ));
        assert_eq!(won(&answers[1]), (true, hash(1), 1));
        assert_eq!(facts.len(), 1);
    }

    #[test]
    fn a_claim_may_name_a_fact_decided_earlier_in_the_batch() {
        let first = claim("a", hash(1));
        let claimed = crate::coordination::claimed_fact("a", &hash(1), 1, DEPLOYMENT).hash;
        let ops = [first, claim("b", claimed)];
        let (answers, facts) = decide_all(&ops, &[hash(1)]);
        assert_eq!(won(&answers[1]), (true, claimed, 1));
        assert_eq!(facts.len(), 2);
    }

    #[test]
    fn seqs_of_the_batch_are_filled_in_and_earlier_ones_kept() {
        let ops = [
            claim("k", hash(1)),
            ClaimOp::Release {
                key: "k".into(),
                fact: hash(1),
            },
        ];
        let (answers, facts) = decide_all(&ops, &[hash(1)]);
        let seqs: HashMap<Hash, u64> = facts
            .iter()
            .zip([40, 41])
            .map(|(fact, seq)| (fact.hash, seq))
            .collect();
        let answers: Vec<_> = answers
            .into_iter()
            .map(|answer| fill_answer_seqs(answer.unwrap(), &seqs))
            .collect();
        let ClaimOpAnswer::Claim(outcome) = &answers[0] else {
            panic!("a claim outcome");
        };
        assert_eq!(outcome.record.holder.as_ref().unwrap().claimed_seq, 40);
        let ClaimOpAnswer::Release(ClaimReleaseOutcome::Released(record)) = &answers[1] else {
            panic!("a release");
        };
        assert_eq!(record.released.as_ref().unwrap().released_seq, 41);
        let mut earlier = record.clone();
        earlier.released.as_mut().unwrap().released_seq = 7;
        fill_seqs(&mut earlier, &HashMap::new());
        assert_eq!(earlier.released.unwrap().released_seq, 7);
    }
}
