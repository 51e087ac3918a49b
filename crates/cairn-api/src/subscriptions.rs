//! Subscriptions over the wire: definitions and views, pulls and the
//! messages they lease, acks, nacks and extends with their per-token
//! results, dead letters and replays.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

use crate::facts::numbers;
use crate::limits;
use crate::request_body::{check_lease_ms, check_range, RequestBody};

/// Where a new subscription starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Every matching fact in the store is a message.
    #[default]
    Beginning,
    /// Only facts stored after the subscription was created.
    Now,
}

/// Restricts a subscription to successors of one fact in one role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PredecessorSelector {
    /// The role in which the successor names the fact.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z][A-Za-z0-9_]*$"))]
    pub role: String,
    /// The fact.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
}

/// Redelivery backoff of a subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackoffDefinition {
    /// Wait after the first failed attempt, 1 to 3,600,000 (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_ms: Option<u64>,
    /// Longest wait, `initial_ms` to 86,400,000 (default 60,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
}

/// The body of `PUT /v1/subscriptions/{name}`, and the definition part of a
/// view (where every default is filled in). Members left out (or `null`)
/// take the server's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubscriptionDefinition {
    /// The fact type selected.
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)*$",
            max_length = 200
        )
    )]
    pub type_name: String,
    /// Only successors of this fact in this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<PredecessorSelector>,
    /// Where the subscription starts (default `beginning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// How long a pulled message stays leased, 100 to 3,600,000 (default
    /// 30,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Deliveries of a message before it becomes a dead letter, 1 to 1,000
    /// (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Redelivery backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffDefinition>,
    /// Role whose predecessor orders messages: those sharing it are
    /// delivered in `seq` order, a few at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z][A-Za-z0-9_]*$"))]
    pub ordering_key: Option<String>,
    /// Messages of one ordering key in flight at once, 1 to 1,000 (default
    /// 1; only with `ordering_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight_per_key: Option<u32>,
    /// Messages delivered per second at most, 1 to 1,000,000 (a token
    /// bucket with one second of burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
    /// Deliver facts written at older schema versions of `type` upcast to
    /// this version (see "Schemas and upcasting"); the type must have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_version: Option<u32>,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionView {
    /// The subscription's name.
    pub name: String,
    /// The definition, defaults filled in.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub definition: SubscriptionDefinition,
    /// The definition's generation: 1 at creation, one more at each `PUT`
    /// that changed it (also sent as the `ETag` of the view, `"<n>"`, for
    /// a later `PUT` with `If-Match`). 0 when read from a server older than
    /// generations.
    #[serde(default)]
    pub generation: u64,
    /// Whether delivery is paused.
    pub paused: bool,
    /// Matching facts not yet acknowledged, dead or in flight.
    pub backlog: u64,
    /// Messages leased now.
    pub in_flight: u64,
    /// Deliveries since the server started, redeliveries included.
    pub delivered: u64,
    /// Redeliveries (attempt 2 and later) since the server started.
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

/// The answer of `PUT /v1/subscriptions/{name}`: the view after the
/// `PUT`, and whether it changed an existing definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionPutAnswer {
    /// The subscription as it is now.
    #[serde(flatten)]
    pub view: SubscriptionView,
    /// `true` when this `PUT` changed the definition of an existing
    /// subscription (its generation grew by one); `false` when it created
    /// the subscription (`201`) or found the same definition (`200`).
    /// Absent (read as `false`) from a server older than updates.
    #[serde(default)]
    pub updated: bool,
}

/// The answer of `GET /v1/subscriptions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionList {
    /// Every subscription, by name.
    pub subscriptions: Vec<SubscriptionView>,
}

/// The answer of `DELETE /v1/subscriptions/{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    /// Always `true`.
    pub deleted: bool,
}

/// The body of `POST /v1/subscriptions/{name}/pull`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// Messages to lease at most, 1 to 1,000 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// How long to wait for a first message, 0 to 60,000 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// The lease of the pulled messages, in the definition's range (the
    /// subscription's `lease_ms` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

impl RequestBody for PullRequest {
    fn check(&self) -> Result<(), String> {
        check_range("max", self.max, 1, limits::PULL_MESSAGES_MAX as u64)?;
        check_range("wait_ms", self.wait_ms, 0, limits::WAIT_MS_MAX)?;
        check_lease_ms(self.lease_ms)
    }
}

