//! Subscription definitions: what a subscription selects and how it
//! delivers, validated, with defaults filled in.

use cairn_fact::{validate_role, validate_type_name, Hash};
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::limits;

/// Where a new subscription starts in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Every matching fact already stored is a message.
    #[default]
    Beginning,
    /// Only facts stored after the subscription was created.
    Now,
}

/// Restricts a subscription to the successors of one fact in one role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredecessorSelection {
    /// The role in which the successor names the fact.
    pub role: String,
    /// The fact, as 64 lowercase hex characters.
    pub hash: String,
}

/// A validated subscription definition with every default filled in. Two
/// definitions are "the same" (idempotent creation) exactly when equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionDefinition {
    /// The fact type selected.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Only successors of this fact in this role, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<PredecessorSelection>,
    /// Where the subscription starts.
    #[serde(default)]
    pub start: Start,
    /// How long a pulled message stays leased to its consumer.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Deliveries of one message before it becomes a dead letter.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay between attempts.
    #[serde(default)]
    pub backoff: Backoff,
    /// A predecessor role whose hash orders and limits delivery per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Messages of one key leased at once (only with `ordering_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight_per_key: Option<u32>,
    /// Messages delivered per second at most, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
}

fn default_lease_ms() -> u64 {
    limits::LEASE_MS_DEFAULT
}

fn default_max_attempts() -> u32 {
    limits::MAX_ATTEMPTS_DEFAULT
}

/// Why a definition was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DefinitionError(pub String);

impl SubscriptionDefinition {
    /// Parses and validates a definition from JSON, filling in defaults.
    pub fn from_json(bytes: &[u8]) -> Result<SubscriptionDefinition, DefinitionError> {
        let mut definition: SubscriptionDefinition = serde_json::from_slice(bytes)
            .map_err(|error| DefinitionError(format!("invalid definition: {error}")))?;
        definition.normalize()?;
        Ok(definition)
    }

    /// Checks every rule and fills in `max_in_flight_per_key`.
    fn normalize(&mut self) -> Result<(), DefinitionError> {
        let invalid = |message: String| Err(DefinitionError(message));
        validate_type_name(&self.type_name)
            .map_err(|error| DefinitionError(format!("type: {error}")))?;
        if let Some(predecessor) = &mut self.predecessor {
            validate_role(&predecessor.role)
                .map_err(|error| DefinitionError(format!("predecessor.role: {error}")))?;
            let hash = Hash::from_hex(&predecessor.hash).map_err(|_| {
                DefinitionError("predecessor.hash must be 64 lowercase hex characters".into())
            })?;
            predecessor.hash = hash.to_hex();
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
        Ok(())
    }

    /// The predecessor restriction as a parsed hash.
    pub fn predecessor_hash(&self) -> Option<(String, Hash)> {
        let predecessor = self.predecessor.as_ref()?;
        let hash = Hash::from_hex(&predecessor.hash).ok()?;
        Some((predecessor.role.clone(), hash))
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
