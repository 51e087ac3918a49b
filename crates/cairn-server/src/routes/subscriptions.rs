//! `/v1/subscriptions/...`: durable consumer groups with pull, leases,
//! acks, nacks, dead letters, pause and resume (see `docs/api-v1.md`).

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_delivery::{limits as delivery_limits, SubscriptionDefinition, TokenOutcome};
use cairn_fact::Hash;
use cairn_store::Store;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::facts::{json_response, read_body};
use crate::delivery::{DeadLetter, Subscription, SubscriptionView};
use crate::error::ApiError;
use crate::limits;
use crate::query::QueryParams;
use crate::state::AppState;

type Found = std::sync::Arc<dyn Subscription>;

/// The JSON body of a POST on a subscription: its shape is the type's
/// (unknown members are refused), and [`RequestBody::check`] checks its
/// values against the limits, so that a parsed body is one the handler
/// accepts.
pub trait RequestBody: DeserializeOwned {
    /// Checks the values beyond their type; the error is a sentence for
    /// the client. A body with nothing to check keeps this default.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Parses and checks a JSON body of shape `T`; an empty body (or one of
/// only whitespace) counts as `{}`.
pub fn parse_body<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let body: T = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request("invalid_request", format!("invalid body: {error}"))
    })?;
    body.check().map_err(invalid)?;
    Ok(body)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

async fn find<S: Store>(state: &AppState<S>, name: &str) -> Result<Found, ApiError> {
    Ok(state.deliveries.get(name).await?)
}

/// The start every POST on a subscription shares: no query parameters, a
/// known subscription, and a checked JSON body of shape `B` (empty counts
/// as `{}`).
async fn subscription_and_body<S: Store, B: RequestBody>(
    state: &AppState<S>,
    name: &str,
    raw_query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Found, B), ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let subscription = find(state, name).await?;
    let body = parse_body(&read_body(headers, body).await?)?;
    Ok((subscription, body))
}

/// Checks an optional lease length against the definition's range.
fn check_lease_ms(lease_ms: Option<u64>) -> Result<(), String> {
    let range = delivery_limits::LEASE_MS_MIN..=delivery_limits::LEASE_MS_MAX;
    match lease_ms {
        Some(lease_ms) if !range.contains(&lease_ms) => Err(format!(
            "lease_ms must be from {} to {}",
            delivery_limits::LEASE_MS_MIN,
            delivery_limits::LEASE_MS_MAX
        )),
        _ => Ok(()),
    }
}

fn view_response(status: StatusCode, view: &SubscriptionView) -> Response {
    (status, axum::Json(view)).into_response()
}

/// `PUT /v1/subscriptions/{name}`: creates, or confirms the same definition.
pub async fn put_subscription<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let bytes = read_body(&headers, body).await?;
    let definition = SubscriptionDefinition::from_json(&bytes)
        .map_err(|error| ApiError::bad_request("invalid_definition", error.to_string()))?;
    let (subscription, created) = state.deliveries.create(&name, definition).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(view_response(status, &subscription.view().await?))
}

/// `GET /v1/subscriptions`: every subscription's view, by name.
pub async fn list_subscriptions<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let mut views = Vec::new();
    for subscription in state.deliveries.list().await? {
        views.push(subscription.view().await?);
    }
    Ok(axum::Json(json!({ "subscriptions": views })).into_response())
}

/// `GET /v1/subscriptions/{name}`: definition and counters.
pub async fn get_subscription<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let subscription = find(&state, &name).await?;
    Ok(view_response(StatusCode::OK, &subscription.view().await?))
}

/// `DELETE /v1/subscriptions/{name}`.
pub async fn delete_subscription<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    state.deliveries.delete(&name).await?;
    Ok(axum::Json(json!({ "deleted": true })).into_response())
}

/// The body of `POST .../pull`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullBody {
    /// Messages to lease at most, from 1 to [`limits::PULL_MESSAGES_MAX`]
    /// (1 when absent).
    pub max: Option<u64>,
    /// How long to wait for a first message, at most
    /// [`limits::WAIT_MS_MAX`] (0 when absent).
    pub wait_ms: Option<u64>,
    /// The lease length, in the definition's range (its lease when absent).
    pub lease_ms: Option<u64>,
}

impl RequestBody for PullBody {
    fn check(&self) -> Result<(), String> {
        // An absent max or wait_ms takes its default, which is in range.
        if self
            .max
            .is_some_and(|max| !(1..=limits::PULL_MESSAGES_MAX as u64).contains(&max))
        {
            return Err(format!(
                "max must be from 1 to {}",
                limits::PULL_MESSAGES_MAX
            ));
        }
        if self
            .wait_ms
            .is_some_and(|wait_ms| wait_ms > limits::WAIT_MS_MAX)
        {
            return Err(format!("wait_ms must be at most {}", limits::WAIT_MS_MAX));
        }
        check_lease_ms(self.lease_ms)
    }
}

