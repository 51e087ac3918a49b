//! Billing's handler of `Shop.OrderPlaced` deliveries, and its `charges`
//! table.
//!
//! One inbox transaction per order: record the order fact in the inbox,
//! charge the gateway, insert the charge and enqueue its
//! `Shop.PaymentSucceeded` fact in the outbox. A decline rolls it all back
//! and nacks the delivery with the decline's text, so Cairn redelivers it
//! with backoff; on the last attempt billing also publishes
//! `Shop.PaymentFailed`, and Cairn keeps the order as a dead letter. After
//! a charge, billing sends `orders` a payment notice, also when the order
//! is delivered again after a crash or a lost ack.

use cairn_client::{to_canonical_fact, ClientError, Delivery, HandlerError, Hash};
use cairn_sql::{Inbox, InboxError, Outbox, OutboxError, Processed, RelayHandle};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::billing::gateway::{self, Decline};
use crate::billing::notice::NoticeSender;
use crate::error::error_chain;
use crate::facts::{unix_time_ms, OrderPlaced, PaymentFailed, PaymentSucceeded};
use crate::orders::store::PaymentNotice;

/// The inbox consumer name of billing.
pub const INBOX_CONSUMER: &str = "billing";

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

/// One charge, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRecord {
    /// The order's id in `orders`.
    pub order_id: String,
    /// The gateway's reference.
    pub charge_id: String,
    /// What was charged, in cents.
    pub amount_cents: i64,
    /// The delivery attempt on which it went through.
    pub attempt: u32,
    /// The hash of its `Shop.PaymentSucceeded` fact.
    pub payment_fact: String,
}

impl ChargeRecord {
    fn notice(&self) -> PaymentNotice {
        PaymentNotice {
            payment_fact: self.payment_fact.clone(),
            charge_id: self.charge_id.clone(),
            amount_cents: self.amount_cents,
        }
    }
}

async fn insert_charge(
    connection: &mut SqliteConnection,
    order_fact: &Hash,
    charge: &ChargeRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO charges
            (order_fact, order_id, charge_id, amount_cents, attempt, payment_fact, charged_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order_fact.to_hex())
    .bind(&charge.order_id)
    .bind(&charge.charge_id)
    .bind(charge.amount_cents)
    .bind(charge.attempt)
    .bind(&charge.payment_fact)
    .bind(unix_time_ms())
    .execute(connection)
    .await?;
    Ok(())
}

async fn charge_of(
    pool: &SqlitePool,
    order_fact: &Hash,
) -> Result<Option<ChargeRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT order_id, charge_id, amount_cents, attempt, payment_fact FROM charges
         WHERE order_fact = $1",
    )
    .bind(order_fact.to_hex())
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(ChargeRecord {
            order_id: row.try_get(0)?,
            charge_id: row.try_get(1)?,
            amount_cents: row.try_get(2)?,
            attempt: row.try_get(3)?,
            payment_fact: row.try_get(4)?,
        })
    })
    .transpose()
}

