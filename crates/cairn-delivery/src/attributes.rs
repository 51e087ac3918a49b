//! What the delivery logic needs to know about a fact: its ordering key and
//! its `cairn_not_before` time.

use cairn_fact::{Fact, Hash, Value};
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
}
