//! The stock service: publishes the menu (through its outbox: a
//! `Cafe.Menu` anchor and one `Cafe.MenuItem` per item, the same facts at
//! every start), and sets one item aside for each paid order
//! (`Cafe.PaymentCaptured`), in its inbox's transaction. When an item runs
//! out it withdraws it from the menu with a tombstone
//! (`Cafe.MenuItemWithdrawn`); an order for it that still arrives (its
//! customer read the menu before) gets `Cafe.OutOfStock`, and the order's
//! fulfilment saga refunds it.
//!
//! The croissant delivery is a **durable timer**: when croissants sell
//! out, stock sets the one-shot timer `restock.croissant` at the
//! delivery's instant (70 % of the run, after the schedule's `kill -9` of
//! Cairn), whose fact `Cafe.RestockDue` Cairn writes when it is due —
//! whether or not Cairn was restarted, or stock was running, in between.
//! Stock consumes it: the shelf is filled again and the croissant comes
//! back on the menu at the new batch's price (a new `Cafe.MenuItem`, so
//! not the withdrawn one). Setting the timer is idempotent (the same
//! definition changes nothing) and is done after the transaction that
//! sold the last one, on every delivery until the restock, so a crash in
//! between cannot lose it.

use std::future::Future;

use cairn_client::{to_canonical_fact, Client, Service, TimerDefinition, TypedFact};
use cairn_sql::{with_inbox, Outbox};
use sqlx::SqlitePool;

use crate::error::DemoError;
use crate::facts::{
    menu, MenuItem, MenuItemWithdrawn, OutOfStock, PaymentCaptured, RestockDue, StockReserved,
};
use crate::limits::{ATTEMPTS_MAX, RESTOCK_PRICE_CENTS};
use crate::services::{
    definition, drain_relay, handler_error, open_database, start_relay, subscriber, ServiceOptions,
};

/// The subscription of paid orders.
pub const SUBSCRIPTION: &str = "stock";
/// The subscription of deliveries (the restock timer's facts).
pub const RESTOCK_SUBSCRIPTION: &str = "stock-restock";
/// The item that runs out during a run.
pub const SCARCE_ITEM: &str = "croissant";
/// Stock of the items that never run out.
const PLENTY: i64 = 1_000_000_000;

/// The menu: item and price in cents.
pub const MENU: [(&str, i64); 5] = [
    ("espresso", 250),
    ("flat white", 350),
    ("cappuccino", 340),
    ("tea", 200),
    (SCARCE_ITEM, 280),
];

/// The `Cafe.MenuItem` of `item` at `price_cents`: computed, not looked
/// up, since a fact's hash is its content's.
pub fn menu_item(item: &str, price_cents: i64) -> Result<MenuItem, DemoError> {
    Ok(MenuItem {
        item: item.to_owned(),
        price_cents,
        menu: to_canonical_fact(&menu())?.hash,
    })
}

/// The tombstone that takes `item` at `price_cents` off the menu.
pub fn sold_out(item: &str, price_cents: i64) -> Result<MenuItemWithdrawn, DemoError> {
    Ok(MenuItemWithdrawn {
        reason: "sold out".to_owned(),
        item: to_canonical_fact(&menu_item(item, price_cents)?)?.hash,
    })
}

