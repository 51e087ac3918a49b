//! The persistent form of delivery state: one record per subscription and
//! one per message that a subscription tracks or has dead-lettered.
//!
//! A backend stores these as opaque bytes under its own keys (see
//! `docs/design.md`); the encoding is versioned JSON, chosen for
//! debuggability over compactness: records are small and few per message.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

use crate::definition::SubscriptionDefinition;
use crate::limits;

/// Format version written as the first byte of every record.
const RECORD_FORMAT_VERSION: u8 = 1;

/// A subscription's durable state apart from its messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Internal id, unique in the store, used in message keys.
    pub id: u64,
    /// The subscription's name.
    pub name: String,
    /// Its definition.
    pub definition: SubscriptionDefinition,
    /// Whether delivery is paused.
    pub paused: bool,
    /// Every matching fact with `seq <= cursor_seq` is tracked (has a
    /// message record), acknowledged, dead or discarded; facts above it are
    /// new to the subscription.
    pub cursor_seq: u64,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// The definition's generation: 1 at creation, one more at each change
    /// of the definition. Records written before generations existed read
    /// as generation 1.
    #[serde(default = "first_generation")]
    pub generation: u64,
    /// The cursor it was created with (addition, issue 17): facts at or
    /// below it were never its messages (0 for `start: "beginning"`).
    /// Absent from records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_seq: Option<u64>,
}

/// The generation of a subscription as created.
pub const FIRST_GENERATION: u64 = 1;

fn first_generation() -> u64 {
    FIRST_GENERATION
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Tracked: waiting, ready or leased.
    Pending,
    /// A dead letter.
    Dead,
    /// A dead letter that was discarded (kept on record).
    Discarded,
}

/// A message's durable state. Acknowledged messages have no record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The fact's hash.
    #[serde(with = "hash_hex")]
    pub hash: Hash,
    /// Where it stands.
    pub status: MessageStatus,
    /// Deliveries so far.
    pub attempts: u32,
    /// Not delivered again before this time (ms since the Unix epoch).
    pub available_at_ms: u64,
    /// When it was first delivered, if it was.
    pub first_delivered_at_ms: Option<u64>,
    /// The error of the last failed attempt, if any.
    pub last_error: Option<String>,
    /// When it became a dead letter, if it did.
    pub dead_at_ms: Option<u64>,
    /// The ordering key, if the subscription has one and the fact names it.
    #[serde(with = "optional_hash_hex")]
    pub key: Option<Hash>,
    /// How often it was replayed from the dead letters (the high half of
    /// its lease numbers: `attempts` start again at each replay). Absent
    /// from records written before it existed, and while 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Hashes as hex strings inside records.
mod hash_hex {
    use cairn_fact::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Optional hashes as hex strings or null inside records.
mod optional_hash_hex {
    use cairn_fact::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Option<Hash>, serializer: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(hash) => serializer.serialize_str(&hash.to_hex()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Hash>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| Hash::from_hex(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A record that cannot be decoded: the store is damaged or was written by
/// an unknown version.
#[derive(Debug, thiserror::Error)]
#[error("delivery record cannot be decoded: {0}")]
pub struct RecordError(String);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![RECORD_FORMAT_VERSION];
    // Serializing these plain structs to a Vec cannot fail.
    serde_json::to_writer(&mut bytes, value).unwrap_or_default();
    bytes
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, RecordError> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT_VERSION, body)) => {
            serde_json::from_slice(body).map_err(|error| RecordError(error.to_string()))
        }
        Some((version, _)) => Err(RecordError(format!("unknown format version {version}"))),
        None => Err(RecordError("empty record".into())),
    }
}

impl SubscriptionRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes bytes written by [`SubscriptionRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<SubscriptionRecord, RecordError> {
        decode(bytes)
    }
}

impl MessageRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes bytes written by [`MessageRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<MessageRecord, RecordError> {
        decode(bytes)
    }
}

/// Checks a subscription name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, 1 to 128 bytes.
pub fn validate_subscription_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= limits::SUBSCRIPTION_NAME_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "a subscription name is 1 to {} characters of [A-Za-z0-9_.-], starting with a letter or digit",
            limits::SUBSCRIPTION_NAME_BYTES_MAX
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let record = MessageRecord {
            hash: Hash::of_bytes(b"x"),
            status: MessageStatus::Dead,
            attempts: 3,
            available_at_ms: 10,
            first_delivered_at_ms: Some(5),
            last_error: Some("boom".into()),
            dead_at_ms: Some(11),
            key: Some(Hash::of_bytes(b"k")),
            round: 2,
        };
        assert_eq!(MessageRecord::decode(&record.encode()).unwrap(), record);
        let first_round = MessageRecord {
            round: 0,
            ..record.clone()
        };
        let encoded = first_round.encode();
        assert!(
            !String::from_utf8_lossy(&encoded).contains("round"),
            "records of the first round keep the earlier format"
        );
        assert_eq!(MessageRecord::decode(&encoded).unwrap(), first_round);
        let mut damaged = record.encode();
        damaged[0] = 9;
        assert!(MessageRecord::decode(&damaged).is_err());
        assert!(MessageRecord::decode(&[]).is_err());
        assert!(MessageRecord::decode(&[1, b'{']).is_err());
    }

    #[test]
    fn subscription_records_without_a_generation_read_as_the_first() {
        let record = SubscriptionRecord {
            id: 3,
            name: "s".into(),
            definition: SubscriptionDefinition::from_json(br#"{"type":"T"}"#).unwrap(),
            paused: false,
            cursor_seq: 9,
            created_at_ms: 5,
            generation: 4,
            start_seq: Some(2),
        };
        assert_eq!(
            SubscriptionRecord::decode(&record.encode()).unwrap(),
            record
        );
        let mut json: serde_json::Value = serde_json::from_slice(&record.encode()[1..]).unwrap();
        json.as_object_mut().unwrap().remove("generation");
        let mut older = vec![RECORD_FORMAT_VERSION];
        older.extend(serde_json::to_vec(&json).unwrap());
        let read = SubscriptionRecord::decode(&older).unwrap();
        assert_eq!(read.generation, FIRST_GENERATION);
        assert_eq!(read.cursor_seq, 9);
    }

    #[test]
    fn names() {
        for good in ["billing", "a", "Orders.v2-eu_1"] {
            assert!(validate_subscription_name(good).is_ok());
        }
        let long = "a".repeat(129);
        for bad in ["", "-x", ".x", "a b", "ä", "a/b", long.as_str()] {
            assert!(validate_subscription_name(bad).is_err(), "{bad}");
        }
    }
}
