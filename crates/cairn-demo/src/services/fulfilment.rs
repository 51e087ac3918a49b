//! The fulfilment saga, run by the payments service with the SDK's
//! [`SagaRunner`]: once a card was charged, the saga owns what follows
//! until the order is either set aside by stock or its money is back.
//!
//! 1. `charge` — the charge the payments subscription took (its retries
//!    and dead letters decide a declined card, before any saga starts);
//!    the action records it, and its **compensation refunds it** at the
//!    card provider (keyed `refund-<order id>`, so a refund run again
//!    after a crash is one refund) and publishes `Cafe.PaymentRefunded`.
//! 2. `reserve_stock` — waits for stock's answer about the order:
//!    `Cafe.StockReserved` succeeds, `Cafe.OutOfStock` fails the step for
//!    good, and the runner compensates step 1.
//!
//! The saga is started in the same SQLite transaction as the charge's
//! `Cafe.PaymentCaptured` (both through the outbox), so a charge without
//! its saga cannot happen. Its journal is facts in Cairn: a payments
//! process SIGKILLed in the middle of a saga starts again, and the runner
//! goes on from the journal's last transition — a refund interrupted
//! half-way is asked again under the same key.

use std::time::Duration;

use cairn_client::saga::facts::StartedFact;
use cairn_client::{
    to_canonical_fact, Client, Hash, SagaDefinition, SagaRunner, SagaRunnerOptions, Step,
    StepContext, StepError, TypedFact,
};
use cairn_resilient::ResilientClient;
use serde::{Deserialize, Serialize};

use crate::error::DemoError;
use crate::facts::{OutOfStock, PaymentRefunded, StockReserved};
use crate::limits::{
    LEASE_MS, REFUND_PATIENCE, REFUND_RETRY_INTERVAL, SAGA_COMPENSATION_ATTEMPTS_MAX,
    SAGA_STOCK_ATTEMPTS_MAX, STOCK_ANSWER_POLL_INTERVAL, STOCK_ANSWER_WAIT, SUBSCRIBER_CONCURRENCY,
};
use crate::provider::{ProviderAnswer, RefundRequest};

/// The saga's name.
pub const SAGA_NAME: &str = "fulfilment";
/// The saga's version.
pub const SAGA_VERSION: u32 = 1;
/// The step whose compensation is the refund.
pub const CHARGE_STEP: &str = "charge";
/// The step that waits for stock.
pub const STOCK_STEP: &str = "reserve_stock";

/// The saga's input: the charged order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    /// The order's id (also the saga instance's id).
    pub order_id: String,
    /// The hash of the order's `Cafe.OrderPlaced`, as text.
    pub order: String,
    /// The provider's id of the charge.
    pub charge_id: String,
}

impl Fulfilment {
    fn from_step(step: &StepContext) -> Result<Fulfilment, StepError> {
        serde_json::from_value(step.input.clone()).map_err(StepError::permanent)
    }

    fn order_hash(&self) -> Result<Hash, StepError> {
        self.order
            .parse::<Hash>()
            .map_err(|error| StepError::permanent(format!("order hash: {error}")))
    }
}

/// What the saga's steps need.
#[derive(Clone)]
pub struct FulfilmentServices {
    /// Cairn.
    pub client: Client,
    /// The card provider, through the resilient client.
    pub provider: ResilientClient,
    /// The provider's base URL.
    pub provider_url: String,
}

/// The saga's definition.
pub fn definition(services: &FulfilmentServices) -> SagaDefinition {
    let refunding = services.clone();
    let waiting = services.client.clone();
    SagaDefinition::new(SAGA_NAME, SAGA_VERSION)
        .step(
            Step::new(CHARGE_STEP, |step| async move {
                let fulfilment = Fulfilment::from_step(&step)?;
                Ok(serde_json::json!({"charge_id": fulfilment.charge_id}))
            })
            .compensate(move |step| {
                let services = refunding.clone();
                async move { services.refund(&Fulfilment::from_step(&step)?).await }
            })
            .compensation_attempts_max(SAGA_COMPENSATION_ATTEMPTS_MAX),
        )
        .step(
            Step::new(STOCK_STEP, move |step| {
                let client = waiting.clone();
                async move { wait_for_stock(&client, &Fulfilment::from_step(&step)?).await }
            })
            .attempts_max(SAGA_STOCK_ATTEMPTS_MAX)
            .retry_delay(Duration::ZERO),
        )
}

