//! [`RunningRelay`]: a service's outbox relay running in its own task, with
//! the SDK's client as publisher, and a shutdown that first lets it publish
//! what is left in the outbox (for a bounded time).

use std::sync::Arc;

use cairn_client::Client;
use cairn_sql::{Outbox, OutboxRelay, RelayError, RelayHandle};
use sqlx::SqlitePool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::limits::{RELAY_DRAIN_CHECK_INTERVAL, RELAY_DRAIN_TIMEOUT, RELAY_POLL_INTERVAL};

/// An outbox relay running in a task of its own.
pub struct RunningRelay {
    pool: SqlitePool,
    handle: RelayHandle,
    stop: CancellationToken,
    task: JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    /// Starts publishing the outbox of `pool` to Cairn through `client`.
    ///
    /// The relay has its own stop token rather than the service's, so that
    /// it outlives the parts that enqueue facts and can drain after them.
    pub fn start(pool: SqlitePool, client: Client) -> RunningRelay {
        let relay =
            OutboxRelay::new(pool.clone(), Arc::new(client)).poll_interval(RELAY_POLL_INTERVAL);
        let handle = relay.handle();
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay.run(stop.clone()));
        RunningRelay {
            pool,
            handle,
            stop,
            task,
        }
    }

    /// A handle that wakes the relay after a commit that enqueued facts.
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Waits up to [`RELAY_DRAIN_TIMEOUT`] for the outbox to empty, then
    /// stops the relay. Whatever is left stays in the outbox, committed,
    /// and is published at the next start.
    pub async fn drain_and_stop(self) -> Result<(), ServiceError> {
        self.handle.notify();
        let deadline = tokio::time::Instant::now() + RELAY_DRAIN_TIMEOUT;
        loop {
            let unsent = Outbox::unsent_count(&self.pool).await?;
            if unsent == 0 || self.task.is_finished() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    unsent,
                    "stopping with facts still in the outbox; they are published at the next start"
                );
                break;
            }
            tokio::time::sleep(RELAY_DRAIN_CHECK_INTERVAL).await;
        }
        self.stop.cancel();
        self.task.await??;
        tracing::info!("outbox relay stopped");
        Ok(())
    }
}
