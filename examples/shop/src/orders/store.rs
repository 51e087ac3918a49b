//! The `orders` service's own tables and statements: orders with their
//! payment status, and the payment notices `billing` sent over HTTP.
//!
//! The payment status changes only through [`apply_payment`], called in
//! the inbox's transaction, so each payment fact changes it at most once;
//! `payment_facts_applied` counts those changes to make that visible.

use cairn_client::Hash;
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::facts::{LineItem, OrderPlaced};
use crate::limits::ORDERS_LIST_MAX;

/// Waiting for billing.
pub const STATUS_PLACED: &str = "placed";
/// Billing charged the order.
pub const STATUS_PAID: &str = "paid";
/// Billing gave up charging the order.
pub const STATUS_PAYMENT_FAILED: &str = "payment_failed";

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        idempotency_key TEXT UNIQUE,
        customer TEXT NOT NULL,
        items TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        placed_at_ms INTEGER NOT NULL,
        order_fact TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        payment_fact TEXT,
        failure_reason TEXT,
        payment_facts_applied INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS payment_notices (
        payment_fact TEXT PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES orders (id),
        charge_id TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL
    )",
];

/// An order as `GET /orders/{id}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct OrderView {
    /// The order's id.
    pub id: String,
    /// Who ordered.
    pub customer: String,
    /// What was ordered.
    pub items: Vec<LineItem>,
    /// What to charge, in cents.
    pub total_cents: i64,
    /// When it was placed, milliseconds since the Unix epoch.
    pub placed_at_ms: i64,
    /// `placed`, `paid` or `payment_failed`.
    pub status: String,
    /// The hash of its `Shop.OrderPlaced` fact.
    pub order_fact: String,
    /// The hash of the payment fact that set the status, if any.
    pub payment_fact: Option<String>,
    /// Why the payment failed, if it did.
    pub failure_reason: Option<String>,
    /// Payment facts that changed this order (1 once settled: each fact is
    /// applied exactly once).
    pub payment_facts_applied: i64,
    /// Payment notices received from billing over HTTP (1 once notified:
    /// repeated notices are recognised).
    pub payment_notices: i64,
}

/// A payment fact's outcome, as applied to its order.
#[derive(Clone, Debug)]
pub enum PaymentOutcome {
    /// `Shop.PaymentSucceeded`.
    Succeeded,
    /// `Shop.PaymentFailed`, with its reason.
    Failed {
        /// Why the payment failed.
        reason: String,
    },
}

/// What [`apply_payment`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The order (by id) took the new status.
    Changed {
        /// The order's id.
        order_id: String,
        /// Its new status.
        status: &'static str,
    },
    /// The order is paid already: a failure reported later changes nothing.
    AlreadyPaid {
        /// The order's id.
        order_id: String,
    },
    /// No order has this fact: it belongs to another `orders` database.
    UnknownOrder,
}

