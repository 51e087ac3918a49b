//! The kitchen service: makes each order whose item stock set aside
//! (`Cafe.StockReserved`) and hands it over: `Cafe.OrderServed`, enqueued
//! in its inbox's transaction, so an order delivered again after a crash is
//! served once.

use std::future::Future;
use std::time::Duration;

use cairn_client::{Delivery, Service, TypedFact};
use cairn_sql::{with_inbox, Outbox};

use crate::error::DemoError;
use crate::facts::{OrderServed, StockReserved};
use crate::limits::{ATTEMPTS_MAX, KITCHEN_PREPARATION_MS_MAX};
use crate::services::{
    definition, drain_relay, open_database, start_relay, subscriber, ServiceOptions,
};

/// The subscription of orders to make.
pub const SUBSCRIPTION: &str = "kitchen";

/// Runs the kitchen until `stop`.
pub async fn run(options: ServiceOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, "kitchen").await?;
    let client = options.client()?;
    let relay = start_relay(&pool, &client);
    let relay_handle = relay.handle();
    let serve_once = with_inbox(pool, |delivery, transaction| {
        Box::pin(async move {
            let reserved = delivery.fact_as::<StockReserved>()?;
            let served = OrderServed {
                order_id: reserved.value.order_id,
                item: reserved.value.item,
                order: reserved.value.order,
            };
            Outbox::new().enqueue_value(transaction, &served).await?;
            Ok(())
        })
    });
    let handler = move |delivery: Delivery| {
        // Making a drink takes a moment (outside any transaction).
        let preparation_ms = delivery.hash().0[0] as u64 * KITCHEN_PREPARATION_MS_MAX / 255;
        let serving = serve_once(delivery);
        let relay = relay_handle.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(preparation_ms)).await;
            serving.await?;
            relay.notify();
            Ok(())
        }
    };
    Service::new("kitchen")
        .subscriber(subscriber(
            &client,
            SUBSCRIPTION,
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
