//! `/v1/subscriptions/...`: durable consumer groups with pull, leases,
//! acks, nacks, dead letters, pause and resume (see `docs/api-v1.md`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::limits::{
    DEAD_LETTERS_EXAMINED_MAX, DEAD_LETTER_CAUSES_LISTED_MAX, DEAD_LETTER_CAUSES_TRACKED_MAX,
    DEAD_LETTER_CAUSE_CHARS_MAX, DEAD_LETTER_SAMPLE_ERROR_BYTES_MAX,
};
use cairn_api::{
    dead_letter_cause, entity_tag, AckRequest, DeadLetterCauses, Deleted, Discarded, EmptyRequest,
    ErrorCode, ExtendRequest, GenerationPrecondition, Message, NackRequest, PullAnswer,
    PullRequest, ReplayAnswer, ReplayRequest, RequestBody, SubscriptionList, SubscriptionPutAnswer,
    TokenResult, TokenResults,
};
use cairn_delivery::{SubscriptionDefinition, TokenOutcome};
use cairn_fact::Hash;
use cairn_store::Store;

use serde_json::value::RawValue;

use super::facts::{json_answer, raw_fact, read_json_body, ContentType};
use super::ApiPath;
use crate::auth::Caller;
use crate::delivery::{
    Applied, DeadLetter, DeliveryError, PulledMessage, Subscription, SubscriptionView,
};
use crate::error::ApiError;
use crate::limits;
use crate::query::QueryParams;
use crate::schemas::{Schemas, UpcastView};
use crate::state::AppState;

type Found = std::sync::Arc<dyn Subscription>;

/// Parses and checks a JSON body of shape `T` (see
/// [`cairn_api::parse_body`]); an empty body counts as `{}`.
pub fn parse_body<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    cairn_api::parse_body(bytes).map_err(ApiError::invalid_request)
}

/// The subscription `name`, if `caller` may consume it: by the name first
/// (so a refusal tells nothing about what exists), then by the type of
/// the facts the stored subscription delivers.
async fn find<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    name: &str,
) -> Result<Found, ApiError> {
    caller.require_subscribe(name)?;
    let subscription = state.deliveries.get(name).await?;
    caller.require_read(subscription.selection().type_name())?;
    Ok(subscription)
}

fn find_allowed(caller: &Caller, subscription: &Found) -> bool {
    caller.require_subscribe(subscription.name()).is_ok()
        && caller.may_read(subscription.selection().type_name())
}

/// The start every POST on a subscription shares: no query parameters, a
/// known subscription, and a checked JSON body of shape `B` (empty counts
/// as `{}`).
async fn subscription_and_body<S: Store, B: RequestBody>(
    state: &AppState<S>,
    caller: &Caller,
    name: &str,
    raw_query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Found, B), ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let subscription = find(state, caller, name).await?;
    let body = parse_body(&read_json_body(headers, body, ContentType::Optional).await?)?;
    Ok((subscription, body))
}

fn view_response(status: StatusCode, view: &SubscriptionView) -> Response {
    (status, json_answer(view)).into_response()
}

/// The `ETag` of a view: its generation, quoted.
fn with_entity_tag(mut response: Response, generation: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&entity_tag(generation)) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// The `If-Match` precondition of a request, if it has one (at most one
/// header; see `cairn_api::precondition`).
fn if_match(headers: &HeaderMap) -> Result<Option<GenerationPrecondition>, ApiError> {
    let mut values = headers.get_all(IF_MATCH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidIfMatch,
            "If-Match must be sent once, with * or one subscription generation",
        ));
    }
    GenerationPrecondition::parse(value.as_bytes())
        .map(Some)
        .map_err(|error| ApiError::new(ErrorCode::InvalidIfMatch, error.to_string()))
}

