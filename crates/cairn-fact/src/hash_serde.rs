//! [`Hash`] in serde (feature `serde`): the 64 lowercase hexadecimal
//! characters it has in facts and in the API, so that a typed value can hold
//! a hash as an ordinary field.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::hash::Hash;

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        deserializer.deserialize_str(HashVisitor)
    }
}

/// Reads a hash from a string, with the parser's own error text.
struct HashVisitor;

impl Visitor<'_> for HashVisitor {
    type Value = Hash;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a hash: 64 lowercase hexadecimal characters")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Hash, E> {
        Hash::from_hex(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_a_hex_string_both_ways() {
        let hash = Hash::of_bytes(b"x");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{}\"", hash.to_hex()));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), hash);
    }

    #[test]
    fn anything_else_is_refused_with_the_parsers_reason() {
        let error = serde_json::from_str::<Hash>("\"ABC\"").unwrap_err();
        assert!(
            error.to_string().contains("64 lowercase hexadecimal"),
            "{error}"
        );
        assert!(serde_json::from_str::<Hash>("7").is_err());
    }
}
