//! [`OutboxRelay`]: the long-running task that publishes committed outbox
//! rows to Cairn in insertion order and marks them sent.
//!
//! Crash safety rests on the order of the steps: a row is marked sent only
//! after Cairn has acknowledged it durably, so a crash anywhere leaves each
//! row either unsent (and it is published again, which content addressing
//! makes harmless) or sent and in Cairn. Nothing from a rolled-back
//! transaction is ever visible to the relay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_fact::{CanonicalFact, FactError, Hash, HashParseError};
use sqlx::Pool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::database::{sealed::OutboxRow, unix_time_ms, CairnDatabase};
use crate::fault::{reach, FaultInjector, InjectedFault, Step};
use crate::limits::{
    RELAY_BACKOFF_INITIAL_DEFAULT, RELAY_BACKOFF_MAX_DEFAULT, RELAY_BATCH_BYTES_MAX,
    RELAY_BATCH_FACTS_DEFAULT, RELAY_BATCH_FACTS_MAX, RELAY_POLL_INTERVAL_DEFAULT,
    RELAY_PURGE_INTERVAL,
};
use crate::publisher::{FactPublisher, PublishError};

/// Publishes the outbox to Cairn until shut down.
///
/// Built with [`OutboxRelay::new`] and the option methods, then driven by
/// [`OutboxRelay::run`] in a task of its own. Each pass reads up to
/// `batch_facts_max` unsent rows in `id` order, publishes them in one call
/// and marks them sent in one statement. After a failed pass it waits
/// (exponential backoff with jitter) and tries again; when the outbox is
/// empty it sleeps until [`RelayHandle::notify`] or the poll interval.
///
/// ```no_run
/// # async fn example(pool: sqlx::SqlitePool) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cairn_sql::{HttpPublisher, OutboxRelay};
/// use tokio_util::sync::CancellationToken;
///
/// let publisher = Arc::new(HttpPublisher::new("http://127.0.0.1:7710")?);
/// let relay = OutboxRelay::new(pool, publisher)
///     .batch_facts_max(200)
///     .poll_interval(Duration::from_millis(500));
/// let handle = relay.handle(); // call handle.notify() after each commit
/// let shutdown = CancellationToken::new();
/// let task = tokio::spawn(relay.run(shutdown.clone()));
/// // … serve; at the end:
/// shutdown.cancel();
/// task.await??;
/// # Ok(()) }
/// ```
///
/// Several relays on the same outbox (one per service instance) are safe:
/// at worst they publish the same facts twice, which Cairn absorbs.
///
/// Order: a fact is published after every fact enqueued before it in the
/// same transaction or in a transaction that committed before it began, so
/// predecessors enqueued first reach Cairn first. If Cairn refuses a batch
/// (for example a predecessor is missing because it was never enqueued),
/// the relay keeps retrying that batch with backoff and logs an error: it
/// never skips a row, since that would lose a fact.
pub struct OutboxRelay<DB: CairnDatabase> {
    pool: Pool<DB>,
    publisher: Arc<dyn FactPublisher>,
    batch_facts_max: usize,
    poll_interval: Duration,
    backoff: Backoff,
    sent_retention: Option<Duration>,
    fault_injector: Option<FaultInjector>,
    wake: Arc<Notify>,
    /// When sent rows were last purged.
    last_purge_at: Instant,
}

/// A cheap-to-clone handle that wakes the relay, for the service to call
/// after committing a transaction that enqueued facts.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    wake: Arc<Notify>,
}

impl RelayHandle {
    /// Makes the relay look at the outbox now instead of at its next poll.
    /// A wake-up while the relay is busy is kept for its next wait, so
    /// none is lost.
    pub fn notify(&self) {
        self.wake.notify_one();
    }
}

/// Why the relay stopped before being shut down. Database and publishing
/// failures are not here: the relay retries those for as long as it runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// An outbox row does not hold the fact its hash names: the table was
    /// changed by something other than this crate. The relay stops rather
    /// than publish or skip it.
    #[error("outbox row {id} is corrupt")]
    CorruptRow {
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        #[source]
        source: FactError,
    },
    /// An outbox row's hash column is not a hash: the table was changed by
    /// something other than this crate.
    #[error("outbox row {id} has a corrupt hash")]
    CorruptHash {
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        #[source]
        source: HashParseError,
    },
    /// A test injected a crash.
    #[error(transparent)]
    Injected(#[from] InjectedFault),
}

/// What one failed pass leaves the relay to do.
enum PassError {
    /// Wait and try again.
    Retry(RetryCause),
    /// Stop.
    Stop(RelayError),
}

/// A failure worth retrying.
#[derive(Debug, thiserror::Error)]
enum RetryCause {
    #[error("the outbox database failed")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<sqlx::Error> for PassError {
    fn from(error: sqlx::Error) -> PassError {
        PassError::Retry(RetryCause::Database(error))
    }
}

impl From<InjectedFault> for PassError {
    fn from(fault: InjectedFault) -> PassError {
        PassError::Stop(RelayError::Injected(fault))
    }
}

