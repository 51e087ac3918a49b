//! `/v1/facts`, `/v1/facts/{hash}`, `/v1/facts/{hash}/successors` and `/v1/log`.

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use cairn_api::access::{any_matches, Pattern};
use cairn_api::facts::{is_reserved_type, RESERVED_TYPE_PREFIX};
use cairn_api::services::FlowKind;
use cairn_api::ErrorCode;
use cairn_api::{Authorship, FactPage, PutFactsAnswer, PutResult, FENCE_HEADER};
use cairn_fact::{parse_json, CanonicalFact, Hash, JsonError};
use cairn_store::{Fence, Page, Store, StoredFact, SuccessorsQuery};
use serde::Serialize;
use serde_json::value::RawValue;

use super::wait::LongPoll;
use super::ApiPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::limits;
use crate::query::QueryParams;
use crate::schemas::UpcastView;
use crate::state::AppState;

/// Bodies larger than this are parsed on the blocking pool, so a big batch
/// does not stall the async workers.
const INLINE_PARSE_BYTES_MAX: usize = 64 * 1024;

/// `POST /v1/facts`: validates, hashes and durably stores a batch.
pub async fn post_facts<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let bytes = read_json_body(&headers, body, ContentType::Required).await?;
    let fact_bytes_max = state.config.fact_canonical_bytes_max;
    let facts = if bytes.len() <= INLINE_PARSE_BYTES_MAX {
        parse_batch(&bytes, fact_bytes_max)?
    } else {
        tokio::task::spawn_blocking(move || parse_batch(&bytes, fact_bytes_max))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal, "parsing failed"))??
    };
    let fence = fence_of(&headers)?;
    // Every fact of the batch by its own type; one refusal stores nothing.
    for (index, fact) in facts.iter().enumerate() {
        if is_reserved_type(&fact.fact.type_name) {
            return Err(ApiError::new(
                ErrorCode::ReservedType,
                format!(
                    "fact {index} has type {}: types under {RESERVED_TYPE_PREFIX} are written by \
                     the server only (claims, leases, timers); nothing was written",
                    fact.fact.type_name
                ),
            )
            .with_detail("index", serde_json::json!(index)));
        }
        caller.require_write(&fact.fact.type_name)?;
    }
    state
        .schemas
        .validate_batch(state.store.as_ref(), &facts)
        .await?;
    caller.take_writes(facts.len() as u64)?;
    let written_types = state.flows.types_written(&caller, &facts);
    let outcomes = match fence {
        None => state.store.put_facts_by(facts, caller.author()).await?,
        Some(fence) => {
            state
                .coordination
                .put_facts_fenced(facts, caller.author(), fence)
                .await?
        }
    };
    state.flows.observe(
        &caller,
        FlowKind::Writes,
        written_types.iter().map(String::as_str),
    );
    let results = outcomes
        .iter()
        .map(|outcome| PutResult {
            hash: outcome.hash,
            seq: outcome.seq,
            inserted: outcome.inserted,
        })
        .collect();
    Ok(json_answer(&PutFactsAnswer { results }))
}

/// The `Cairn-Fence` of a write, if it carries one (at most one header).
fn fence_of(headers: &HeaderMap) -> Result<Option<Fence>, ApiError> {
    let mut values = headers.get_all(FENCE_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidFence,
            "Cairn-Fence must be sent once: <lease name>=<fence>",
        ));
    }
    let (name, fence) = cairn_api::coordination::parse_fence(value.as_bytes())
        .map_err(|message| ApiError::new(ErrorCode::InvalidFence, message))?;
    Ok(Some(Fence { name, fence }))
}

/// Whether a JSON body must declare its Content-Type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ContentType {
    /// `Content-Type: application/json` is required (`POST /v1/facts`).
    Required,
    /// It may be left out; a body that declares a type must declare JSON.
    Optional,
}

/// Reads a JSON request body. A declared Content-Type other than
/// `application/json` is refused with `415` (and so is none, where one is
/// required): a browser can send a cross-origin request without asking
/// first (a CORS preflight, which Cairn never grants) only with a form or
/// text type, so no web page can write, ack or replay on a Cairn it can
/// reach.
pub(super) async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    content_type: ContentType,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let acceptable = match declared.as_deref() {
        None => content_type == ContentType::Optional,
        Some(declared) => declared
            .split(';')
            .next()
            .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json")),
    };
    if !acceptable {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "the body must be JSON, sent with Content-Type: application/json (got {})",
                declared.map_or("none".to_string(), |value| format!("{value:?}"))
            ),
        ));
    }
    read_body(headers, body).await
}