/// `POST /v1/subscriptions/{name}/pull`: leases messages.
pub async fn pull<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, PullBody) =
        subscription_and_body(&state, &name, raw_query, &headers, body).await?;
    let max = body.max.unwrap_or(1);
    let wait_ms = body.wait_ms.unwrap_or(0);
    let messages = subscription
        .pull(max as usize, wait_ms, body.lease_ms, &state.shutdown)
        .await?;
    let capacity: usize = messages.iter().map(|m| m.canonical.len() + 200).sum();
    let mut json: Vec<u8> = Vec::with_capacity(32 + capacity);
    json.extend_from_slice(b"{\"messages\":[");
    for (index, message) in messages.iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        let _ = std::io::Write::write_fmt(
            &mut json,
            format_args!(
                "{{\"token\":\"{}\",\"hash\":\"{}\",\"seq\":{},\"attempt\":{},\"fact\":",
                message.token, message.hash, message.seq, message.attempt
            ),
        );
        // Canonical JSON is valid UTF-8 JSON by construction.
        json.extend_from_slice(&message.canonical);
        json.push(b'}');
    }
    json.extend_from_slice(b"]}");
    Ok(json_response(json))
}

/// Checks a token list: 1 to `ACK_TOKENS_MAX` tokens (HTTP and stream).
pub(super) fn check_tokens(tokens: &[String]) -> Result<(), String> {
    if tokens.is_empty() || tokens.len() > limits::ACK_TOKENS_MAX {
        return Err(format!(
            "tokens must hold 1 to {} tokens",
            limits::ACK_TOKENS_MAX
        ));
    }
    Ok(())
}

/// Checks a nack's delay and error text (HTTP and stream).
pub(super) fn check_nack(delay_ms: Option<u64>, error: Option<&str>) -> Result<(), String> {
    if delay_ms.is_some_and(|delay| delay > delivery_limits::DELAY_MS_MAX) {
        return Err(format!(
            "delay_ms must be from 0 to {}",
            delivery_limits::DELAY_MS_MAX
        ));
    }
    if error.is_some_and(|error| error.len() > delivery_limits::LAST_ERROR_BYTES_MAX) {
        return Err(format!(
            "error must be at most {} bytes",
            delivery_limits::LAST_ERROR_BYTES_MAX
        ));
    }
    Ok(())
}

/// `{"results": [{"token", "status"}, ...]}`: the answer to an ack, nack
/// or extend, over HTTP and over the stream.
pub(super) fn results_json(outcomes: &[TokenOutcome]) -> serde_json::Value {
    let results: Vec<_> = outcomes
        .iter()
        .map(|outcome| json!({ "token": outcome.token, "status": outcome.status.as_str() }))
        .collect();
    json!({ "results": results })
}

fn results_response(outcomes: &[TokenOutcome]) -> Response {
    axum::Json(results_json(outcomes)).into_response()
}

/// The body of `POST .../ack`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// The lease tokens to acknowledge, 1 to [`limits::ACK_TOKENS_MAX`].
    pub tokens: Vec<String>,
}

impl RequestBody for AckBody {
    fn check(&self) -> Result<(), String> {
        check_tokens(&self.tokens)
    }
}

/// `POST /v1/subscriptions/{name}/ack`: durable before the answer.
pub async fn ack<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, AckBody) =
        subscription_and_body(&state, &name, raw_query, &headers, body).await?;
    Ok(results_response(&subscription.ack(&body.tokens).await?))
}

/// The body of `POST .../nack`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NackBody {
    /// The lease tokens to refuse, 1 to [`limits::ACK_TOKENS_MAX`].
    pub tokens: Vec<String>,
    /// How long before the next attempt, at most
    /// [`delivery_limits::DELAY_MS_MAX`] (the backoff when absent).
    pub delay_ms: Option<u64>,
    /// Why the consumer failed, at most
    /// [`delivery_limits::LAST_ERROR_BYTES_MAX`] bytes.
    pub error: Option<String>,
}

impl RequestBody for NackBody {
    fn check(&self) -> Result<(), String> {
        check_tokens(&self.tokens)?;
        check_nack(self.delay_ms, self.error.as_deref())
    }
}

/// `POST /v1/subscriptions/{name}/nack`: durable before the answer.
pub async fn nack<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, NackBody) =
        subscription_and_body(&state, &name, raw_query, &headers, body).await?;
    let outcomes = subscription
        .nack(&body.tokens, body.delay_ms, body.error.as_deref())
        .await?;
    Ok(results_response(&outcomes))
}

