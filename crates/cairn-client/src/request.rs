//! Request/response over facts: a command is a fact, its reply is a
//! successor fact of it, and the requester long-polls the successors of the
//! command for the reply. Nothing but facts is involved, so a request
//! survives restarts of either side and the pair stays on record.

use std::time::Duration;

use cairn_fact::Hash;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::limits;
use crate::typed::{Typed, TypedFact};
use crate::wire::{PutResult, SuccessorsQuery};

/// A stored request whose reply can be awaited.
#[derive(Clone, Debug)]
pub struct PendingRequest {
    client: Client,
    put: PutResult,
}

impl PendingRequest {
    pub(crate) fn new(client: Client, put: PutResult) -> PendingRequest {
        PendingRequest { client, put }
    }

    /// The request fact's hash (what a reply names as predecessor).
    pub fn hash(&self) -> Hash {
        self.put.hash
    }

    /// The result of storing the request.
    pub fn put_result(&self) -> PutResult {
        self.put
    }

    /// Waits up to `timeout` for the first successor of type `R` of the
    /// request, long-polling the server; [`ClientError::ReplyTimeout`] if
    /// none arrives in time. A reply stored before the call is found at once.
    pub async fn reply<R: TypedFact>(&self, timeout: Duration) -> Result<Typed<R>> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut query = SuccessorsQuery::new(self.put.hash, R::TYPE_NAME);
        query.limit = Some(1);
        loop {
            let poll_started = Instant::now();
            let remaining = deadline.saturating_duration_since(poll_started);
            let remaining_ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
            query.wait_ms = Some(remaining_ms.min(limits::WAIT_MS_MAX));
            let page = self.client.successors_page(&query).await?;
            if let Some(stored) = page.facts.into_iter().next() {
                return Typed::from_stored(stored);
            }
            // Successors that were examined and excluded need not be seen again.
            query.after = Some(page.next.max(query.after.unwrap_or(0)));
            if Instant::now() >= deadline {
                return Err(ClientError::ReplyTimeout {
                    request: self.put.hash,
                    reply_type: R::TYPE_NAME,
                    waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            let next_poll = (poll_started + limits::REPLY_POLL_INTERVAL_MIN).min(deadline);
            tokio::time::sleep_until(next_poll).await;
        }
    }
}