impl<DB: CairnDatabase> OutboxRelay<DB> {
    /// A relay that publishes the outbox in `pool` through `publisher`.
    pub fn new(pool: Pool<DB>, publisher: Arc<dyn FactPublisher>) -> OutboxRelay<DB> {
        OutboxRelay {
            pool,
            publisher,
            batch_facts_max: RELAY_BATCH_FACTS_DEFAULT,
            poll_interval: RELAY_POLL_INTERVAL_DEFAULT,
            backoff: Backoff {
                initial: RELAY_BACKOFF_INITIAL_DEFAULT,
                max: RELAY_BACKOFF_MAX_DEFAULT,
            },
            sent_retention: None,
            fault_injector: None,
            wake: Arc::new(Notify::new()),
            last_purge_at: Instant::now(),
        }
    }

    /// Facts published per call at most, clamped to
    /// `1..=`[`RELAY_BATCH_FACTS_MAX`] (default [`RELAY_BATCH_FACTS_DEFAULT`]).
    /// A batch also stops before [`RELAY_BATCH_BYTES_MAX`] canonical bytes.
    pub fn batch_facts_max(mut self, batch_facts_max: usize) -> OutboxRelay<DB> {
        self.batch_facts_max = batch_facts_max.clamp(1, RELAY_BATCH_FACTS_MAX);
        self
    }

    /// How long the relay sleeps when the outbox is empty and nobody calls
    /// [`RelayHandle::notify`] (default [`RELAY_POLL_INTERVAL_DEFAULT`]).
    pub fn poll_interval(mut self, poll_interval: Duration) -> OutboxRelay<DB> {
        self.poll_interval = poll_interval;
        self
    }

    /// The wait after the first failed pass and the longest wait; waits
    /// double in between and are jittered into `[d/2, d]` (defaults
    /// [`RELAY_BACKOFF_INITIAL_DEFAULT`], [`RELAY_BACKOFF_MAX_DEFAULT`]).
    pub fn backoff(mut self, initial_delay: Duration, delay_max: Duration) -> OutboxRelay<DB> {
        self.backoff = Backoff {
            initial: initial_delay,
            max: delay_max.max(initial_delay),
        };
        self
    }

    /// Deletes rows that were sent `retention` ago or longer, after each
    /// pass that published something and, when idle, every
    /// [`RELAY_PURGE_INTERVAL`]. By default sent rows are kept (which keeps
    /// enqueuing an already-published fact a no-op).
    pub fn sent_retention(mut self, retention: Duration) -> OutboxRelay<DB> {
        self.sent_retention = Some(retention);
        self
    }

    /// For crash tests only: calls `injector` at
    /// [`Step::RelayAfterReadBeforePublish`],
    /// [`Step::RelayAfterPublishBeforeMarkSent`] and
    /// [`Step::RelayAfterMarkSent`]; an injected fault stops
    /// [`OutboxRelay::run`] as a crash would.
    pub fn with_fault_injector(mut self, injector: FaultInjector) -> OutboxRelay<DB> {
        self.fault_injector = Some(injector);
        self
    }

    /// A handle to wake this relay.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            wake: Arc::clone(&self.wake),
        }
    }

    /// Publishes until `shutdown` is cancelled, then returns `Ok(())`.
    /// Shutdown is checked between passes and interrupts any wait; a pass
    /// in progress finishes first (the publisher's timeout bounds it).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let mut consecutive_failures: u32 = 0;
        while !shutdown.is_cancelled() {
            let wait = match self.pass().await {
                Ok(n_published) => {
                    consecutive_failures = 0;
                    if n_published > 0 {
                        // More rows may be waiting: look again at once.
                        continue;
                    }
                    None
                }
                Err(PassError::Stop(error)) => return Err(error),
                Err(PassError::Retry(cause)) => {
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    let delay = self.backoff.delay(consecutive_failures, fastrand::f64());
                    log_failure(&cause, consecutive_failures, delay);
                    Some(delay)
                }
            };
            match wait {
                Some(delay) => {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.poll_interval) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes one batch; returns how many facts it published.
    async fn pass(&mut self) -> Result<usize, PassError> {
        let rows = DB::select_unsent(&self.pool, self.batch_facts_max).await?;
        if rows.is_empty() {
            if self.last_purge_at.elapsed() >= RELAY_PURGE_INTERVAL {
                self.purge_sent(unix_time_ms()).await?;
            }
            return Ok(0);
        }
        let (ids, facts) = batch_of(rows).map_err(PassError::Stop)?;
        let injector = self.fault_injector.as_ref();
        reach(injector, Step::RelayAfterReadBeforePublish)?;
        let n_facts = facts.len();
        self.publisher
            .publish(facts)
            .await
            .map_err(|error| PassError::Retry(RetryCause::Publish(error)))?;
        reach(injector, Step::RelayAfterPublishBeforeMarkSent)?;
        let sent_at_ms = unix_time_ms();
        DB::mark_sent(&self.pool, &ids, sent_at_ms).await?;
        reach(injector, Step::RelayAfterMarkSent)?;
        tracing::debug!(n_facts, "published outbox facts");
        self.purge_sent(sent_at_ms).await?;
        Ok(n_facts)
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

fn log_failure(cause: &RetryCause, consecutive_failures: u32, delay: Duration) {
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let transient = match cause {
        RetryCause::Database(_) => true,
        RetryCause::Publish(error) => error.is_transient(),
    };
    if transient {
        tracing::warn!(error = %cause, consecutive_failures, delay_ms, "outbox relay pass failed; retrying");
    } else {
        tracing::error!(error = %cause, consecutive_failures, delay_ms, "Cairn refused outbox facts; retrying, operator attention needed");
    }
}
