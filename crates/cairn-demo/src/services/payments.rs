//! The payments service: charges each `Cafe.OrderPlaced` at the flaky card
//! provider and runs the [`fulfilment`] saga of every charged order, whose
//! compensation refunds the charge when stock runs out.
//!
//! - The provider call is a resilient call ([`ResilientClient`]: a timeout
//!   per attempt, retries within a budget, a circuit breaker) keyed by the
//!   order (`charge-<order id>`), so a retry — by the client, by Cairn's
//!   redelivery, or after this process was killed — is answered with the
//!   first charge, never a second one.
//! - The charge's fact goes into the outbox in the inbox's transaction
//!   ([`cairn_sql::Inbox`]), so a redelivered order adds nothing.
//! - When the provider keeps failing, the handler fails; Cairn redelivers
//!   with backoff. On its [`PAYMENT_ATTEMPTS_MAX`]th delivery the handler
//!   gives up: it records the refusal and publishes `Cafe.PaymentFailed`
//!   with the reason (one transaction), and fails every later delivery at
//!   once, so the order becomes a dead letter of `payments` that is
//!   explained, and the customer is told. The subscription allows
//!   [`PAYMENT_CRASH_ATTEMPTS`] deliveries more than that: a delivery cut
//!   short by a SIGKILL counts as an attempt (its lease expires), and
//!   without the slack a kill during the deciding delivery would leave a
//!   dead letter that nobody explained and a customer never told.
//! - A charge starts its order's fulfilment saga in the same transaction
//!   (`Saga.Started` goes through the outbox with `Cafe.PaymentCaptured`);
//!   the saga's runner runs in this process too.

use std::future::Future;

use cairn_client::{Delivery, HandlerError, Hash, Service, TypedFact};
use cairn_resilient::{CircuitBreakerOptions, ResilientClient, ResilientOptions};
use cairn_sql::{Inbox, InboxError, Outbox, RelayHandle};
use sqlx::SqlitePool;

use crate::error::DemoError;
use crate::facts::{OrderPlaced, PaymentCaptured, PaymentFailed};
use crate::limits::{
    PAYMENT_ATTEMPTS_MAX, PAYMENT_CRASH_ATTEMPTS, PROVIDER_ATTEMPTS_MAX, PROVIDER_ATTEMPT_TIMEOUT,
    PROVIDER_CALL_TIMEOUT, PROVIDER_CIRCUIT_OPEN_DURATION, SAGA_REGISTER_TIMEOUT,
};
use crate::provider::{ChargeRequest, ProviderAnswer};
use crate::services::fulfilment::{self, Fulfilment, FulfilmentServices};
use crate::services::{
    definition, drain_relay, handler_error, open_database, start_relay, subscriber, ServiceOptions,
};

/// The subscription of orders to charge.
pub const SUBSCRIPTION: &str = "payments";
/// The orders payments gave up on: once an order's `Cafe.PaymentFailed`
/// is committed, it is never charged.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS payment_failures (
    order_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL
)";

/// What the charging handler needs.
#[derive(Clone)]
struct Payments {
    pool: SqlitePool,
    relay: RelayHandle,
    provider: ResilientClient,
    provider_url: String,
    /// The hash of the fulfilment saga's definition.
    saga_definition: Hash,
}

/// Runs the payments service until `stop`.
pub async fn run(options: ServiceOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, "payments").await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
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
    let provider_url = options.provider_url.trim_end_matches('/').to_owned();
    let saga_services = FulfilmentServices {
        client: client.clone(),
        provider: provider.clone(),
        provider_url: provider_url.clone(),
    };
    // The definition is stored before any charge can start a saga under
    // it (the outbox publishes a `Saga.Started` only if it is).
    register_saga(&client, &saga_services).await?;
    let payments = Payments {
        pool,
        relay: relay.handle(),
        provider,
        provider_url,
        saga_definition: fulfilment::definition_hash(&saga_services)?,
    };
    let runner = fulfilment::runner(&saga_services);
    Service::new("payments")
        .subscriber(subscriber(
            &client,
            SUBSCRIPTION,
            definition(
                OrderPlaced::TYPE_NAME,
                PAYMENT_ATTEMPTS_MAX + PAYMENT_CRASH_ATTEMPTS,
            ),
            move |delivery| payments.clone().charge(delivery),
        ))
        .task("fulfilment saga runner", |shutdown| runner.run(shutdown))
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
        // Given up already (this process was killed after deciding, before
        // its ack): fail again at once, never charge after a refusal.
        let given_up: Option<(String,)> =
            sqlx::query_as("SELECT reason FROM payment_failures WHERE order_id = $1")
                .bind(&order.value.order_id)
                .fetch_optional(&self.pool)
                .await?;
        if let Some((reason,)) = given_up {
            return Err(HandlerError::new(reason));
        }
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
                    self.give_up(&failed).await?;
                    tracing::warn!(order_id = %order.value.order_id, "{reason}; given up: a dead letter, Cafe.PaymentFailed published");
                }
                return Err(HandlerError::new(reason));
            }
        };
        let fulfilment = Fulfilment {
            order_id: order.value.order_id.clone(),
            order: order.hash.to_string(),
            charge_id: charge.id.clone(),
        };
        let started =
            fulfilment::started(self.saga_definition, &fulfilment).map_err(handler_error)?;
        let captured = PaymentCaptured {
            order_id: order.value.order_id,
            charge_id: charge.id,
            amount_cents: order.value.price_cents,
            item: order.value.item,
            order: order.hash,
        };
        self.once(&delivery, captured, started).await
    }

    /// Enqueues `fact` and then `then` in the inbox's transaction of
    /// `delivery`: once per delivered message, however often it is
    /// delivered.
    async fn once<T, U>(&self, delivery: &Delivery, fact: T, then: U) -> Result<(), HandlerError>
    where
        T: TypedFact + Send + Sync + 'static,
        U: TypedFact + Send + Sync + 'static,
    {
        let processed = Inbox::new(delivery.subscription())
            .process(&self.pool, &delivery.hash(), move |transaction| {
                Box::pin(async move {
                    let outbox = Outbox::new();
                    outbox.enqueue_value(transaction, &fact).await?;
                    outbox.enqueue_value(transaction, &then).await?;
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

    /// Records that payments gave up on the order and enqueues its
    /// `Cafe.PaymentFailed`, in one transaction, once per order.
    async fn give_up(&self, failed: &PaymentFailed) -> Result<(), HandlerError> {
        let mut transaction = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO payment_failures (order_id, reason) VALUES ($1, $2)",
        )
        .bind(&failed.order_id)
        .bind(&failed.reason)
        .execute(&mut *transaction)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            Outbox::new()
                .enqueue_value(&mut transaction, failed)
                .await?;
        }
        transaction.commit().await?;
        self.relay.notify();
        Ok(())
    }
}

/// Stores the saga's definition, trying again while Cairn does not answer
/// (it may be restarting), for a bounded time.
async fn register_saga(
    client: &cairn_client::Client,
    services: &FulfilmentServices,
) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + SAGA_REGISTER_TIMEOUT;
    let definition = fulfilment::definition(services);
    loop {
        match client.sagas().register(&definition).await {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(DemoError::Cairn(format!(
                    "cannot store the fulfilment saga: {error}"
                )))
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}
