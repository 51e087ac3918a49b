//! Subscription definitions: what a subscription selects and how it
//! delivers, validated, with defaults filled in.

use cairn_fact::{validate_role, validate_type_name, Hash};
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::limits;

pub use cairn_api::{PredecessorSelector, Start};

/// A validated subscription definition with every default filled in. Two
/// definitions are "the same" (idempotent creation) exactly when equal.
/// On the wire, and where it is stored, it is a
/// [`cairn_api::SubscriptionDefinition`] with every member set, and serde
/// goes through that form (validating when it reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "cairn_api::SubscriptionDefinition",
    into = "cairn_api::SubscriptionDefinition"
)]
pub struct SubscriptionDefinition {
    /// The fact type selected.
    pub type_name: String,
    /// Only successors of this fact in this role, if set.
    pub predecessor: Option<PredecessorSelector>,
    /// Where the subscription starts.
    pub start: Start,
    /// How long a pulled message stays leased to its consumer.
    pub lease_ms: u64,
    /// Deliveries of one message before it becomes a dead letter.
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// A predecessor role whose hash orders and limits delivery per key.
    pub ordering_key: Option<String>,
    /// Messages of one key leased at once (only with `ordering_key`).
    pub max_in_flight_per_key: Option<u32>,
    /// Messages delivered per second at most, if set.
    pub rate_limit_per_s: Option<u32>,
    /// The schema version messages are delivered as, if set.
    pub as_version: Option<u32>,
}

impl TryFrom<cairn_api::SubscriptionDefinition> for SubscriptionDefinition {
    type Error = DefinitionError;

    fn try_from(wire: cairn_api::SubscriptionDefinition) -> Result<Self, DefinitionError> {
        SubscriptionDefinition::from_wire(wire)
    }
}

impl From<SubscriptionDefinition> for cairn_api::SubscriptionDefinition {
    fn from(definition: SubscriptionDefinition) -> Self {
        definition.to_wire()
    }
}

/// What a new definition for an existing subscription changes. What a
/// subscription *selects* and where it *started* are fixed: its cursor,
/// messages and dead letters were decided by them, and changing them would
/// make that state mean something else. How it *delivers* (`lease_ms`,
/// `max_attempts`, `backoff`, `max_in_flight_per_key`, `rate_limit_per_s`,
/// `as_version`) may change, and applies from the change on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefinitionChange {
    /// The definitions are equal: nothing to do.
    Same,
    /// Only members that may change differ.
    Update,
    /// Members that cannot change differ.
    Conflict {
        /// Their names as on the wire, in the definition's order.
        fixed_members_changed: Vec<&'static str>,
    },
}

/// Why a definition was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DefinitionError(pub String);

