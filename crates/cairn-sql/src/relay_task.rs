//! [`RelayTask`]: an outbox relay running in a tokio task of its own, with
//! the two ways to end it, at once ([`RelayTask::stop`]) or after
//! publishing what is committed ([`RelayTask::drain_and_stop`]), both of
//! which wait for the task and return its error, if any.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::database::CairnDatabase;
use crate::relay::{OutboxRelay, RelayError};
use crate::relay_handle::{DrainError, DrainOutcome, RelayHandle};

/// A running relay, from [`OutboxRelay::spawn`]. Dropping it leaves the
/// relay running until the runtime shuts down; end it with
/// [`RelayTask::drain_and_stop`] or [`RelayTask::stop`].
#[must_use = "a relay task should be stopped with drain_and_stop or stop"]
#[derive(Debug)]
pub struct RelayTask {
    handle: RelayHandle,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RelayError>>,
}

impl RelayTask {
    pub(crate) fn spawn<DB: CairnDatabase>(relay: OutboxRelay<DB>) -> RelayTask {
        let handle = relay.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(relay.run(shutdown.clone()));
        RelayTask {
            handle,
            shutdown,
            task,
        }
    }

    /// A handle to wake the relay and read its metrics.
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Publishes everything committed so far, for at most `timeout`, then
    /// stops the relay and waits for its task; answers what was left (see
    /// [`RelayHandle::drain_and_stop`]). What is left stays in the outbox,
    /// committed, and is published by the next relay.
    pub async fn drain_and_stop(self, timeout: Duration) -> Result<DrainOutcome, DrainError> {
        let drained = self.handle.drain_and_stop(timeout).await;
        self.shutdown.cancel();
        join(self.task).await?;
        drained
    }

    /// Lets the relay run until `shutdown` is cancelled, then drains it
    /// (see [`RelayTask::drain_and_stop`]). A relay that stops on its own
    /// before that (a corrupt outbox row) ends this at once with its error.
    pub async fn drain_at(
        mut self,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) -> Result<DrainOutcome, DrainError> {
        let stopped_early = tokio::select! {
            () = shutdown.cancelled() => None,
            ended = &mut self.task => Some(ended),
        };
        match stopped_early {
            None => self.drain_and_stop(drain_timeout).await,
            Some(ended) => {
                let ended = match ended {
                    Ok(result) => result,
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(_) => Ok(()),
                };
                Err(ended
                    .err()
                    .map_or(DrainError::NotRunning, DrainError::Relay))
            }
        }
    }

    /// Stops the relay at once (a pass in progress finishes first) and
    /// waits for its task.
    pub async fn stop(self) -> Result<(), RelayError> {
        self.shutdown.cancel();
        join(self.task).await
    }
}

/// Waits for the relay's task; a panic in it is resumed here.
async fn join(task: JoinHandle<Result<(), RelayError>>) -> Result<(), RelayError> {
    match task.await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: only the runtime's shutdown cancels the task (no one
        // else holds its `JoinHandle`), and then nothing is left to report.
        Err(_) => Ok(()),
    }
}
