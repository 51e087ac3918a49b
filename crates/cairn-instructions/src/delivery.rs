//! Path `delivery`: a backlog of messages consumed through the in-memory
//! delivery engine over the embedded store — the engine `cairn serve`
//! runs on that store, called through the `Deliveries` and `Subscription`
//! traits the HTTP handlers call, without HTTP.
//!
//! Setup (not measured) writes [`MESSAGES`] facts of one type. Measured:
//! creating a subscription of that type from the beginning (durable),
//! then pulling [`PULL_MAX`] at a time and acknowledging each pull
//! (durable: one sync per ack) until the backlog is gone. The clock is
//! simulated and the token secrets seeded, so leases, tokens and their
//! MACs are the same on every run.

use std::sync::Arc;

use anyhow::{ensure, Context};
use cairn_delivery::{SubscriptionDefinition, TokenStatus};
use cairn_server::clock::Clock;
use cairn_server::delivery::memory::{MemoryDeliveries, MemoryOptions};
use cairn_server::delivery::{Deliveries, TokenSecrets};
use tokio_util::sync::CancellationToken;

use crate::inputs;
use crate::store::{put_batches, runtime, FreshStore};

/// Messages in the backlog.
pub const MESSAGES: usize = 2_000;
/// Messages per pull (and so per ack).
pub const PULL_MAX: usize = 100;
/// Where the simulated clock stands (2026-01-01T00:00:00Z).
const CLOCK_START_MS: u64 = 1_767_225_600_000;
const TOKEN_SECRETS_SEED: u64 = 18;
const MESSAGE_TYPE: &str = "Bench.Message";

/// Prepares the backlog, then measures consuming it.
pub fn run() -> anyhow::Result<u64> {
    let messages = (0..MESSAGES)
        .map(|n| {
            inputs::parse(&format!(
                "{{\"type\":\"{MESSAGE_TYPE}\",\"predecessors\":{{}},\
                 \"fields\":{{\"n\":{n},\"payload\":\"{}\"}}}}",
                "x".repeat(200)
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batches = messages
        .chunks(inputs::BATCH_FACTS)
        .map(<[_]>::to_vec)
        .collect();
    let runtime = runtime()?;
    let fresh = FreshStore::open()?;
    runtime.block_on(put_batches(&fresh.store, batches))?;
    let options = MemoryOptions {
        clock: Clock::simulated(CLOCK_START_MS),
        secrets: TokenSecrets::seeded(TOKEN_SECRETS_SEED),
    };
    let deliveries = MemoryDeliveries::load(Arc::clone(&fresh.store), options)
        .context("cannot load the subscriptions")?;
    let definition = SubscriptionDefinition::from_json(
        format!("{{\"type\":\"{MESSAGE_TYPE}\",\"lease_ms\":60000}}").as_bytes(),
    )?;
    let shutdown = CancellationToken::new();
    let acked = crate::measure("delivery", || {
        runtime.block_on(consume(&deliveries, definition, &shutdown))
    })?;
    drop(deliveries);
    fresh.close();
    ensure!(acked == MESSAGES as u64, "acknowledged {acked} messages");
    Ok(acked)
}

/// Creates the subscription and consumes the backlog; returns the
/// messages acknowledged.
async fn consume(
    deliveries: &MemoryDeliveries<cairn_store::EmbeddedStore>,
    definition: SubscriptionDefinition,
    shutdown: &CancellationToken,
) -> anyhow::Result<u64> {
    let (subscription, _) = deliveries.apply("instructions", definition, None).await?;
    let mut acked = 0;
    // One pull more than the backlog needs finds it empty.
    for _ in 0..=MESSAGES / PULL_MAX {
        let pulled = subscription.pull(PULL_MAX, 0, None, shutdown).await?;
        if pulled.is_empty() {
            break;
        }
        let tokens: Vec<String> = pulled.into_iter().map(|message| message.token).collect();
        let outcomes = subscription.ack(&tokens).await?;
        acked += outcomes
            .iter()
            .filter(|outcome| outcome.status == TokenStatus::Acked)
            .count() as u64;
    }
    Ok(acked)
}