/// Why an order was not charged this time. Every case rolls back.
#[derive(Debug, thiserror::Error)]
enum ChargeError {
    #[error(transparent)]
    Declined(#[from] Decline),
    #[error("cannot build the payment fact")]
    Fact(#[from] ClientError),
    #[error("the billing database failed")]
    Database(#[from] sqlx::Error),
    #[error("cannot enqueue the payment fact")]
    Outbox(#[from] OutboxError),
}

/// What the handler of the `billing` subscription needs.
#[derive(Clone)]
pub struct Billing {
    /// Billing's database.
    pub pool: SqlitePool,
    /// Billing's inbox.
    pub inbox: Inbox,
    /// Billing's outbox.
    pub outbox: Outbox,
    /// Wakes the relay after a commit.
    pub relay: RelayHandle,
    /// Sends payment notices to `orders`.
    pub notices: NoticeSender,
    /// The subscription's `max_attempts`: on that attempt a decline is
    /// final.
    pub attempts_max: u32,
}

impl Billing {
    /// Handles one delivery of a `Shop.OrderPlaced` fact.
    pub async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let order = delivery.fact_as::<OrderPlaced>()?;
        let order_fact = order.hash;
        let attempt = delivery.attempt();
        let order_value = order.value;
        let order_id = order_value.order_id.clone();
        let outbox = self.outbox.clone();
        tracing::info!(%order_id, customer = %order_value.customer, attempt, %order_fact, "charging order");
        let processed = self
            .inbox
            .process(&self.pool, &order_fact, |transaction| {
                Box::pin(async move {
                    let charge = gateway::charge(&order_value, &order_fact, attempt)?;
                    let payment = PaymentSucceeded {
                        order_id: order_value.order_id.clone(),
                        charge_id: charge.charge_id,
                        amount_cents: order_value.total_cents,
                        attempt,
                        order: Some(order_fact),
                    };
                    let fact = to_canonical_fact(&payment)?;
                    let record = ChargeRecord {
                        order_id: payment.order_id,
                        charge_id: payment.charge_id,
                        amount_cents: payment.amount_cents,
                        attempt,
                        payment_fact: fact.hash.to_hex(),
                    };
                    insert_charge(transaction, &order_fact, &record).await?;
                    outbox.enqueue(transaction, &[fact]).await?;
                    Ok::<_, ChargeError>(record)
                })
            })
            .await;
        match processed {
            Ok(Processed::First(charge)) => {
                self.relay.notify();
                tracing::info!(%order_id, charge_id = %charge.charge_id, attempt, payment_fact = %charge.payment_fact, "charged; Shop.PaymentSucceeded committed to the outbox with the inbox record");
                self.send_notice(&charge).await;
                Ok(())
            }
            Ok(Processed::Duplicate) => {
                tracing::info!(%order_id, attempt, "order charged before (redelivery); not charging again");
                match charge_of(&self.pool, &order_fact).await {
                    Ok(Some(charge)) => self.send_notice(&charge).await,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%order_id, "cannot read the charge: {}", error_chain(&error))
                    }
                }
                Ok(())
            }
            Err(InboxError::Handler(ChargeError::Declined(decline))) => {
                if attempt >= self.attempts_max {
                    tracing::warn!(%order_id, attempt, "{decline}; last attempt: the order becomes a dead letter");
                    self.publish_failure(&order_id, &order_fact, &decline, attempt)
                        .await;
                } else {
                    tracing::warn!(%order_id, attempt, attempts_max = self.attempts_max, "{decline}; Cairn will deliver it again");
                }
                Err(HandlerError::from(decline))
            }
            Err(error) => {
                let text = error_chain(&error);
                tracing::error!(%order_id, attempt, "charging failed: {text}");
                Err(HandlerError::from(text))
            }
        }
    }

    /// Publishes `Shop.PaymentFailed` for an order declined on its last
    /// attempt. The fact is the same for the same decline, so doing this
    /// again (after a replay of the dead letter) enqueues nothing new.
    async fn publish_failure(
        &self,
        order_id: &str,
        order_fact: &Hash,
        decline: &Decline,
        attempt: u32,
    ) {
        let failed = PaymentFailed {
            order_id: order_id.to_owned(),
            reason: decline.to_string(),
            attempts: attempt,
            order: Some(*order_fact),
        };
        let published = async {
            let fact = to_canonical_fact(&failed)?;
            let mut transaction = self.pool.begin().await?;
            self.outbox.enqueue(&mut transaction, &[fact]).await?;
            transaction.commit().await?;
            Ok::<_, ChargeError>(())
        };
        match published.await {
            Ok(()) => {
                self.relay.notify();
                tracing::info!(%order_id, "Shop.PaymentFailed committed to the outbox");
            }
            Err(error) => {
                tracing::error!(%order_id, "cannot enqueue Shop.PaymentFailed: {}", error_chain(&error))
            }
        }
    }

    /// Tells `orders` about a charge. A failure is logged and not retried
    /// further: the payment fact in Cairn is what `orders` relies on; the
    /// notice only shows a resilient synchronous call beside it.
    async fn send_notice(&self, charge: &ChargeRecord) {
        match self.notices.send(&charge.order_id, &charge.notice()).await {
            Ok(replayed) => {
                tracing::info!(order_id = %charge.order_id, replayed, "orders acknowledged the payment notice")
            }
            Err(error) => {
                tracing::warn!(order_id = %charge.order_id, "payment notice to orders failed: {}", error_chain(&error))
            }
        }
    }
}
