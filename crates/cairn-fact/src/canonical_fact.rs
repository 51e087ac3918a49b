//! A fact together with its identity: the canonical bytes that are stored
//! and hashed, and their BLAKE3 hash. This is the form in which facts enter
//! the store, and the form that is checked again when they are read back.

use crate::limits::JSON_DEPTH_MAX;
use crate::{parse_json, Fact, FactError, Hash, Value};

/// Bytes reserved for the canonical form beyond the length of the text it
/// is made from.
const CANONICAL_SLACK_BYTES: usize = 64;

/// A validated fact, its canonical form and its hash.
///
/// Invariants: `canonical` is the RFC 8785 form of `fact.to_value()`, and
/// `hash` is the BLAKE3 hash of `canonical`.
#[derive(Clone, Debug)]
pub struct CanonicalFact {
    /// The validated, normalized fact.
    pub fact: Fact,
    /// The canonical UTF-8 bytes of the fact.
    pub canonical: Vec<u8>,
    /// The fact's identity: BLAKE3-256 of `canonical`.
    pub hash: Hash,
}

impl CanonicalFact {
    /// Validates a fact given as a JSON value and computes its canonical
    /// form and hash, refusing a canonical form longer than
    /// `canonical_bytes_max` bytes.
    pub fn from_value(
        value: &Value,
        canonical_bytes_max: usize,
    ) -> Result<CanonicalFact, FactError> {
        let fact = Fact::from_value(value)?;
        CanonicalFact::from_fact(fact, Vec::new(), canonical_bytes_max)
    }

    /// Parses a fact from JSON text (nesting at most [`JSON_DEPTH_MAX`]
    /// deep), then proceeds as [`CanonicalFact::from_value`].
    pub fn from_json(bytes: &[u8], canonical_bytes_max: usize) -> Result<CanonicalFact, FactError> {
        let value = parse_json(bytes, JSON_DEPTH_MAX)?;
        let fact = Fact::from_parsed_value(value)?;
        // The canonical form is rarely much longer than the text (only
        // numbers such as `1E2` grow), so this usually avoids regrowing.
        let canonical = Vec::with_capacity(bytes.len().saturating_add(CANONICAL_SLACK_BYTES));
        CanonicalFact::from_fact(fact, canonical, canonical_bytes_max)
    }

    /// Writes the canonical form of a validated fact into the empty
    /// `canonical` (given so that the caller can choose its capacity),
    /// refuses it when longer than `canonical_bytes_max` bytes, and hashes
    /// it.
    fn from_fact(
        fact: Fact,
        mut canonical: Vec<u8>,
        canonical_bytes_max: usize,
    ) -> Result<CanonicalFact, FactError> {
        fact.write_canonical(&mut canonical);
        if canonical.len() > canonical_bytes_max {
            return Err(FactError::TooLarge {
                canonical_bytes: canonical.len(),
                canonical_bytes_max,
            });
        }
        let hash = Hash::of_bytes(&canonical);
        Ok(CanonicalFact {
            fact,
            canonical,
            hash,
        })
    }

