//! How `orders` learns the outcome of payments: subscribers on
//! `Shop.PaymentSucceeded` and `Shop.PaymentFailed` whose handler applies
//! each payment fact to its order (named in the role `order`) inside the
//! inbox's transaction, so that a redelivered fact changes nothing.

use cairn_client::{Client, Delivery, HandlerError, Hash, TypedFact};
use cairn_sql::{Inbox, InboxError, Processed};
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::error::{error_chain, ServiceError};
use crate::facts::{PaymentFailed, PaymentSucceeded, ORDER_ROLE};
use crate::limits::{
    ORDERS_ATTEMPTS_MAX, ORDERS_BACKOFF_INITIAL_MS, ORDERS_BACKOFF_MAX_MS,
    ORDERS_FAILED_SUBSCRIPTION, ORDERS_SUCCEEDED_SUBSCRIPTION,
};
use crate::orders::store::{self, Applied, PaymentOutcome};
use crate::subscriptions::{definition, ensure_subscription, run_subscriber};

/// The inbox consumer name of both payment subscribers (a fact's hash is
/// unique across both types).
const INBOX_CONSUMER: &str = "orders-payments";
/// Lease of a payment fact: applying one is a single short transaction.
const PAYMENTS_LEASE_MS: u64 = 10_000;

/// Which payment facts a subscriber handles.
#[derive(Clone, Copy, Debug)]
pub enum PaymentKind {
    /// `Shop.PaymentSucceeded`.
    Succeeded,
    /// `Shop.PaymentFailed`.
    Failed,
}

impl PaymentKind {
    fn subscription(self) -> &'static str {
        match self {
            PaymentKind::Succeeded => ORDERS_SUCCEEDED_SUBSCRIPTION,
            PaymentKind::Failed => ORDERS_FAILED_SUBSCRIPTION,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            PaymentKind::Succeeded => PaymentSucceeded::TYPE_NAME,
            PaymentKind::Failed => PaymentFailed::TYPE_NAME,
        }
    }
}

/// Why a payment fact could not be applied; the text goes with the nack.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("no order has the fact {0}")]
    UnknownOrder(Hash),
    #[error("the orders database failed")]
    Database(#[from] sqlx::Error),
}

/// Creates the subscription for `kind` (waiting for Cairn if needed) and
/// applies its facts until `shutdown`.
pub async fn listen(
    client: Client,
    pool: SqlitePool,
    kind: PaymentKind,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let name = kind.subscription();
    let definition = definition(
        kind.type_name(),
        PAYMENTS_LEASE_MS,
        ORDERS_ATTEMPTS_MAX,
        ORDERS_BACKOFF_INITIAL_MS,
        ORDERS_BACKOFF_MAX_MS,
    );
    if ensure_subscription(&client, name, &definition, &shutdown)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let inbox = Inbox::new(INBOX_CONSUMER);
    let handler = move |delivery: Delivery| {
        let pool = pool.clone();
        let inbox = inbox.clone();
        async move { apply(&pool, &inbox, kind, &delivery).await }
    };
    run_subscriber(client, name, handler, shutdown).await
}

async fn apply(
    pool: &SqlitePool,
    inbox: &Inbox,
    kind: PaymentKind,
    delivery: &Delivery,
) -> Result<(), HandlerError> {
    let (order_fact, outcome) = match kind {
        PaymentKind::Succeeded => {
            let payment = delivery.fact_as::<PaymentSucceeded>()?;
            (
                payment.predecessors.first(ORDER_ROLE),
                PaymentOutcome::Succeeded,
            )
        }
        PaymentKind::Failed => {
            let payment = delivery.fact_as::<PaymentFailed>()?;
            let reason = payment.value.reason;
            (
                payment.predecessors.first(ORDER_ROLE),
                PaymentOutcome::Failed { reason },
            )
        }
    };
    let order_fact = order_fact.ok_or("the payment fact names no order")?;
    let payment_fact = delivery.hash();
    let processed = inbox
        .process(pool, &payment_fact, |transaction| {
            Box::pin(async move {
                match store::apply_payment(transaction, &order_fact, &payment_fact, &outcome)
                    .await?
                {
                    Applied::UnknownOrder => Err(ApplyError::UnknownOrder(order_fact)),
                    applied => Ok(applied),
                }
            })
        })
        .await;
    match processed {
        Ok(Processed::First(Applied::Changed { order_id, status })) => {
            tracing::info!(%order_id, status, %payment_fact, attempt = delivery.attempt(), "order updated from a {} fact", kind.type_name());
            Ok(())
        }
        Ok(Processed::First(applied)) => {
            tracing::info!(?applied, %payment_fact, "payment fact recorded; the order keeps its status");
            Ok(())
        }
        Ok(Processed::Duplicate) => {
            tracing::info!(%payment_fact, "payment fact seen before (redelivery); nothing to do");
            Ok(())
        }
        Err(InboxError::Handler(error)) => {
            tracing::warn!(%payment_fact, "cannot apply the payment fact: {error}");
            Err(HandlerError::from(error))
        }
        Err(error) => {
            let text = error_chain(&error);
            tracing::warn!(%payment_fact, "cannot apply the payment fact: {text}");
            Err(HandlerError::from(text))
        }
    }
}