/// `PUT /v1/subscriptions/{name}`: creates, confirms the same definition,
/// or updates what may change (under an `If-Match` precondition if one is
/// sent); see "Subscription details" in `docs/api-v1.md`.
pub async fn put_subscription<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let precondition = if_match(&headers)?;
    let bytes = read_json_body(&headers, body, ContentType::Optional).await?;
    let definition = SubscriptionDefinition::from_json(&bytes)
        .map_err(|error| ApiError::new(ErrorCode::InvalidDefinition, error.to_string()))?;
    // A consumer may declare its own subscription over types it may read;
    // the stored one, if any, must be one it may consume too.
    caller.require_subscribe(&name)?;
    caller.require_read(&definition.type_name)?;
    if let Some(as_version) = definition.as_version {
        state
            .schemas
            .require_version(state.store.as_ref(), &definition.type_name, as_version)
            .await
            .map_err(|error| ApiError::new(ErrorCode::InvalidDefinition, error.message))?;
    }
    let (subscription, applied) = state
        .deliveries
        .apply(&name, definition, precondition)
        .await?;
    let status = match applied {
        Applied::Created => StatusCode::CREATED,
        Applied::Updated | Applied::Unchanged => StatusCode::OK,
    };
    let view = subscription.view().await?;
    let generation = view.generation;
    let answer = SubscriptionPutAnswer {
        view,
        updated: applied == Applied::Updated,
    };
    Ok(with_entity_tag(
        (status, json_answer(&answer)).into_response(),
        generation,
    ))
}

/// `GET /v1/subscriptions`: every subscription's view, by name.
pub async fn list_subscriptions<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let mut views = Vec::new();
    for subscription in state.deliveries.list().await? {
        // Only the subscriptions the caller may consume are listed.
        if find_allowed(&caller, &subscription) {
            views.push(subscription.view().await?);
        }
    }
    Ok(json_answer(&SubscriptionList {
        subscriptions: views,
    }))
}

/// `GET /v1/subscriptions/{name}`: definition and counters.
pub async fn get_subscription<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let subscription = find(&state, &caller, &name).await?;
    let view = subscription.view().await?;
    Ok(with_entity_tag(
        view_response(StatusCode::OK, &view),
        view.generation,
    ))
}

/// `DELETE /v1/subscriptions/{name}`.
pub async fn delete_subscription<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    caller.require_admin()?;
    state.deliveries.delete(&name).await?;
    Ok(json_answer(&Deleted { deleted: true }))
}

