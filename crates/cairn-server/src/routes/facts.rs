//! `/v1/facts`, `/v1/facts/{hash}`, `/v1/facts/{hash}/successors` and `/v1/log`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_fact::{parse_json, CanonicalFact, Hash};
use cairn_store::{Page, Store, StoredFact, SuccessorsQuery};
use std::fmt::Write as _;

use super::wait::LongPoll;
use crate::error::ApiError;
use crate::limits;
use crate::query::QueryParams;
use crate::state::AppState;

/// Bodies larger than this are parsed on the blocking pool, so a big batch
/// does not stall the async workers.
const INLINE_PARSE_BYTES_MAX: usize = 64 * 1024;

/// `POST /v1/facts`: validates, hashes and durably stores a batch.
pub async fn post_facts<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    require_json(&headers)?;
    let bytes = read_body(&headers, body).await?;
    let fact_bytes_max = state.config.fact_canonical_bytes_max;
    let facts = if bytes.len() <= INLINE_PARSE_BYTES_MAX {
        parse_batch(&bytes, fact_bytes_max)?
    } else {
        tokio::task::spawn_blocking(move || parse_batch(&bytes, fact_bytes_max))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "parsing failed",
                )
            })??
    };
    let outcomes = state.store.put_facts(facts).await?;
    let mut json = String::with_capacity(32 + outcomes.len() * 100);
    json.push_str("{\"results\":[");
    for (index, outcome) in outcomes.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        let _ = write!(
            json,
            "{{\"hash\":\"{}\",\"seq\":{},\"inserted\":{}}}",
            outcome.hash, outcome.seq, outcome.inserted
        );
    }
    json.push_str("]}");
    Ok(json_response(json.into_bytes()))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body must be JSON with Content-Type: application/json, got {content_type:?}"
            ),
        ))
    }
}

pub(super) async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "the request body exceeds {} bytes",
                limits::REQUEST_BODY_BYTES_MAX
            ),
        )
    };
    if super::declared_content_length(headers)
        .is_some_and(|length| length > limits::REQUEST_BODY_BYTES_MAX as u64)
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limits::REQUEST_BODY_BYTES_MAX)
        .await
        .map_err(|_| too_large())
}

/// Parses `{"facts": [fact, ...]}` into validated canonical facts.
fn parse_batch(bytes: &[u8], fact_bytes_max: usize) -> Result<Vec<CanonicalFact>, ApiError> {
    let body = parse_json(bytes, limits::REQUEST_JSON_DEPTH_MAX)
        .map_err(|error| ApiError::bad_request(error.code(), error.to_string()))?;
    let envelope_error =
        |message: &str| ApiError::bad_request("invalid_request", message.to_string());
    let members = body
        .as_object()
        .ok_or_else(|| envelope_error("the body must be an object {\"facts\": [...]}"))?;
    if let Some((unknown, _)) = members.iter().find(|(key, _)| key != "facts") {
        return Err(envelope_error(&format!(
            "unknown member {unknown:?}; the body is {{\"facts\": [...]}}"
        )));
    }
    let facts = body
        .get("facts")
        .ok_or_else(|| envelope_error("the body must have a \"facts\" array"))?
        .as_array()
        .ok_or_else(|| envelope_error("\"facts\" must be an array"))?;
    if facts.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "\"facts\" must hold at least one fact",
        ));
    }
    if facts.len() > limits::BATCH_FACTS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch holds at most {} facts, got {}",
                limits::BATCH_FACTS_MAX,
                facts.len()
            ),
        ));
    }
    facts
        .iter()
        .enumerate()
        .map(|(index, value)| {
            CanonicalFact::from_value(value, fact_bytes_max).map_err(|error| {
                let mut api_error = ApiError::from(error);
                api_error.message = format!("facts[{index}]: {}", api_error.message);
                api_error.with_detail("index", serde_json::json!(index))
            })
        })
        .collect()
}

/// `GET /v1/facts/{hash}`.
pub async fn get_fact<S: Store>(
    State(state): State<AppState<S>>,
    Path(hash_text): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash_text)?;
    let fact = state
        .store
        .get_fact(&hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no fact with hash {hash}")))?;
    let mut json = Vec::with_capacity(fact.canonical.len() + 100);
    write_fact_entry(&mut json, &fact);
    Ok(json_response(json))
}

