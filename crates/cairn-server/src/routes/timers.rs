//! `/v1/timers/...`: durable timers that write a fact when an occurrence
//! is due (see "Timers" in `docs/api-v1.md` and `crate::timers`).
//!
//! Access: putting or deleting a timer needs `write` on its template's
//! type (the fact it writes); reading one needs `read` on it. A timer the
//! caller may not read (nor, for a delete, write) is answered as absent,
//! like a fact.

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::limits::{TIMERS_LIMIT_DEFAULT, TIMERS_LIMIT_MAX, TIMER_BODY_BYTES_MAX};
use cairn_api::timers::validate_timer_name;
use cairn_api::{Deleted, ErrorCode, TimerDefinition, TimerList, TimerView};
use cairn_store::{Store, TimerPut, TimerRecord};

use super::facts::{json_answer, read_definition_body};
use super::ApiPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;
use crate::timers::Timers;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidTimer, message)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    validate_timer_name(name).map_err(invalid)
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(ErrorCode::UnknownTimer, format!("no timer named {name:?}"))
}

fn view(timers: &Timers, record: &TimerRecord) -> Result<TimerView, ApiError> {
    timers
        .view(record)
        .map_err(|message| ApiError::new(ErrorCode::CorruptData, message))
}

/// The timer `name` if it exists and `caller` may read its template's type.
async fn readable(
    timers: &Timers,
    caller: &Caller,
    name: &str,
) -> Result<(TimerRecord, TimerView), ApiError> {
    let record = timers
        .store
        .timer(name)
        .await?
        .ok_or_else(|| unknown(name))?;
    let view = view(timers, &record)?;
    match view.definition.type_name() {
        Some(type_name) if caller.may_read(type_name) => Ok((record, view)),
        _ => Err(unknown(name)),
    }
}

/// `PUT /v1/timers/{name}`: creates (201) or replaces (200) a timer.
pub async fn put_timer<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    check_name(&name)?;
    let bytes =
        read_definition_body(&headers, body, TIMER_BODY_BYTES_MAX, "a timer's body").await?;
    let definition: TimerDefinition = cairn_api::parse_body(&bytes).map_err(invalid)?;
    let type_name = definition
        .type_name()
        .ok_or_else(|| invalid("fact.type must be a string"))?
        .to_string();
    caller.require_write(&type_name)?;
    let timers = &state.timers;
    let now_ms = timers.clock.now_ms();
    let parsed = timers
        .prepare(&name, definition, now_ms)
        .map_err(|error| match error {
            crate::timers::DefinitionError::Template(cairn_fact::FactError::TooLarge {
                ..
            }) => ApiError::new(ErrorCode::FactTooLarge, error.to_string()),
            other => invalid(other.to_string()),
        })?;
    let next_due_ms = parsed.schedule.first_at_or_after(now_ms);
    let record = TimerRecord {
        name: name.clone(),
        definition_json: serde_json::to_string(&parsed.definition)
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?,
        generation: 0,
        next_due_ms,
        attempt_at_ms: next_due_ms,
        last_fired_ms: None,
        last_error: None,
    };
    let (put, stored) = timers.store.put_timer(record).await?;
    timers.wake();
    let status = if put == TimerPut::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json_answer(&view(timers, &stored)?)).into_response())
}

/// `GET /v1/timers/{name}`.
pub async fn get_timer<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    check_name(&name)?;
    let (_, view) = readable(&state.timers, &caller, &name).await?;
    Ok(json_answer(&view))
}

/// `GET /v1/timers?after=NAME&limit=N`: the timers the caller may read,
/// by name, a page at a time.
pub async fn list_timers<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["after", "limit"])?;
    let after = params.single("after")?;
    if let Some(after) = after {
        check_name(after).map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("after: {}", error.message),
            )
        })?;
    }
    let limit = params.integer(
        "limit",
        TIMERS_LIMIT_DEFAULT as u64,
        1,
        TIMERS_LIMIT_MAX as u64,
    )? as usize;
    let records = state.timers.store.timers(after, limit).await?;
    let next = (records.len() == limit)
        .then(|| records.last().map(|record| record.name.clone()))
        .flatten();
    let mut timers = Vec::with_capacity(records.len());
    for record in &records {
        let view = view(&state.timers, record)?;
        if view
            .definition
            .type_name()
            .is_some_and(|type_name| caller.may_read(type_name))
        {
            timers.push(view);
        }
    }
    Ok(json_answer(&TimerList { timers, next }))
}

/// `DELETE /v1/timers/{name}`: the timer never fires again.
pub async fn delete_timer<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    check_name(&name)?;
    let timers = &state.timers;
    let record = timers
        .store
        .timer(&name)
        .await?
        .ok_or_else(|| unknown(&name))?;
    let view = view(timers, &record)?;
    let type_name = view.definition.type_name().unwrap_or_default();
    // A caller that may neither read nor write the type learns nothing of
    // the timer; one that may read it is told what it lacks.
    if !caller.may_read(type_name) && caller.require_write(type_name).is_err() {
        return Err(unknown(&name));
    }
    caller.require_write(type_name)?;
    if !timers.store.delete_timer(&name).await? {
        return Err(unknown(&name));
    }
    Ok(json_answer(&Deleted { deleted: true }))
}