/// `POST /v1/subscriptions/{name}/pull`: leases messages.
pub async fn pull<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, PullRequest) =
        subscription_and_body(&state, &caller, &name, raw_query, &headers, body).await?;
    state.flows.observe(
        &caller,
        cairn_api::services::FlowKind::Consumes,
        [subscription.selection().type_name()],
    );
    let max = body.max.unwrap_or(1);
    let wait_ms = body.wait_ms.unwrap_or(0).min(state.config.long_poll_ms_max);
    // A waiting pull ends when the server stops or the caller's token
    // stops working; the latter is then answered 401.
    let stop = state.shutdown.child_token();
    let messages = {
        let pull = subscription.pull(max as usize, wait_ms, body.lease_ms, &stop);
        tokio::pin!(pull);
        tokio::select! {
            messages = &mut pull => messages?,
            () = caller.invalidated() => {
                stop.cancel();
                // Whatever it leased is not handed out: the leases expire
                // and the messages are delivered again.
                let _ = pull.await;
                return Err(crate::auth::unauthenticated("the access token was revoked or expired"));
            }
        }
    };
    let views = upcast_views(subscription.as_ref(), &state.schemas, &messages).await?;
    let messages = messages
        .iter()
        .zip(&views)
        .map(|(message, view)| {
            let stored = raw_fact(&message.canonical)?;
            Ok(Message {
                token: message.token.clone(),
                hash: message.hash,
                seq: message.seq,
                attempt: message.attempt,
                fact: view.as_ref().map_or(stored, |view| &*view.fact),
                upcast: view.as_ref().map(|view| view.marker),
                original: view.as_ref().map(|_| stored),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(json_answer(&PullAnswer { messages }))
}

/// The views of pulled messages for a subscription with `as_version`
/// (`None` for one shown as stored). A fact the upcast does not apply to
/// is delivered as stored, without `upcast`, rather than held back: the
/// consumer sees its older version and can nack it into the dead letters.
pub(super) async fn upcast_views(
    subscription: &dyn Subscription,
    schemas: &Schemas,
    messages: &[PulledMessage],
) -> Result<Vec<Option<UpcastView>>, DeliveryError> {
    let Some(as_version) = subscription.as_version().await? else {
        return Ok(messages.iter().map(|_| None).collect());
    };
    Ok(messages
        .iter()
        .map(
            |message| match schemas.read_as(&message.canonical, as_version) {
                Ok(view) => view,
                Err(error) => {
                    tracing::warn!(
                        subscription = subscription.name(),
                        hash = %message.hash,
                        "delivered as stored: {}",
                        error.message
                    );
                    None
                }
            },
        )
        .collect())
}

/// `{"results": [{"token", "status"}, ...]}`: the answer to an ack, nack
/// or extend, over HTTP and over the stream.
pub(super) fn token_results(outcomes: &[TokenOutcome]) -> TokenResults {
    TokenResults {
        results: outcomes
            .iter()
            .map(|outcome| TokenResult {
                token: outcome.token.clone(),
                status: outcome.status,
            })
            .collect(),
    }
}

fn results_response(outcomes: &[TokenOutcome]) -> Response {
    json_answer(&token_results(outcomes))
}

/// `POST /v1/subscriptions/{name}/ack`: durable before the answer.
pub async fn ack<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, AckRequest) =
        subscription_and_body(&state, &caller, &name, raw_query, &headers, body).await?;
    Ok(results_response(&subscription.ack(&body.tokens).await?))
}

/// `POST /v1/subscriptions/{name}/nack`: durable before the answer.
pub async fn nack<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, NackRequest) =
        subscription_and_body(&state, &caller, &name, raw_query, &headers, body).await?;
    let outcomes = subscription
        .nack(&body.tokens, body.delay_ms, body.error.as_deref())
        .await?;
    Ok(results_response(&outcomes))
}

/// `POST /v1/subscriptions/{name}/extend`: renews leases.
pub async fn extend<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, ExtendRequest) =
        subscription_and_body(&state, &caller, &name, raw_query, &headers, body).await?;
    Ok(results_response(
        &subscription.extend(&body.tokens, body.lease_ms).await?,
    ))
}

async fn set_paused<S: Store>(
    state: AppState<S>,
    caller: Caller,
    name: String,
    raw_query: Option<String>,
    headers: HeaderMap,
    body: Body,
    paused: bool,
) -> Result<Response, ApiError> {
    let (subscription, _): (_, EmptyRequest) =
        subscription_and_body(&state, &caller, &name, raw_query, &headers, body).await?;
    Ok(view_response(
        StatusCode::OK,
        &subscription.set_paused(paused).await?,
    ))
}

/// `POST /v1/subscriptions/{name}/pause`.
pub async fn pause<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_paused(state, caller, name, raw_query, headers, body, true).await
}

/// `POST /v1/subscriptions/{name}/resume`.
pub async fn resume<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_paused(state, caller, name, raw_query, headers, body, false).await
}

fn dead_letter(letter: &DeadLetter) -> Result<cairn_api::DeadLetter<&RawValue>, ApiError> {
    let record = &letter.record;
    Ok(cairn_api::DeadLetter {
        hash: record.hash,
        seq: letter.seq,
        attempts: record.attempts,
        last_error: record.last_error.clone(),
        dead_at_ms: record.dead_at_ms.unwrap_or(0),
        cause: dead_letter_cause(record.last_error.as_deref()),
        fact: raw_fact(&letter.canonical)?,
    })
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidHash,
            format!("{text:?} is not a hash (64 lowercase hex characters)"),
        )
    })
}

