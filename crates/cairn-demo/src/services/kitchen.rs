//! The kitchen: two cooks, `kitchen-1` and `kitchen-2`, each its own
//! process with its own subscription to every order whose item stock set
//! aside (`Cafe.StockReserved`) — both see every ticket on the pass. A
//! cook who picks one up stores its bid (`Cafe.PreparationClaimed`) and
//! claims the key `prepare.<order id>` with it; Cairn decides the first
//! bid wins, durably, and answers every later claim with that winner. The
//! winner makes the order and hands it over — `Cafe.OrderServed`, naming
//! the cook, enqueued in its inbox's transaction so an order delivered
//! again after a crash is served once — and the other cook leaves it.
//!
//! The claim is what makes SIGKILL of a cook safe: the killed cook's
//! order comes back to it after the restart (its lease ran out), its bid
//! is the same fact, the claim answers `won` again, and it serves the
//! order; the other cook never serves it too, whatever the timing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Delivery, HandlerError, Service, TypedFact};
use cairn_sql::{with_inbox, Outbox};

use crate::error::DemoError;
use crate::facts::{OrderServed, PreparationClaimed, StockReserved};
use crate::limits::{ATTEMPTS_MAX, KITCHEN_PREPARATION_MS_MAX};
use crate::services::{
    definition, drain_relay, handler_error, open_database, start_relay, subscriber, ServiceOptions,
};

/// The cooks, by service name; each one's subscription has its name.
pub const WORKERS: [&str; 2] = ["kitchen-1", "kitchen-2"];

/// The claim key of an order's preparation.
pub fn claim_key(order_id: &str) -> String {
    format!("prepare.{order_id}")
}

/// Runs the cook `worker` until `stop`.
pub async fn run(
    worker: &'static str,
    options: ServiceOptions,
    stop: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, worker).await?;
    let client = options.client()?;
    let relay = start_relay(&pool, &client);
    let relay_handle = relay.handle();
    let serve_once = Arc::new(with_inbox(pool, move |delivery, transaction| {
        Box::pin(async move {
            let reserved = delivery.fact_as::<StockReserved>()?;
            let served = OrderServed {
                order_id: reserved.value.order_id,
                item: reserved.value.item,
                worker: worker.to_owned(),
                order: reserved.value.order,
            };
            Outbox::new().enqueue_value(transaction, &served).await?;
            Ok(())
        })
    }));
    let claims = client.clone();
    let handler = move |delivery: Delivery| {
        // Making a drink takes a moment (outside any transaction).
        let preparation_ms = delivery.hash().0[0] as u64 * KITCHEN_PREPARATION_MS_MAX / 255;
        let client = claims.clone();
        let relay = relay_handle.clone();
        let serve_once = Arc::clone(&serve_once);
        async move {
            let reserved = delivery.fact_as::<StockReserved>()?;
            let bid = PreparationClaimed {
                order_id: reserved.value.order_id.clone(),
                worker: worker.to_owned(),
                order: reserved.value.order,
            };
            let bid_hash = client.put(&bid).await?.hash;
            let answer = client
                .claim(&claim_key(&reserved.value.order_id), &bid_hash)
                .await
                .map_err(handler_error)?;
            if answer.fact != bid_hash {
                tracing::debug!(order_id = %reserved.value.order_id, "the other cook has it");
                return Ok::<(), HandlerError>(());
            }
            tokio::time::sleep(Duration::from_millis(preparation_ms)).await;
            serve_once(delivery).await?;
            relay.notify();
            Ok(())
        }
    };
    Service::new(worker)
        .subscriber(subscriber(
            &client,
            worker,
            definition(StockReserved::TYPE_NAME, ATTEMPTS_MAX),
            handler,
        ))
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    Ok(())
}