/// The body of `POST .../extend`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The lease tokens to renew, 1 to [`limits::ACK_TOKENS_MAX`].
    pub tokens: Vec<String>,
    /// The new lease length, in the definition's range (its lease when
    /// absent).
    pub lease_ms: Option<u64>,
}

impl RequestBody for ExtendBody {
    fn check(&self) -> Result<(), String> {
        check_tokens(&self.tokens)?;
        check_lease_ms(self.lease_ms)
    }
}

/// `POST /v1/subscriptions/{name}/extend`: renews leases.
pub async fn extend<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, ExtendBody) =
        subscription_and_body(&state, &name, raw_query, &headers, body).await?;
    Ok(results_response(
        &subscription.extend(&body.tokens, body.lease_ms).await?,
    ))
}

/// The body of `POST .../pause` and `.../resume`: nothing, or `{}`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

impl RequestBody for EmptyBody {}

async fn set_paused<S: Store>(
    state: AppState<S>,
    name: String,
    raw_query: Option<String>,
    headers: HeaderMap,
    body: Body,
    paused: bool,
) -> Result<Response, ApiError> {
    let (subscription, _): (_, EmptyBody) =
        subscription_and_body(&state, &name, raw_query, &headers, body).await?;
    Ok(view_response(
        StatusCode::OK,
        &subscription.set_paused(paused).await?,
    ))
}

/// `POST /v1/subscriptions/{name}/pause`.
pub async fn pause<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_paused(state, name, raw_query, headers, body, true).await
}

/// `POST /v1/subscriptions/{name}/resume`.
pub async fn resume<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_paused(state, name, raw_query, headers, body, false).await
}

fn dead_letter_json(letter: &DeadLetter, out: &mut String) {
    let record = &letter.record;
    let _ = write!(
        out,
        "{{\"hash\":\"{}\",\"seq\":{},\"attempts\":{},",
        record.hash, letter.seq, record.attempts
    );
    if let Some(error) = &record.last_error {
        let _ = write!(out, "\"last_error\":{},", json!(error));
    }
    let _ = write!(
        out,
        "\"dead_at_ms\":{},\"fact\":",
        record.dead_at_ms.unwrap_or(0)
    );
    out.push_str(&String::from_utf8_lossy(&letter.canonical));
    out.push('}');
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|_| {
        ApiError::bad_request(
            "invalid_hash",
            format!("{text:?} is not a hash (64 lowercase hex characters)"),
        )
    })
}

/// `GET /v1/subscriptions/{name}/dead`: dead letters in `seq` order.
pub async fn list_dead<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw_query.as_deref(), &["limit", "after", "discarded"])?;
    let limit = query.integer(
        "limit",
        limits::DEAD_LETTERS_LIMIT_DEFAULT as u64,
        1,
        limits::DEAD_LETTERS_LIMIT_MAX as u64,
    )? as usize;
    let after = query.integer("after", 0, 0, u64::MAX)?;
    let discarded = match query.single("discarded")? {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("discarded must be true or false, not {other:?}"),
            ))
        }
    };
    let subscription = find(&state, &name).await?;
    let letters = subscription.dead_letters(discarded, after, limit).await?;
    let mut json = String::from("{\"messages\":[");
    for (index, letter) in letters.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        dead_letter_json(letter, &mut json);
    }
    let next = letters.last().map_or(after, |letter| letter.seq);
    let _ = write!(json, "],\"next\":{next}}}");
    Ok(json_response(json.into_bytes()))
}

/// `GET /v1/subscriptions/{name}/dead/{hash}`: one dead letter.
pub async fn get_dead<S: Store>(
    State(state): State<AppState<S>>,
    Path((name, hash)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash)?;
    let subscription = find(&state, &name).await?;
    let letter = subscription
        .dead_letter(&hash)
        .await?
        .ok_or_else(|| not_dead(&hash))?;
    let mut json = String::new();
    dead_letter_json(&letter, &mut json);
    Ok(json_response(json.into_bytes()))
}

fn not_dead(hash: &Hash) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_a_dead_letter",
        format!("{hash} is not a dead letter of this subscription"),
    )
}

/// The body of `POST .../dead/replay`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// The dead letters to replay by hash, 1 to [`limits::ACK_TOKENS_MAX`]
    /// of them (every dead letter when absent). Whether each is a hash is
    /// checked when it is parsed, by the handler.
    pub hashes: Option<Vec<String>>,
}

impl RequestBody for ReplayBody {
    fn check(&self) -> Result<(), String> {
        match &self.hashes {
            Some(texts) if texts.is_empty() || texts.len() > limits::ACK_TOKENS_MAX => Err(
                format!("hashes must hold 1 to {} hashes", limits::ACK_TOKENS_MAX),
            ),
            _ => Ok(()),
        }
    }
}

