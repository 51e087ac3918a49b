//! The subscriber runtime: `Subscriber::new(client, "billing", handler)
//! .definition(definition).concurrency(8).run(shutdown)` puts the
//! subscription's definition (creating or updating it, idempotently, and
//! waiting for Cairn while it is unreachable), then pulls messages of the
//! subscription, runs the handler on each with a concurrency limit,
//! acknowledges successes, nacks failures with their error text, renews the
//! leases of long handlers, and on shutdown drains in-flight work before it
//! returns.
//!
//! The decisions (which leases to renew, when to flush acks) live in pure
//! types ([`leases`], [`outcomes`]); this module and [`tasks`] only run them.
//! Delivery is at least once: a handler may see a message again after a
//! crash, a lost ack or a lease that could not be renewed, so handlers
//! should be idempotent (the fact hash identifies the message).

mod delivery;
mod leases;
mod outcomes;
mod tasks;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use delivery::{Delivery, HandlerError, HandlerFuture};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::limits;
use crate::wire::{GenerationPrecondition, PullOptions, SubscriptionDefinition, SubscriptionView};
use leases::LeaseTracker;
use tasks::{Counters, Flusher};

/// Settings of a [`Subscriber`]; the builder methods of `Subscriber` set
/// them one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberOptions {
    /// Handlers running at once at most (1 to
    /// [`limits::SUBSCRIBER_CONCURRENCY_MAX`]).
    pub concurrency: usize,
    /// Long-poll of each pull (at most [`limits::WAIT_MS_MAX`]).
    pub wait_ms: u64,
    /// Lease of pulled messages; `None` uses the subscription's.
    pub lease_ms: Option<u64>,
    /// Finished messages that trigger an ack/nack flush.
    pub ack_batch_tokens: usize,
    /// Longest time a finished message waits for its ack/nack.
    pub ack_flush_interval: Duration,
    /// Time in-flight handlers get to finish at shutdown; the rest are
    /// abandoned (their messages are redelivered after the lease).
    pub drain_timeout: Duration,
    /// Waits between retries of failed pulls, acks and nacks.
    pub retry_backoff: Backoff,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        SubscriberOptions {
            concurrency: limits::SUBSCRIBER_CONCURRENCY_DEFAULT,
            wait_ms: limits::SUBSCRIBER_WAIT_MS_DEFAULT,
            lease_ms: None,
            ack_batch_tokens: limits::ACK_BATCH_TOKENS_DEFAULT,
            ack_flush_interval: limits::ACK_FLUSH_INTERVAL_DEFAULT,
            drain_timeout: limits::DRAIN_TIMEOUT_DEFAULT,
            retry_backoff: Backoff {
                initial: limits::BACKOFF_INITIAL_DEFAULT,
                max: limits::BACKOFF_MAX_DEFAULT,
            },
        }
    }
}

impl SubscriberOptions {
    fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(ClientError::InvalidOptions(message));
        if !(1..=limits::SUBSCRIBER_CONCURRENCY_MAX).contains(&self.concurrency) {
            return invalid(format!(
                "concurrency must be 1 to {}, got {}",
                limits::SUBSCRIBER_CONCURRENCY_MAX,
                self.concurrency
            ));
        }
        if self.wait_ms > limits::WAIT_MS_MAX {
            return invalid(format!(
                "wait_ms must be at most {}, got {}",
                limits::WAIT_MS_MAX,
                self.wait_ms
            ));
        }
        if !(1..=limits::TOKENS_PER_CALL_MAX).contains(&self.ack_batch_tokens) {
            return invalid(format!(
                "ack_batch_tokens must be 1 to {}, got {}",
                limits::TOKENS_PER_CALL_MAX,
                self.ack_batch_tokens
            ));
        }
        if self.lease_ms == Some(0) {
            return invalid("lease_ms must be positive".to_string());
        }
        Ok(())
    }
}

/// What a subscriber did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriberReport {
    /// Messages whose handler succeeded.
    pub messages_succeeded: u64,
    /// Messages whose handler failed (or panicked).
    pub messages_failed: u64,
    /// Messages whose handler was still running when the drain timeout
    /// passed.
    pub messages_abandoned: u64,
    /// Outcomes the server did not record: acks and nacks that failed or
    /// whose token had expired. Those messages are delivered again.
    pub outcomes_not_recorded: u64,
}

/// Runs a handler over the messages of one subscription.
pub struct Subscriber<H> {
    client: Client,
    subscription: String,
    handler: H,
    options: SubscriberOptions,
    definition: Option<SubscriptionDefinition>,
    replaces_generation: Option<u64>,
}