/// `GET /v1/facts/{hash}/successors`.
pub async fn get_successors<S: Store>(
    State(state): State<AppState<S>>,
    Path(hash_text): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(
        raw_query.as_deref(),
        &["type", "role", "without", "limit", "after", "wait_ms"],
    )?;
    let predecessor = parse_hash(&hash_text)?;
    let type_name = params.single("type")?.ok_or_else(|| {
        ApiError::bad_request("missing_parameter", "query parameter \"type\" is required")
    })?;
    cairn_fact::validate_type_name(type_name)?;
    let role = params.single("role")?;
    if let Some(role) = role {
        cairn_fact::validate_role(role)?;
    }
    let without_types = params.all("without");
    if without_types.len() > limits::WITHOUT_TYPES_MAX {
        return Err(ApiError::bad_request(
            "parameter_out_of_range",
            format!(
                "at most {} \"without\" parameters",
                limits::WITHOUT_TYPES_MAX
            ),
        ));
    }
    for without_type in &without_types {
        cairn_fact::validate_type_name(without_type)?;
    }
    let mut query = SuccessorsQuery {
        predecessor,
        type_name: type_name.to_string(),
        role: role.map(str::to_string),
        without_types: without_types.iter().map(|name| name.to_string()).collect(),
        after_seq: params.integer("after", 0, 0, u64::MAX)?,
        limit: params.integer(
            "limit",
            limits::SUCCESSORS_LIMIT_DEFAULT as u64,
            1,
            limits::SUCCESSORS_LIMIT_MAX as u64,
        )? as usize,
    };
    let wait_ms = params.integer("wait_ms", 0, 0, limits::WAIT_MS_MAX)?;
    let mut long_poll = LongPoll::new(&state, wait_ms);
    loop {
        let seen = long_poll.durable_seq();
        let page = state.store.successors(&query).await?;
        if !page.facts.is_empty() || !long_poll.wait_past(&state, seen).await {
            return Ok(page_response(&page));
        }
        // Skip what was examined (and excluded) so the next round starts after it.
        query.after_seq = page.next_seq;
    }
}

/// `GET /v1/log`.
pub async fn get_log<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["after", "limit", "wait_ms"])?;
    let after_seq = params.integer("after", 0, 0, u64::MAX)?;
    let limit = params.integer(
        "limit",
        limits::LOG_LIMIT_DEFAULT as u64,
        1,
        limits::LOG_LIMIT_MAX as u64,
    )? as usize;
    let wait_ms = params.integer("wait_ms", 0, 0, limits::WAIT_MS_MAX)?;
    let mut long_poll = LongPoll::new(&state, wait_ms);
    loop {
        let seen = long_poll.durable_seq();
        let page = state.store.log(after_seq, limit).await?;
        if !page.facts.is_empty() || !long_poll.wait_past(&state, seen).await {
            return Ok(page_response(&page));
        }
    }
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|error| ApiError::bad_request("invalid_hash", error.to_string()))
}

/// Writes `{"hash", "seq", "fact"}`, embedding the canonical bytes as they are.
fn write_fact_entry(json: &mut Vec<u8>, fact: &StoredFact) {
    json.extend_from_slice(b"{\"hash\":\"");
    json.extend_from_slice(fact.hash.to_hex().as_bytes());
    json.extend_from_slice(b"\",\"seq\":");
    json.extend_from_slice(fact.seq.to_string().as_bytes());
    json.extend_from_slice(b",\"fact\":");
    json.extend_from_slice(&fact.canonical);
    json.push(b'}');
}

fn page_response(page: &Page) -> Response {
    let bytes: usize = page
        .facts
        .iter()
        .map(|fact| fact.canonical.len() + 110)
        .sum();
    let mut json = Vec::with_capacity(bytes + 40);
    json.extend_from_slice(b"{\"facts\":[");
    for (index, fact) in page.facts.iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        write_fact_entry(&mut json, fact);
    }
    json.extend_from_slice(b"],\"next\":");
    json.extend_from_slice(page.next_seq.to_string().as_bytes());
    json.push(b'}');
    json_response(json)
}

pub(super) fn json_response(json: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}
