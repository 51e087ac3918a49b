//! The tasks of a running subscriber besides its pull loop: one per
//! handled message ([`handle`]), the ack/nack flusher ([`Flusher`]) and the
//! lease extender ([`extend_leases`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::delivery::{Delivery, HandlerError};
use super::leases::LeaseTracker;
use super::outcomes::{Outcome, OutcomeBatch};
use super::{lock, SubscriberOptions, SubscriberReport};
use crate::client::Client;
use crate::error::Result;
use crate::limits;
use crate::wire::{TokenResult, TokenStatus};

/// Counts of what the subscriber did, shared by its tasks.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub messages_succeeded: AtomicU64,
    pub messages_failed: AtomicU64,
    pub messages_abandoned: AtomicU64,
    pub outcomes_not_recorded: AtomicU64,
}

impl Counters {
    pub fn report(&self) -> SubscriberReport {
        SubscriberReport {
            messages_succeeded: self.messages_succeeded.load(Ordering::Relaxed),
            messages_failed: self.messages_failed.load(Ordering::Relaxed),
            messages_abandoned: self.messages_abandoned.load(Ordering::Relaxed),
            outcomes_not_recorded: self.outcomes_not_recorded.load(Ordering::Relaxed),
        }
    }
}

/// Runs the handler on one message and passes on the outcome. The handler
/// slot (`_permit`) is held until the outcome is queued, so a slow flusher
/// slows pulling down instead of piling up outcomes.
pub(super) async fn handle<H, F>(
    handler: Arc<H>,
    delivery: Delivery,
    _permit: OwnedSemaphorePermit,
    leases: Arc<Mutex<LeaseTracker>>,
    outcomes: mpsc::Sender<Outcome>,
    counters: Arc<Counters>,
) where
    H: Fn(Delivery) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let token = delivery.message().token.clone();
    let hash = delivery.hash();
    // A panicking handler fails its message like an error does, instead of
    // leaving it leased until the lease runs out.
    let result = AssertUnwindSafe(async move { handler(delivery).await })
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(HandlerError::from(format!("handler panicked: {text}")))
        });
    lock(&leases).remove(&token);
    let outcome = match result {
        Ok(()) => {
            counters.messages_succeeded.fetch_add(1, Ordering::Relaxed);
            Outcome::Ack(token)
        }
        Err(error) => {
            counters.messages_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%hash, "handler failed: {}", error.message());
            Outcome::Nack {
                token,
                error: error.message().to_string(),
                delay_ms: error
                    .retry_delay()
                    .map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            }
        }
    };
    // The flusher lives until every handler has ended, so this cannot fail
    // while it matters.
    if outcomes.send(outcome).await.is_err() {
        counters
            .outcomes_not_recorded
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends acks and nacks in batches until every sender is gone, then sends
/// what is left.
pub(super) struct Flusher {
    pub client: Client,
    pub subscription: Arc<str>,
    pub options: SubscriberOptions,
    pub counters: Arc<Counters>,
}

impl Flusher {
    pub async fn run(self, mut received: mpsc::Receiver<Outcome>) {
        let mut batch = OutcomeBatch::default();
        let interval = self.options.ack_flush_interval;
        loop {
            let due_at = batch.due_at(interval);
            let open = tokio::select! {
                outcome = received.recv() => match outcome {
                    Some(outcome) => {
                        batch.push(outcome, std::time::Instant::now());
                        true
                    }
                    None => false,
                },
                () = sleep_until(due_at) => true,
            };
            let flush_now = !open
                || batch.should_flush(
                    std::time::Instant::now(),
                    self.options.ack_batch_tokens,
                    interval,
                );
            if flush_now && !batch.is_empty() {
                self.flush(&mut batch).await;
            }
            if !open {
                return;
            }
        }
    }

    async fn flush(&self, batch: &mut OutcomeBatch) {
        let flush = batch.take();
        let transport = self.client.transport();
        for tokens in flush.acks.chunks(limits::TOKENS_PER_CALL_MAX) {
            let sent = self
                .with_retries("ack", tokens.len(), || {
                    transport.ack(&self.subscription, tokens)
                })
                .await;
            self.count_unrecorded(sent, TokenStatus::Acked);
        }
        for (options, tokens) in &flush.nacks {
            for tokens in tokens.chunks(limits::TOKENS_PER_CALL_MAX) {
                let sent = self
                    .with_retries("nack", tokens.len(), || {
                        transport.nack(&self.subscription, tokens, options)
                    })
                    .await;
                self.count_unrecorded(sent, TokenStatus::Nacked);
            }
        }
    }

    /// Tries a call up to [`limits::ACK_FLUSH_ROUNDS_MAX`] rounds while it
    /// fails in a retryable way; `Err(tokens_n)` if it never succeeded.
    async fn with_retries<'a, C, R>(
        &self,
        action: &str,
        tokens_n: usize,
        call: C,
    ) -> Result<Vec<TokenResult>, usize>
    where
        C: Fn() -> R,
        R: Future<Output = Result<Vec<TokenResult>>> + 'a,
    {
        for round in 1..=limits::ACK_FLUSH_ROUNDS_MAX {
            match call().await {
                Ok(results) => return Ok(results),
                Err(error) if error.is_retryable() && round < limits::ACK_FLUSH_ROUNDS_MAX => {
                    tracing::warn!(subscription = %self.subscription, "{action} failed, retrying: {error}");
                    tokio::time::sleep(self.options.retry_backoff.delay(round)).await;
                }
                Err(error) => {
                    tracing::error!(
                        subscription = %self.subscription,
                        tokens_n,
                        "{action} failed; the messages will be delivered again: {error}"
                    );
                    return Err(tokens_n);
                }
            }
        }
        Err(tokens_n)
    }

    fn count_unrecorded(&self, sent: Result<Vec<TokenResult>, usize>, expected: TokenStatus) {
        let unrecorded_n = match sent {
            Ok(results) => {
                let unrecorded: Vec<&TokenResult> = results
                    .iter()
                    .filter(|result| result.status != expected)
                    .collect();
                if !unrecorded.is_empty() {
                    tracing::warn!(
                        subscription = %self.subscription,
                        unrecorded_n = unrecorded.len(),
                        "outcomes not recorded (lease expired?); those messages will be delivered again"
                    );
                }
                unrecorded.len()
            }
            Err(tokens_n) => tokens_n,
        };
        self.counters
            .outcomes_not_recorded
            .fetch_add(unrecorded_n as u64, Ordering::Relaxed);
    }
}

