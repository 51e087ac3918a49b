//! Long-polling: wait until the store's durable `seq` passes a value, the
//! deadline comes, or the server shuts down.

use std::time::Duration;

use cairn_store::Store;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::state::AppState;

/// A long-poll in progress for one request.
pub struct LongPoll {
    deadline: Instant,
    watch: tokio::sync::watch::Receiver<u64>,
}

impl LongPoll {
    /// Starts a long-poll of `wait_ms` (0 = answer at once).
    pub fn new<S: Store>(state: &AppState<S>, wait_ms: u64) -> LongPoll {
        LongPoll {
            deadline: Instant::now()
                + Duration::from_millis(wait_ms.min(state.config.long_poll_ms_max)),
            watch: state.store.watch_last_seq(),
        }
    }

    /// The durable seq now. Read it *before* querying, then pass it to
    /// [`LongPoll::wait_past`], so no fact that lands in between is missed.
    pub fn durable_seq(&mut self) -> u64 {
        *self.watch.borrow_and_update()
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Waits until the durable seq exceeds `seen`; false on deadline,
    /// shutdown, or once `caller`'s token stops working (the handler then
    /// answers 401: a revoked token's long-poll ends within a second).
    pub async fn wait_past<S: Store>(
        &mut self,
        state: &AppState<S>,
        caller: &Caller,
        seen: u64,
    ) -> bool {
        loop {
            if *self.watch.borrow_and_update() > seen {
                return true;
            }
            tokio::select! {
                changed = tokio::time::timeout_at(self.deadline, self.watch.changed()) => {
                    match changed {
                        Ok(Ok(())) => continue,
                        _ => return false,
                    }
                }
                () = state.shutdown.cancelled() => return false,
                () = caller.invalidated() => return false,
            }
        }
    }
}
