//! Creating a service's subscriptions idempotently at start and running a
//! subscriber on each, so that a service started before Cairn waits for it
//! instead of failing.

use std::future::Future;

use cairn_client::{
    BackoffDefinition, Client, ClientError, Delivery, HandlerError, Start, Subscriber,
    SubscriptionDefinition, SubscriptionView,
};
use tokio_util::sync::CancellationToken;

use crate::error::{error_chain, ServiceError};
use crate::limits::{
    SUBSCRIBER_CONCURRENCY, SUBSCRIBER_DRAIN_TIMEOUT, SUBSCRIBER_WAIT_MS,
    SUBSCRIPTION_SETUP_RETRY_DELAY,
};

/// A subscription definition over `type_name` from the beginning of the
/// log, with these lease, attempts and backoff.
pub fn definition(
    type_name: &str,
    lease_ms: u64,
    attempts_max: u32,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
) -> SubscriptionDefinition {
    SubscriptionDefinition {
        start: Some(Start::Beginning),
        lease_ms: Some(lease_ms),
        max_attempts: Some(attempts_max),
        backoff: Some(BackoffDefinition {
            initial_ms: Some(backoff_initial_ms),
            max_ms: Some(backoff_max_ms),
        }),
        ..SubscriptionDefinition::new(type_name)
    }
}

/// Creates the subscription `name`, or puts its definition over the
/// existing one (an update of what may change, nothing if it is the same). While Cairn is unreachable it tries again every
/// [`SUBSCRIPTION_SETUP_RETRY_DELAY`] until `shutdown`; then it answers
/// `None`.
pub async fn ensure_subscription(
    client: &Client,
    name: &str,
    definition: &SubscriptionDefinition,
    shutdown: &CancellationToken,
) -> Result<Option<SubscriptionView>, ServiceError> {
    loop {
        let applied = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            applied = client.apply_subscription(name, definition) => applied,
        };
        match applied {
            Ok(applied) => {
                tracing::info!(subscription = name, type_name = %definition.type_name, "subscription {:?}", applied.outcome);
                return Ok(Some(applied.view));
            }
            Err(ClientError::Api { status: 409, .. }) => {
                return Err(ServiceError::SubscriptionConflict {
                    name: name.to_owned(),
                })
            }
            Err(error) if error.is_retryable() => {
                tracing::warn!(
                    subscription = name,
                    "Cairn is unreachable, trying again: {}",
                    error_chain(&error)
                );
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(SUBSCRIPTION_SETUP_RETRY_DELAY) => {}
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Runs `handler` over the subscription `name` until `shutdown`, then
/// drains: running handlers finish (up to [`SUBSCRIBER_DRAIN_TIMEOUT`]) and
/// their acks and nacks are sent.
pub async fn run_subscriber<H, F>(
    client: Client,
    name: &str,
    handler: H,
    shutdown: CancellationToken,
) -> Result<(), ServiceError>
where
    H: Fn(Delivery) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    tracing::info!(subscription = name, "subscriber started");
    let report = Subscriber::new(client, name, handler)
        .concurrency(SUBSCRIBER_CONCURRENCY)
        .wait_ms(SUBSCRIBER_WAIT_MS)
        .drain_timeout(SUBSCRIBER_DRAIN_TIMEOUT)
        .run(shutdown)
        .await?;
    tracing::info!(
        subscription = name,
        succeeded = report.messages_succeeded,
        failed = report.messages_failed,
        abandoned = report.messages_abandoned,
        "subscriber drained and stopped"
    );
    Ok(())
}
