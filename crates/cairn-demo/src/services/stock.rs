//! The stock service: publishes the menu (through its outbox: a
//! `Cafe.Menu` anchor and one `Cafe.MenuItem` per item, the same facts at
//! every start), and sets one item aside for each paid order
//! (`Cafe.PaymentCaptured`), in its inbox's transaction. When an item runs
//! out it withdraws it from the menu with a tombstone
//! (`Cafe.MenuItemWithdrawn`); an order for it that still arrives (its
//! customer read the menu before) gets `Cafe.OutOfStock`, which payments
//! refunds.

use std::future::Future;

use cairn_client::{to_canonical_fact, Service, TypedFact};
use cairn_sql::{with_inbox, Outbox};

use crate::error::DemoError;
use crate::facts::{menu, MenuItem, MenuItemWithdrawn, OutOfStock, PaymentCaptured, StockReserved};
use crate::limits::ATTEMPTS_MAX;
use crate::services::{
    definition, drain_relay, open_database, start_relay, subscriber, ServiceOptions,
};

/// The subscription of paid orders.
pub const SUBSCRIPTION: &str = "stock";
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

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (
    item TEXT PRIMARY KEY,
    remaining INTEGER NOT NULL,
    price_cents INTEGER NOT NULL
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
                        let withdrawn = MenuItemWithdrawn {
                            reason: "sold out".to_owned(),
                            item: to_canonical_fact(&menu_item(&item, price_cents)?)?.hash,
                        };
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
    let handler = move |delivery| {
        let reserving = reserve_once(delivery);
        let relay = relay_handle.clone();
        async move {
            reserving.await?;
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
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    Ok(())
}