/// The runner of the saga, with the demo's lease (a killed runner's
/// sagas come back after it) and concurrency.
pub fn runner(services: &FulfilmentServices) -> SagaRunner {
    SagaRunner::new(services.client.clone())
        .saga(definition(services))
        .options(SagaRunnerOptions {
            concurrency: SUBSCRIBER_CONCURRENCY,
            lease_ms: LEASE_MS,
        })
}

/// The `Saga.Started` of an order's fulfilment under the definition
/// `definition` (the same order and charge is the same saga).
pub fn started(definition: Hash, fulfilment: &Fulfilment) -> Result<StartedFact, DemoError> {
    Ok(StartedFact {
        definition,
        id: fulfilment.order_id.clone(),
        input: serde_json::to_value(fulfilment)
            .map_err(|error| DemoError::Cairn(format!("saga input: {error}")))?,
    })
}

/// The hash of the saga's stored definition (computed: a definition is
/// content-addressed).
pub fn definition_hash(services: &FulfilmentServices) -> Result<Hash, DemoError> {
    let fact = definition(services)
        .fact()
        .map_err(|error| DemoError::Cairn(error.to_string()))?;
    Ok(to_canonical_fact(&fact)?.hash)
}

impl FulfilmentServices {
    /// Gives the charge back, patiently: the provider may be in an outage
    /// for a while, and a compensation should succeed eventually.
    async fn refund(&self, fulfilment: &Fulfilment) -> Result<serde_json::Value, StepError> {
        let request = RefundRequest {
            order_id: fulfilment.order_id.clone(),
            charge_id: fulfilment.charge_id.clone(),
        };
        let deadline = tokio::time::Instant::now() + REFUND_PATIENCE;
        let refund = loop {
            let called = self
                .provider
                .post_json(&format!("{}/refunds", self.provider_url), &request)
                .idempotency_key(format!("refund-{}", fulfilment.order_id))
                .send()
                .await
                .and_then(|answer| answer.json::<ProviderAnswer>());
            match called {
                Ok(refund) => break refund,
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::retryable(format!("card provider: {error}")))
                }
                Err(_) => tokio::time::sleep(REFUND_RETRY_INTERVAL).await,
            }
        };
        let refunded = PaymentRefunded {
            order_id: fulfilment.order_id.clone(),
            charge_id: fulfilment.charge_id.clone(),
            refund_id: refund.id.clone(),
            order: fulfilment.order_hash()?,
        };
        self.client.put(&refunded).await?;
        Ok(serde_json::json!({"refund_id": refund.id}))
    }
}

/// Waits a bounded time for stock's answer about the order: set aside
/// (the step succeeds), out of stock (it fails for good), or nothing yet
/// (a retryable failure: the runner tries again).
async fn wait_for_stock(
    client: &Client,
    fulfilment: &Fulfilment,
) -> Result<serde_json::Value, StepError> {
    let order = fulfilment.order_hash()?;
    let deadline = tokio::time::Instant::now() + STOCK_ANSWER_WAIT;
    loop {
        let reserved = client
            .successors::<StockReserved>(&order)
            .role("order")
            .all()
            .await?;
        if !reserved.is_empty() {
            return Ok(serde_json::json!({"reserved": true}));
        }
        let out = client
            .successors::<OutOfStock>(&order)
            .role("order")
            .all()
            .await?;
        if let Some(out) = out.first() {
            return Err(StepError::permanent(format!("{} ran out", out.value.item)));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StepError::retryable(format!(
                "no answer from stock within {} s",
                STOCK_ANSWER_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(STOCK_ANSWER_POLL_INTERVAL).await;
    }
}

/// The saga's fact types, for the payments service's permissions.
pub fn saga_types() -> [&'static str; 4] {
    [
        "Saga.Registry",
        "Saga.Definition",
        StartedFact::TYPE_NAME,
        "Saga.Transition",
    ]
}
