//! [`OutboxRelay`]: the long-running task that publishes committed outbox
//! rows to Cairn in insertion order, marks them sent, and sets aside as
//! dead letters the rows that Cairn refuses, so that one bad fact cannot
//! block the rest. This file holds its options and its loop (waits,
//! backoff, wake-ups, shutdown and drain); one pass is in
//! [`crate::publishing`], its decisions in [`crate::triage`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_fact::{FactError, HashParseError};
use sqlx::Pool;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::database::CairnDatabase;
use crate::fault::{FaultInjector, InjectedFault};
use crate::limits::{
    RELAY_BACKOFF_INITIAL_DEFAULT, RELAY_BACKOFF_MAX_DEFAULT, RELAY_BATCH_FACTS_DEFAULT,
    RELAY_BATCH_FACTS_MAX, RELAY_POLL_INTERVAL_DEFAULT,
};
use crate::publisher::{FactPublisher, PublishError};
use crate::publishing::{PassOutcome, Publishing};
use crate::relay_handle::{DrainError, DrainOutcome, DrainRequest, RelayHandle};
use crate::relay_metrics::RelayCounters;
use crate::relay_task::RelayTask;

/// Publishes the outbox to Cairn until shut down.
///
/// Built with [`OutboxRelay::new`] and the option methods, then driven by
/// [`OutboxRelay::run`] in a task of its own (or started with
/// [`OutboxRelay::spawn`]). Each pass reads up to `batch_facts_max` pending
/// rows in `id` order, publishes them in one call and marks them sent in
/// one statement. After a failed pass it waits (exponential backoff with
/// jitter) and tries again; when the outbox is empty it sleeps until
/// [`RelayHandle::notify`] or the poll interval.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let data = tempfile::tempdir()?;
/// # let client = cairn_client::Client::embedded(data.path()).await?;
/// # let pool = sqlx::sqlite::SqlitePoolOptions::new()
/// #     .max_connections(1)
/// #     .connect("sqlite::memory:")
/// #     .await?;
/// # cairn_sql::migrate(&pool).await?;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cairn_sql::OutboxRelay;
///
/// // The SDK's client publishes (`cairn_sql::HttpPublisher` is a lighter
/// // alternative that needs only a URL).
/// let publisher = Arc::new(client.clone());
/// let relay = OutboxRelay::new(pool, publisher)
///     .batch_facts_max(200)
///     .poll_interval(Duration::from_millis(500))
///     .spawn();
/// let handle = relay.handle(); // call handle.notify() after each commit
/// // … serve; at the end, publish what is committed (for 10 s at most):
/// let left = relay.drain_and_stop(Duration::from_secs(10)).await?;
/// if left.n_unsent > 0 {
///     eprintln!("{} facts are published at the next start", left.n_unsent);
/// }
/// # drop(handle);
/// # client.close().await;
/// # Ok(()) }
/// ```
///
/// Several relays on the same outbox (one per service instance) are safe:
/// at worst they publish the same facts twice, which Cairn absorbs.
///
/// Order: a fact is published after every fact enqueued before it in the
/// same transaction or in a transaction that committed before it began, so
/// predecessors enqueued first reach Cairn first.
///
/// Refusals: when Cairn refuses a batch because of its facts
/// ([`PublishError::refuses_facts`]: an invalid fact, or
/// `missing_predecessors` when a predecessor was never enqueued), the relay
/// publishes the batch again in halves, in order, until it has found the
/// refused rows, and sets each aside as an outbox dead letter with the
/// error (see [`crate::Outbox::dead_letters`]), logged with
/// `tracing::error!` and counted in [`RelayHandle::metrics`]. A row that
/// names a dead letter as predecessor (directly or through other dead
/// letters) cannot be stored either, and is set aside too, with an error
/// naming that predecessor; every other row goes on, in order. Failures
/// that waiting may fix (Cairn unreachable, 5xx, 429) and refusals that are
/// not about the facts (a wrong URL, a malformed answer) set nothing aside:
/// the relay retries the batch with backoff, as it retries database
/// failures.
pub struct OutboxRelay<DB: CairnDatabase> {
    publishing: Publishing<DB>,
    poll_interval: Duration,
    backoff: Backoff,
    wake: Arc<Notify>,
    drain_sender: mpsc::Sender<DrainRequest>,
    drain_requests: mpsc::Receiver<DrainRequest>,
}

/// Why the relay stopped before being shut down. Database and publishing
/// failures are not here: the relay retries those for as long as it runs
/// (and sets aside the facts that Cairn refuses).
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
pub(crate) enum PassError {
    /// Wait and try again.
    Retry(RetryCause),
    /// Stop.
    Stop(RelayError),
}

