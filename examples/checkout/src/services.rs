//! The three downstream services — stock, payment, shipping — each a
//! subscriber of its command type that applies each idempotency key's
//! effect once ([`EffectLog`]) and stores the reply. Their behaviour is
//! fixed by the input, so the test knows what to expect: cards ending in
//! [`DECLINED_CARD_SUFFIX`] are declined; shipping never answers for the
//! address [`ADDRESS_NEVER_ANSWERED`], and answers
//! [`ADDRESS_ANSWERED_ON_RETRY`] only from the saga's second attempt on.

use std::path::Path;
use std::sync::Arc;

use cairn_client::{
    Client, ClientError, Delivery, HandlerError, Subscriber, SubscriptionDefinition, TypedFact,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::effects::{EffectError, EffectLog};
use crate::facts::{
    PaymentCommand, PaymentReply, ShippingCommand, ShippingReply, StockCommand, StockReply,
};
use crate::limits::{
    ADDRESS_ANSWERED_ON_RETRY, ADDRESS_NEVER_ANSWERED, DECLINED_CARD_SUFFIX, PAYMENT_SUBSCRIPTION,
    SERVICE_CONCURRENCY, SHIPPING_SUBSCRIPTION, STOCK_SUBSCRIPTION,
};

/// Why a service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Its effect log could not be read.
    #[error(transparent)]
    Effects(#[from] EffectError),
    /// Its subscription could not be run.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    /// Reserves and releases stock.
    Stock,
    /// Charges and refunds cards.
    Payment,
    /// Books deliveries.
    Shipping,
}

/// Runs a service until `shutdown`, its effects recorded in the file
/// `effects`.
pub async fn run(
    client: Client,
    kind: ServiceKind,
    effects: &Path,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let log = Arc::new(EffectLog::open(effects)?);
    let (subscription, type_name) = match kind {
        ServiceKind::Stock => (STOCK_SUBSCRIPTION, StockCommand::TYPE_NAME),
        ServiceKind::Payment => (PAYMENT_SUBSCRIPTION, PaymentCommand::TYPE_NAME),
        ServiceKind::Shipping => (SHIPPING_SUBSCRIPTION, ShippingCommand::TYPE_NAME),
    };
    let handler_client = client.clone();
    let handler = move |delivery: Delivery| {
        let client = handler_client.clone();
        let log = Arc::clone(&log);
        async move {
            match kind {
                ServiceKind::Stock => stock(&client, &log, &delivery).await,
                ServiceKind::Payment => payment(&client, &log, &delivery).await,
                ServiceKind::Shipping => shipping(&client, &log, &delivery).await,
            }
        }
    };
    Subscriber::new(client, subscription, handler)
        .definition(SubscriptionDefinition::new(type_name))
        .concurrency(SERVICE_CONCURRENCY)
        .run(shutdown)
        .await?;
    Ok(())
}

async fn stock(client: &Client, log: &EffectLog, delivery: &Delivery) -> Result<(), HandlerError> {
    let command = delivery.fact_as::<StockCommand>()?;
    let order = command.value.order.clone();
    let action = command.value.action.clone();
    log.once(&command.value.idempotency_key, |_| {
        (action, order, json!({"ok": true}))
    })?;
    client
        .put(&StockReply {
            request: command.hash,
            ok: true,
        })
        .await?;
    Ok(())
}

async fn payment(
    client: &Client,
    log: &EffectLog,
    delivery: &Delivery,
) -> Result<(), HandlerError> {
    let command = delivery.fact_as::<PaymentCommand>()?;
    let value = &command.value;
    let effect = log.once(&value.idempotency_key, |_| {
        if value.action == "charge" && value.card.ends_with(DECLINED_CARD_SUFFIX) {
            (
                "decline".to_string(),
                value.order.clone(),
                json!({"ok": false, "error": "card declined"}),
            )
        } else {
            (
                value.action.clone(),
                value.order.clone(),
                json!({"ok": true}),
            )
        }
    })?;
    client
        .put(&PaymentReply {
            request: command.hash,
            ok: effect.answer["ok"] == true,
            error: effect.answer["error"].as_str().map(str::to_string),
        })
        .await?;
    Ok(())
}

async fn shipping(
    client: &Client,
    log: &EffectLog,
    delivery: &Delivery,
) -> Result<(), HandlerError> {
    let command = delivery.fact_as::<ShippingCommand>()?;
    let value = &command.value;
    let answers = match value.address.as_str() {
        ADDRESS_NEVER_ANSWERED => false,
        ADDRESS_ANSWERED_ON_RETRY => value.attempt > 1,
        _ => true,
    };
    if !answers {
        // Left unanswered, as a lost message would be: noted under the
        // command (not the key), so the key's booking is still to come.
        log.note(&format!("ignored-{}", command.hash), "ignore", &value.order)?;
        return Ok(());
    }
    let effect = log.once(&value.idempotency_key, |_| {
        (
            "book".to_string(),
            value.order.clone(),
            json!({"tracking": format!("T-{}", value.order)}),
        )
    })?;
    let tracking = effect.answer["tracking"].as_str().unwrap_or_default();
    client
        .put(&ShippingReply {
            request: command.hash,
            tracking: tracking.to_string(),
        })
        .await?;
    Ok(())
}