/// `POST /v1/subscriptions/{name}/dead/replay`.
pub async fn replay<S: Store>(
    State(state): State<AppState<S>>,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, ReplayBody) =
        subscription_and_body(&state, &name, raw_query, &headers, body).await?;
    let hashes = match &body.hashes {
        None => None,
        Some(texts) => Some(
            texts
                .iter()
                .map(|text| parse_hash(text))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let replayed = subscription.replay(hashes.as_deref()).await?;
    Ok(axum::Json(json!({ "replayed": replayed })).into_response())
}

/// `DELETE /v1/subscriptions/{name}/dead/{hash}`: discards (keeps the record).
pub async fn discard<S: Store>(
    State(state): State<AppState<S>>,
    Path((name, hash)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash)?;
    let subscription = find(&state, &name).await?;
    if subscription.discard(&hash).await? {
        Ok(axum::Json(json!({ "discarded": true })).into_response())
    } else {
        Err(not_dead(&hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_counts_as_an_empty_object() {
        assert_eq!(parse_body::<EmptyBody>(b"").ok(), Some(EmptyBody {}));
        assert_eq!(parse_body::<EmptyBody>(b" \n\t").ok(), Some(EmptyBody {}));
        assert_eq!(
            parse_body::<ReplayBody>(b"").ok(),
            Some(ReplayBody { hashes: None })
        );
        assert!(parse_body::<AckBody>(b"").is_err());
        assert!(parse_body::<EmptyBody>(br#"{"paused": true}"#).is_err());
    }

    #[test]
    fn token_lists_are_checked() {
        assert_eq!(
            parse_body::<AckBody>(br#"{"tokens": ["a"]}"#).ok(),
            Some(AckBody {
                tokens: vec!["a".into()]
            })
        );
        assert!(parse_body::<AckBody>(br#"{"tokens": []}"#).is_err());
        let too_many = json!({ "tokens": vec!["a"; limits::ACK_TOKENS_MAX + 1] });
        assert!(parse_body::<AckBody>(too_many.to_string().as_bytes()).is_err());
        assert!(parse_body::<ExtendBody>(br#"{"tokens": []}"#).is_err());
        assert!(parse_body::<NackBody>(br#"{"tokens": []}"#).is_err());
    }

    #[test]
    fn nack_delay_and_error_are_checked() {
        let largest = json!({
            "tokens": ["a"],
            "delay_ms": delivery_limits::DELAY_MS_MAX,
            "error": "x".repeat(delivery_limits::LAST_ERROR_BYTES_MAX),
        });
        assert!(parse_body::<NackBody>(largest.to_string().as_bytes()).is_ok());
        let late = json!({ "tokens": ["a"], "delay_ms": delivery_limits::DELAY_MS_MAX + 1 });
        assert!(parse_body::<NackBody>(late.to_string().as_bytes()).is_err());
        let long_error = json!({
            "tokens": ["a"],
            "error": "x".repeat(delivery_limits::LAST_ERROR_BYTES_MAX + 1),
        });
        assert!(parse_body::<NackBody>(long_error.to_string().as_bytes()).is_err());
    }

    #[test]
    fn pull_and_extend_ranges_are_checked() {
        assert!(parse_body::<PullBody>(br#"{"max": 0}"#).is_err());
        let pull_max = json!({ "max": limits::PULL_MESSAGES_MAX, "wait_ms": limits::WAIT_MS_MAX });
        assert!(parse_body::<PullBody>(pull_max.to_string().as_bytes()).is_ok());
        let long_wait = json!({ "wait_ms": limits::WAIT_MS_MAX + 1 });
        assert!(parse_body::<PullBody>(long_wait.to_string().as_bytes()).is_err());
        let short_lease = json!({ "tokens": ["a"], "lease_ms": delivery_limits::LEASE_MS_MIN - 1 });
        assert!(parse_body::<ExtendBody>(short_lease.to_string().as_bytes()).is_err());
        let long_lease = json!({ "lease_ms": delivery_limits::LEASE_MS_MAX + 1 });
        assert!(parse_body::<PullBody>(long_lease.to_string().as_bytes()).is_err());
    }

    #[test]
    fn replay_hash_lists_are_checked() {
        assert!(parse_body::<ReplayBody>(br#"{"hashes": []}"#).is_err());
        assert_eq!(
            parse_body::<ReplayBody>(br#"{"hashes": ["not checked here"]}"#).ok(),
            Some(ReplayBody {
                hashes: Some(vec!["not checked here".into()])
            })
        );
    }
}