/// A failure worth retrying.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RetryCause {
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
        // One request at a time: a drain ends the relay, so a second one
        // waits and then learns that the relay is not running.
        let (drain_sender, drain_requests) = mpsc::channel(1);
        OutboxRelay {
            publishing: Publishing {
                pool,
                publisher,
                batch_facts_max: RELAY_BATCH_FACTS_DEFAULT,
                sent_retention: None,
                fault_injector: None,
                counters: Arc::new(RelayCounters::default()),
                last_purge_at: Instant::now(),
                last_count_at: None,
            },
            poll_interval: RELAY_POLL_INTERVAL_DEFAULT,
            backoff: Backoff {
                initial: RELAY_BACKOFF_INITIAL_DEFAULT,
                max: RELAY_BACKOFF_MAX_DEFAULT,
            },
            wake: Arc::new(Notify::new()),
            drain_sender,
            drain_requests,
        }
    }

    /// Facts published per call at most, clamped to
    /// `1..=`[`RELAY_BATCH_FACTS_MAX`] (default [`RELAY_BATCH_FACTS_DEFAULT`]).
    /// A batch also stops before
    /// [`RELAY_BATCH_BYTES_MAX`](crate::limits::RELAY_BATCH_BYTES_MAX)
    /// canonical bytes.
    pub fn batch_facts_max(mut self, batch_facts_max: usize) -> OutboxRelay<DB> {
        self.publishing.batch_facts_max = batch_facts_max.clamp(1, RELAY_BATCH_FACTS_MAX);
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
    /// [`RELAY_PURGE_INTERVAL`](crate::limits::RELAY_PURGE_INTERVAL). By
    /// default sent rows are kept (which keeps enqueuing an
    /// already-published fact a no-op). Dead letters are never purged.
    pub fn sent_retention(mut self, retention: Duration) -> OutboxRelay<DB> {
        self.publishing.sent_retention = Some(retention);
        self
    }

    /// For crash tests only: calls `injector` at
    /// [`Step::RelayAfterReadBeforePublish`](crate::fault::Step::RelayAfterReadBeforePublish),
    /// [`Step::RelayAfterPublishBeforeMarkSent`](crate::fault::Step::RelayAfterPublishBeforeMarkSent) and
    /// [`Step::RelayAfterMarkSent`](crate::fault::Step::RelayAfterMarkSent);
    /// an injected fault stops [`OutboxRelay::run`] as a crash would.
    pub fn with_fault_injector(mut self, injector: FaultInjector) -> OutboxRelay<DB> {
        self.publishing.fault_injector = Some(injector);
        self
    }

    /// A handle to wake this relay, read its metrics and drain it.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            wake: Arc::clone(&self.wake),
            counters: Arc::clone(&self.publishing.counters),
            drain_requests: self.drain_sender.clone(),
        }
    }

    /// Runs the relay in a new tokio task (see [`RelayTask`]), with a
    /// shutdown token of its own.
    pub fn spawn(self) -> RelayTask {
        RelayTask::spawn(self)
    }

    /// Publishes until `shutdown` is cancelled, then publishes what is
    /// committed (for at most `drain_timeout`) and stops, answering what
    /// was left: a `cairn_client::Service` task in one line,
    /// `.task("outbox", move |shutdown| relay.run_draining(shutdown, timeout))`,
    /// which the service cancels once its subscribers (whose handlers may
    /// enqueue facts) have stopped. A relay that stops on its own (a
    /// corrupt outbox row) ends this at once with its error.
    pub async fn run_draining(
        self,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) -> Result<DrainOutcome, DrainError> {
        self.spawn().drain_at(shutdown, drain_timeout).await
    }

    /// Publishes until `shutdown` is cancelled or a drain
    /// ([`RelayHandle::drain_and_stop`]) ends, then returns `Ok(())`.
    /// Shutdown is checked between passes and interrupts any wait; a pass
    /// in progress finishes first (the publisher's timeout bounds it),
    /// except at a drain's deadline.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let OutboxRelay {
            mut publishing,
            poll_interval,
            backoff,
            wake,
            // Kept so that the channel stays open while the relay runs,
            // even when no handle exists.
            drain_sender: _drain_sender,
            mut drain_requests,
        } = self;
        let mut drain: Option<Drain> = None;
        let mut consecutive_failures: u32 = 0;
        loop {
            if shutdown.is_cancelled() || drain.as_ref().is_some_and(Drain::is_overdue) {
                break;
            }
            let pass_result = {
                let pass = publishing.pass();
                tokio::pin!(pass);
                loop {
                    tokio::select! {
                        result = &mut pass => break Some(result),
                        Some(request) = drain_requests.recv(), if drain.is_none() => {
                            let mut new_drain = Drain::new(request);
                            new_drain.pass_began_before = true;
                            drain = Some(new_drain);
                        }
                        () = until(drain.as_ref().map(|drain| drain.deadline)) => break None,
                    }
                }
            };
            let wait = match pass_result {
                // The drain's deadline came during the pass.
                None => break,
                Some(Err(PassError::Stop(error))) => return Err(error),
                Some(Err(PassError::Retry(cause))) => {
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    publishing.counters.add_retry();
                    let delay = backoff.delay(consecutive_failures, fastrand::f64());
                    log_failure(&cause, consecutive_failures, delay);
                    Some(delay)
                }
                Some(Ok(outcome)) => {
                    consecutive_failures = 0;
                    if let Some(drain) = &mut drain {
                        if drain.is_done(&publishing.pool, outcome).await {
                            break;
                        }
                        // Not done: pass again at once, not after a poll.
                        continue;
                    }
                    if outcome.n_rows > 0 {
                        // More rows may be waiting: look again at once.
                        continue;
                    }
                    None
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = wake.notified(), if wait.is_none() => {}
                // `sleep` (not `sleep_until`) copes with any duration.
                () = tokio::time::sleep(wait.unwrap_or(poll_interval)) => {}
                Some(request) = drain_requests.recv(), if drain.is_none() => {
                    drain = Some(Drain::new(request));
                }
                () = until(drain.as_ref().map(|drain| drain.deadline)) => {}
            }
        }
        if let Some(drain) = drain {
            drain.answer(&publishing.pool).await;
        }
        Ok(())
    }
}

