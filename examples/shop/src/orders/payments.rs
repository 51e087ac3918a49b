//! How `orders` learns the outcome of payments: subscribers on
//! `Shop.PaymentSucceeded` and `Shop.PaymentFailed` whose handler applies
//! each payment fact to its order inside the inbox's transaction
//! ([`cairn_sql::with_inbox`]), so that a redelivered fact changes nothing.

use std::future::Future;
use std::pin::Pin;

use cairn_client::{Client, Delivery, HandlerError, Hash, Subscriber, TypedFact};
use cairn_sql::with_inbox;
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::facts::{PaymentFailed, PaymentSucceeded};
use crate::limits::{
    ORDERS_ATTEMPTS_MAX, ORDERS_BACKOFF_INITIAL_MS, ORDERS_BACKOFF_MAX_MS,
    ORDERS_FAILED_SUBSCRIPTION, ORDERS_SUCCEEDED_SUBSCRIPTION,
};
use crate::orders::store::{self, Applied, PaymentOutcome};
use crate::subscriptions::{definition, subscriber};

/// What a handler made by [`with_inbox`] returns.
type InboxFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// Lease of a payment fact: applying one is a single short transaction.
const PAYMENTS_LEASE_MS: u64 = 10_000;

/// A payment fact: it names its order and settles it one way or the other.
pub trait Payment: TypedFact + Send + 'static {
    /// The subscription through which `orders` receives these facts.
    const SUBSCRIPTION: &'static str;
    /// The order's `Shop.OrderPlaced` fact.
    fn order(&self) -> Hash;
    /// What the payment does to its order.
    fn outcome(self) -> PaymentOutcome;
}

impl Payment for PaymentSucceeded {
    const SUBSCRIPTION: &'static str = ORDERS_SUCCEEDED_SUBSCRIPTION;
    fn order(&self) -> Hash {
        self.order
    }
    fn outcome(self) -> PaymentOutcome {
        PaymentOutcome::Succeeded
    }
}

impl Payment for PaymentFailed {
    const SUBSCRIPTION: &'static str = ORDERS_FAILED_SUBSCRIPTION;
    fn order(&self) -> Hash {
        self.order
    }
    fn outcome(self) -> PaymentOutcome {
        PaymentOutcome::Failed {
            reason: self.reason,
        }
    }
}

/// The subscriber that applies the payment facts of type `P`, each once.
pub fn subscriber_of<P: Payment>(
    client: Client,
    pool: SqlitePool,
) -> Subscriber<impl Fn(Delivery) -> InboxFuture + Send + Sync + 'static> {
    let definition = definition(
        P::TYPE_NAME,
        PAYMENTS_LEASE_MS,
        ORDERS_ATTEMPTS_MAX,
        ORDERS_BACKOFF_INITIAL_MS,
        ORDERS_BACKOFF_MAX_MS,
    );
    let handler = with_inbox(pool, |delivery, transaction| {
        Box::pin(apply::<P>(delivery, transaction))
    });
    subscriber(client, P::SUBSCRIPTION, definition, handler)
}

/// Applies one payment fact to its order, in the inbox's `transaction`.
async fn apply<P: Payment>(
    delivery: Delivery,
    transaction: &mut Transaction<'static, Sqlite>,
) -> Result<(), HandlerError> {
    let payment = delivery.fact_as::<P>()?;
    let (order_fact, payment_fact) = (payment.value.order(), payment.hash);
    let outcome = payment.value.outcome();
    match store::apply_payment(transaction, &order_fact, &payment_fact, &outcome).await? {
        Applied::Changed { order_id, status } => {
            tracing::info!(%order_id, status, %payment_fact, attempt = delivery.attempt(), "order updated from a {} fact", P::TYPE_NAME);
        }
        Applied::AlreadyPaid { order_id } => {
            tracing::info!(%order_id, %payment_fact, "payment fact recorded; the order is paid already");
        }
        Applied::UnknownOrder => {
            let error = format!("no order has the fact {order_fact}");
            tracing::warn!(%payment_fact, "cannot apply the payment fact: {error}");
            return Err(error.into());
        }
    }
    Ok(())
}
