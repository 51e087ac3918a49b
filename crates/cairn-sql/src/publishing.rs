//! [`Publishing`]: one pass of the outbox relay, the part that touches the
//! database and Cairn. It reads a batch of pending rows in `id` order,
//! checks them, and carries out the steps that [`Triage`] decides: publish
//! a group and mark it sent, or set a row aside as a dead letter.
//!
//! Crash safety rests on the order of the steps: a row is marked sent only
//! after Cairn has acknowledged it durably, and set aside only after Cairn
//! refused it (or a predecessor of it is a dead letter); each of these is
//! one statement. A crash (or a cancelled pass) anywhere leaves each row
//! pending, sent or set aside, never in between, and a pending row is
//! published again, which content addressing makes harmless.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_fact::{CanonicalFact, Hash};
use sqlx::Pool;

use crate::database::{sealed::OutboxRow, unix_time_ms, CairnDatabase};
use crate::dead_letter::{error_chain_text, SetAsideCause};
use crate::fault::{reach, FaultInjector, Step};
use crate::limits::{RELAY_BATCH_BYTES_MAX, RELAY_METRICS_REFRESH_INTERVAL, RELAY_PURGE_INTERVAL};
use crate::publisher::FactPublisher;
use crate::relay::{PassError, RelayError, RetryCause};
use crate::relay_metrics::RelayCounters;
use crate::triage::{Triage, TriageRow, TriageStep};

/// What one pass did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassOutcome {
    /// Rows the pass read (0: nothing was pending).
    pub n_rows: usize,
    /// The largest id the pass read and dealt with.
    pub last_id: Option<i64>,
}

/// The relay's publishing state: everything a pass needs.
pub(crate) struct Publishing<DB: CairnDatabase> {
    pub pool: Pool<DB>,
    pub publisher: Arc<dyn FactPublisher>,
    pub batch_facts_max: usize,
    pub sent_retention: Option<Duration>,
    pub fault_injector: Option<FaultInjector>,
    pub counters: Arc<RelayCounters>,
    /// When sent rows were last purged.
    pub last_purge_at: Instant,
    /// When the backlog was last counted (never, at first).
    pub last_count_at: Option<Instant>,
}

impl<DB: CairnDatabase> Publishing<DB> {
    /// Publishes one batch, setting refused rows aside.
    pub async fn pass(&mut self) -> Result<PassOutcome, PassError> {
        let rows = DB::select_pending(&self.pool, self.batch_facts_max).await?;
        if rows.is_empty() {
            if self.last_purge_at.elapsed() >= RELAY_PURGE_INTERVAL {
                self.purge_sent(unix_time_ms()).await?;
            }
            self.count_backlog(true).await?;
            return Ok(PassOutcome::default());
        }
        let (ids, facts) = batch_of(rows).map_err(PassError::Stop)?;
        let injector = self.fault_injector.as_ref();
        reach(injector, Step::RelayAfterReadBeforePublish)?;
        let dead_hashes = self.dead_predecessors(&facts).await?;
        let triage_rows = facts
            .iter()
            .map(|fact| TriageRow {
                hash: fact.hash,
                predecessors: fact
                    .fact
                    .all_predecessors()
                    .map(|(role, hash)| (role.to_owned(), *hash))
                    .collect(),
            })
            .collect();
        let mut triage = Triage::new(triage_rows, dead_hashes);
        let mut published_any = false;
        loop {
            match triage.next_step() {
                TriageStep::Done => break,
                TriageStep::SetAsideBlocked {
                    row_idx,
                    role,
                    predecessor,
                } => {
                    let cause = SetAsideCause::PredecessorDeadLettered { role, predecessor };
                    self.set_aside(ids[row_idx], &facts[row_idx], &cause)
                        .await?;
                }
                TriageStep::Publish(group) => {
                    // Cloned, since a refused group is published again in
                    // halves; the copy is small beside the request itself.
                    let group_facts = group.iter().map(|row_idx| facts[*row_idx].clone());
                    match self.publisher.publish(group_facts.collect()).await {
                        Ok(()) => {
                            reach(injector, Step::RelayAfterPublishBeforeMarkSent)?;
                            let group_ids: Vec<i64> =
                                group.iter().map(|row_idx| ids[*row_idx]).collect();
                            let sent_at_ms = unix_time_ms();
                            DB::mark_sent(&self.pool, &group_ids, sent_at_ms).await?;
                            reach(injector, Step::RelayAfterMarkSent)?;
                            self.counters.add_published(group.len() as u64);
                            tracing::debug!(n_facts = group.len(), "published outbox facts");
                            triage.published();
                            published_any = true;
                        }
                        Err(error) if error.refuses_facts() => {
                            if let Some(row_idx) = triage.refused() {
                                let cause = SetAsideCause::Refused(error);
                                self.set_aside(ids[row_idx], &facts[row_idx], &cause)
                                    .await?;
                            }
                        }
                        Err(error) => return Err(PassError::Retry(RetryCause::Publish(error))),
                    }
                }
            }
        }
        if published_any {
            self.purge_sent(unix_time_ms()).await?;
        }
        self.count_backlog(false).await?;
        Ok(PassOutcome {
            n_rows: ids.len(),
            last_id: ids.last().copied(),
        })
    }

