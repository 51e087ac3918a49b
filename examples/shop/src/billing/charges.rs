//! Billing's handler of `Shop.OrderPlaced` deliveries, and its `charges`
//! table.
//!
//! [`charge`] runs inside the inbox's transaction
//! ([`cairn_sql::with_inbox`]): charge the gateway, insert the charge and
//! enqueue its `Shop.PaymentSucceeded` fact in the outbox, all committed
//! with the inbox's record of the order, so a redelivered order is never
//! charged twice. A decline rolls it all back and nacks the delivery with
//! the decline's text, so Cairn redelivers it with backoff; when the last
//! attempt fails, [`Billing::handle`] also publishes `Shop.PaymentFailed`,
//! and Cairn keeps the order as a dead letter. After a charge, billing
//! sends `orders` a payment notice, also when the order is delivered again
//! after a crash or a lost ack.

use std::error::Error;
use std::future::Future;

use cairn_client::{Delivery, HandlerError, Hash, Typed};
use cairn_sql::{Outbox, RelayHandle};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::billing::gateway;
use crate::billing::notice::NoticeSender;
use crate::facts::{unix_time_ms, OrderPlaced, PaymentFailed, PaymentSucceeded};
use crate::limits::BILLING_ATTEMPTS_MAX;
use crate::orders::store::PaymentNotice;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS charges (
    order_fact TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    charge_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    payment_fact TEXT NOT NULL,
    charged_at_ms INTEGER NOT NULL
)";

/// Creates the `charges` table if it does not exist yet. Its primary key
/// on the order fact is a second guard against charging an order twice.
pub async fn create_tables(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query(SCHEMA).execute(pool).await?;
    Ok(())
}

/// Charges the order delivered, in the inbox's `transaction`: the charge
/// row and its `Shop.PaymentSucceeded` fact commit together with the
/// inbox's record of the order, or not at all.
pub async fn charge(
    delivery: Delivery,
    transaction: &mut Transaction<'static, Sqlite>,
) -> Result<(), HandlerError> {
    let order = delivery.fact_as::<OrderPlaced>()?;
    let attempt = delivery.attempt();
    let charge = gateway::charge(&order.value, &order.hash, attempt)?;
    let payment = PaymentSucceeded {
        order_id: order.value.order_id,
        charge_id: charge.charge_id,
        amount_cents: order.value.total_cents,
        attempt,
        order: order.hash,
    };
    let payment_fact = Outbox::new().enqueue_value(transaction, &payment).await?;
    sqlx::query(
        "INSERT INTO charges
            (order_fact, order_id, charge_id, amount_cents, attempt, payment_fact, charged_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order.hash.to_hex())
    .bind(&payment.order_id)
    .bind(&payment.charge_id)
    .bind(payment.amount_cents)
    .bind(attempt)
    .bind(payment_fact.to_hex())
    .bind(unix_time_ms())
    .execute(&mut **transaction)
    .await?;
    tracing::info!(order_id = %payment.order_id, charge_id = %payment.charge_id, attempt, %payment_fact, "charged; Shop.PaymentSucceeded goes into the outbox with the inbox record");
    Ok(())
}

/// The notice of the charge of the order whose fact is `order_fact`, with
/// the order's id, if it was charged.
async fn notice_of(
    pool: &SqlitePool,
    order_fact: &Hash,
) -> Result<Option<(String, PaymentNotice)>, sqlx::Error> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT order_id, payment_fact, charge_id, amount_cents FROM charges
         WHERE order_fact = $1",
    )
    .bind(order_fact.to_hex())
    .fetch_optional(pool)
    .await?;
    let Some((order_id, payment_fact, charge_id, amount_cents)) = row else {
        return Ok(None);
    };
    let payment_fact = payment_fact
        .parse()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    let notice = PaymentNotice {
        payment_fact,
        charge_id,
        amount_cents,
    };
    Ok(Some((order_id, notice)))
}

/// What the handler of the `billing` subscription needs besides its inbox.
#[derive(Clone)]
pub struct Billing {
    /// Billing's database.
    pub pool: SqlitePool,
    /// Wakes the relay after a commit.
    pub relay: RelayHandle,
    /// Sends payment notices to `orders`.
    pub notices: NoticeSender,
}

impl Billing {
    /// Handles one delivery of a `Shop.OrderPlaced` fact; `charging` is
    /// its [`charge`] through the inbox, not started yet. What happens
    /// around the charge (publishing a failure, the notice) is outside the
    /// inbox's transaction: a failure must outlive the charge's rollback,
    /// and a notice goes out only after the commit.
    pub async fn handle(
        self,
        delivery: Delivery,
        charging: impl Future<Output = Result<(), HandlerError>>,
    ) -> Result<(), HandlerError> {
        let order = delivery.fact_as::<OrderPlaced>()?;
        let (order_id, attempt) = (&order.value.order_id, delivery.attempt());
        tracing::info!(%order_id, customer = %order.value.customer, attempt, order_fact = %order.hash, "charging order");
        if let Err(error) = charging.await {
            if attempt < BILLING_ATTEMPTS_MAX {
                tracing::warn!(%order_id, attempt, "{}; Cairn will deliver it again", error.message());
            } else {
                tracing::warn!(%order_id, attempt, "{}; last attempt: the order becomes a dead letter", error.message());
                self.publish_failure(&order, error.message(), attempt).await;
            }
            return Err(error);
        }
        self.relay.notify();
        // Charged now or on an earlier delivery (then the inbox skipped the
        // charge): either way `orders` hears of it, again if need be.
        match notice_of(&self.pool, &order.hash).await {
            Ok(Some((order_id, notice))) => self.send_notice(&order_id, &notice).await,
            Ok(None) => {}
            Err(error) => {
                let error = &error as &dyn Error;
                tracing::warn!(%order_id, error, "cannot read the charge");
            }
        }
        Ok(())
    }

    /// Publishes `Shop.PaymentFailed` for an order whose last attempt
    /// failed. The fact is the same for the same failure, so doing this
    /// again (after a replay of the dead letter) enqueues nothing new.
    async fn publish_failure(&self, order: &Typed<OrderPlaced>, reason: &str, attempt: u32) {
        let failed = PaymentFailed {
            order_id: order.value.order_id.clone(),
            reason: reason.to_owned(),
            attempts: attempt,
            order: order.hash,
        };
        let published = async {
            let mut transaction = self.pool.begin().await?;
            Outbox::new()
                .enqueue_value(&mut transaction, &failed)
                .await?;
            transaction.commit().await?;
            Ok::<_, Box<dyn Error + Send + Sync>>(())
        };
        match published.await {
            Ok(()) => {
                self.relay.notify();
                tracing::info!(order_id = %failed.order_id, "Shop.PaymentFailed committed to the outbox");
            }
            Err(error) => {
                let error = &*error as &dyn Error;
                tracing::error!(order_id = %failed.order_id, error, "cannot enqueue Shop.PaymentFailed");
            }
        }
    }

    /// Tells `orders` about a charge. A failure is logged and not retried
    /// further: the payment fact in Cairn is what `orders` relies on; the
    /// notice only shows a resilient synchronous call beside it.
    async fn send_notice(&self, order_id: &str, notice: &PaymentNotice) {
        match self.notices.send(order_id, notice).await {
            Ok(replayed) => {
                tracing::info!(%order_id, replayed, "orders acknowledged the payment notice")
            }
            Err(error) => {
                let error = &error as &dyn Error;
                tracing::warn!(%order_id, error, "payment notice to orders failed");
            }
        }
    }
}
