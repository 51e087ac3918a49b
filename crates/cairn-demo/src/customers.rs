//! The customers: orders at a steady rate, each with an id the customer
//! makes (client-side, so asking again is the same order), sent as a
//! request over facts and answered by the orders service. Customers read
//! the menu as a read model (the successors of the menu anchor, without
//! the withdrawn items) and refresh it every few seconds, so some order
//! what just sold out. At most [`ORDERS_IN_FLIGHT_MAX`] orders wait at
//! once: a customer who finds the café full walks away (back-pressure, not
//! a growing queue).
//!
//! Every third order comes from the café's old app, which still writes
//! `Cafe.PlaceOrder` at schema version 1 ([`PlaceOrderV1`], no
//! `takeaway`); the others from the new app, at version 2. Both kinds of
//! request live side by side in the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_client::{to_canonical_fact, Client, Request};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::facts::{menu, MenuItem, MenuItemWithdrawn, OrderAccepted, PlaceOrder, PlaceOrderV1};
use crate::limits::{
    MENU_REFRESH_INTERVAL, ORDERS_IN_FLIGHT_MAX, ORDERS_MAX, ORDERS_OLD_APP_EVERY, ORDERS_PER_S,
    ORDER_ASKS_MAX, ORDER_REPLY_TIMEOUT, ORDER_REQUEST_EXPIRY,
};
use crate::random::SeededRandom;

const NAMES: [&str; 8] = [
    "ada", "alan", "barbara", "edsger", "grace", "john", "leslie", "margaret",
];

/// What the customers counted.
#[derive(Debug, Default)]
pub struct CustomerCounts {
    /// Orders sent.
    pub ordered: AtomicU64,
    /// Orders accepted.
    pub accepted: AtomicU64,
    /// Orders asked again after no answer came.
    pub asked_again: AtomicU64,
    /// Customers who walked away from a full café.
    pub walked_away: AtomicU64,
    /// Orders never answered after every ask.
    pub unanswered: AtomicU64,
}

/// Orders at [`ORDERS_PER_S`] through `client` until `stop`, then waits
/// for the orders in flight.
pub async fn run(client: Client, seed: u64, stop: CancellationToken, counts: Arc<CustomerCounts>) {
    let mut random = SeededRandom::new(seed ^ 0xC0FF_EE00);
    let in_flight = Arc::new(Semaphore::new(ORDERS_IN_FLIGHT_MAX));
    let mut orders = JoinSet::new();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(1_000 / ORDERS_PER_S));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut menu_items: Vec<MenuItem> = Vec::new();
    let mut menu_read_at: Option<Instant> = None;
    for order_index in 0..ORDERS_MAX {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        while orders.try_join_next().is_some() {}
        if menu_read_at.is_none_or(|read_at| read_at.elapsed() >= MENU_REFRESH_INTERVAL) {
            // Until the menu is up, read it at every tick.
            if let Some(items) = read_menu(&client).await.filter(|items| !items.is_empty()) {
                menu_items = items;
                menu_read_at = Some(Instant::now());
            }
        }
        if menu_items.is_empty() {
            continue;
        }
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            counts.walked_away.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let item = &menu_items[random.below(menu_items.len() as u64) as usize];
        let command = PlaceOrder {
            order_id: format!("order-{seed}-{order_index:05}"),
            customer: NAMES[random.below(NAMES.len() as u64) as usize].to_owned(),
            item: item.item.clone(),
            price_cents: item.price_cents,
            takeaway: random.below(2) == 1,
        };
        let old_app = order_index % ORDERS_OLD_APP_EVERY == 0;
        counts.ordered.fetch_add(1, Ordering::Relaxed);
        let client = client.clone();
        let counts = Arc::clone(&counts);
        orders.spawn(async move {
            place(&client, &command, old_app, &counts).await;
            drop(permit);
        });
    }
    // Each order ends after at most ORDER_ASKS_MAX bounded asks.
    while orders.join_next().await.is_some() {}
}

/// Asks for one order until it is accepted, at most [`ORDER_ASKS_MAX`]
/// times. Each ask is a new request (a new request id), the order id the
/// same: the orders service takes the order once. The old app sends it at
/// version 1, without `takeaway`.
async fn place(client: &Client, command: &PlaceOrder, old_app: bool, counts: &CustomerCounts) {
    for ask in 1..=ORDER_ASKS_MAX {
        if ask > 1 {
            counts.asked_again.fetch_add(1, Ordering::Relaxed);
        }
        let answered = async {
            let request_hash = if old_app {
                let old = PlaceOrderV1 {
                    order_id: command.order_id.clone(),
                    customer: command.customer.clone(),
                    item: command.item.clone(),
                    price_cents: command.price_cents,
                };
                let request = Request::expiring_in(&old, ORDER_REQUEST_EXPIRY)?;
                client.send_request(&request).await?.hash()
            } else {
                let request = Request::expiring_in(command, ORDER_REQUEST_EXPIRY)?;
                client.send_request(&request).await?.hash()
            };
            // The reply answers the request, whichever version it was.
            client
                .pending_request::<PlaceOrder>(request_hash)
                .reply::<OrderAccepted>(ORDER_REPLY_TIMEOUT)
                .await
        };
        match answered.await {
            Ok(_) => {
                counts.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(error) => {
                tracing::debug!(order_id = %command.order_id, ask, %error, "no answer yet");
            }
        }
    }
    counts.unanswered.fetch_add(1, Ordering::Relaxed);
}

/// The menu as it stands: every item without a tombstone, or `None` if
/// Cairn cannot be read right now.
async fn read_menu(client: &Client) -> Option<Vec<MenuItem>> {
    let anchor = to_canonical_fact(&menu()).ok()?.hash;
    let items = client
        .successors::<MenuItem>(&anchor)
        .role("menu")
        .without::<MenuItemWithdrawn>()
        .all()
        .await
        .ok()?;
    Some(items.into_iter().map(|typed| typed.value).collect())
}