/// Sleeps until `due_at`, or forever if there is nothing due.
async fn sleep_until(due_at: Option<std::time::Instant>) {
    match due_at {
        Some(due_at) => tokio::time::sleep_until(Instant::from_std(due_at)).await,
        None => std::future::pending().await,
    }
}

/// Renews, every few moments, the leases of handlers that have used half
/// of theirs, until `stop`.
pub(super) async fn extend_leases(
    client: Client,
    subscription: Arc<str>,
    lease_ms_requested: Option<u64>,
    lease_ms: u64,
    leases: Arc<Mutex<LeaseTracker>>,
    stop: CancellationToken,
) {
    let lease = Duration::from_millis(lease_ms);
    let scan_interval = (lease / 4).clamp(
        limits::LEASE_SCAN_INTERVAL_MIN,
        limits::LEASE_SCAN_INTERVAL_MAX,
    );
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep(scan_interval) => {}
        }
        let due = lock(&leases).due(std::time::Instant::now());
        for tokens in due.chunks(limits::TOKENS_PER_CALL_MAX) {
            let sent_at = std::time::Instant::now();
            match client
                .transport()
                .extend(&subscription, tokens, lease_ms_requested)
                .await
            {
                Ok(results) => {
                    let mut tracker = lock(&leases);
                    for result in results {
                        match result.status {
                            TokenStatus::Extended => tracker.renewed(&result.token, sent_at),
                            status => {
                                tracing::warn!(
                                    subscription = %subscription,
                                    ?status,
                                    "a running handler's lease could not be renewed; its message may be delivered again"
                                );
                                tracker.remove(&result.token);
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(subscription = %subscription, "extending leases failed, retrying: {error}");
                }
            }
        }
    }
}
