//! The facts the two services exchange, as typed facts (`#[derive(Fact)]`):
//! payments name their order's `Shop.OrderPlaced` fact as a predecessor in
//! the role `order`; every other field is the fact's `fields`.

use cairn_client::{Fact, Hash};
use serde::{Deserialize, Serialize};

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// `Shop.OrderPlaced`: a customer placed an order (published by `orders`).
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Shop.OrderPlaced")]
pub struct OrderPlaced {
    /// The order's id in `orders` (a UUID).
    pub order_id: String,
    /// Who ordered.
    pub customer: String,
    /// What was ordered.
    pub items: Vec<LineItem>,
    /// What to charge, in cents.
    pub total_cents: i64,
    /// When the order was placed, milliseconds since the Unix epoch.
    pub placed_at_ms: i64,
}

/// `Shop.PaymentSucceeded`: `billing` charged an order (exactly one per
/// order).
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Shop.PaymentSucceeded")]
pub struct PaymentSucceeded {
    /// The order's id in `orders`.
    pub order_id: String,
    /// The gateway's reference of the charge.
    pub charge_id: String,
    /// What was charged, in cents.
    pub amount_cents: i64,
    /// The delivery attempt of the order on which the charge went through.
    pub attempt: u32,
    /// The order's `Shop.OrderPlaced` fact (a predecessor, not a field).
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Shop.PaymentFailed`: `billing` gave up charging an order on its last
/// delivery attempt; the order is also in the `billing` dead letters.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Shop.PaymentFailed")]
pub struct PaymentFailed {
    /// The order's id in `orders`.
    pub order_id: String,
    /// Why the gateway refused.
    pub reason: String,
    /// The delivery attempts made.
    pub attempts: u32,
    /// The order's `Shop.OrderPlaced` fact (a predecessor, not a field).
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// Milliseconds since the Unix epoch: the time unit of facts and tables.
pub fn unix_time_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::{to_canonical_fact, Typed};

    #[test]
    fn a_payment_names_its_order_as_a_predecessor() {
        let order = Hash([3; 32]);
        let payment = PaymentSucceeded {
            order_id: "o-1".to_owned(),
            charge_id: "ch-1".to_owned(),
            amount_cents: 900,
            attempt: 1,
            order,
        };
        let fact = to_canonical_fact(&payment).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
        assert_eq!(json["type"], "Shop.PaymentSucceeded");
        assert_eq!(json["predecessors"]["order"], order.to_hex());
        assert!(json["fields"].get("order").is_none());
        let read_back = Typed::<PaymentSucceeded>::from_parts(fact.hash, 1, json).unwrap();
        assert_eq!(read_back.value, payment, "the order is read back filled in");
    }
}