/// Reads the JSON body of a definition (a timer, a link, a schema, a
/// service): at most `bytes_max` bytes (`413 request_too_large` naming
/// `what`), checked by the strict parser — duplicate keys, lone
/// surrogates and integers a double cannot hold are refused as in a fact —
/// before its type parses it.
pub(super) async fn read_definition_body(
    headers: &HeaderMap,
    body: Body,
    bytes_max: usize,
    what: &str,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("{what} is at most {bytes_max} bytes"),
        )
    };
    if super::declared_content_length(headers).is_some_and(|length| length > bytes_max as u64) {
        return Err(too_large());
    }
    let bytes = read_json_body(headers, body, ContentType::Optional).await?;
    if bytes.len() > bytes_max {
        return Err(too_large());
    }
    parse_json(&bytes, limits::REQUEST_JSON_DEPTH_MAX)
        .map_err(|error| ApiError::from(cairn_fact::FactError::Json(error)))?;
    Ok(bytes)
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::RequestTooLarge,
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
    let body = parse_json(bytes, limits::REQUEST_JSON_DEPTH_MAX).map_err(|error| {
        // The envelope's two levels are the request's, not the fact's: the
        // limit a client meets is the fact's own, the one `cairn hash`
        // names.
        let error = match error {
            JsonError::TooDeep { .. } => JsonError::TooDeep {
                depth_max: cairn_fact::JSON_DEPTH_MAX,
            },
            other => other,
        };
        ApiError::from(cairn_fact::FactError::Json(error))
    })?;
    let envelope_error =
        |message: &str| ApiError::new(ErrorCode::InvalidRequest, message.to_string());
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
        return Err(ApiError::new(
            ErrorCode::EmptyBatch,
            "\"facts\" must hold at least one fact",
        ));
    }
    if facts.len() > limits::BATCH_FACTS_MAX {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
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
    Extension(caller): Extension<Caller>,
    ApiPath(hash_text): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["as_version"])?;
    let as_version = as_version_of(&params)?;
    let hash = parse_hash(&hash_text)?;
    let not_found = || ApiError::not_found(format!("no fact with hash {hash}"));
    let fact = state.store.get_fact(&hash).await?.ok_or_else(not_found)?;
    // A fact the caller may not read is answered exactly as an absent one.
    if !readable(&caller, &fact) {
        return Err(not_found());
    }
    if let (Some(as_version), Some(type_name)) =
        (as_version, cairn_fact::canonical_type(&fact.canonical))
    {
        state
            .schemas
            .require_version(state.store.as_ref(), type_name, as_version)
            .await?;
    }
    let view = view_of(&state, &fact.canonical, as_version)?;
    let mut answer = stored_fact(&fact, view.as_ref())?;
    if caller.is_admin() {
        if let Some(auth) = &state.auth {
            answer.author = auth
                .registry
                .store()
                .authorship(&hash)
                .await?
                .map(|record| Authorship {
                    first: record.first,
                    again: record.again,
                });
        }
    }
    Ok(json_answer(&answer))
}

/// Whether `caller` may read the stored fact `fact` (by its own type).
pub(super) fn readable(caller: &Caller, fact: &StoredFact) -> bool {
    if caller.is_admin() {
        // Anyone (no --auth) and admins read everything: no type to find.
        return true;
    }
    match cairn_fact::canonical_type(&fact.canonical) {
        Some(type_name) => caller.may_read(type_name),
        // Not a canonical fact: only a caller who may read everything
        // sees it (and then the read reports the damage).
        None => caller.is_admin(),
    }
}

