//! The subscriptions of both services, kept in code: each subscriber puts
//! its subscription's definition when it starts (creating it, or updating
//! what may change), waiting while Cairn is unreachable.

use std::future::Future;

use cairn_client::{
    BackoffDefinition, Client, Delivery, HandlerError, Start, Subscriber, SubscriptionDefinition,
};

use crate::limits::{SUBSCRIBER_CONCURRENCY, SUBSCRIBER_DRAIN_TIMEOUT, SUBSCRIBER_WAIT_MS};

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

/// A subscriber running `handler` over the subscription `name` with this
/// `definition`, with the example's concurrency, long-poll and drain
/// timeout.
pub fn subscriber<H, F>(
    client: Client,
    name: &str,
    definition: SubscriptionDefinition,
    handler: H,
) -> Subscriber<H>
where
    H: Fn(Delivery) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Subscriber::new(client, name, handler)
        .definition(definition)
        .concurrency(SUBSCRIBER_CONCURRENCY)
        .wait_ms(SUBSCRIBER_WAIT_MS)
        .drain_timeout(SUBSCRIBER_DRAIN_TIMEOUT)
}
