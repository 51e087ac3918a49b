//! The schemas the demo registers with Cairn at the start (as the admin:
//! registering is an operator's act, not a service's): `Cafe.PlaceOrder`
//! at versions 1 and 2 — version 2 added `takeaway`, with the upcast that
//! reads a version-1 request as not a takeaway — and `Cafe.OrderPlaced`.
//! From then on Cairn refuses a request or an order that does not fit its
//! version, and a reader may ask for version 2 of any request.
//!
//! The object models are closed (`additionalProperties: false`), so that
//! adding `takeaway` is a backward-compatible change once the upcast
//! supplies it to the older facts; Cairn checks that when version 2 is
//! registered.

use cairn_client::{Client, Compatibility};
use serde_json::{json, Value};

use crate::error::DemoError;
use crate::facts::{OrderPlaced, PlaceOrder, PlaceOrderV1};

/// The order members every version of a request and an order has.
fn order_properties() -> serde_json::Map<String, Value> {
    let properties = json!({
        "order_id": {"type": "string", "minLength": 1},
        "customer": {"type": "string", "minLength": 1},
        "item": {"type": "string", "minLength": 1},
        "price_cents": {"type": "integer", "minimum": 1}
    });
    match properties {
        Value::Object(properties) => properties,
        _ => serde_json::Map::new(),
    }
}

/// A closed object schema of the order members, plus `takeaway` if asked.
fn order_schema(with_takeaway: bool) -> Value {
    let mut properties = order_properties();
    let mut required = vec!["order_id", "customer", "item", "price_cents"];
    if with_takeaway {
        properties.insert("takeaway".to_owned(), json!({"type": "boolean"}));
        required.push("takeaway");
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// Registers the demo's schemas; safe to run again (the same
/// registration is answered as already there).
pub async fn register(admin: &Client) -> Result<(), DemoError> {
    admin
        .register_typed_schema::<PlaceOrderV1>(order_schema(false), Compatibility::None)
        .await?;
    admin
        .register_typed_schema::<PlaceOrder>(order_schema(true), Compatibility::Backward)
        .await?;
    admin
        .register_typed_schema::<OrderPlaced>(order_schema(true), Compatibility::None)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::{schema_registration, to_canonical_fact};

    #[test]
    fn version_two_carries_the_upcast_that_reads_version_one() {
        let registration =
            schema_registration::<PlaceOrder>(order_schema(true), Compatibility::Backward);
        assert_eq!(registration.upcast.len(), 1);
        let old = to_canonical_fact(&PlaceOrderV1 {
            order_id: "o-1".to_owned(),
            customer: "ada".to_owned(),
            item: "tea".to_owned(),
            price_cents: 200,
        })
        .unwrap();
        let json: Value = serde_json::from_slice(&old.canonical).unwrap();
        assert!(json["fields"].get("cairn_version").is_none());
        let read = cairn_client::Typed::<PlaceOrder>::from_parts(old.hash, 1, json).unwrap();
        assert!(
            !read.value.takeaway,
            "a version-1 request is not a takeaway"
        );
        assert_eq!(read.value.order_id, "o-1");
    }
}
