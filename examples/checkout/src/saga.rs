//! The checkout saga: reserve stock → charge payment → book shipping.
//! Each step stores a command for its service (carrying the attempt's
//! idempotency key) and awaits the reply. A declined card fails the
//! payment step for good, so the stock is released; a booking without an
//! answer times out, is tried once more with a new key, and then the
//! payment is refunded and the stock released, in that order.

use std::time::Duration;

use cairn_client::{Client, Reply, SagaDefinition, Step, StepContext, StepError, TypedFact};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::facts::{
    PaymentCommand, PaymentReply, ShippingCommand, ShippingReply, StockCommand, StockReply,
};
use crate::limits::{
    REPLY_WAIT_MAX, SAGA_NAME, SAGA_VERSION, SERVICE_ATTEMPTS_MAX, SHIPPING_ATTEMPTS_MAX,
};

/// A checkout: the saga's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    /// The order's id (also the saga instance's id).
    pub order: String,
    /// `sku → quantity`.
    pub items: serde_json::Value,
    /// The card number.
    pub card: String,
    /// The amount.
    pub amount_cents: u64,
    /// Where to ship.
    pub address: String,
}

fn input(step: &StepContext) -> Result<Checkout, StepError> {
    serde_json::from_value(step.input.clone()).map_err(StepError::permanent)
}

/// Stores `command` and awaits its reply. The command has no random part:
/// run again, the attempt stores the same fact and finds the same reply.
async fn call<C, R>(client: &Client, command: C) -> Result<R, StepError>
where
    C: TypedFact + Send + Sync,
    R: Reply<Request = C> + Send,
{
    let stored = client.put(&command).await?;
    let reply = client
        .pending_request::<C>(stored.hash)
        .reply::<R>(REPLY_WAIT_MAX)
        .await?;
    Ok(reply.value)
}

/// The saga's definition, its steps calling the services through `client`.
pub fn definition(client: &Client, shipping_timeout: Duration) -> SagaDefinition {
    let reserve_client = client.clone();
    let release_client = client.clone();
    let charge_client = client.clone();
    let refund_client = client.clone();
    let ship_client = client.clone();
    SagaDefinition::new(SAGA_NAME, SAGA_VERSION)
        .step(
            Step::new("reserve_stock", move |step| {
                let client = reserve_client.clone();
                async move {
                    let checkout = input(&step)?;
                    let command = StockCommand {
                        idempotency_key: step.idempotency_key,
                        attempt: step.attempt,
                        action: "reserve".to_string(),
                        order: checkout.order,
                        items: checkout.items,
                    };
                    let reply: StockReply = call(&client, command).await?;
                    Ok(json!({"reserved": reply.ok}))
                }
            })
            .attempts_max(SERVICE_ATTEMPTS_MAX)
            .compensate(move |step| {
                let client = release_client.clone();
                async move {
                    let checkout = input(&step)?;
                    let command = StockCommand {
                        idempotency_key: step.idempotency_key,
                        attempt: step.attempt,
                        action: "release".to_string(),
                        order: checkout.order,
                        items: checkout.items,
                    };
                    let _: StockReply = call(&client, command).await?;
                    Ok(serde_json::Value::Null)
                }
            }),
        )
        .step(
            Step::new("charge_payment", move |step| {
                let client = charge_client.clone();
                async move {
                    let checkout = input(&step)?;
                    let command = PaymentCommand {
                        idempotency_key: step.idempotency_key,
                        attempt: step.attempt,
                        action: "charge".to_string(),
                        order: checkout.order,
                        card: checkout.card,
                        amount_cents: checkout.amount_cents,
                    };
                    let reply: PaymentReply = call(&client, command).await?;
                    if !reply.ok {
                        return Err(StepError::permanent(
                            reply.error.unwrap_or_else(|| "declined".to_string()),
                        ));
                    }
                    Ok(json!({"charged_cents": checkout.amount_cents}))
                }
            })
            .attempts_max(SERVICE_ATTEMPTS_MAX)
            .compensate(move |step| {
                let client = refund_client.clone();
                async move {
                    let checkout = input(&step)?;
                    let command = PaymentCommand {
                        idempotency_key: step.idempotency_key,
                        attempt: step.attempt,
                        action: "refund".to_string(),
                        order: checkout.order,
                        card: checkout.card,
                        amount_cents: checkout.amount_cents,
                    };
                    let _: PaymentReply = call(&client, command).await?;
                    Ok(serde_json::Value::Null)
                }
            }),
        )
        .step(
            Step::new("book_shipping", move |step| {
                let client = ship_client.clone();
                async move {
                    let checkout = input(&step)?;
                    let command = ShippingCommand {
                        idempotency_key: step.idempotency_key,
                        attempt: step.attempt,
                        action: "book".to_string(),
                        order: checkout.order,
                        address: checkout.address,
                    };
                    let reply: ShippingReply = call(&client, command).await?;
                    Ok(json!({"tracking": reply.tracking}))
                }
            })
            .timeout(shipping_timeout)
            .attempts_max(SHIPPING_ATTEMPTS_MAX)
            .retry_delay(Duration::ZERO),
        )
}
