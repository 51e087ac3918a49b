//! The payments service: charges each `Cafe.OrderPlaced` at the flaky card
//! provider and refunds each `Cafe.OutOfStock`.
//!
//! - The provider call is a resilient call ([`ResilientClient`]: a timeout
//!   per attempt, retries within a budget, a circuit breaker) keyed by the
//!   order (`charge-<order id>`), so a retry — by the client, by Cairn's
//!   redelivery, or after this process was killed — is answered with the
//!   first charge, never a second one.
//! - The charge's fact goes into the outbox in the inbox's transaction
//!   ([`cairn_sql::Inbox`]), so a redelivered order adds nothing.
//! - When the provider keeps failing, the handler fails; Cairn redelivers
//!   with backoff and after the last attempt keeps the order as a dead
//!   letter of `payments`, and the handler publishes `Cafe.PaymentFailed`
//!   with the reason, so the dead letter is explained and the customer is
//!   told.

use std::future::Future;

use cairn_client::{Delivery, HandlerError, Service, TypedFact};
use cairn_resilient::{CircuitBreakerOptions, ResilientClient, ResilientOptions};
use cairn_sql::{Inbox, InboxError, Outbox, RelayHandle};
use sqlx::SqlitePool;

use crate::error::DemoError;
use crate::facts::{OrderPlaced, OutOfStock, PaymentCaptured, PaymentFailed, PaymentRefunded};
use crate::limits::{
    ATTEMPTS_MAX, PAYMENT_ATTEMPTS_MAX, PROVIDER_ATTEMPTS_MAX, PROVIDER_ATTEMPT_TIMEOUT,
    PROVIDER_CALL_TIMEOUT, PROVIDER_CIRCUIT_OPEN_DURATION,
};
use crate::provider::{ChargeRequest, ProviderAnswer, RefundRequest};
use crate::services::{
    definition, drain_relay, handler_error, open_database, start_relay, subscriber, ServiceOptions,
};

/// The subscription of orders to charge.
pub const SUBSCRIPTION: &str = "payments";
/// The subscription of orders to refund.
pub const REFUNDS_SUBSCRIPTION: &str = "payments-refunds";

/// What both handlers need.
#[derive(Clone)]
struct Payments {
    pool: SqlitePool,
    relay: RelayHandle,
    provider: ResilientClient,
    provider_url: String,
}

/// Runs the payments service until `stop`.
pub async fn run(options: ServiceOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, "payments").await?;
    let client = options.client()?;
    let relay = start_relay(&pool, &client);
    let provider = ResilientClient::new(ResilientOptions {
        attempt_timeout: PROVIDER_ATTEMPT_TIMEOUT,
        call_timeout: PROVIDER_CALL_TIMEOUT,
        attempts_max: PROVIDER_ATTEMPTS_MAX,
        // Open for a short while: a café tries the card again soon.
        circuit_breaker: CircuitBreakerOptions {
            open_duration: PROVIDER_CIRCUIT_OPEN_DURATION,
            ..CircuitBreakerOptions::default()
        },
        ..ResilientOptions::default()
    })?;
    let payments = Payments {
        pool,
        relay: relay.handle(),
        provider,
        provider_url: options.provider_url.trim_end_matches('/').to_owned(),
    };
    let charging = payments.clone();
    let refunding = payments;
    Service::new("payments")
        .subscriber(subscriber(
            &client,
            SUBSCRIPTION,
            definition(OrderPlaced::TYPE_NAME, PAYMENT_ATTEMPTS_MAX),
            move |delivery| charging.clone().charge(delivery),
        ))
        .subscriber(subscriber(
            &client,
            REFUNDS_SUBSCRIPTION,
            definition(OutOfStock::TYPE_NAME, ATTEMPTS_MAX),
            move |delivery| refunding.clone().refund(delivery),
        ))
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    Ok(())
}

impl Payments {
    /// Charges one delivered order.
    async fn charge(self, delivery: Delivery) -> Result<(), HandlerError> {
        let order = delivery.fact_as::<OrderPlaced>()?;
        let request = ChargeRequest {
            order_id: order.value.order_id.clone(),
            amount_cents: order.value.price_cents,
        };
        let called = self
            .provider
            .post_json(&format!("{}/charges", self.provider_url), &request)
            .idempotency_key(format!("charge-{}", order.value.order_id))
            .send()
            .await
            .and_then(|answer| answer.json::<ProviderAnswer>());
        let charge = match called {
            Ok(charge) => charge,
            Err(error) => {
                let reason = format!("card provider: {error}");
                if delivery.attempt() >= PAYMENT_ATTEMPTS_MAX {
                    let failed = PaymentFailed {
                        order_id: order.value.order_id.clone(),
                        reason: reason.clone(),
                        attempts: delivery.attempt(),
                        order: order.hash,
                    };
                    self.publish(&failed).await?;
                    tracing::warn!(order_id = %order.value.order_id, "{reason}; last attempt: a dead letter, Cafe.PaymentFailed published");
                }
                return Err(HandlerError::new(reason));
            }
        };
        let captured = PaymentCaptured {
            order_id: order.value.order_id,
            charge_id: charge.id,
            amount_cents: order.value.price_cents,
            item: order.value.item,
            order: order.hash,
        };
        self.once(&delivery, captured).await
    }

    /// Refunds one order that ran out of stock.
    async fn refund(self, delivery: Delivery) -> Result<(), HandlerError> {
        let out = delivery.fact_as::<OutOfStock>()?;
        let request = RefundRequest {
            order_id: out.value.order_id.clone(),
            charge_id: out.value.charge_id.clone(),
        };
        let refund = self
            .provider
            .post_json(&format!("{}/refunds", self.provider_url), &request)
            .idempotency_key(format!("refund-{}", out.value.order_id))
            .send()
            .await
            .and_then(|answer| answer.json::<ProviderAnswer>())
            .map_err(|error| handler_error(format!("card provider: {error}")))?;
        let refunded = PaymentRefunded {
            order_id: out.value.order_id,
            charge_id: out.value.charge_id,
            refund_id: refund.id,
            order: out.value.order,
        };
        self.once(&delivery, refunded).await
    }

    /// Enqueues `fact` in the inbox's transaction of `delivery`: once per
    /// delivered message, however often it is delivered.
    async fn once<T: TypedFact + Send + Sync + 'static>(
        &self,
        delivery: &Delivery,
        fact: T,
    ) -> Result<(), HandlerError> {
        let processed = Inbox::new(delivery.subscription())
            .process(&self.pool, &delivery.hash(), move |transaction| {
                Box::pin(async move {
                    Outbox::new().enqueue_value(transaction, &fact).await?;
                    Ok::<(), HandlerError>(())
                })
            })
            .await;
        match processed {
            Ok(_) => {
                self.relay.notify();
                Ok(())
            }
            Err(InboxError::Handler(error)) => Err(error),
            Err(error) => Err(handler_error(error)),
        }
    }

    /// Enqueues one fact in its own transaction.
    async fn publish<T: TypedFact>(&self, fact: &T) -> Result<(), HandlerError> {
        let mut transaction = self.pool.begin().await?;
        Outbox::new().enqueue_value(&mut transaction, fact).await?;
        transaction.commit().await?;
        self.relay.notify();
        Ok(())
    }
}
