//! The services' commands and replies: one command type and one reply
//! type per service. A command carries the saga attempt's idempotency key
//! and attempt number, and nothing random, so the same attempt run again
//! stores the same command fact (and finds its reply, if there is one),
//! while a retry after a timeout — same key, next attempt — is a new
//! message that the service answers from what it did under the key.

use cairn_client::{Fact, Hash};

/// A command to the stock service: `reserve` or `release` the items of an
/// order.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Checkout.StockCommand")]
pub struct StockCommand {
    /// The saga attempt's idempotency key.
    pub idempotency_key: String,
    /// The saga attempt's number.
    pub attempt: u32,
    /// `reserve` or `release`.
    pub action: String,
    /// The order.
    pub order: String,
    /// What to reserve or release, `sku → quantity`.
    pub items: serde_json::Value,
}

/// The stock service's answer.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Checkout.StockReply", reply_to = StockCommand)]
pub struct StockReply {
    /// The command answered.
    #[predecessor]
    pub request: Hash,
    /// Whether it was done.
    pub ok: bool,
}

/// A command to the payment service: `charge` or `refund` an order.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Checkout.PaymentCommand")]
pub struct PaymentCommand {
    /// The saga attempt's idempotency key.
    pub idempotency_key: String,
    /// The saga attempt's number.
    pub attempt: u32,
    /// `charge` or `refund`.
    pub action: String,
    /// The order.
    pub order: String,
    /// The card number.
    pub card: String,
    /// The amount.
    pub amount_cents: u64,
}

/// The payment service's answer.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Checkout.PaymentReply", reply_to = PaymentCommand)]
pub struct PaymentReply {
    /// The command answered.
    #[predecessor]
    pub request: Hash,
    /// Whether it was done (`false`: the card was declined).
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A command to the shipping service: `book` a delivery.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Checkout.ShippingCommand")]
pub struct ShippingCommand {
    /// The saga attempt's idempotency key.
    pub idempotency_key: String,
    /// The saga attempt's number.
    pub attempt: u32,
    /// `book`.
    pub action: String,
    /// The order.
    pub order: String,
    /// Where to.
    pub address: String,
}

/// The shipping service's answer.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Checkout.ShippingReply", reply_to = ShippingCommand)]
pub struct ShippingReply {
    /// The command answered.
    #[predecessor]
    pub request: Hash,
    /// The tracking number.
    pub tracking: String,
}