/// The name of the restock timer of `item`.
pub fn restock_timer_name(item: &str) -> String {
    format!("restock.{item}")
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (
    item TEXT PRIMARY KEY,
    remaining INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    restocked INTEGER NOT NULL DEFAULT 0
)";

/// Runs the stock service until `stop`.
pub async fn run(options: ServiceOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, "stock").await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    let mut transaction = pool.begin().await?;
    Outbox::new()
        .enqueue_value(&mut transaction, &menu())
        .await?;
    for (item, price_cents) in MENU {
        let remaining = if item == SCARCE_ITEM {
            options.croissants
        } else {
            PLENTY
        };
        // The first start fills the shelves; a restart keeps what is left.
        sqlx::query(
            "INSERT OR IGNORE INTO stock (item, remaining, price_cents) VALUES ($1, $2, $3)",
        )
        .bind(item)
        .bind(remaining)
        .bind(price_cents)
        .execute(&mut *transaction)
        .await?;
        Outbox::new()
            .enqueue_value(&mut transaction, &menu_item(item, price_cents)?)
            .await?;
    }
    transaction.commit().await?;
    let client = options.client()?;
    let relay = start_relay(&pool, &client);
    let relay_handle = relay.handle();
    let reserve_once = with_inbox(pool.clone(), |delivery, transaction| {
        Box::pin(async move {
            let paid = delivery.fact_as::<PaymentCaptured>()?;
            let item = paid.value.item.clone();
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT remaining, price_cents FROM stock WHERE item = $1")
                    .bind(&item)
                    .fetch_optional(&mut **transaction)
                    .await?;
            let outbox = Outbox::new();
            match row {
                Some((remaining, price_cents)) if remaining > 0 => {
                    sqlx::query("UPDATE stock SET remaining = remaining - 1 WHERE item = $1")
                        .bind(&item)
                        .execute(&mut **transaction)
                        .await?;
                    let reserved = StockReserved {
                        order_id: paid.value.order_id.clone(),
                        item: item.clone(),
                        order: paid.value.order,
                    };
                    outbox.enqueue_value(transaction, &reserved).await?;
                    if remaining == 1 {
                        let withdrawn = sold_out(&item, price_cents).map_err(handler_error)?;
                        outbox.enqueue_value(transaction, &withdrawn).await?;
                        tracing::info!(%item, "sold out: withdrawn from the menu");
                    }
                }
                _ => {
                    let out = OutOfStock {
                        order_id: paid.value.order_id.clone(),
                        item,
                        charge_id: paid.value.charge_id.clone(),
                        order: paid.value.order,
                    };
                    outbox.enqueue_value(transaction, &out).await?;
                }
            }
            Ok(())
        })
    });
    let timers = client.clone();
    let timer_pool = pool.clone();
    let restock_at_ms = options.restock_at_ms;
    let handler = move |delivery| {
        let reserving = reserve_once(delivery);
        let relay = relay_handle.clone();
        let client = timers.clone();
        let pool = timer_pool.clone();
        async move {
            reserving.await?;
            relay.notify();
            set_restock_timer(&pool, &client, restock_at_ms)
                .await
                .map_err(handler_error)?;
            Ok(())
        }
    };
    let croissants = options.croissants;
    let restock_once = with_inbox(pool.clone(), move |delivery, transaction| {
        Box::pin(async move {
            let due = delivery.fact_as::<RestockDue>()?.value;
            let restocked = sqlx::query(
                "UPDATE stock SET remaining = remaining + $1, price_cents = $2, restocked = 1
                 WHERE item = $3 AND restocked = 0",
            )
            .bind(croissants)
            .bind(due.price_cents)
            .bind(&due.item)
            .execute(&mut **transaction)
            .await?
            .rows_affected()
                == 1;
            if restocked {
                let back = menu_item(&due.item, due.price_cents).map_err(handler_error)?;
                Outbox::new().enqueue_value(transaction, &back).await?;
                tracing::info!(item = %due.item, "the delivery came: back on the menu");
            }
            Ok(())
        })
    });
    let restock_relay = relay.handle();
    let restock_handler = move |delivery| {
        let restocking = restock_once(delivery);
        let relay = restock_relay.clone();
        async move {
            restocking.await?;
            relay.notify();
            Ok(())
        }
    };
    Service::new("stock")
        .subscriber(subscriber(
            &client,
            SUBSCRIPTION,
            definition(PaymentCaptured::TYPE_NAME, ATTEMPTS_MAX),
            handler,
        ))
        .subscriber(subscriber(
            &client,
            RESTOCK_SUBSCRIPTION,
            definition(RestockDue::TYPE_NAME, ATTEMPTS_MAX),
            restock_handler,
        ))
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    Ok(())
}

/// Sets the croissants' restock timer if they sold out and were not
/// restocked yet; setting the same timer again changes nothing.
async fn set_restock_timer(
    pool: &SqlitePool,
    client: &Client,
    restock_at_ms: u64,
) -> Result<(), DemoError> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT remaining, price_cents, restocked FROM stock WHERE item = $1")
            .bind(SCARCE_ITEM)
            .fetch_optional(pool)
            .await?;
    let Some((0, price_cents, 0)) = row else {
        return Ok(());
    };
    let due = RestockDue {
        item: SCARCE_ITEM.to_owned(),
        price_cents: RESTOCK_PRICE_CENTS,
        withdrawn: to_canonical_fact(&sold_out(SCARCE_ITEM, price_cents)?)?.hash,
    };
    let template: serde_json::Value =
        serde_json::from_slice(&to_canonical_fact(&due)?.canonical)
            .map_err(|error| DemoError::Cairn(format!("restock template: {error}")))?;
    client
        .put_timer(
            &restock_timer_name(SCARCE_ITEM),
            &TimerDefinition::at_ms(restock_at_ms, template),
        )
        .await?;
    Ok(())
}
