//! The answer of `GET /v1/digests`: digests over the hash space, for
//! anti-entropy between deployments (`cairn diff`; "Anti-entropy" in
//! `docs/api-v1.md`, the format in `docs/design.md`, "Digests").
//!
//! The digest of a set of facts is their count and the XOR of their
//! hashes; two deployments hold the same facts under a prefix when both
//! are equal there. An answer gives the prefix's digest and those of its
//! 16 one-digit-longer sub-prefixes, so a comparison descends only where
//! they differ, and lists the hashes once the prefix holds few facts.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

/// The answer of `GET /v1/digests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DigestsAnswer {
    /// The deployment's identity (the same for every server of a shared
    /// store), so that a comparison can tell two deployments apart.
    pub store: String,
    /// The prefix asked for: 0 to 63 lowercase hexadecimal digits.
    pub prefix: String,
    /// Facts under the prefix, of the types asked for that the caller may read.
    pub count: u64,
    /// XOR of their hashes: 64 lowercase hexadecimal digits, all zeros for none.
    pub digest: String,
    /// The 16 sub-prefixes one digit longer, in order (`prefix` + `0` … `f`).
    pub buckets: Vec<DigestBucket>,
    /// The facts' hashes in ascending order, present only when `count` is
    /// at most [`crate::limits::DIGEST_HASHES_MAX`] and the prefix has at
    /// least [`crate::limits::DIGEST_LISTED_PREFIX_DIGITS_MIN`] digits.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hash_list")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::openapi::HashText>>))]
    pub hashes: Option<Vec<Hash>>,
}

/// Serde for an optional list of hashes as their hexadecimal texts.
mod hash_list {
    use cairn_fact::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        hashes: &Option<Vec<Hash>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match hashes {
            None => serializer.serialize_none(),
            Some(hashes) => serializer.collect_seq(hashes.iter().map(|hash| hash.to_hex())),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<Hash>>, D::Error> {
        let Some(texts) = Option::<Vec<String>>::deserialize(deserializer)? else {
            return Ok(None);
        };
        texts
            .iter()
            .map(|text| Hash::from_hex(text).map_err(serde::de::Error::custom))
            .collect::<Result<Vec<Hash>, D::Error>>()
            .map(Some)
    }
}

/// One sub-prefix of a [`DigestsAnswer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DigestBucket {
    /// The sub-prefix.
    pub prefix: String,
    /// Facts under it.
    pub count: u64,
    /// XOR of their hashes (64 hexadecimal digits).
    pub digest: String,
}
