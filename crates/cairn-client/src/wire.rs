//! The types of API v1 as they travel over the wire (`docs/api-v1.md`),
//! with serde. Answers are read leniently (unknown members are ignored so a
//! newer server does not break an older client); requests are written
//! exactly, leaving out optional members that are not set so the server
//! fills in its defaults.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

/// Serde for a [`Hash`] as its 64-character lowercase hexadecimal text.
pub(crate) mod hash_text {
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
}

/// Serialization of a list of hashes as a list of texts.
pub(crate) mod hash_text_list {
    use cairn_fact::Hash;
    use serde::ser::SerializeSeq;
    use serde::Serializer;

    /// Writes the hashes as texts.
    pub fn serialize<S: Serializer>(hashes: &[Hash], serializer: S) -> Result<S::Ok, S::Error> {
        let mut sequence = serializer.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            sequence.serialize_element(&hash.to_hex())?;
        }
        sequence.end()
    }
}

/// One entry of the answer of `POST /v1/facts`, in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResult {
    /// The fact's hash as the server computed it.
    #[serde(with = "hash_text")]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// `false` if the fact was already stored (the call was idempotent).
    pub inserted: bool,
}

/// The answer of `POST /v1/facts`.
#[derive(Debug, Deserialize)]
pub(crate) struct PutAnswer {
    /// One result per fact, in request order.
    pub results: Vec<PutResult>,
}

/// A stored fact as read back: `{"hash", "seq", "fact"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFact {
    /// The fact's hash.
    #[serde(with = "hash_text")]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// The fact itself: `{"type", "fields", "predecessors"}`.
    pub fact: serde_json::Value,
}

/// A page of facts (successors or log) with the `seq` to continue after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FactPage {
    /// The facts, in `seq` order.
    pub facts: Vec<StoredFact>,
    /// Pass as `after` to read the next page.
    pub next: u64,
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

/// Where a new subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Every matching fact in the store is a message.
    Beginning,
    /// Only facts stored after the subscription was created.
    Now,
}

/// Restricts a subscription to successors of one fact in one role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredecessorSelector {
    /// The role in which the successor names the fact.
    pub role: String,
    /// The fact.
    #[serde(with = "hash_text")]
    pub hash: Hash,
}

/// Redelivery backoff of a subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffDefinition {
    /// Wait after the first failed attempt (server default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_ms: Option<u64>,
    /// Longest wait (server default 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
}

/// The body of `PUT /v1/subscriptions/{name}`. Members left `None` take the
/// server's defaults; the server's view shows them filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDefinition {
    /// The fact type selected.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Only successors of this fact in this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<PredecessorSelector>,
    /// Where the subscription starts (server default `beginning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// How long a pulled message stays leased (server default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Deliveries of a message before it becomes a dead letter (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Redelivery backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffDefinition>,
    /// Role whose predecessor orders messages: those sharing it are
    /// delivered in `seq` order, a few at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Messages of one ordering key in flight at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight_per_key: Option<u32>,
    /// Messages delivered per second at most (token bucket, 1 s of burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
}

impl SubscriptionDefinition {
    /// A definition selecting every fact of `type_name`, all else default.
    pub fn new(type_name: impl Into<String>) -> SubscriptionDefinition {
        SubscriptionDefinition {
            type_name: type_name.into(),
            ..SubscriptionDefinition::default()
        }
    }
}

/// A subscription as the server shows it: its definition with defaults
/// filled in, and its counters (one flat object on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// The subscription's name.
    pub name: String,
    /// The definition, defaults filled in.
    #[serde(flatten)]
    pub definition: SubscriptionDefinition,
    /// Whether delivery is paused.
    pub paused: bool,
    /// Matching facts not yet acknowledged, dead or in flight.
    pub backlog: u64,
    /// Messages leased now.
    pub in_flight: u64,
    /// Deliveries since the server started.
    pub delivered: u64,
    /// Redeliveries since the server started.
    #[serde(default)]
    pub redelivered: u64,
    /// Acknowledgements since the server started.
    pub acked: u64,
    /// Dead letters now.
    pub dead: u64,
    /// Discarded dead letters.
    #[serde(default)]
    pub discarded: u64,
    /// Age of the oldest message neither acked nor dead, from its first
    /// delivery (0 if none).
    #[serde(default)]
    pub oldest_unacked_age_ms: u64,
    /// How far the fully acknowledged prefix trails the log.
    #[serde(default)]
    pub consumer_lag: u64,
}

