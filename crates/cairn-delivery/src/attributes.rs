//! What the delivery logic needs to know about a fact: its ordering key and
//! its `cairn_not_before` time, from the parsed fact or straight from the
//! canonical bytes a store read (both engines admit messages through
//! [`fact_attributes`]).

use cairn_fact::{parse_json, Fact, Hash, Value, JSON_DEPTH_MAX};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The field that delays delivery of a fact until an RFC 3339 time.
pub const NOT_BEFORE_FIELD: &str = "cairn_not_before";

/// The delivery-relevant attributes of one fact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageAttributes {
    /// The predecessor in the subscription's `ordering_key` role (the
    /// smallest one when the role holds several), if any.
    pub key: Option<Hash>,
    /// Not to be delivered before this time (ms since the Unix epoch).
    pub not_before_ms: Option<u64>,
}

/// A stored fact whose bytes do not parse as a fact: the store is damaged
/// (every fact was validated when written and is verified against its
/// hash when read), never a bad request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a stored fact does not parse: {0}")]
pub struct UnreadableFact(String);

/// Whether a fact with these canonical bytes can carry a not-before time
/// (a cheap test that spares parsing most facts).
pub fn may_have_not_before(canonical: &[u8]) -> bool {
    memchr::memmem::find(canonical, NOT_BEFORE_FIELD.as_bytes()).is_some()
}

/// The ordering key (for the `ordering_key` role, if any) and not-before
/// time of a stored fact, from its canonical bytes (already verified
/// against its hash). The fact is parsed only when one of them can be
/// present.
pub fn fact_attributes(
    ordering_key: Option<&str>,
    canonical: &[u8],
) -> Result<MessageAttributes, UnreadableFact> {
    if ordering_key.is_none() && !may_have_not_before(canonical) {
        return Ok(MessageAttributes::default());
    }
    // The depth limit counts the fact's own object around its fields.
    let value = parse_json(canonical, JSON_DEPTH_MAX + 1)
        .map_err(|error| UnreadableFact(error.to_string()))?;
    let fact = Fact::from_value(&value).map_err(|error| UnreadableFact(error.to_string()))?;
    Ok(message_attributes(&fact, ordering_key))
}

/// Extracts the ordering key (for `ordering_key` role, if given) and the
/// `cairn_not_before` time of a fact. A `cairn_not_before` that is not an
/// RFC 3339 string is ignored, as the contract says.
pub fn message_attributes(fact: &Fact, ordering_key: Option<&str>) -> MessageAttributes {
    let key = ordering_key.and_then(|role| {
        fact.predecessors
            .iter()
            .find(|(name, _)| name == role)
            .and_then(|(_, predecessor)| predecessor.hashes().iter().min().copied())
    });
    let not_before_ms = fact
        .fields
        .iter()
        .find(|(name, _)| name == NOT_BEFORE_FIELD)
        .and_then(|(_, value)| match value {
            Value::String(text) => OffsetDateTime::parse(text, &Rfc3339).ok(),
            _ => None,
        })
        .map(|time| {
            let millis = time.unix_timestamp_nanos() / 1_000_000;
            u64::try_from(millis).unwrap_or(0)
        });
    MessageAttributes { key, not_before_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_fact::CanonicalFact;

    fn fact(json: &str) -> Fact {
        CanonicalFact::from_json(json.as_bytes(), 65_536)
            .unwrap()
            .fact
    }

    #[test]
    fn finds_the_key_and_the_time() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let with_both = fact(&format!(
            r#"{{"type":"T","fields":{{"cairn_not_before":"2026-11-28T10:00:00.5+01:00"}},
               "predecessors":{{"customer":["{b}","{a}"]}}}}"#
        ));
        let attributes = message_attributes(&with_both, Some("customer"));
        assert_eq!(attributes.key, Some(Hash::from_hex(&a).unwrap()));
        assert_eq!(attributes.not_before_ms, Some(1_795_856_400_500));
        assert_eq!(message_attributes(&with_both, Some("other")).key, None);
        assert_eq!(message_attributes(&with_both, None).key, None);
        let unparsable =
            fact(r#"{"type":"T","fields":{"cairn_not_before":"soon"},"predecessors":{}}"#);
        assert_eq!(message_attributes(&unparsable, None).not_before_ms, None);
        let number = fact(r#"{"type":"T","fields":{"cairn_not_before":5},"predecessors":{}}"#);
        assert_eq!(message_attributes(&number, None).not_before_ms, None);
    }

    #[test]
    fn reads_canonical_bytes_and_calls_unparsable_ones_damage() {
        let canonical = CanonicalFact::from_json(
            br#"{"type":"T","fields":{"cairn_not_before":"2026-11-28T09:00:00Z"},"predecessors":{}}"#,
            65_536,
        )
        .unwrap()
        .canonical;
        let attributes = fact_attributes(None, &canonical).unwrap();
        assert_eq!(attributes.not_before_ms, Some(1_795_856_400_000));
        assert_eq!(
            fact_attributes(None, br#"{"plain":true}"#),
            Ok(MessageAttributes::default()),
            "without a key or a not-before field nothing is parsed"
        );
        assert!(fact_attributes(Some("k"), b"{broken").is_err());
        assert!(fact_attributes(None, br#"{"cairn_not_before":1"#).is_err());
    }
}
