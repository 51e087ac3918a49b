//! The orders service: answers each `Cafe.PlaceOrder` request
//! (request/reply over facts, [`cairn_client::Client::responder`]). Taking
//! an order is one SQLite transaction that inserts the order row, keyed by
//! the customer's own order id, and enqueues `Cafe.OrderPlaced` in the
//! outbox; the relay publishes it. A customer who asks again (a new
//! request after a timeout) finds the order already there: one order,
//! one fact.
//!
//! Schema evolution: `Cafe.PlaceOrder` is at version 2 (it added
//! `takeaway`), but the café's old app still sends version 1. The
//! responder reads every request as [`PlaceOrder`] (version 2): the SDK
//! upcasts a version-1 fact with the type's own upcasts (the same
//! operations registered with Cairn), so both versions are taken alike.

use std::future::Future;

use cairn_client::{IncomingRequest, Service, TypedFact};
use cairn_sql::{Outbox, RelayHandle};
use sqlx::SqlitePool;

use crate::error::DemoError;
use crate::facts::{OrderAccepted, OrderPlaced, PlaceOrder};
use crate::limits::ATTEMPTS_MAX;
use crate::services::{
    definition, drain_relay, handler_error, open_database, start_relay, subscriber, ServiceOptions,
};

/// The subscription of order requests.
pub const SUBSCRIPTION: &str = "orders";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    item TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    takeaway INTEGER NOT NULL
)";

/// Runs the orders service until `stop`.
pub async fn run(options: ServiceOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, "orders").await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    let client = options.client()?;
    let relay = start_relay(&pool, &client);
    let relay_handle = relay.handle();
    let responder = client.responder(move |request: IncomingRequest<PlaceOrder>| {
        let pool = pool.clone();
        let relay = relay_handle.clone();
        async move {
            take_order(&pool, &relay, &request.command)
                .await
                .map_err(handler_error)?;
            Ok(OrderAccepted {
                order_id: request.command.order_id,
                request: request.hash,
            })
        }
    });
    Service::new("orders")
        .subscriber(subscriber(
            &client,
            SUBSCRIPTION,
            definition(PlaceOrder::TYPE_NAME, ATTEMPTS_MAX),
            responder,
        ))
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    Ok(())
}

/// Inserts the order and enqueues its fact in one transaction, unless the
/// order id is taken already (the customer asked again).
async fn take_order(
    pool: &SqlitePool,
    relay: &RelayHandle,
    command: &PlaceOrder,
) -> Result<(), DemoError> {
    let mut transaction = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT OR IGNORE INTO orders (order_id, customer, item, price_cents, takeaway)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&command.order_id)
    .bind(&command.customer)
    .bind(&command.item)
    .bind(command.price_cents)
    .bind(command.takeaway)
    .execute(&mut *transaction)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let placed = OrderPlaced {
            order_id: command.order_id.clone(),
            customer: command.customer.clone(),
            item: command.item.clone(),
            price_cents: command.price_cents,
            takeaway: command.takeaway,
        };
        Outbox::new()
            .enqueue_value(&mut transaction, &placed)
            .await?;
    }
    transaction.commit().await?;
    relay.notify();
    Ok(())
}