/// The `cause` a dead-letter listing filters on, if any: at most
/// `DEAD_LETTER_CAUSE_CHARS_MAX` characters, as no cause is longer.
fn cause_of(query: &QueryParams) -> Result<Option<String>, ApiError> {
    let Some(cause) = query.single("cause")? else {
        return Ok(None);
    };
    if cause.chars().count() > DEAD_LETTER_CAUSE_CHARS_MAX {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "query parameter \"cause\" is at most {DEAD_LETTER_CAUSE_CHARS_MAX} characters \
                 (no cause is longer)"
            ),
        ));
    }
    Ok(Some(cause.to_string()))
}

/// Up to `limit` dead (or discarded) letters with `seq > after` whose cause
/// is `cause`, examining at most `DEAD_LETTERS_EXAMINED_MAX` of them;
/// also the highest `seq` examined.
async fn dead_letters_with_cause(
    subscription: &dyn Subscription,
    discarded: bool,
    after: u64,
    limit: usize,
    cause: &str,
) -> Result<(Vec<DeadLetter>, u64), ApiError> {
    let mut matched = Vec::new();
    let mut next = after;
    let mut n_examined = 0;
    while n_examined < DEAD_LETTERS_EXAMINED_MAX {
        let page_limit = limits::DEAD_LETTERS_LIMIT_MAX.min(DEAD_LETTERS_EXAMINED_MAX - n_examined);
        let page = subscription
            .dead_letters(discarded, next, page_limit)
            .await?;
        let n_read = page.len();
        for letter in page {
            n_examined += 1;
            next = letter.seq;
            if dead_letter_cause(letter.record.last_error.as_deref()) == cause {
                matched.push(letter);
                if matched.len() == limit {
                    return Ok((matched, next));
                }
            }
        }
        if n_read < page_limit {
            break;
        }
    }
    Ok((matched, next))
}

/// `GET /v1/subscriptions/{name}/dead`: dead letters in `seq` order
/// (addition, issue 17: only those of one `cause`).
pub async fn list_dead<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(
        raw_query.as_deref(),
        &["limit", "after", "discarded", "cause"],
    )?;
    let limit = query.integer(
        "limit",
        limits::DEAD_LETTERS_LIMIT_DEFAULT as u64,
        1,
        limits::DEAD_LETTERS_LIMIT_MAX as u64,
    )? as usize;
    let after = query.integer("after", 0, 0, u64::MAX)?;
    let discarded = query.boolean("discarded")?;
    let cause = cause_of(&query)?;
    let subscription = find(&state, &caller, &name).await?;
    let (letters, next) = match cause {
        None => {
            let letters = subscription.dead_letters(discarded, after, limit).await?;
            let next = letters.last().map_or(after, |letter| letter.seq);
            (letters, next)
        }
        Some(cause) => {
            dead_letters_with_cause(subscription.as_ref(), discarded, after, limit, &cause).await?
        }
    };
    let messages = letters
        .iter()
        .map(dead_letter)
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(json_answer(&cairn_api::DeadLetterPage { messages, next }))
}

/// One cause while dead letters are grouped.
struct CauseGroup {
    count: u64,
    first_dead_at_ms: u64,
    last_dead_at_ms: u64,
    sample_hash: Hash,
    sample_error: Option<String>,
}

