//! [`Predecessors`]: the facts a typed fact follows, by role, kept beside
//! the typed value rather than inside it so that a struct's serde form is
//! exactly the fact's `fields`.

use std::collections::BTreeMap;

use cairn_fact::Hash;

/// The predecessors of one role: a single hash or a set of hashes.
///
/// The two hash differently (`"r": "h"` is not `"r": ["h"]`), so the
/// distinction is kept when a fact is read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PredecessorHashes {
    /// `"role": "<hash>"`.
    One(Hash),
    /// `"role": ["<hash>", ...]` (a set: sorted and deduplicated).
    Many(Vec<Hash>),
}

impl PredecessorHashes {
    /// The hashes of the role.
    pub fn as_slice(&self) -> &[Hash] {
        match self {
            PredecessorHashes::One(hash) => std::slice::from_ref(hash),
            PredecessorHashes::Many(hashes) => hashes,
        }
    }
}

/// Predecessors by role, built with [`Predecessors::with_one`] and
/// [`Predecessors::with_many`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Predecessors {
    roles: BTreeMap<String, PredecessorHashes>,
}

impl Predecessors {
    /// No predecessors.
    pub fn new() -> Predecessors {
        Predecessors::default()
    }

    /// Adds (or replaces) a role naming one fact.
    pub fn with_one(mut self, role: impl Into<String>, hash: Hash) -> Predecessors {
        self.roles.insert(role.into(), PredecessorHashes::One(hash));
        self
    }

    /// Adds (or replaces) a role naming a set of facts. An empty set leaves
    /// the role out, since the contract allows no empty arrays.
    pub fn with_many(
        mut self,
        role: impl Into<String>,
        hashes: impl IntoIterator<Item = Hash>,
    ) -> Predecessors {
        let mut hashes: Vec<Hash> = hashes.into_iter().collect();
        hashes.sort();
        hashes.dedup();
        let role = role.into();
        if hashes.is_empty() {
            self.roles.remove(&role);
        } else {
            self.roles.insert(role, PredecessorHashes::Many(hashes));
        }
        self
    }

    /// The predecessors of `role`, if it is there.
    pub fn get(&self, role: &str) -> Option<&PredecessorHashes> {
        self.roles.get(role)
    }

    /// The hashes of `role` (empty if it is not there).
    pub fn hashes(&self, role: &str) -> &[Hash] {
        self.roles
            .get(role)
            .map_or(&[], PredecessorHashes::as_slice)
    }

    /// The first hash of `role`, for roles that name one fact.
    pub fn first(&self, role: &str) -> Option<Hash> {
        self.hashes(role).first().copied()
    }

    /// Whether any role names `hash`.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.roles
            .values()
            .any(|hashes| hashes.as_slice().contains(hash))
    }

    /// Whether there are no predecessors.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// The roles and their predecessors, by role name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PredecessorHashes)> {
        self.roles
            .iter()
            .map(|(role, hashes)| (role.as_str(), hashes))
    }

    /// The `predecessors` member of a fact.
    pub fn to_json(&self) -> serde_json::Value {
        let members = self.roles.iter().map(|(role, hashes)| {
            let value = match hashes {
                PredecessorHashes::One(hash) => serde_json::Value::String(hash.to_hex()),
                PredecessorHashes::Many(hashes) => hashes
                    .iter()
                    .map(|hash| serde_json::Value::String(hash.to_hex()))
                    .collect(),
            };
            (role.clone(), value)
        });
        serde_json::Value::Object(members.collect())
    }

    /// Reads the `predecessors` member of a fact; a missing member means
    /// none.
    pub fn from_json(value: Option<&serde_json::Value>) -> Result<Predecessors, String> {
        let Some(value) = value else {
            return Ok(Predecessors::new());
        };
        let members = value
            .as_object()
            .ok_or_else(|| "\"predecessors\" is not an object".to_string())?;
        let parse = |text: &serde_json::Value| {
            text.as_str()
                .ok_or_else(|| "a predecessor is not a string".to_string())
                .and_then(|text| Hash::from_hex(text).map_err(|error| error.to_string()))
        };
        let mut roles = BTreeMap::new();
        for (role, hashes) in members {
            let hashes = match hashes {
                serde_json::Value::Array(items) => PredecessorHashes::Many(
                    items.iter().map(parse).collect::<Result<Vec<Hash>, _>>()?,
                ),
                single => PredecessorHashes::One(parse(single)?),
            };
            roles.insert(role.clone(), hashes);
        }
        Ok(Predecessors { roles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Hash {
        Hash([byte; 32])
    }

    #[test]
    fn one_and_many_survive_a_round_trip() {
        let predecessors = Predecessors::new()
            .with_one("customer", hash(1))
            .with_many("items", [hash(3), hash(2), hash(3)]);
        let json = predecessors.to_json();
        assert!(json["customer"].is_string());
        assert_eq!(json["items"].as_array().map(Vec::len), Some(2));
        let read = Predecessors::from_json(Some(&json)).unwrap();
        assert_eq!(read, predecessors);
        assert_eq!(read.hashes("items"), &[hash(2), hash(3)]);
        assert_eq!(read.first("customer"), Some(hash(1)));
        assert!(read.contains(&hash(3)) && !read.contains(&hash(4)));
    }

    #[test]
    fn an_empty_set_leaves_the_role_out() {
        let predecessors = Predecessors::new().with_many("items", []);
        assert!(predecessors.is_empty());
        assert_eq!(predecessors.hashes("items"), &[] as &[Hash]);
    }

    #[test]
    fn malformed_predecessors_are_rejected() {
        let bad = serde_json::json!({"customer": 5});
        assert!(Predecessors::from_json(Some(&bad)).is_err());
        assert!(Predecessors::from_json(Some(&serde_json::json!([]))).is_err());
    }
}
