//! The predecessors of one role of a fact: a single hash, or a set of hashes
//! written as an array. A set has one canonical form, sorted ascending and
//! without duplicates, so that the same set always yields the same fact hash
//! however the client ordered or repeated it.

use crate::excerpt::{excerpt, EXCERPT_CHARS_MAX};
use crate::{FactError, Hash, Value};

/// The predecessors of one role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PredecessorRef {
    /// A single predecessor, written as a string.
    One(Hash),
    /// A set of predecessors, written as an array: sorted ascending (which
    /// is also the order of their hex forms), deduplicated and non-empty. It
    /// stays an array even with a single element, since that is how the
    /// client wrote it and the hash depends on it.
    Many(Vec<Hash>),
}

impl PredecessorRef {
    /// Builds a set of predecessors from hashes in any order, with any
    /// repetitions; returns `None` when there are none.
    pub fn many(hashes: impl IntoIterator<Item = Hash>) -> Option<PredecessorRef> {
        let mut hashes: Vec<Hash> = hashes.into_iter().collect();
        if hashes.is_empty() {
            return None;
        }
        hashes.sort_unstable();
        hashes.dedup();
        Some(PredecessorRef::Many(hashes))
    }

    /// Returns every predecessor hash of the role: one for `One`, the sorted
    /// set for `Many`.
    pub fn hashes(&self) -> &[Hash] {
        match self {
            PredecessorRef::One(hash) => std::slice::from_ref(hash),
            PredecessorRef::Many(hashes) => hashes,
        }
    }

    /// Reads and normalizes the predecessors of `role` from their JSON value.
    pub(crate) fn from_value(role: &str, value: &Value) -> Result<PredecessorRef, FactError> {
        match value {
            Value::String(text) => Ok(PredecessorRef::One(parse_hash(role, text)?)),
            Value::Array(items) => {
                let hashes = items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => parse_hash(role, text),
                        other => Err(FactError::InvalidPredecessor {
                            role: role.to_string(),
                            reason: format!(
                                "every element of the array must be a hash string, not {}",
                                other.kind_name()
                            ),
                        }),
                    })
                    .collect::<Result<Vec<Hash>, FactError>>()?;
                PredecessorRef::many(hashes).ok_or_else(|| FactError::InvalidPredecessor {
                    role: role.to_string(),
                    reason: "the array is empty; leave the role out instead".to_string(),
                })
            }
            other => Err(FactError::InvalidPredecessor {
                role: role.to_string(),
                reason: format!(
                    "it must be a hash string or a non-empty array of hash strings, not {}",
                    other.kind_name()
                ),
            }),
        }
    }

    /// Returns the normalized JSON value: a string for `One`, an array of
    /// strings for `Many`.
    pub fn to_value(&self) -> Value {
        match self {
            PredecessorRef::One(hash) => Value::String(hash.to_hex()),
            PredecessorRef::Many(hashes) => Value::Array(
                hashes
                    .iter()
                    .map(|hash| Value::String(hash.to_hex()))
                    .collect(),
            ),
        }
    }
}

fn parse_hash(role: &str, text: &str) -> Result<Hash, FactError> {
    Hash::from_hex(text).map_err(|_| FactError::InvalidHash {
        role: role.to_string(),
        text: excerpt(text, EXCERPT_CHARS_MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(seed: u8) -> Hash {
        Hash::of_bytes(&[seed])
    }

    fn strings(hashes: &[Hash]) -> Value {
        Value::Array(
            hashes
                .iter()
                .map(|hash| Value::String(hash.to_hex()))
                .collect(),
        )
    }

    #[test]
    fn sorts_and_deduplicates_arrays() {
        let (first, second, third) = (hash(1), hash(2), hash(3));
        let given = strings(&[third, first, third, second, first]);
        let predecessor = PredecessorRef::from_value("items", &given).unwrap();
        let mut expected = vec![first, second, third];
        expected.sort();
        assert_eq!(predecessor.hashes(), expected.as_slice());
        assert_eq!(predecessor.to_value(), strings(&expected));
    }

    #[test]
    fn keeps_one_as_a_string_and_a_single_element_array_as_an_array() {
        let one = PredecessorRef::from_value("x", &Value::String(hash(1).to_hex())).unwrap();
        assert_eq!(one, PredecessorRef::One(hash(1)));
        assert_eq!(one.hashes(), &[hash(1)]);
        assert_eq!(one.to_value(), Value::String(hash(1).to_hex()));
        let many = PredecessorRef::from_value("x", &strings(&[hash(1), hash(1)])).unwrap();
        assert_eq!(many, PredecessorRef::Many(vec![hash(1)]));
        assert_eq!(many.to_value(), strings(&[hash(1)]));
    }

    #[test]
    fn refuses_what_is_not_a_hash_or_a_non_empty_array_of_hashes() {
        let code = |value: Value| PredecessorRef::from_value("r", &value).unwrap_err().code();
        assert_eq!(code(Value::Array(Vec::new())), "invalid_predecessor");
        assert_eq!(code(Value::Null), "invalid_predecessor");
        assert_eq!(code(Value::Number(1.0)), "invalid_predecessor");
        assert_eq!(code(Value::Object(Vec::new())), "invalid_predecessor");
        assert_eq!(code(Value::Array(vec![Value::Null])), "invalid_predecessor");
        assert_eq!(code(Value::String("abc".to_string())), "invalid_hash");
        assert_eq!(
            code(Value::String(hash(1).to_hex().to_uppercase())),
            "invalid_hash"
        );
        assert_eq!(
            code(Value::Array(vec![
                Value::String(hash(1).to_hex()),
                Value::String("nope".to_string())
            ])),
            "invalid_hash"
        );
        assert_eq!(PredecessorRef::many(Vec::new()), None);
    }
}