/// A delivered message, leased to the caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message<F = serde_json::Value> {
    /// Opaque lease token: ack, nack or extend with exactly this text.
    pub token: String,
    /// The fact's hash.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// 1 on the first delivery, one more on each redelivery.
    pub attempt: u32,
    /// The fact itself (of a subscription with `as_version`, the view of
    /// that version).
    pub fact: F,
    /// Of a subscription with `as_version`, for a fact written at an
    /// older version: the versions; `original` is then the stored fact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upcast: Option<crate::UpcastMarker>,
    /// With `upcast`: the fact as stored, whose hash is `hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<F>,
}

/// The answer of a pull.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullAnswer<F = serde_json::Value> {
    /// The leased messages (possibly fewer than asked for, or none).
    pub messages: Vec<Message<F>>,
}

/// The body of `POST /v1/subscriptions/{name}/ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// The lease tokens to acknowledge, 1 to 10,000.
    pub tokens: Vec<String>,
}

impl RequestBody for AckRequest {
    fn check(&self) -> Result<(), String> {
        check_tokens(&self.tokens)
    }
}

/// The body of `POST /v1/subscriptions/{name}/nack`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    /// The lease tokens to give back, 1 to 10,000.
    pub tokens: Vec<String>,
    /// Redeliver after this long, 0 to 86,400,000, instead of the
    /// subscription's backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Why the consumer failed, at most 4,096 bytes; kept as the dead
    /// letter's `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RequestBody for NackRequest {
    fn check(&self) -> Result<(), String> {
        check_tokens(&self.tokens)?;
        check_nack(self.delay_ms, self.error.as_deref())
    }
}

/// The body of `POST /v1/subscriptions/{name}/extend`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// The lease tokens to renew, 1 to 10,000.
    pub tokens: Vec<String>,
    /// The new lease from now, in the definition's range (the
    /// subscription's `lease_ms` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

impl RequestBody for ExtendRequest {
    fn check(&self) -> Result<(), String> {
        check_tokens(&self.tokens)?;
        check_lease_ms(self.lease_ms)
    }
}

/// The body of `POST …/pause` and `…/resume`: nothing, or `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

impl RequestBody for EmptyRequest {}

/// What became of one token of an ack, nack or extend call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    /// The message is acknowledged.
    Acked,
    /// The message will be redelivered (or is now a dead letter).
    Nacked,
    /// The lease was renewed.
    Extended,
    /// The token's lease is over (it ran out or was nacked) and the
    /// message was leased again since; for an extend, also a lease that
    /// already ended.
    Expired,
    /// Not a lease of a pending message of this subscription: already
    /// acknowledged, dead, or not one of its tokens at all.
    Unknown,
}

impl TokenStatus {
    /// The status as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Acked => "acked",
            TokenStatus::Nacked => "nacked",
            TokenStatus::Extended => "extended",
            TokenStatus::Expired => "expired",
            TokenStatus::Unknown => "unknown",
        }
    }
}

/// One entry of the answer of ack, nack and extend, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResult {
    /// The token, as sent.
    pub token: String,
    /// What became of it.
    pub status: TokenStatus,
}

/// The answer of ack, nack and extend (and the stream's result frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResults {
    /// One result per token, in request order.
    pub results: Vec<TokenResult>,
}

/// A message that exhausted its attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter<F = serde_json::Value> {
    /// The fact's hash.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// The fact's position in the server's log.
    pub seq: u64,
    /// Deliveries made.
    pub attempts: u32,
    /// The error text of the last nack, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the message died, in milliseconds since the Unix epoch.
    pub dead_at_ms: u64,
    /// Addition (issue 17): `last_error` normalised by
    /// [`crate::dead_letter_cause::dead_letter_cause`] (`""` without error text; clients
    /// show it as "(no error text)"). Absent from answers of older
    /// servers, read as `""`.
    #[serde(default)]
    pub cause: String,
    /// The fact itself.
    pub fact: F,
}

/// A page of dead letters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterPage<F = serde_json::Value> {
    /// The dead letters, in `seq` order.
    pub messages: Vec<DeadLetter<F>>,
    /// Pass as `after` to read the next page: the `seq` of the last entry,
    /// or the `after` asked for on an empty page.
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

impl DeadLetterQuery {
    /// The query parameters that are set.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = numbers(&[("limit", self.limit.map(u64::from)), ("after", self.after)]);
        if self.discarded {
            pairs.push(("discarded", "true".to_string()));
        }
        pairs
    }
}