impl SubscriptionDefinition {
    /// Parses and validates a definition from JSON, filling in defaults.
    pub fn from_json(bytes: &[u8]) -> Result<SubscriptionDefinition, DefinitionError> {
        // Serde would also build the definition from an array of its
        // members; a definition is an object.
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(DefinitionError(
                "invalid definition: expected a JSON object".into(),
            ));
        }
        let wire: cairn_api::SubscriptionDefinition = serde_json::from_slice(bytes)
            .map_err(|error| DefinitionError(format!("invalid definition: {error}")))?;
        SubscriptionDefinition::from_wire(wire)
    }

    /// Validates a definition as sent, filling in defaults.
    pub fn from_wire(
        wire: cairn_api::SubscriptionDefinition,
    ) -> Result<SubscriptionDefinition, DefinitionError> {
        let backoff = wire.backoff.unwrap_or_default();
        let mut definition = SubscriptionDefinition {
            type_name: wire.type_name,
            predecessor: wire.predecessor,
            start: wire.start.unwrap_or_default(),
            lease_ms: wire.lease_ms.unwrap_or(limits::LEASE_MS_DEFAULT),
            max_attempts: wire.max_attempts.unwrap_or(limits::MAX_ATTEMPTS_DEFAULT),
            backoff: Backoff {
                initial_ms: backoff
                    .initial_ms
                    .unwrap_or(limits::BACKOFF_INITIAL_MS_DEFAULT),
                max_ms: backoff.max_ms.unwrap_or(limits::BACKOFF_MAX_MS_DEFAULT),
            },
            ordering_key: wire.ordering_key,
            max_in_flight_per_key: wire.max_in_flight_per_key,
            rate_limit_per_s: wire.rate_limit_per_s,
            as_version: wire.as_version,
        };
        definition.normalize()?;
        Ok(definition)
    }

    /// The definition as the wire (and the store) shows it: every member
    /// set.
    pub fn to_wire(&self) -> cairn_api::SubscriptionDefinition {
        cairn_api::SubscriptionDefinition {
            type_name: self.type_name.clone(),
            predecessor: self.predecessor.clone(),
            start: Some(self.start),
            lease_ms: Some(self.lease_ms),
            max_attempts: Some(self.max_attempts),
            backoff: Some(cairn_api::BackoffDefinition {
                initial_ms: Some(self.backoff.initial_ms),
                max_ms: Some(self.backoff.max_ms),
            }),
            ordering_key: self.ordering_key.clone(),
            max_in_flight_per_key: self.max_in_flight_per_key,
            rate_limit_per_s: self.rate_limit_per_s,
            as_version: self.as_version,
        }
    }

    /// Checks every rule and fills in `max_in_flight_per_key`.
    fn normalize(&mut self) -> Result<(), DefinitionError> {
        let invalid = |message: String| Err(DefinitionError(message));
        validate_type_name(&self.type_name)
            .map_err(|error| DefinitionError(format!("type: {error}")))?;
        if let Some(predecessor) = &self.predecessor {
            validate_role(&predecessor.role)
                .map_err(|error| DefinitionError(format!("predecessor.role: {error}")))?;
        }
        if !(limits::LEASE_MS_MIN..=limits::LEASE_MS_MAX).contains(&self.lease_ms) {
            return invalid(format!(
                "lease_ms must be from {} to {}",
                limits::LEASE_MS_MIN,
                limits::LEASE_MS_MAX
            ));
        }
        if !(1..=limits::MAX_ATTEMPTS_MAX).contains(&self.max_attempts) {
            return invalid(format!(
                "max_attempts must be from 1 to {}",
                limits::MAX_ATTEMPTS_MAX
            ));
        }
        if !(1..=limits::BACKOFF_INITIAL_MS_MAX).contains(&self.backoff.initial_ms) {
            return invalid(format!(
                "backoff.initial_ms must be from 1 to {}",
                limits::BACKOFF_INITIAL_MS_MAX
            ));
        }
        if !(self.backoff.initial_ms..=limits::DELAY_MS_MAX).contains(&self.backoff.max_ms) {
            return invalid(format!(
                "backoff.max_ms must be from backoff.initial_ms to {}",
                limits::DELAY_MS_MAX
            ));
        }
        match (&self.ordering_key, self.max_in_flight_per_key) {
            (None, Some(_)) => {
                return invalid("max_in_flight_per_key needs ordering_key".into());
            }
            (None, None) => {}
            (Some(role), max_in_flight) => {
                validate_role(role)
                    .map_err(|error| DefinitionError(format!("ordering_key: {error}")))?;
                let max_in_flight = max_in_flight.unwrap_or(1);
                if !(1..=limits::MAX_IN_FLIGHT_PER_KEY_MAX).contains(&max_in_flight) {
                    return invalid(format!(
                        "max_in_flight_per_key must be from 1 to {}",
                        limits::MAX_IN_FLIGHT_PER_KEY_MAX
                    ));
                }
                self.max_in_flight_per_key = Some(max_in_flight);
            }
        }
        if let Some(rate) = self.rate_limit_per_s {
            if !(1..=limits::RATE_LIMIT_PER_S_MAX).contains(&rate) {
                return invalid(format!(
                    "rate_limit_per_s must be from 1 to {}",
                    limits::RATE_LIMIT_PER_S_MAX
                ));
            }
        }
        let version_max = cairn_api::limits::SCHEMA_VERSION_MAX;
        if let Some(version) = self.as_version {
            if !(1..=version_max).contains(&version) {
                return invalid(format!("as_version must be from 1 to {version_max}"));
            }
        }
        Ok(())
    }

    /// What replacing this definition (the one in force) with `new` would
    /// be: nothing, an update of what may change, or a conflict naming the
    /// members that cannot change. Both engines decide with this.
    pub fn change_to(&self, new: &SubscriptionDefinition) -> DefinitionChange {
        if self == new {
            return DefinitionChange::Same;
        }
        let mut fixed_members_changed = Vec::new();
        if self.type_name != new.type_name {
            fixed_members_changed.push("type");
        }
        if self.predecessor != new.predecessor {
            fixed_members_changed.push("predecessor");
        }
        if self.ordering_key != new.ordering_key {
            fixed_members_changed.push("ordering_key");
        }
        if self.start != new.start {
            fixed_members_changed.push("start");
        }
        if fixed_members_changed.is_empty() {
            DefinitionChange::Update
        } else {
            DefinitionChange::Conflict {
                fixed_members_changed,
            }
        }
    }

    /// The predecessor restriction as a parsed hash.
    pub fn predecessor_hash(&self) -> Option<(String, Hash)> {
        let predecessor = self.predecessor.as_ref()?;
        Some((predecessor.role.clone(), predecessor.hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_defaults_and_compares_normalized() {
        let short = SubscriptionDefinition::from_json(br#"{"type":"Shop.Order"}"#).unwrap();
        let long = SubscriptionDefinition::from_json(
            br#"{"type":"Shop.Order","start":"beginning","lease_ms":30000,"max_attempts":5,
                "backoff":{"initial_ms":200,"max_ms":60000}}"#,
        )
        .unwrap();
        assert_eq!(short, long);
        let keyed = SubscriptionDefinition::from_json(br#"{"type":"A","ordering_key":"customer"}"#)
            .unwrap();
        assert_eq!(keyed.max_in_flight_per_key, Some(1));
        assert_eq!(
            SubscriptionDefinition::from_json(serde_json::to_string(&keyed).unwrap().as_bytes())
                .unwrap(),
            keyed
        );
    }

    #[test]
    fn changes_of_delivery_members_update_and_of_selection_members_conflict() {
        let base = SubscriptionDefinition::from_json(
            br#"{"type":"A","ordering_key":"k","rate_limit_per_s":5}"#,
        )
        .unwrap();
        let with = |json: &str| SubscriptionDefinition::from_json(json.as_bytes()).unwrap();
        assert_eq!(base.change_to(&base.clone()), DefinitionChange::Same);
        for mutable in [
            r#"{"type":"A","ordering_key":"k","rate_limit_per_s":5,"lease_ms":1000}"#,
            r#"{"type":"A","ordering_key":"k","rate_limit_per_s":5,"max_attempts":9}"#,
            r#"{"type":"A","ordering_key":"k","rate_limit_per_s":5,"backoff":{"initial_ms":7}}"#,
            r#"{"type":"A","ordering_key":"k","rate_limit_per_s":5,"max_in_flight_per_key":4}"#,
            r#"{"type":"A","ordering_key":"k"}"#,
        ] {
            assert_eq!(
                base.change_to(&with(mutable)),
                DefinitionChange::Update,
                "{mutable}"
            );
        }
        let hash = "ab".repeat(32);
        let cases = [
            (
                r#"{"type":"B","ordering_key":"k","rate_limit_per_s":5}"#.to_string(),
                vec!["type"],
            ),
            (
                r#"{"type":"A","rate_limit_per_s":5}"#.to_string(),
                vec!["ordering_key"],
            ),
            (
                r#"{"type":"A","ordering_key":"k","rate_limit_per_s":5,"start":"now"}"#.to_string(),
                vec!["start"],
            ),
            (
                format!(
                    r#"{{"type":"B","predecessor":{{"role":"r","hash":"{hash}"}},"start":"now","lease_ms":999}}"#
                ),
                vec!["type", "predecessor", "ordering_key", "start"],
            ),
        ];
        for (json, fixed_members_changed) in cases {
            assert_eq!(
                base.change_to(&with(&json)),
                DefinitionChange::Conflict {
                    fixed_members_changed
                },
                "{json}"
            );
        }
    }

    #[test]
    fn refuses_invalid_definitions() {
        let cases: &[&[u8]] = &[
            b"",
            b"[]",
            br#"{}"#,
            br#"{"type":"1bad"}"#,
            br#"{"type":"A","lease_ms":0}"#,
            br#"{"type":"A","lease_ms":-5}"#,
            br#"{"type":"A","lease_ms":99999999999}"#,
            br#"{"type":"A","max_attempts":0}"#,
            br#"{"type":"A","backoff":{"initial_ms":0}}"#,
            br#"{"type":"A","backoff":{"initial_ms":500,"max_ms":100}}"#,
            br#"{"type":"A","max_in_flight_per_key":2}"#,
            br#"{"type":"A","ordering_key":"r","max_in_flight_per_key":0}"#,
            br#"{"type":"A","ordering_key":"bad role"}"#,
            br#"{"type":"A","rate_limit_per_s":0}"#,
            br#"{"type":"A","start":"yesterday"}"#,
            br#"{"type":"A","surprise":1}"#,
            br#"{"type":"A","predecessor":{"role":"r","hash":"zz"}}"#,
            br#"{"type":"A","predecessor":{"role":"r"}}"#,
            br#"["A"]"#,
        ];
        for case in cases {
            assert!(
                SubscriptionDefinition::from_json(case).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }
}