/// Creates the tables if they do not exist yet.
pub async fn create_tables(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for statement in SCHEMA {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// Inserts a new order, `placed`, in the caller's transaction.
pub async fn insert_order(
    connection: &mut SqliteConnection,
    order: &OrderPlaced,
    idempotency_key: Option<&str>,
    order_fact: &Hash,
) -> Result<(), sqlx::Error> {
    let items = serde_json::to_string(&order.items)
        .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query(
        "INSERT INTO orders
            (id, idempotency_key, customer, items, total_cents, placed_at_ms, order_fact, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&order.order_id)
    .bind(idempotency_key)
    .bind(&order.customer)
    .bind(items)
    .bind(order.total_cents)
    .bind(order.placed_at_ms)
    .bind(order_fact.to_hex())
    .bind(STATUS_PLACED)
    .execute(connection)
    .await?;
    Ok(())
}

const VIEW_SELECT: &str = "SELECT o.id, o.customer, o.items, o.total_cents, o.placed_at_ms,
        o.status, o.order_fact, o.payment_fact, o.failure_reason, o.payment_facts_applied,
        (SELECT COUNT(*) FROM payment_notices n WHERE n.order_id = o.id)
     FROM orders o";

fn view_of(row: &SqliteRow) -> Result<OrderView, sqlx::Error> {
    let items: String = row.try_get(2)?;
    Ok(OrderView {
        id: row.try_get(0)?,
        customer: row.try_get(1)?,
        items: serde_json::from_str(&items)
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
        total_cents: row.try_get(3)?,
        placed_at_ms: row.try_get(4)?,
        status: row.try_get(5)?,
        order_fact: row.try_get(6)?,
        payment_fact: row.try_get(7)?,
        failure_reason: row.try_get(8)?,
        payment_facts_applied: row.try_get(9)?,
        payment_notices: row.try_get(10)?,
    })
}

/// The order with this id.
pub async fn order_by_id(pool: &SqlitePool, id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    let row = sqlx::query(&format!("{VIEW_SELECT} WHERE o.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(view_of).transpose()
}

/// The order placed with this `Idempotency-Key`, if any: the durable
/// guard against a repeated order after a restart, when the idempotency
/// layer's in-memory answers are gone.
pub async fn order_by_idempotency_key(
    pool: &SqlitePool,
    key: &str,
) -> Result<Option<OrderView>, sqlx::Error> {
    let row = sqlx::query(&format!("{VIEW_SELECT} WHERE o.idempotency_key = $1"))
        .bind(key)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(view_of).transpose()
}

/// The newest orders (at most [`ORDERS_LIST_MAX`]), of one customer if
/// given.
pub async fn list_orders(
    pool: &SqlitePool,
    customer: Option<&str>,
) -> Result<Vec<OrderView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "{VIEW_SELECT} WHERE ($1 IS NULL OR o.customer = $1)
         ORDER BY o.placed_at_ms DESC, o.id LIMIT $2"
    ))
    .bind(customer)
    .bind(ORDERS_LIST_MAX)
    .fetch_all(pool)
    .await?;
    rows.iter().map(view_of).collect()
}

/// Applies the payment fact `payment_fact` to the order whose
/// `Shop.OrderPlaced` fact is `order_fact`, in the caller's (inbox)
/// transaction. A success always wins; a failure never overrides a
/// success (a replayed dead letter may be charged after all).
pub async fn apply_payment(
    connection: &mut SqliteConnection,
    order_fact: &Hash,
    payment_fact: &Hash,
    outcome: &PaymentOutcome,
) -> Result<Applied, sqlx::Error> {
    let (status, reason) = match outcome {
        PaymentOutcome::Succeeded => (STATUS_PAID, None),
        PaymentOutcome::Failed { reason } => (STATUS_PAYMENT_FAILED, Some(reason.as_str())),
    };
    let changed: Option<String> = sqlx::query_scalar(
        "UPDATE orders
         SET status = $1, payment_fact = $2, failure_reason = $3,
             payment_facts_applied = payment_facts_applied + 1
         WHERE order_fact = $4 AND ($1 = 'paid' OR status <> 'paid')
         RETURNING id",
    )
    .bind(status)
    .bind(payment_fact.to_hex())
    .bind(reason)
    .bind(order_fact.to_hex())
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(order_id) = changed {
        return Ok(Applied::Changed { order_id, status });
    }
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM orders WHERE order_fact = $1")
            .bind(order_fact.to_hex())
            .fetch_optional(&mut *connection)
            .await?;
    Ok(match existing {
        Some(order_id) => Applied::AlreadyPaid { order_id },
        None => Applied::UnknownOrder,
    })
}

/// A payment notice from billing.
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
pub struct PaymentNotice {
    /// The hash of the `Shop.PaymentSucceeded` fact.
    pub payment_fact: Hash,
    /// The gateway's reference of the charge.
    pub charge_id: String,
    /// What was charged, in cents.
    pub amount_cents: i64,
}

/// Records a payment notice for the order `order_id` once (a repeated
/// notice of the same payment fact changes nothing); `false` if there is
/// no such order.
pub async fn record_notice(
    pool: &SqlitePool,
    order_id: &str,
    notice: &PaymentNotice,
    received_at_ms: i64,
) -> Result<bool, sqlx::Error> {
    // One statement, so that no read transaction has to turn into a write
    // one (which SQLite may refuse under concurrent writers).
    let inserted = sqlx::query(
        "INSERT INTO payment_notices (payment_fact, order_id, charge_id, amount_cents, received_at_ms)
         SELECT $1, id, $3, $4, $5 FROM orders WHERE id = $2
         ON CONFLICT (payment_fact) DO NOTHING",
    )
    .bind(notice.payment_fact.to_hex())
    .bind(order_id)
    .bind(&notice.charge_id)
    .bind(notice.amount_cents)
    .bind(received_at_ms)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    let known: Option<String> = sqlx::query_scalar("SELECT id FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    Ok(known.is_some())
}