/// The outcome of creating a subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedSubscription {
    /// `true` for `201` (new), `false` for `200` (the same definition was
    /// already there).
    pub created: bool,
    /// The subscription.
    pub view: SubscriptionView,
}

/// The answer of `GET /v1/subscriptions`.
#[derive(Debug, Deserialize)]
pub(crate) struct SubscriptionList {
    /// Every subscription, by name.
    pub subscriptions: Vec<SubscriptionView>,
}

/// Options of one pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PullOptions {
    /// Messages at most (1 to 1000).
    pub max: u32,
    /// Long-poll: wait up to this long for at least one message.
    pub wait_ms: u64,
    /// Lease of the pulled messages, instead of the subscription's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// A delivered message, leased to the caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Opaque lease token: ack, nack or extend with it.
    pub token: String,
    /// The fact's hash.
    #[serde(with = "hash_text")]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// 1 on the first delivery, one more on each redelivery.
    pub attempt: u32,
    /// The fact itself.
    pub fact: serde_json::Value,
}

/// The answer of a pull.
#[derive(Debug, Deserialize)]
pub(crate) struct PullAnswer {
    /// The leased messages (possibly fewer than asked for, or none).
    pub messages: Vec<Message>,
}

/// What became of one token of an ack, nack or extend call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    /// The message is acknowledged.
    Acked,
    /// The message will be redelivered (or is now a dead letter).
    Nacked,
    /// The lease was renewed.
    Extended,
    /// The lease ended and the message was leased again, dead-lettered or
    /// acknowledged through another token.
    Expired,
    /// Not a token of this subscription, or from before a restart.
    Unknown,
}

/// One entry of the answer of ack, nack and extend, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResult {
    /// The token.
    pub token: String,
    /// What became of it.
    pub status: TokenStatus,
}

/// The answer of ack, nack and extend.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResults {
    /// One result per token, in request order.
    pub results: Vec<TokenResult>,
}

/// Options of a nack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NackOptions {
    /// Redeliver after this long instead of the subscription's backoff.
    pub delay_ms: Option<u64>,
    /// Why the handler failed; kept as the dead letter's `last_error`.
    pub error: Option<String>,
}

/// A message that exhausted its attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The fact's hash.
    #[serde(with = "hash_text")]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// Deliveries made.
    pub attempts: u32,
    /// The error text of the last nack, if any.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the message died, milliseconds since the Unix epoch.
    pub dead_at_ms: u64,
    /// The fact itself.
    pub fact: serde_json::Value,
}

/// A page of dead letters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterPage {
    /// The dead letters, in `seq` order.
    pub messages: Vec<DeadLetter>,
    /// Pass as `after` to read the next page.
    pub next: u64,
}

/// A query of `GET /v1/subscriptions/{name}/dead`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterQuery {
    /// Entries at most (server default 100, max 1000).
    pub limit: Option<u32>,
    /// Only entries with a `seq` above this.
    pub after: Option<u64>,
    /// List the discarded dead letters instead of the live ones.
    pub discarded: bool,
}

/// Which dead letters to deliver again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplaySelection {
    /// Every dead letter of the subscription.
    All,
    /// These (unknown hashes are ignored).
    Hashes(Vec<Hash>),
}

/// The answer of a replay.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplayAnswer {
    /// Dead letters delivered again.
    pub replayed: u64,
}

/// The body of an error answer: `{"error": {"code", "message", ...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    /// The error object.
    pub error: ErrorObject,
}

/// The error object of an error answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorObject {
    /// Stable snake_case code.
    pub code: String,
    /// Human sentence.
    pub message: String,
    /// Further members (for example `missing`).
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}
