//! `/v1/links/...`: replication links defined on this (receiving)
//! deployment (see "Replication links" in `docs/api-v1.md` and
//! `crate::links`). Every operation needs `admin`: a link writes facts of
//! any type it selects into this deployment, and holds a credential.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::limits::{LINKS_MAX, LINK_BODY_BYTES_MAX};
use cairn_api::links::validate_link_name;
use cairn_api::{Deleted, ErrorCode, LinkDefinition, LinkList, LinkView};
use cairn_replication::{parse_source_url, source_text, HttpSource, Source};
use cairn_store::{LinkPut, LinkRecord, Store};

use super::facts::{json_answer, read_definition_body};
use super::ApiPath;
use crate::error::ApiError;
use crate::limits::LINK_PROBE_TIMEOUT;
use crate::links::repair::{repair, RepairError};
use crate::links::{now_ms, Links, StoredDefinition};
use crate::query::QueryParams;
use crate::state::AppState;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidLink, message)
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(ErrorCode::UnknownLink, format!("no link named {name:?}"))
}

fn view(links: &Links, record: &LinkRecord) -> Result<LinkView, ApiError> {
    links
        .view(record)
        .map_err(|message| ApiError::new(ErrorCode::CorruptData, message))
}

async fn existing(links: &Links, name: &str) -> Result<LinkRecord, ApiError> {
    validate_link_name(name).map_err(invalid)?;
    links.store.link(name).await?.ok_or_else(|| unknown(name))
}

/// `PUT /v1/links/{name}`: creates (201) a link, or rotates the token of
/// an existing one (200); its source and types cannot change.
pub async fn put_link<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    validate_link_name(&name).map_err(invalid)?;
    let bytes = read_definition_body(&headers, body, LINK_BODY_BYTES_MAX, "a link's body").await?;
    let mut definition: LinkDefinition = cairn_api::parse_body(&bytes).map_err(invalid)?;
    let url = parse_source_url(&definition.source)
        .map_err(|error| invalid(format!("source: {error}")))?;
    definition.source = source_text(&url);
    let links = &state.links;
    let current = links.store.link(&name).await?;
    let created_at_ms = match &current {
        Some(record) => {
            let stored = StoredDefinition::parse(record)
                .map_err(|message| ApiError::new(ErrorCode::CorruptData, message))?;
            if !stored.same_selection(&definition) {
                return Err(ApiError::new(
                    ErrorCode::LinkConflict,
                    format!(
                        "link {name:?} follows {} for types {:?}; a link's source and types cannot change: delete it and create it again",
                        stored.source, stored.types
                    ),
                ));
            }
            stored.created_at_ms
        }
        None => {
            if links.store.links(None, LINKS_MAX).await?.len() >= LINKS_MAX {
                return Err(ApiError::new(
                    ErrorCode::TooManyLinks,
                    format!("this deployment keeps at most {LINKS_MAX} links"),
                ));
            }
            now_ms()
        }
    };
    refuse_link_to_self(links, url, &definition).await?;
    let stored = StoredDefinition {
        source: definition.source,
        types: definition.types,
        token: definition.token,
        created_at_ms,
    };
    let json = serde_json::to_string(&stored)
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    let (put, record) = links
        .store
        .put_link(&name, &json, &Links::new_incarnation())
        .await?;
    links.wake();
    let status = if put == LinkPut::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json_answer(&view(links, &record)?)).into_response())
}

/// Asks the source who it is, briefly: a source that answers with this
/// deployment's identity is this deployment. A source that cannot be
/// reached or refuses is not a bad definition — the link is made, shows
/// `failing` with the reason, and retries.
async fn refuse_link_to_self(
    links: &Links,
    url: cairn_replication::Url,
    definition: &LinkDefinition,
) -> Result<(), ApiError> {
    let Ok(source) = HttpSource::new(url, definition.token.clone(), &links.extra_roots) else {
        return Ok(());
    };
    let probe = source.page(0, &definition.types, 1, 0);
    if let Ok(Ok(page)) = tokio::time::timeout(LINK_PROBE_TIMEOUT, probe).await {
        if page.store == links.deployment {
            return Err(ApiError::new(
                ErrorCode::LinkToSelf,
                format!(
                    "{} answers with this deployment's own identity ({}): a link to itself",
                    definition.source, links.deployment
                ),
            ));
        }
    }
    Ok(())
}

/// `GET /v1/links/{name}`.
pub async fn get_link<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let record = existing(&state.links, &name).await?;
    Ok(json_answer(&view(&state.links, &record)?))
}

/// `GET /v1/links`: every link, by name.
pub async fn list_links<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let records = state.links.store.links(None, LINKS_MAX).await?;
    let links = records
        .iter()
        .map(|record| view(&state.links, record))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json_answer(&LinkList { links }))
}

/// `DELETE /v1/links/{name}`: the link stops; the facts it received stay.
pub async fn delete_link<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    validate_link_name(&name).map_err(invalid)?;
    if !state.links.store.delete_link(&name).await? {
        return Err(unknown(&name));
    }
    state.links.wake();
    Ok(json_answer(&Deleted { deleted: true }))
}

/// `POST /v1/links/{name}/pause`.
pub async fn pause_link<S: Store>(
    state: State<AppState<S>>,
    name: ApiPath<String>,
    raw_query: RawQuery,
) -> Result<Response, ApiError> {
    set_paused(state, name, raw_query, true).await
}

/// `POST /v1/links/{name}/resume`.
pub async fn resume_link<S: Store>(
    state: State<AppState<S>>,
    name: ApiPath<String>,
    raw_query: RawQuery,
) -> Result<Response, ApiError> {
    set_paused(state, name, raw_query, false).await
}

async fn set_paused<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    paused: bool,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    validate_link_name(&name).map_err(invalid)?;
    let record = state
        .links
        .store
        .set_link_paused(&name, paused)
        .await?
        .ok_or_else(|| unknown(&name))?;
    state.links.wake();
    Ok(json_answer(&view(&state.links, &record)?))
}

/// `POST /v1/links/{name}/repair`: compares the source's digests with
/// this deployment's for the link's types and fetches what is missing
/// (see `crate::links::repair`).
pub async fn repair_link<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let record = existing(&state.links, &name).await?;
    let repaired = repair(
        Arc::clone(&state.store),
        &state.links,
        Arc::clone(&state.digests),
        &record,
    )
    .await
    .map_err(|error| match error {
        RepairError::Source(message) => ApiError::new(ErrorCode::SourceUnavailable, message),
        RepairError::ToSelf(_) => ApiError::new(ErrorCode::LinkToSelf, error.to_string()),
        RepairError::Local(message) => ApiError::new(ErrorCode::StoreUnavailable, message),
    })?;
    tracing::info!(
        link = %name,
        missing = repaired.missing,
        stored = repaired.stored,
        "replication link repaired"
    );
    Ok(json_answer(&repaired))
}
