//! `GET /v1/facts/{hash}/deliveries` (addition, issue 17): how every
//! subscription that selects a fact has carried it — the console's
//! timeline of a business process. It reads only: each subscription
//! answers through `Subscription::delivery_of`, which leases, counts and
//! admits nothing.

use axum::extract::{Extension, RawQuery, State};
use axum::response::Response;
use cairn_api::{FactDeliveries, FactDelivery};
use cairn_fact::{parse_json, Fact, JSON_DEPTH_MAX};
use cairn_store::{MessageSelection, ReadError, Store};

use super::facts::{json_answer, parse_hash, readable};
use super::ApiPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// Whether `selection` selects `fact`: its type, and the predecessor in
/// the role when the definition names one (as the stores' indexes match).
pub fn selects(selection: &MessageSelection, fact: &Fact) -> bool {
    match selection {
        MessageSelection::Type(type_name) => fact.type_name == *type_name,
        MessageSelection::Successors {
            type_name,
            role,
            predecessor,
        } => {
            fact.type_name == *type_name
                && fact
                    .all_predecessors()
                    .any(|(fact_role, hash)| fact_role == role && hash == predecessor)
        }
    }
}

/// `GET /v1/facts/{hash}/deliveries`.
pub async fn get_fact_deliveries<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(hash_text): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash_text)?;
    let not_found = || ApiError::not_found(format!("no fact with hash {hash}"));
    let stored = state.store.get_fact(&hash).await?.ok_or_else(not_found)?;
    // A fact the caller may not read is answered exactly as an absent one.
    if !readable(&caller, &stored) {
        return Err(not_found());
    }
    let corrupt =
        |error: String| ReadError::corrupt(format!("fact {hash} does not parse: {error}"));
    // The depth limit counts the fact's own object around its fields.
    let value = parse_json(&stored.canonical, JSON_DEPTH_MAX + 1)
        .map_err(|error| corrupt(error.to_string()))?;
    let fact = Fact::from_value(&value).map_err(|error| corrupt(error.to_string()))?;
    let not_before_ms = cairn_delivery::fact_attributes(None, &stored.canonical)
        .map_err(|error| corrupt(error.to_string()))?
        .not_before_ms;
    let mut deliveries = Vec::new();
    // At most `SUBSCRIPTIONS_MAX` subscriptions, each answering about one
    // message: the work is bounded.
    for subscription in state.deliveries.list().await? {
        if !selects(subscription.selection(), &fact)
            || caller.require_subscribe(subscription.name()).is_err()
        {
            continue;
        }
        let delivery = subscription.delivery_of(stored.seq, not_before_ms).await?;
        deliveries.push(FactDelivery {
            subscription: subscription.name().to_string(),
            state: delivery.state,
            attempts: delivery.attempts,
            last_error: delivery.last_error,
            dead_at_ms: delivery.dead_at_ms,
            not_before_ms: delivery.not_before_ms,
        });
    }
    deliveries.sort_by(|a, b| a.subscription.cmp(&b.subscription));
    Ok(json_answer(&FactDeliveries {
        hash,
        seq: stored.seq,
        deliveries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_fact::Hash;

    fn fact(json: &str) -> Fact {
        Fact::from_value(&parse_json(json.as_bytes(), 64).unwrap()).unwrap()
    }

    #[test]
    fn a_selection_selects_by_type_and_by_the_predecessor_in_its_role() {
        let customer = Hash::of_bytes(b"customer");
        let other = Hash::of_bytes(b"other");
        let order = fact(&format!(
            r#"{{"type":"Shop.Order","fields":{{}},"predecessors":{{"customer":"{customer}","items":["{other}"]}}}}"#
        ));
        assert!(selects(
            &MessageSelection::Type("Shop.Order".into()),
            &order
        ));
        assert!(!selects(
            &MessageSelection::Type("Shop.Orders".into()),
            &order
        ));
        let successors = |role: &str, predecessor: Hash| MessageSelection::Successors {
            type_name: "Shop.Order".into(),
            role: role.into(),
            predecessor,
        };
        assert!(selects(&successors("customer", customer), &order));
        assert!(selects(&successors("items", other), &order));
        assert!(!selects(&successors("customer", other), &order));
        assert!(!selects(&successors("seller", customer), &order));
    }
}
