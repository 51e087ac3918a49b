//! The café's facts, as typed facts (`#[derive(Fact)]`). Every fact after
//! the order names the order's `Cafe.OrderPlaced` in the role `order`, so
//! one successor query reads an order's whole story; facts whose every
//! occurrence matters (a notification) carry an id of their own.

use cairn_client::{Fact, Hash, UpcastOperation};

/// `Cafe.Menu`: the menu's anchor, the same fact everywhere (content
/// addressing: anyone computes its hash offline).
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.Menu")]
pub struct Menu {
    /// The café's name.
    pub cafe: String,
}

/// `Cafe.MenuItem`: something on the menu (published by `stock`).
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.MenuItem")]
pub struct MenuItem {
    /// The item's name, also its id.
    pub item: String,
    /// Its price in cents.
    pub price_cents: i64,
    /// The menu.
    #[predecessor(role = "menu")]
    pub menu: Hash,
}

/// `Cafe.MenuItemWithdrawn`: a tombstone of a sold-out menu item; readers
/// of the menu leave out items that have one.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.MenuItemWithdrawn")]
pub struct MenuItemWithdrawn {
    /// Why.
    pub reason: String,
    /// The withdrawn item.
    #[predecessor(role = "item")]
    pub item: Hash,
}

/// `Cafe.PlaceOrder`, version 2: a customer's request (sent with the
/// SDK's request id and expiry). The order id is made by the customer,
/// once, so asking again is the same order. Version 2 (the café's new
/// app) added `takeaway`; the old app still writes version 1
/// ([`PlaceOrderV1`]), and the orders service reads those as version 2
/// through [`place_order_upcasts`]: not a takeaway.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.PlaceOrder", version = 2, upcasts = place_order_upcasts)]
pub struct PlaceOrder {
    /// The client-side id of the order.
    pub order_id: String,
    /// Who orders.
    pub customer: String,
    /// What.
    pub item: String,
    /// The price the customer saw, in cents.
    pub price_cents: i64,
    /// Whether to take it away (version 2).
    pub takeaway: bool,
}

/// How a version-1 `Cafe.PlaceOrder` reads as version 2: an order of the
/// old app, which could not say takeaway, is drunk in the café.
pub fn place_order_upcasts(version: u32) -> Vec<UpcastOperation> {
    match version {
        2 => vec![UpcastOperation::Default {
            path: "/takeaway".to_owned(),
            value: serde_json::Value::Bool(false),
        }],
        _ => Vec::new(),
    }
}

/// `Cafe.PlaceOrder`, version 1, as the old app still writes it.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.PlaceOrder")]
pub struct PlaceOrderV1 {
    /// The client-side id of the order.
    pub order_id: String,
    /// Who orders.
    pub customer: String,
    /// What.
    pub item: String,
    /// The price the customer saw, in cents.
    pub price_cents: i64,
}

/// `Cafe.OrderAccepted`: the orders service's reply to a `Cafe.PlaceOrder`.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.OrderAccepted", reply_to = PlaceOrder)]
pub struct OrderAccepted {
    /// The order's id.
    pub order_id: String,
    /// The request answered.
    #[predecessor]
    pub request: Hash,
}

/// `Cafe.OrderPlaced`: an order the orders service took (through its
/// outbox). Its content is the order's, so taking an order twice is one
/// fact.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.OrderPlaced")]
pub struct OrderPlaced {
    /// The client-side id of the order.
    pub order_id: String,
    /// Who ordered.
    pub customer: String,
    /// What.
    pub item: String,
    /// What to charge, in cents.
    pub price_cents: i64,
    /// Whether to take it away (from a version-2 request; `false` for the
    /// old app's version-1 requests, read upcast).
    pub takeaway: bool,
}

/// `Cafe.PaymentCaptured`: the card provider charged the order.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.PaymentCaptured")]
pub struct PaymentCaptured {
    /// The order's id.
    pub order_id: String,
    /// The provider's id of the charge.
    pub charge_id: String,
    /// What was charged, in cents.
    pub amount_cents: i64,
    /// The item paid for (stock sets it aside).
    pub item: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.PaymentFailed`: payments gave up on the order on its last
/// delivery; the order is also a dead letter of `payments`. Nothing was
/// charged.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.PaymentFailed")]
pub struct PaymentFailed {
    /// The order's id.
    pub order_id: String,
    /// The last error.
    pub reason: String,
    /// The deliveries made.
    pub attempts: u32,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.RestockDue`: the croissant delivery came. Written by Cairn, not
/// by a service: it is the template of stock's one-shot durable timer
/// `restock.<item>`, set when the item sold out, and the fired fact
/// carries `cairn_timer` (the timer's name and due instant) besides.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.RestockDue")]
pub struct RestockDue {
    /// The item delivered.
    pub item: String,
    /// Its price from the delivery on, in cents.
    pub price_cents: i64,
    /// The tombstone that took it off the menu.
    #[predecessor(role = "withdrawn")]
    pub withdrawn: Hash,
}

/// `Cafe.StockReserved`: stock set one item aside for a paid order.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.StockReserved")]
pub struct StockReserved {
    /// The order's id.
    pub order_id: String,
    /// The item.
    pub item: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.OutOfStock`: a paid order's item ran out; the order's fulfilment
/// saga refunds it (its `reserve_stock` step fails for good).
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.OutOfStock")]
pub struct OutOfStock {
    /// The order's id.
    pub order_id: String,
    /// The item.
    pub item: String,
    /// The charge to refund.
    pub charge_id: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.PaymentRefunded`: the provider gave the money of a charge back.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.PaymentRefunded")]
pub struct PaymentRefunded {
    /// The order's id.
    pub order_id: String,
    /// The charge refunded.
    pub charge_id: String,
    /// The provider's id of the refund.
    pub refund_id: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.PreparationClaimed`: a cook's bid to make an order. Both cooks
/// see every order; each stores its bid and claims the key
/// `prepare.<order id>` with it ([`cairn_client::Client::claim`]): the
/// first bid wins, the other cook leaves the order alone.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.PreparationClaimed")]
pub struct PreparationClaimed {
    /// The order's id.
    pub order_id: String,
    /// The cook (the kitchen worker's service name).
    pub worker: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.OrderServed`: the kitchen handed the order over.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.OrderServed")]
pub struct OrderServed {
    /// The order's id.
    pub order_id: String,
    /// The item.
    pub item: String,
    /// The cook who made it (who won the order's claim).
    pub worker: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// `Cafe.NotificationSent`: a message to the customer. Each sending has
/// its own id, so sending twice would be two facts (the invariant
/// "no notification sent twice" counts them).
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Cafe.NotificationSent")]
pub struct NotificationSent {
    /// The order's id.
    pub order_id: String,
    /// `served`, `refunded` or `payment_failed`.
    pub kind: String,
    /// The text sent.
    pub text: String,
    /// This sending's own id.
    pub send_id: String,
    /// The order.
    #[predecessor(role = "order")]
    pub order: Hash,
}

/// The café's menu anchor.
pub fn menu() -> Menu {
    Menu {
        cafe: "Cairn Café".to_owned(),
    }
}