    /// Re-validates stored canonical bytes read back from disk: checks that
    /// they hash to `expected`, parses and validates them as a fact, and
    /// checks that canonicalizing that fact again yields the same bytes.
    ///
    /// Any error means the stored bytes are corrupt (or were not written by
    /// this code): [`FactError::HashMismatch`] or
    /// [`FactError::NotCanonical`], or the parse or validation error that the
    /// bytes cause. No size limit is applied, since the limit in force when
    /// the fact was stored may have been larger.
    pub fn verify_stored(canonical: &[u8], expected: &Hash) -> Result<CanonicalFact, FactError> {
        let actual = Hash::of_bytes(canonical);
        if actual != *expected {
            return Err(FactError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        let value = parse_json(canonical, JSON_DEPTH_MAX)?;
        let fact = Fact::from_parsed_value(value)?;
        let mut recanonicalized = Vec::with_capacity(canonical.len());
        fact.write_canonical(&mut recanonicalized);
        if recanonicalized != canonical {
            return Err(FactError::NotCanonical {
                expected: *expected,
            });
        }
        Ok(CanonicalFact {
            fact,
            canonical: recanonicalized,
            hash: actual,
        })
    }
}

/// The type of a fact from its canonical bytes, without parsing them:
/// `type` is the last member of a canonical fact (members are sorted), and
/// a type name holds no character that JSON escapes, so the bytes end with
/// `"type":"<name>"}`. `None` if they do not (not a canonical fact).
pub fn canonical_type(canonical: &[u8]) -> Option<&str> {
    let body = canonical.strip_suffix(b"\"}")?;
    let start = body.iter().rposition(|&byte| byte == b'"')? + 1;
    if !body[..start].ends_with(b",\"type\":\"") {
        return None;
    }
    let name = std::str::from_utf8(&body[start..]).ok()?;
    crate::validate_type_name(name).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{to_canonical, FACT_CANONICAL_BYTES_MAX_DEFAULT};

    #[test]
    fn the_type_is_read_from_the_end_of_the_canonical_bytes() {
        let fact = from_text(
            r#"{"type":"Shop.Order","fields":{"note":"\"type\":\"Fake\"}"},"predecessors":{}}"#,
        )
        .expect("valid");
        assert_eq!(canonical_type(&fact.canonical), Some("Shop.Order"));
        assert_eq!(canonical_type(b"{}"), None);
        assert_eq!(canonical_type(br#"{"type":"a b"}"#), None);
        assert_eq!(canonical_type(br#"{"x":1,"type":"A"}"#), Some("A"));
    }

    fn hash(seed: u8) -> Hash {
        Hash::of_bytes(&[seed])
    }

    fn from_text(text: &str) -> Result<CanonicalFact, FactError> {
        CanonicalFact::from_json(text.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
    }

    #[test]
    fn canonical_form_and_hash_of_a_small_fact() {
        let canonical_fact = from_text(
            r#" { "type" : "T", "predecessors" : { }, "fields" : { "b" : 1E30, "a" : 4.50 } } "#,
        )
        .unwrap();
        let expected = br#"{"fields":{"a":4.5,"b":1e+30},"predecessors":{},"type":"T"}"#;
        assert_eq!(canonical_fact.canonical, expected);
        assert_eq!(canonical_fact.hash, Hash::of_bytes(expected));
        assert_eq!(
            canonical_fact.canonical,
            to_canonical(&canonical_fact.fact.to_value())
        );
    }

    #[test]
    fn predecessor_order_and_duplicates_do_not_change_the_hash() {
        let (first, second, third) = (hash(1), hash(2), hash(3));
        let fact_text = |items: &[Hash], roles_reversed: bool| {
            let items: Vec<String> = items.iter().map(|hash| format!("\"{hash}\"")).collect();
            let items = items.join(",");
            let roles = if roles_reversed {
                format!(r#""owner":"{first}","items":[{items}]"#)
            } else {
                format!(r#""items":[{items}],"owner":"{first}""#)
            };
            format!(r#"{{"type":"T","fields":{{}},"predecessors":{{{roles}}}}}"#)
        };
        let mut sorted = vec![first, second, third];
        sorted.sort();
        let reference = from_text(&fact_text(&sorted, false)).unwrap();
        for (items, roles_reversed) in [
            (vec![third, second, first], false),
            (vec![second, first, third, first, second], true),
            (vec![first, first, first, second, third, third], false),
        ] {
            let other = from_text(&fact_text(&items, roles_reversed)).unwrap();
            assert_eq!(other.hash, reference.hash);
            assert_eq!(other.canonical, reference.canonical);
        }
        // But a set of one is not the same fact as a single hash.
        let single_string =
            format!(r#"{{"type":"T","fields":{{}},"predecessors":{{"p":"{first}"}}}}"#);
        let single_array =
            format!(r#"{{"type":"T","fields":{{}},"predecessors":{{"p":["{first}"]}}}}"#);
        assert_ne!(
            from_text(&single_string).unwrap().hash,
            from_text(&single_array).unwrap().hash
        );
    }

    #[test]
    fn refuses_facts_larger_than_the_limit() {
        let smallest = br#"{"fields":{},"predecessors":{},"type":"T"}"#;
        assert!(CanonicalFact::from_json(smallest, smallest.len()).is_ok());
        assert_eq!(
            CanonicalFact::from_json(smallest, smallest.len() - 1).unwrap_err(),
            FactError::TooLarge {
                canonical_bytes: smallest.len(),
                canonical_bytes_max: smallest.len() - 1,
            }
        );
        let big = format!(
            r#"{{"type":"T","fields":{{"blob":"{}"}},"predecessors":{{}}}}"#,
            "x".repeat(FACT_CANONICAL_BYTES_MAX_DEFAULT)
        );
        assert_eq!(from_text(&big).unwrap_err().code(), "fact_too_large");
    }

    #[test]
    fn verify_stored_accepts_what_was_stored() {
        let stored = from_text(&format!(
            r#"{{"type":"A.B","fields":{{"n":[1,2.5,"é"]}},"predecessors":{{"p":["{}","{}"]}}}}"#,
            hash(9),
            hash(8)
        ))
        .unwrap();
        let verified = CanonicalFact::verify_stored(&stored.canonical, &stored.hash).unwrap();
        assert_eq!(verified.fact, stored.fact);
        assert_eq!(verified.canonical, stored.canonical);
        assert_eq!(verified.hash, stored.hash);
    }

    #[test]
    fn verify_stored_detects_corruption() {
        let stored = from_text(r#"{"type":"T","fields":{"a":1},"predecessors":{}}"#).unwrap();
        let mut flipped = stored.canonical.clone();
        flipped[15] ^= 1;
        let error = CanonicalFact::verify_stored(&flipped, &stored.hash).unwrap_err();
        assert_eq!(error.code(), "corrupt_fact");
        assert!(matches!(error, FactError::HashMismatch { .. }));

        // Bytes that hash right but are not canonical were not written by us.
        let spaced = br#"{"type":"T", "fields":{"a":1},"predecessors":{}}"#;
        let error = CanonicalFact::verify_stored(spaced, &Hash::of_bytes(spaced)).unwrap_err();
        assert_eq!(
            error,
            FactError::NotCanonical {
                expected: Hash::of_bytes(spaced)
            }
        );
        assert_eq!(error.code(), "corrupt_fact");

        let garbage = b"{\"fields\":";
        let error = CanonicalFact::verify_stored(garbage, &Hash::of_bytes(garbage)).unwrap_err();
        assert_eq!(error.code(), "malformed_json");
    }
}
