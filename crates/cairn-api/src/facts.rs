//! Facts over the wire: the answer of `POST /v1/facts`, stored facts, pages
//! of the log and of successors, the types of a fact's successors, and the
//! queries that read them.
//!
//! The request body of `POST /v1/facts` is `{"facts": [fact, ...]}`; its
//! facts are parsed by `cairn_fact` (strict JSON: duplicate keys, depth,
//! number ranges), never through a generic JSON value, so no type here
//! stands for it.
//!
//! A fact in an answer is generic (`F`): the server writes the stored
//! canonical bytes as they are (a raw JSON value), the SDK reads them as a
//! `serde_json::Value`.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

/// The prefix of fact types only the server writes (claims, leases,
/// timers' own records): a client's write of one is refused with
/// `reserved_type`, a timer template of one with `invalid_timer`.
pub const RESERVED_TYPE_PREFIX: &str = "Cairn.";

/// True if `type_name` is reserved for facts the server writes.
pub fn is_reserved_type(type_name: &str) -> bool {
    type_name.starts_with(RESERVED_TYPE_PREFIX)
}

/// One entry of the answer of `POST /v1/facts`, in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutResult {
    /// The fact's hash as the server computed it.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// The fact's position in the server's log (positive).
    pub seq: u64,
    /// `false` if the fact was already stored (the call was idempotent).
    pub inserted: bool,
}

/// The answer of `POST /v1/facts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutFactsAnswer {
    /// One result per fact, in request order.
    pub results: Vec<PutResult>,
}

/// A stored fact as read back: `{"hash", "seq", "fact"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredFact<F = serde_json::Value> {
    /// The fact's hash.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// Of `GET /v1/facts/{hash}` only (addition, issue 17): the length in
    /// bytes of the fact's canonical JSON as stored, the bytes its hash is
    /// computed from (absent from older servers and from pages). Written
    /// before `fact`, so that an answer without `author` or `upcast` still
    /// ends with the fact's canonical bytes, as it always has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The fact itself: `{"type", "fields", "predecessors"}`.
    pub fact: F,
    /// Who wrote it: only in `GET /v1/facts/{hash}` for an admin of a
    /// server that runs with `--auth`, for facts written with a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<crate::Authorship>,
    /// Read `as_version` from an older version: the versions (and then
    /// `fact` is the upcast view, `original` the stored fact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upcast: Option<crate::UpcastMarker>,
    /// With `upcast`: the fact as stored, whose hash is `hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<F>,
}

/// A page of facts (successors or log) with the `seq` to continue after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactPage<F = serde_json::Value> {
    /// The facts, in `seq` order.
    pub facts: Vec<StoredFact<F>>,
    /// Pass as `after` to read the next page: the highest `seq` the server
    /// examined, which may be beyond the last fact of the page (facts that
    /// did not match, or that `without` excluded, are skipped for good); on
    /// an empty page, the `after` that was asked for.
    pub next: u64,
    /// Of the log only: this store's identity (the deployment's), by which
    /// a replication link tells the store it follows from another at the
    /// same URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Of the log only: the store's last `seq` when it answered (the lag
    /// of a reader is `head - next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// Of the log only: the hash of the entry at `next`, when this answer
    /// examined it and the caller may read it (whatever `types` asked
    /// for). A replication link anchors its bookmark there, so a source
    /// restored from an older backup is detected even where the link's
    /// types select nothing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::hash_text::optional"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::HashText>))]
    pub next_hash: Option<Hash>,
}

/// The answer of `GET /v1/facts/{hash}/successor-types` (addition, issue
/// 17): the distinct types of the facts that name `hash` as a predecessor
/// in any role, those the caller may read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessorTypes {
    /// The fact asked about (it need not be stored).
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// The types, sorted by bytes, each once, at most 256
    /// (`SUCCESSOR_TYPES_MAX`).
    pub types: Vec<String>,
    /// `false` when the fact has more successor types (that the caller
    /// may read) than `types` lists.
    pub complete: bool,
}

/// A query of `GET /v1/facts/{hash}/successors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessorsQuery {
    /// The fact whose successors are wanted.
    pub of: Hash,
    /// The type of the successors.
    pub type_name: String,
    /// Only successors naming `of` in this role.
    pub role: Option<String>,
    /// Leave out successors that themselves have a successor of one of
    /// these types (tombstones, superseded values).
    pub without: Vec<String>,
    /// Facts per page at most (the server's default if `None`).
    pub limit: Option<u32>,
    /// Only successors with a `seq` above this (paging).
    pub after: Option<u64>,
    /// Long-poll: wait up to this long for at least one result.
    pub wait_ms: Option<u64>,
}

impl SuccessorsQuery {
    /// A query for all successors of `of` with type `type_name`.
    pub fn new(of: Hash, type_name: impl Into<String>) -> SuccessorsQuery {
        SuccessorsQuery {
            of,
            type_name: type_name.into(),
            role: None,
            without: Vec::new(),
            limit: None,
            after: None,
            wait_ms: None,
        }
    }

    /// The query parameters, in the order the contract lists them.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("type", self.type_name.clone())];
        if let Some(role) = &self.role {
            pairs.push(("role", role.clone()));
        }
        pairs.extend(self.without.iter().map(|name| ("without", name.clone())));
        pairs.extend(numbers(&[
            ("limit", self.limit.map(u64::from)),
            ("after", self.after),
            ("wait_ms", self.wait_ms),
        ]));
        pairs
    }
}

/// A query of `GET /v1/log`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only facts with a `seq` above this (default 0).
    pub after: Option<u64>,
    /// Facts per page at most (the server's default if `None`).
    pub limit: Option<u32>,
    /// Long-poll: wait up to this long for at least one fact.
    pub wait_ms: Option<u64>,
}

impl LogQuery {
    /// The query parameters that are set.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        numbers(&[
            ("after", self.after),
            ("limit", self.limit.map(u64::from)),
            ("wait_ms", self.wait_ms),
        ])
    }
}

/// The numeric query parameters that are set, as text.
pub(crate) fn numbers(numbers: &[(&'static str, Option<u64>)]) -> Vec<(&'static str, String)> {
    numbers
        .iter()
        .filter_map(|(name, value)| value.map(|value| (*name, value.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_hold_only_what_is_set() {
        assert!(LogQuery::default().query_pairs().is_empty());
        let log = LogQuery {
            after: Some(5),
            limit: None,
            wait_ms: Some(100),
        };
        assert_eq!(
            log.query_pairs(),
            [("after", "5".to_string()), ("wait_ms", "100".to_string())]
        );
        let mut successors = SuccessorsQuery::new(Hash::of_bytes(b"x"), "Todo.Item");
        successors.without = vec!["Todo.Deleted".into()];
        successors.limit = Some(10);
        assert_eq!(
            successors.query_pairs(),
            [
                ("type", "Todo.Item".to_string()),
                ("without", "Todo.Deleted".to_string()),
                ("limit", "10".to_string())
            ]
        );
    }
}