/// `GET /v1/facts/{hash}/successors`.
pub async fn get_successors<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(hash_text): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(
        raw_query.as_deref(),
        &[
            "type",
            "role",
            "without",
            "limit",
            "after",
            "wait_ms",
            "as_version",
        ],
    )?;
    let as_version = as_version_of(&params)?;
    let predecessor = parse_hash(&hash_text)?;
    let type_name = params.single("type")?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingParameter,
            "query parameter \"type\" is required",
        )
    })?;
    cairn_fact::validate_type_name(type_name)?;
    let role = params.single("role")?;
    if let Some(role) = role {
        cairn_fact::validate_role(role)?;
    }
    let without_types = params.all("without");
    if without_types.len() > limits::WITHOUT_TYPES_MAX {
        return Err(ApiError::new(
            ErrorCode::ParameterOutOfRange,
            format!(
                "at most {} \"without\" parameters",
                limits::WITHOUT_TYPES_MAX
            ),
        ));
    }
    for without_type in &without_types {
        cairn_fact::validate_type_name(without_type)?;
    }
    // Refused by what the query names, never by what is stored: every
    // successor is of `type`, and `without` would tell whether facts of
    // those types exist.
    caller.require_read(type_name)?;
    for without_type in &without_types {
        caller.require_read(without_type)?;
    }
    if let Some(as_version) = as_version {
        state
            .schemas
            .require_version(state.store.as_ref(), type_name, as_version)
            .await?;
    }
    state
        .flows
        .observe(&caller, FlowKind::Consumes, [type_name]);
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
        if !page.facts.is_empty() || !long_poll.wait_past(&state, &caller, seen).await {
            caller.ensure_still_valid()?;
            return page_answer(&state, &page, as_version);
        }
        // Skip what was examined (and excluded) so the next round starts after it.
        query.after_seq = page.next_seq;
    }
}

/// `GET /v1/log`.
pub async fn get_log<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(
        raw_query.as_deref(),
        &["after", "limit", "wait_ms", "types", "as_version"],
    )?;
    let as_version = as_version_of(&params)?;
    let after_seq = params.integer("after", 0, 0, u64::MAX)?;
    let types = type_patterns(&params)?;
    let limit = params.integer(
        "limit",
        limits::LOG_LIMIT_DEFAULT as u64,
        1,
        limits::LOG_LIMIT_MAX as u64,
    )? as usize;
    let wait_ms = params.integer("wait_ms", 0, 0, limits::WAIT_MS_MAX)?;
    let mut long_poll = LongPoll::new(&state, wait_ms);
    let requested_after = after_seq;
    let mut after_seq = after_seq;
    let mut pages_read = 0;
    let mut next_hash = None;
    loop {
        let seen = long_poll.durable_seq();
        let mut page = state.store.log(after_seq, limit).await?;
        pages_read += 1;
        let examined = !page.facts.is_empty();
        // The entry at `next`, if the caller may read it: where a link
        // anchors its bookmark.
        if let Some(last) = page.facts.last() {
            next_hash = (last.seq == page.next_seq && readable(&caller, last)).then_some(last.hash);
        }
        // Facts the caller may not read are left out; `next` still moves
        // past them, so a reader never reads them again.
        // So are facts of other types than `types` asks for.
        page.facts
            .retain(|fact| readable(&caller, fact) && selected(&types, fact));
        if !page.facts.is_empty() {
            return log_answer(&state, &page, requested_after, next_hash, as_version).await;
        }
        if examined {
            // Only unreadable facts: read on past them while the long-poll
            // lasts, a bounded number of pages per request.
            after_seq = page.next_seq;
            if wait_ms > 0 && pages_read < limits::FILTERED_PAGES_MAX && !long_poll.expired() {
                continue;
            }
            return log_answer(&state, &page, requested_after, next_hash, as_version).await;
        }
        if !long_poll.wait_past(&state, &caller, seen).await {
            caller.ensure_still_valid()?;
            return log_answer(&state, &page, requested_after, next_hash, as_version).await;
        }
    }
}

pub(super) fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|error| ApiError::new(ErrorCode::InvalidHash, error.to_string()))
}

/// The `as_version` a read asks for, if any.
pub(super) fn as_version_of(params: &QueryParams) -> Result<Option<u32>, ApiError> {
    if params.single("as_version")?.is_none() {
        return Ok(None);
    }
    let version = params.integer(
        "as_version",
        1,
        1,
        u64::from(cairn_api::limits::SCHEMA_VERSION_MAX),
    )?;
    Ok(Some(version as u32))
}

/// A stored fact as a reader of `as_version` sees it: the upcast view, or
/// `None` to answer it as stored.
pub(super) fn view_of<S>(
    state: &AppState<S>,
    canonical: &[u8],
    as_version: Option<u32>,
) -> Result<Option<UpcastView>, ApiError> {
    match as_version {
        None => Ok(None),
        Some(as_version) => state.schemas.read_as(canonical, as_version),
    }
}