/// The body of `POST /v1/subscriptions/{name}/dead/replay`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The dead letters to replay, 1 to 10,000 hashes (every dead letter
    /// when absent). Each is parsed by the handler, which answers
    /// `invalid_hash` for one that is not a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
}

impl RequestBody for ReplayRequest {
    fn check(&self) -> Result<(), String> {
        match &self.hashes {
            Some(texts) if texts.is_empty() || texts.len() > limits::ACK_TOKENS_MAX => Err(
                format!("hashes must hold 1 to {} hashes", limits::ACK_TOKENS_MAX),
            ),
            _ => Ok(()),
        }
    }
}

/// The answer of a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayAnswer {
    /// Dead letters delivered again.
    pub replayed: u64,
}

/// The answer of `DELETE /v1/subscriptions/{name}/dead/{hash}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Discarded {
    /// Always `true`.
    pub discarded: bool,
}

/// Checks a token list: 1 to [`limits::ACK_TOKENS_MAX`] tokens (HTTP and
/// stream).
pub fn check_tokens(tokens: &[String]) -> Result<(), String> {
    if tokens.is_empty() || tokens.len() > limits::ACK_TOKENS_MAX {
        return Err(format!(
            "tokens must hold 1 to {} tokens",
            limits::ACK_TOKENS_MAX
        ));
    }
    Ok(())
}

/// Checks a nack's delay and error text (HTTP and stream).
pub fn check_nack(delay_ms: Option<u64>, error: Option<&str>) -> Result<(), String> {
    check_range("delay_ms", delay_ms, 0, limits::DELAY_MS_MAX)?;
    if error.is_some_and(|error| error.len() > limits::LAST_ERROR_BYTES_MAX) {
        return Err(format!(
            "error must be at most {} bytes",
            limits::LAST_ERROR_BYTES_MAX
        ));
    }
    Ok(())
}

/// Addition (issue 17): one cause of a subscription's dead letters, in
/// the answer of `GET /v1/subscriptions/{name}/dead/causes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterCause {
    /// The cause ([`crate::dead_letter_cause::dead_letter_cause`]); `""` for dead letters
    /// without error text.
    pub cause: String,
    /// Dead letters examined with this cause.
    pub count: u64,
    /// When the first of them died (ms since the Unix epoch).
    pub first_dead_at_ms: u64,
    /// When the last of them died (ms since the Unix epoch).
    pub last_dead_at_ms: u64,
    /// The hash of one of them (the first in `seq` order).
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub sample_hash: Hash,
    /// Its error text as recorded (at most 1 KiB of it), absent if it has
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_error: Option<String>,
}

/// Addition (issue 17): the answer of
/// `GET /v1/subscriptions/{name}/dead/causes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterCauses {
    /// The subscription's name.
    pub subscription: String,
    /// The type it selects.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The causes, most frequent first (ties by cause).
    pub causes: Vec<DeadLetterCause>,
    /// Dead letters examined (at most 100,000, in `seq` order).
    pub examined: u64,
    /// True when every dead letter was examined, counted and its cause
    /// listed.
    pub exact: bool,
}

/// Addition (issue 17): how one subscription has carried one fact, in the
/// answer of `GET /v1/facts/{hash}/deliveries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet, or waiting for its retry (`attempts` > 0: it
    /// was tried).
    Pending,
    /// Leased to a consumer now.
    InFlight,
    /// Acknowledged.
    Acked,
    /// A dead letter.
    Dead,
    /// A dead letter that was discarded.
    Discarded,
    /// The subscription started (`start: "now"`) after the fact was
    /// stored: it is not one of its messages.
    NotSelectedBeforeStart,
}

/// Addition (issue 17): one subscription's delivery of a fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactDelivery {
    /// The subscription's name.
    pub subscription: String,
    /// Where the message stands.
    pub state: DeliveryState,
    /// Deliveries made in its current round (0 where none is recorded:
    /// not delivered yet, acknowledged, or not selected).
    pub attempts: u32,
    /// The error of its last failed attempt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it died (`dead` and `discarded`), ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at_ms: Option<u64>,
    /// `pending` only: not delivered before this time (its retry's
    /// backoff, a nack's delay or its `cairn_not_before`), when that lies
    /// ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
}

/// Addition (issue 17): the answer of `GET /v1/facts/{hash}/deliveries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactDeliveries {
    /// The fact's hash.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// Its position in the server's log.
    pub seq: u64,
    /// Every subscription that selects the fact and that the caller may
    /// consume, by name.
    pub deliveries: Vec<FactDelivery>,
}
