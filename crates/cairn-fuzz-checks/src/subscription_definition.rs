//! Check of the subscription definition parser (`PUT
//! /v1/subscriptions/{name}` bodies): it never panics, and a definition it
//! accepts is already normalized, so it serializes to JSON that parses
//! back to an equal definition (creation is idempotent exactly when
//! definitions are equal, so normalization must be a fixed point).

use cairn_delivery::SubscriptionDefinition;

/// Parses `data` as a definition and panics if an accepted definition
/// breaks its invariants or does not survive a JSON round trip unchanged.
pub fn check_subscription_definition(data: &[u8]) {
    let Ok(definition) = SubscriptionDefinition::from_json(data) else {
        return;
    };
    assert_eq!(
        definition.ordering_key.is_some(),
        definition.max_in_flight_per_key.is_some(),
        "max_in_flight_per_key is filled in exactly when there is an ordering key"
    );
    if let Some(predecessor) = &definition.predecessor {
        let (role, hash) = definition
            .predecessor_hash()
            .expect("an accepted predecessor hash parses");
        assert_eq!(role, predecessor.role);
        assert_eq!(hash, predecessor.hash);
    }
    let serialized = serde_json::to_vec(&definition).expect("a definition serializes to JSON");
    let reparsed = SubscriptionDefinition::from_json(&serialized)
        .expect("a serialized accepted definition is accepted");
    assert_eq!(reparsed, definition, "normalization is a fixed point");
}