/// A stored fact as answered, its canonical bytes embedded as they are;
/// with a view, the view as `fact` and the stored bytes as `original`.
fn stored_fact<'a>(
    fact: &'a StoredFact,
    view: Option<&'a UpcastView>,
) -> Result<cairn_api::StoredFact<&'a RawValue>, ApiError> {
    let stored = raw_fact(&fact.canonical)?;
    Ok(cairn_api::StoredFact {
        hash: fact.hash,
        seq: fact.seq,
        fact: view.map_or(stored, |view| &*view.fact),
        author: None,
        upcast: view.map(|view| view.marker),
        original: view.map(|_| stored),
    })
}

fn page_answer<S>(
    state: &AppState<S>,
    page: &Page,
    as_version: Option<u32>,
) -> Result<Response, ApiError> {
    let views = page_views(state, page, as_version)?;
    Ok(json_answer(&fact_page(page, &views)?))
}

/// The upcast views of a page's facts, in order.
fn page_views<S>(
    state: &AppState<S>,
    page: &Page,
    as_version: Option<u32>,
) -> Result<Vec<Option<UpcastView>>, ApiError> {
    page.facts
        .iter()
        .map(|fact| view_of(state, &fact.canonical, as_version))
        .collect()
}

fn fact_page<'a>(
    page: &'a Page,
    views: &'a [Option<UpcastView>],
) -> Result<FactPage<&'a RawValue>, ApiError> {
    let facts = page
        .facts
        .iter()
        .zip(views)
        .map(|(fact, view)| stored_fact(fact, view.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FactPage {
        facts,
        next: page.next_seq,
        store: None,
        head: None,
        next_hash: None,
    })
}

/// A page of the log, with the store's identity and head: what a
/// replication link checks its bookmark against. The head is the store's
/// durable last `seq` as this server knows it, read after the page (so
/// never below the page's last fact). A head below the `after` asked for
/// means the reader is ahead of this store — a store restored from an
/// older backup, or, on PostgreSQL, a server whose view of the head lags
/// another's by a moment: the answer waits for the head to reach `after`
/// (at most [`limits::HEAD_CATCH_UP`]) before it reports a lower one.
async fn log_answer<S: Store>(
    state: &AppState<S>,
    page: &Page,
    after_seq: u64,
    next_hash: Option<Hash>,
    as_version: Option<u32>,
) -> Result<Response, ApiError> {
    let views = page_views(state, page, as_version)?;
    let mut answer = fact_page(page, &views)?;
    answer.next_hash = next_hash;
    answer.store = Some(state.coordination.deployment().to_string());
    let mut head_watch = state.store.watch_last_seq();
    let _ = tokio::time::timeout(limits::HEAD_CATCH_UP, async {
        let _ = head_watch.wait_for(|head| *head >= after_seq).await;
    })
    .await;
    let head = *head_watch.borrow();
    let last_fact_seq = page.facts.last().map_or(0, |fact| fact.seq);
    answer.head = Some(head.max(last_fact_seq));
    Ok(json_answer(&answer))
}

/// The `types` patterns of a log query (none: every type).
fn type_patterns(params: &QueryParams) -> Result<Vec<Pattern>, ApiError> {
    let texts = params.all("types");
    if texts.len() > cairn_api::limits::LINK_TYPES_MAX {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "at most {} types patterns",
                cairn_api::limits::LINK_TYPES_MAX
            ),
        ));
    }
    texts
        .into_iter()
        .map(|text| {
            Pattern::parse(text).map_err(|error| {
                ApiError::new(ErrorCode::InvalidParameter, format!("types: {error}"))
            })
        })
        .collect()
}

/// Whether a fact's type matches one of `types` (every fact if none).
fn selected(types: &[Pattern], fact: &StoredFact) -> bool {
    types.is_empty()
        || cairn_fact::canonical_type(&fact.canonical)
            .is_some_and(|type_name| any_matches(types, type_name))
}

/// Stored canonical bytes as a JSON value to embed in an answer. They were
/// checked against their hash when read, so a failure here is a fault of
/// the server, not of the request.
pub(super) fn raw_fact(canonical: &[u8]) -> Result<&RawValue, ApiError> {
    serde_json::from_slice(canonical).map_err(|error| {
        ApiError::new(
            ErrorCode::CorruptData,
            format!("a stored fact is not JSON: {error}"),
        )
    })
}

/// A `200` answer with `value` as its JSON body.
pub(super) fn json_answer(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => ApiError::new(
            ErrorCode::Internal,
            format!("cannot write the answer: {error}"),
        )
        .into_response(),
    }
}
