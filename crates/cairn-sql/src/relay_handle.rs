//! [`RelayHandle`]: the cheap-to-clone handle through which a service
//! wakes its outbox relay, reads its metrics and asks it to drain and stop;
//! with what a drain answers ([`DrainOutcome`], [`DrainError`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::relay::RelayError;
use crate::relay_metrics::{RelayCounters, RelayMetrics};

/// A handle to a running (or about to run) [`crate::OutboxRelay`].
#[derive(Clone, Debug)]
pub struct RelayHandle {
    pub(crate) wake: Arc<Notify>,
    pub(crate) counters: Arc<RelayCounters>,
    pub(crate) drain_requests: mpsc::Sender<DrainRequest>,
}

/// A request to drain the outbox and stop, sent by
/// [`RelayHandle::drain_and_stop`] to the relay's loop.
#[derive(Debug)]
pub(crate) struct DrainRequest {
    /// When the relay gives up and stops, drained or not.
    pub deadline: tokio::time::Instant,
    /// Where the relay answers once it has stopped publishing.
    pub reply: oneshot::Sender<Result<DrainOutcome, DrainError>>,
}

/// What a drain left behind: committed rows, which the next relay on this
/// outbox publishes (pending) or which wait for an operator (dead letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Rows still waiting to be published (0 after a complete drain, unless
    /// facts were enqueued after it began).
    pub n_unsent: u64,
    /// Dead letters in the outbox.
    pub n_dead_letters: u64,
}

/// Why a drain could not say what it left.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// The relay was not running: its `run` had returned (shut down, or
    /// stopped on an error that its task returns) before it drained.
    #[error("the outbox relay is not running")]
    NotRunning,
    /// The relay stopped on an error before it finished draining.
    #[error("the outbox relay stopped on an error")]
    Relay(#[from] RelayError),
    /// Counting what was left failed; the relay has stopped.
    #[error("cannot count what the outbox relay left")]
    Database(#[source] sqlx::Error),
}

impl RelayHandle {
    /// Makes the relay look at the outbox now instead of at its next poll.
    /// A wake-up while the relay is busy is kept for its next wait, so
    /// none is lost.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// The relay's counters now; see [`RelayMetrics`].
    pub fn metrics(&self) -> RelayMetrics {
        self.counters.snapshot()
    }

    /// Asks the relay to publish everything enqueued (committed) so far and
    /// then stop, for at most `timeout`; answers what it left unsent.
    ///
    /// The relay notes the last pending row when it receives the request and
    /// publishes up to it (setting refused rows aside as always); rows
    /// committed after that are left for the next start. Failed passes are
    /// retried with backoff until the deadline; a publication in progress at
    /// the deadline is abandoned (as a crash would abandon it: its rows stay
    /// unsent and are published again later, which is harmless). Then the
    /// relay's `run` returns `Ok(())`, whatever its shutdown token says.
    ///
    /// With [`crate::OutboxRelay::run`] in a task of your own, await that
    /// task afterwards; [`crate::RelayTask::drain_and_stop`] does both.
    pub async fn drain_and_stop(&self, timeout: Duration) -> Result<DrainOutcome, DrainError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (reply, answer) = oneshot::channel();
        self.drain_requests
            .send(DrainRequest { deadline, reply })
            .await
            .map_err(|_| DrainError::NotRunning)?;
        answer.await.map_err(|_| DrainError::NotRunning)?
    }
}