/// A drain in progress: publish up to the last row pending when it began,
/// before the deadline.
struct Drain {
    deadline: tokio::time::Instant,
    reply: tokio::sync::oneshot::Sender<Result<DrainOutcome, DrainError>>,
    /// The last pending row when the drain began: `None` until known.
    last_id: Option<Option<i64>>,
    /// The request came during a pass: that pass may have read the outbox
    /// before rows committed ahead of the request, so it cannot end the
    /// drain.
    pass_began_before: bool,
}

impl Drain {
    fn new(request: DrainRequest) -> Drain {
        tracing::info!("draining the outbox before stopping");
        Drain {
            deadline: request.deadline,
            reply: request.reply,
            last_id: None,
            pass_began_before: false,
        }
    }

    fn is_overdue(&self) -> bool {
        tokio::time::Instant::now() >= self.deadline
    }

    /// Whether a pass that ended with `outcome` finished the drain. The
    /// first pass after the request fixes the drain's last row (a row
    /// committed in between counts as enqueued before the drain, which is
    /// harmless); if that cannot be read, the next pass tries again.
    async fn is_done<DB: CairnDatabase>(&mut self, pool: &Pool<DB>, outcome: PassOutcome) -> bool {
        if std::mem::take(&mut self.pass_began_before) {
            return false;
        }
        if outcome.n_rows == 0 {
            return true;
        }
        let last_id = match self.last_id {
            Some(last_id) => last_id,
            None => match DB::max_pending_id(pool).await {
                Ok(max_pending_id) => {
                    // Rows this pass dealt with were pending too.
                    let last_id = max_pending_id.max(outcome.last_id);
                    self.last_id = Some(last_id);
                    last_id
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the end of the outbox to drain");
                    return false;
                }
            },
        };
        outcome.last_id >= last_id
    }

    /// Counts what is left and answers the request.
    async fn answer<DB: CairnDatabase>(self, pool: &Pool<DB>) {
        let counted = async {
            Ok::<_, sqlx::Error>(DrainOutcome {
                n_unsent: DB::count_pending(pool).await?,
                n_dead_letters: DB::count_dead_letters(pool).await?,
            })
        };
        let answer = counted.await.map_err(DrainError::Database);
        match &answer {
            Ok(outcome) if outcome.n_unsent > 0 => tracing::warn!(
                n_unsent = outcome.n_unsent,
                n_dead_letters = outcome.n_dead_letters,
                "outbox relay stopped with facts unsent; they are published at the next start"
            ),
            Ok(outcome) => tracing::info!(
                n_dead_letters = outcome.n_dead_letters,
                "outbox relay drained and stopped"
            ),
            Err(error) => tracing::warn!(%error, "outbox relay stopped; cannot count what is left"),
        }
        // The caller may have given up waiting: nobody to tell then.
        let _ = self.reply.send(answer);
    }
}

/// Waits until `deadline`, or forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
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
        tracing::error!(error = %cause, consecutive_failures, delay_ms, "Cairn refused the exchange (not the facts); retrying, operator attention needed");
    }
}