    /// The hashes among the predecessors of `facts` that are dead letters
    /// of the outbox (looked up only if there is any dead letter at all).
    async fn dead_predecessors(
        &self,
        facts: &[CanonicalFact],
    ) -> Result<HashSet<Hash>, sqlx::Error> {
        if !DB::any_dead_letter(&self.pool).await? {
            return Ok(HashSet::new());
        }
        let predecessors: HashSet<String> = facts
            .iter()
            .flat_map(|fact| fact.fact.all_predecessors().map(|(_, hash)| hash.to_hex()))
            .collect();
        let predecessors: Vec<String> = predecessors.into_iter().collect();
        let dead = DB::dead_among(&self.pool, &predecessors).await?;
        // The statement matched these texts exactly, so they are hashes.
        Ok(dead
            .iter()
            .filter_map(|hash| Hash::from_hex(hash).ok())
            .collect())
    }

    /// Sets the row `id` (holding `fact`) aside with `cause`.
    async fn set_aside(
        &self,
        id: i64,
        fact: &CanonicalFact,
        cause: &SetAsideCause,
    ) -> Result<(), sqlx::Error> {
        let error = error_chain_text(cause);
        if DB::set_aside(&self.pool, id, &error, unix_time_ms()).await? {
            self.counters.add_dead_lettered();
            tracing::error!(
                id,
                hash = %fact.hash,
                fact_type = %fact.fact.type_name,
                %error,
                "outbox row set aside as a dead letter; retry or discard it (Outbox::dead_letters)"
            );
        }
        Ok(())
    }

    /// Counts pending rows and dead letters for the metrics, if the last
    /// count is old enough (or `now` is set).
    pub async fn count_backlog(&mut self, now: bool) -> Result<(), sqlx::Error> {
        let due = self
            .last_count_at
            .is_none_or(|counted_at| counted_at.elapsed() >= RELAY_METRICS_REFRESH_INTERVAL);
        if now || due {
            let n_pending = DB::count_pending(&self.pool).await?;
            let n_dead_letters = DB::count_dead_letters(&self.pool).await?;
            self.counters.set_backlog(n_pending, n_dead_letters);
            self.last_count_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Deletes the rows sent at least the retention before `now_ms`, if a
    /// retention is set.
    async fn purge_sent(&mut self, now_ms: i64) -> Result<(), sqlx::Error> {
        if let Some(retention) = self.sent_retention {
            let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            let n_deleted =
                DB::delete_sent_up_to(&self.pool, now_ms.saturating_sub(retention_ms)).await?;
            tracing::debug!(n_deleted, "purged sent outbox rows");
        }
        self.last_purge_at = Instant::now();
        Ok(())
    }
}

/// Turns rows read in `id` order into the ids and facts of one batch, cut
/// before [`RELAY_BATCH_BYTES_MAX`] canonical bytes (but never empty), and
/// checks every row: its canonical bytes must be the fact its hash names.
fn batch_of(rows: Vec<OutboxRow>) -> Result<(Vec<i64>, Vec<CanonicalFact>), RelayError> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut facts = Vec::with_capacity(rows.len());
    let mut batch_bytes = 0;
    for row in rows {
        batch_bytes += row.canonical.len();
        if !facts.is_empty() && batch_bytes > RELAY_BATCH_BYTES_MAX {
            break;
        }
        let id = row.id;
        let hash =
            Hash::from_hex(&row.hash).map_err(|source| RelayError::CorruptHash { id, source })?;
        let fact = CanonicalFact::verify_stored(&row.canonical, &hash)
            .map_err(|source| RelayError::CorruptRow { id, source })?;
        ids.push(row.id);
        facts.push(fact);
    }
    Ok((ids, facts))
}