impl<H, F> Subscriber<H>
where
    H: Fn(Delivery) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    /// A subscriber of `subscription` with default options. The
    /// subscription must exist, unless [`Subscriber::definition`] gives its
    /// definition.
    pub fn new(client: Client, subscription: impl Into<String>, handler: H) -> Subscriber<H> {
        Subscriber {
            client,
            subscription: subscription.into(),
            handler,
            options: SubscriberOptions::default(),
            definition: None,
            replaces_generation: None,
        }
    }

    /// The subscription's name.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The subscription's definition, kept in code: [`Subscriber::run`]
    /// puts it first ([`Client::apply_subscription`]), creating the
    /// subscription, finding it as it is, or updating what may change
    /// (lease, attempts, backoff, rate and in-flight limits) without losing
    /// its messages; it retries with backoff while Cairn is unreachable,
    /// and fails if the subscription exists with another type, predecessor,
    /// ordering key or start (`409 subscription_conflict`).
    ///
    /// Every instance that runs puts its definition, the last one winning.
    /// During a rolling deploy, where old and new versions run side by
    /// side, use [`Subscriber::definition_replacing`] instead.
    pub fn definition(mut self, definition: SubscriptionDefinition) -> Self {
        self.definition = Some(definition);
        self.replaces_generation = None;
        self
    }

    /// Like [`Subscriber::definition`], for a definition that replaces the
    /// one at `generation` (the generation the previous version of the
    /// service left, as `cairn subs show` or a view reports it): it is put
    /// only over that generation (`If-Match`). Where the subscription is
    /// already past it, a newer version has put its definition, and this
    /// subscriber runs under that one without overwriting it; an instance
    /// of the old version restarting mid-deploy therefore cannot undo the
    /// new definition. A subscription that does not exist is created. A
    /// subscription at a generation below `generation` is an error: the
    /// definition in code expects a history the server does not have.
    pub fn definition_replacing(
        mut self,
        definition: SubscriptionDefinition,
        generation: u64,
    ) -> Self {
        self.definition = Some(definition);
        self.replaces_generation = Some(generation);
        self
    }

    /// Sets all options at once.
    pub fn options(mut self, options: SubscriberOptions) -> Self {
        self.options = options;
        self
    }

    /// Handlers running at once at most.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.options.concurrency = concurrency;
        self
    }

    /// Long-poll of each pull.
    pub fn wait_ms(mut self, wait_ms: u64) -> Self {
        self.options.wait_ms = wait_ms;
        self
    }

    /// Lease of pulled messages instead of the subscription's.
    pub fn lease_ms(mut self, lease_ms: u64) -> Self {
        self.options.lease_ms = Some(lease_ms);
        self
    }

    /// Finished messages that trigger an ack/nack flush.
    pub fn ack_batch_tokens(mut self, tokens: usize) -> Self {
        self.options.ack_batch_tokens = tokens;
        self
    }

    /// Longest time a finished message waits for its ack/nack.
    pub fn ack_flush_interval(mut self, interval: Duration) -> Self {
        self.options.ack_flush_interval = interval;
        self
    }

    /// Time in-flight handlers get to finish at shutdown.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.options.drain_timeout = timeout;
        self
    }

    /// Waits between retries of failed pulls, acks and nacks.
    pub fn retry_backoff(mut self, backoff: Backoff) -> Self {
        self.options.retry_backoff = backoff;
        self
    }

    /// Runs until `shutdown` is cancelled, then stops pulling, lets running
    /// handlers finish (up to the drain timeout), sends the last acks and
    /// nacks, and returns what it did.
    ///
    /// Errors only at the start: invalid options, a subscription that does
    /// not exist (without a definition), or a definition the server
    /// refuses (an invalid one, or a conflict with the subscription's fixed
    /// members). Cairn being unreachable at the start is waited out, with
    /// backoff, until `shutdown`. Later failures of pulls, acks and nacks
    /// are logged and retried with backoff; they never stop the subscriber.
    ///
    /// A pull cut short by shutdown may have leased messages that never
    /// reach a handler; the server delivers them again after their lease.
    pub async fn run(self, shutdown: CancellationToken) -> Result<SubscriberReport> {
        self.options.validate()?;
        let lease_ms = match &self.definition {
            Some(definition) => self
                .apply_definition(definition, &shutdown)
                .await?
                .map(|view| {
                    self.options.lease_ms.unwrap_or_else(|| {
                        view.definition
                            .lease_ms
                            .unwrap_or(limits::SUBSCRIPTION_LEASE_MS_DEFAULT)
                    })
                }),
            None => self.resolve_lease_ms(&shutdown).await?,
        };
        let Some(lease_ms) = lease_ms else {
            return Ok(SubscriberReport::default());
        };
        let options = self.options;
        let subscription: Arc<str> = Arc::from(self.subscription.as_str());
        let handler = Arc::new(self.handler);
        let counters = Arc::new(Counters::default());
        let leases = Arc::new(Mutex::new(LeaseTracker::new(Duration::from_millis(
            lease_ms,
        ))));
        let slots = Arc::new(Semaphore::new(options.concurrency));
        let (outcomes, outcomes_received) =
            mpsc::channel(options.concurrency.max(options.ack_batch_tokens));

        let flusher = tokio::spawn(
            Flusher {
                client: self.client.clone(),
                subscription: Arc::clone(&subscription),
                options,
                counters: Arc::clone(&counters),
            }
            .run(outcomes_received),
        );
        let extender_stop = CancellationToken::new();
        let extender = tokio::spawn(tasks::extend_leases(
            self.client.clone(),
            Arc::clone(&subscription),
            options.lease_ms,
            lease_ms,
            Arc::clone(&leases),
            extender_stop.clone(),
        ));

        let mut handlers = JoinSet::new();
        let mut pull_failures_n = 0;
        while let Some(mut permits) = next_slots(&slots, &shutdown).await {
            while handlers.try_join_next().is_some() {}
            let pull_options = PullOptions {
                max: u32::try_from(permits.len()).unwrap_or(u32::MAX),
                wait_ms: options.wait_ms,
                lease_ms: options.lease_ms,
            };
            let pull_started = Instant::now();
            let pulled = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                pulled = self.client.transport().pull(&subscription, pull_options) => pulled,
            };
            let messages = match pulled {
                Ok(messages) => {
                    pull_failures_n = 0;
                    messages
                }
                Err(ClientError::Closed) => {
                    // The client was closed under the subscriber: nothing
                    // will ever succeed again, so stop as on shutdown.
                    tracing::info!(subscription = %subscription, "the client was closed; stopping");
                    break;
                }
                Err(error) => {
                    drop(permits);
                    pull_failures_n += 1;
                    tracing::warn!(subscription = %subscription, "pull failed, retrying: {error}");
                    let delay = options.retry_backoff.delay(pull_failures_n);
                    if pause_unless_shutdown(delay, &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            if messages.is_empty() {
                drop(permits);
                let next_pull = pull_started + limits::PULL_EMPTY_INTERVAL_MIN;
                if pause_unless_shutdown(next_pull - Instant::now().min(next_pull), &shutdown).await
                {
                    break;
                }
                continue;
            }
            let received_at = std::time::Instant::now();
            for message in messages {
                let Some(permit) = permits.pop() else {
                    tracing::warn!(
                        subscription = %subscription,
                        "the server sent more messages than asked for; the rest is redelivered later"
                    );
                    break;
                };
                lock(&leases).insert(message.token.clone(), received_at);
                handlers.spawn(tasks::handle(
                    Arc::clone(&handler),
                    Delivery::new(Arc::clone(&subscription), message),
                    permit,
                    Arc::clone(&leases),
                    outcomes.clone(),
                    Arc::clone(&counters),
                ));
            }
        }

        drain(
            &mut handlers,
            options.drain_timeout,
            &counters,
            &subscription,
        )
        .await;
        extender_stop.cancel();
        drop(outcomes);
        if let Err(error) = extender.await {
            tracing::error!(subscription = %subscription, "lease extender failed: {error}");
        }
        if let Err(error) = flusher.await {
            tracing::error!(subscription = %subscription, "ack flusher failed: {error}");
        }
        Ok(counters.report())
    }

    /// Puts the definition (see [`Subscriber::definition`] and
    /// [`Subscriber::definition_replacing`]), retrying while Cairn is
    /// unreachable; the subscription as it then is, or `None` if shutdown
    /// came first.
    async fn apply_definition(
        &self,
        definition: &SubscriptionDefinition,
        shutdown: &CancellationToken,
    ) -> Result<Option<SubscriptionView>> {
        let mut precondition = self
            .replaces_generation
            .map(GenerationPrecondition::Generation);
        let mut failures_n = 0;
        loop {
            let applied = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(None),
                applied = self.client.transport().apply_subscription(
                    &self.subscription, definition, precondition,
                ) => applied,
            };
            let error = match applied {
                Ok(applied) => {
                    tracing::info!(
                        subscription = %self.subscription,
                        generation = applied.generation(),
                        "subscription definition put: {:?}",
                        applied.outcome
                    );
                    return Ok(Some(applied.view));
                }
                Err(error) => error,
            };
            if let (Some(expected), Some(current)) =
                (self.replaces_generation, generation_mismatch(&error))
            {
                match current {
                    // Not there: create it (a precondition never creates).
                    None => {
                        precondition = None;
                        continue;
                    }
                    Some(current) if current > expected => {
                        tracing::warn!(
                            subscription = %self.subscription,
                            generation = current,
                            "a newer definition than the one this subscriber replaces is in \
                             force; running under it without overwriting it"
                        );
                        return match self.client.subscription(&self.subscription).await? {
                            Some(view) => Ok(Some(view)),
                            None => Err(ClientError::UnknownSubscription {
                                name: self.subscription.clone(),
                            }),
                        };
                    }
                    Some(_) => return Err(error),
                }
            }
            if !error.is_retryable() {
                tracing::error!(
                    subscription = %self.subscription,
                    "the subscription's definition was refused: {error}"
                );
                return Err(error);
            }
            failures_n += 1;
            tracing::warn!(
                subscription = %self.subscription,
                "cannot put the subscription's definition, retrying: {error}"
            );
            let delay = self.options.retry_backoff.delay(failures_n);
            if pause_unless_shutdown(delay, shutdown).await {
                return Ok(None);
            }
        }
    }

    /// The lease to track: the option, or the subscription's. `None` if
    /// shutdown came first.
    async fn resolve_lease_ms(&self, shutdown: &CancellationToken) -> Result<Option<u64>> {
        if let Some(lease_ms) = self.options.lease_ms {
            return Ok(Some(lease_ms));
        }
        let mut failures_n = 0;
        loop {
            let read = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(None),
                read = self.client.subscription(&self.subscription) => read,
            };
            match read {
                Ok(Some(view)) => {
                    return Ok(Some(
                        view.definition
                            .lease_ms
                            .unwrap_or(limits::SUBSCRIPTION_LEASE_MS_DEFAULT),
                    ))
                }
                Ok(None) => {
                    return Err(ClientError::UnknownSubscription {
                        name: self.subscription.clone(),
                    })
                }
                Err(error) if error.is_retryable() => {
                    failures_n += 1;
                    tracing::warn!(subscription = %self.subscription, "cannot read the subscription, retrying: {error}");
                    let delay = self.options.retry_backoff.delay(failures_n);
                    if pause_unless_shutdown(delay, shutdown).await {
                        return Ok(None);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The subscription's generation a `412 generation_mismatch` reports:
/// `Some(None)` when it does not exist; `None` for any other error.
fn generation_mismatch(error: &ClientError) -> Option<Option<u64>> {
    match error {
        ClientError::Api { code, details, .. }
            if code == cairn_api::ErrorCode::GenerationMismatch.as_str() =>
        {
            Some(
                details
                    .get("generation")
                    .and_then(serde_json::Value::as_u64),
            )
        }
        _ => None,
    }
}

/// Waits for at least one free handler slot and takes every free one (up
/// to a pull's maximum); `None` on shutdown.
async fn next_slots(
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = tokio::select! {
        biased;
        () = shutdown.cancelled() => return None,
        permit = Arc::clone(slots).acquire_owned() => permit.ok()?,
    };
    let mut permits = vec![first];
    while permits.len() < limits::PULL_MESSAGES_MAX {
        match Arc::clone(slots).try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    Some(permits)
}

/// Sleeps for `delay`; `true` if shutdown came first.
async fn pause_unless_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// Lets running handlers finish for up to `timeout`, then abandons the rest.
async fn drain(
    handlers: &mut JoinSet<()>,
    timeout: Duration,
    counters: &Counters,
    subscription: &str,
) {
    let finished = tokio::time::timeout(timeout, async {
        while handlers.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        let abandoned_n = handlers.len() as u64;
        tracing::warn!(
            subscription,
            abandoned_n,
            "handlers still running after the drain timeout are abandoned"
        );
        counters
            .messages_abandoned
            .fetch_add(abandoned_n, Ordering::Relaxed);
        handlers.abort_all();
        while handlers.join_next().await.is_some() {}
    }
}

/// Locks a mutex, also after a panic elsewhere: the tracker stays usable
/// since each of its updates is a single map operation.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