/// `GET /v1/subscriptions/{name}/dead/causes` (addition, issue 17): the
/// dead letters grouped by cause, most frequent first, examining at most
/// `DEAD_LETTERS_EXAMINED_MAX` of them in `seq` order, tracking at most
/// `DEAD_LETTER_CAUSES_TRACKED_MAX` causes and listing at most
/// `DEAD_LETTER_CAUSES_LISTED_MAX`; `exact` is false when any of these
/// bounds left something out.
pub async fn list_dead_causes<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let subscription = find(&state, &caller, &name).await?;
    let mut groups: HashMap<String, CauseGroup> = HashMap::new();
    let mut exact = true;
    let mut after = 0;
    let mut n_examined = 0;
    loop {
        let page_limit = limits::DEAD_LETTERS_LIMIT_MAX.min(DEAD_LETTERS_EXAMINED_MAX - n_examined);
        if page_limit == 0 {
            // Examined as many as allowed: are there more?
            exact &= subscription.dead_letters(false, after, 1).await?.is_empty();
            break;
        }
        let page = subscription.dead_letters(false, after, page_limit).await?;
        let n_read = page.len();
        for letter in page {
            n_examined += 1;
            after = letter.seq;
            let record = &letter.record;
            let dead_at_ms = record.dead_at_ms.unwrap_or(0);
            let cause = dead_letter_cause(record.last_error.as_deref());
            if let Some(group) = groups.get_mut(&cause) {
                group.count += 1;
                group.first_dead_at_ms = group.first_dead_at_ms.min(dead_at_ms);
                group.last_dead_at_ms = group.last_dead_at_ms.max(dead_at_ms);
            } else if groups.len() < DEAD_LETTER_CAUSES_TRACKED_MAX {
                let sample_error = record.last_error.as_deref().map(|error| {
                    let mut end = error.len().min(DEAD_LETTER_SAMPLE_ERROR_BYTES_MAX);
                    while !error.is_char_boundary(end) {
                        end -= 1;
                    }
                    error[..end].to_string()
                });
                groups.insert(
                    cause,
                    CauseGroup {
                        count: 1,
                        first_dead_at_ms: dead_at_ms,
                        last_dead_at_ms: dead_at_ms,
                        sample_hash: record.hash,
                        sample_error,
                    },
                );
            } else {
                exact = false;
            }
        }
        if n_read < page_limit {
            break;
        }
    }
    let mut causes: Vec<cairn_api::DeadLetterCause> = groups
        .into_iter()
        .map(|(cause, group)| cairn_api::DeadLetterCause {
            cause,
            count: group.count,
            first_dead_at_ms: group.first_dead_at_ms,
            last_dead_at_ms: group.last_dead_at_ms,
            sample_hash: group.sample_hash,
            sample_error: group.sample_error,
        })
        .collect();
    causes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
    if causes.len() > DEAD_LETTER_CAUSES_LISTED_MAX {
        causes.truncate(DEAD_LETTER_CAUSES_LISTED_MAX);
        exact = false;
    }
    Ok(json_answer(&DeadLetterCauses {
        subscription: subscription.name().to_string(),
        type_name: subscription.selection().type_name().to_string(),
        causes,
        examined: n_examined as u64,
        exact,
    }))
}

/// `GET /v1/subscriptions/{name}/dead/{hash}`: one dead letter.
pub async fn get_dead<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath((name, hash)): ApiPath<(String, String)>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash)?;
    let subscription = find(&state, &caller, &name).await?;
    let letter = subscription
        .dead_letter(&hash)
        .await?
        .ok_or_else(|| not_dead(&hash))?;
    Ok(json_answer(&dead_letter(&letter)?))
}

fn not_dead(hash: &Hash) -> ApiError {
    ApiError::new(
        ErrorCode::NotADeadLetter,
        format!("{hash} is not a dead letter of this subscription"),
    )
}

/// `POST /v1/subscriptions/{name}/dead/replay`.
pub async fn replay<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (subscription, body): (_, ReplayRequest) =
        subscription_and_body(&state, &caller, &name, raw_query, &headers, body).await?;
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
    Ok(json_answer(&ReplayAnswer {
        replayed: replayed as u64,
    }))
}

/// `DELETE /v1/subscriptions/{name}/dead/{hash}`: discards (keeps the record).
pub async fn discard<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath((name, hash)): ApiPath<(String, String)>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash)?;
    let subscription = find(&state, &caller, &name).await?;
    if subscription.discard(&hash).await? {
        Ok(json_answer(&Discarded { discarded: true }))
    } else {
        Err(not_dead(&hash))
    }
}
