//! Serde for a [`Hash`] as its 64-character lowercase hexadecimal text,
//! the only way a hash travels in API v1.

use cairn_fact::Hash;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the hash as text.
pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(hash)
}

/// Reads the hash from text.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
    let text = String::deserialize(deserializer)?;
    Hash::from_hex(&text).map_err(serde::de::Error::custom)
}

/// The same for an optional hash (absent or `null` is `None`).
pub mod optional {
    use cairn_fact::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the hash as text, or nothing.
    pub fn serialize<S: Serializer>(hash: &Option<Hash>, serializer: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(hash) => serializer.collect_str(hash),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional hash from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Hash>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| Hash::from_hex(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
