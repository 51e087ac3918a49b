//! `/v1/services` and `/v1/boundaries`: service declarations and the
//! boundaries check (see "Service boundaries" in `docs/api-v1.md` and
//! `crate::boundaries`). Every operation needs `admin`: a declaration
//! speaks for a service, and the map shows every identity's traffic.

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::facts::is_reserved_type;
use cairn_api::limits::{
    BOUNDARIES_UNSEEN_FOR_MS_DEFAULT, BOUNDARIES_UNSEEN_FOR_MS_MAX, SERVICES_MAX,
    SERVICE_BODY_BYTES_MAX,
};
use cairn_api::services::validate_service_name;
use cairn_api::{BoundariesAnswer, ErrorCode, ServiceDeclaration, ServiceList};
use cairn_store::Store;

use super::facts::{json_answer, read_definition_body};
use super::ApiPath;
use crate::auth::{unix_ms, Caller};
use crate::boundaries::check::{check, CheckInput};
use crate::boundaries::services::{current_services, service_fact, service_registry_anchor};
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidService, message)
}

/// `PUT /v1/services/{name}`: registers a declaration (201), replaces the
/// current one (200), or confirms an equal one (200, unchanged, keeping
/// its registration time). Refuses types this deployment does not know
/// (`422 unknown_type`) unless `allow_unknown_types=true`.
pub async fn put_service<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["allow_unknown_types"])?;
    let allow_unknown_types = params.boolean("allow_unknown_types")?;
    validate_service_name(&name).map_err(invalid)?;
    let bytes = read_definition_body(
        &headers,
        body,
        SERVICE_BODY_BYTES_MAX,
        "a service declaration",
    )
    .await?;
    let declaration: ServiceDeclaration = cairn_api::parse_body(&bytes).map_err(invalid)?;
    if declaration.name != name {
        return Err(invalid(format!(
            "the declaration names service {:?} but the path {name:?}",
            declaration.name
        )));
    }
    let current = current_services(&*state.store).await?;
    let existing = current
        .views
        .iter()
        .find(|view| view.declaration.name == name);
    if let Some(existing) = existing.filter(|view| view.declaration == declaration) {
        return Ok(json_answer(existing));
    }
    if existing.is_none() && current.views.len() >= SERVICES_MAX {
        return Err(ApiError::new(
            ErrorCode::TooManyServices,
            format!("this deployment keeps at most {SERVICES_MAX} service declarations"),
        ));
    }
    if !allow_unknown_types {
        state.flows.catch_up(&*state.store).await?;
        let mut known = state.flows.written_types();
        for view in current
            .views
            .iter()
            .filter(|view| view.declaration.name != name)
        {
            known.extend(
                view.declaration
                    .named_types()
                    .into_iter()
                    .map(str::to_string),
            );
        }
        // A type with a registered schema is known too.
        let unknown: Vec<&str> = declaration
            .named_types()
            .into_iter()
            .filter(|type_name| {
                !is_reserved_type(type_name)
                    && !known.contains(*type_name)
                    && state.schemas.list(type_name).is_none()
            })
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::new(
                ErrorCode::UnknownType,
                format!(
                    "service {name} names types this deployment has never seen written, nor another \
                     service declare, nor has a schema for: {}; check their spelling, or register with \
                     allow_unknown_types=true (--allow-unknown-types) for a first deployment; \
                     nothing changed",
                    unknown.join(", ")
                ),
            )
            .with_detail("types", serde_json::json!(unknown)));
        }
    }
    let replaces = current
        .facts_by_name
        .get(&name)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let fact = service_fact(&declaration, unix_ms(), replaces);
    let hash = fact.hash;
    let facts = vec![service_registry_anchor().clone(), fact];
    state.store.put_facts_by(facts, caller.author()).await?;
    let stored = state
        .store
        .get_fact(&hash)
        .await?
        .and_then(|fact| crate::boundaries::services::parse_service_fact(&fact))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Internal,
                "the declaration just stored cannot be read back",
            )
        })?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, json_answer(&stored)).into_response())
}

/// `GET /v1/services`: every current declaration, by name.
pub async fn list_services<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let services = current_services(&*state.store).await?.views;
    Ok(json_answer(&ServiceList { services }))
}

/// `GET /v1/services/{name}`: the current declaration of one service.
pub async fn get_service<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    validate_service_name(&name).map_err(invalid)?;
    let view = current_services(&*state.store)
        .await?
        .views
        .into_iter()
        .find(|view| view.declaration.name == name)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownService,
                format!("no service named {name:?} is declared"),
            )
        })?;
    Ok(json_answer(&view))
}

/// `GET /v1/boundaries`: the declarations, the observed flows, the map's
/// edges and every violation.
pub async fn get_boundaries<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["unseen_for_ms"])?;
    let unseen_for_ms = params.integer(
        "unseen_for_ms",
        BOUNDARIES_UNSEEN_FOR_MS_DEFAULT,
        1,
        BOUNDARIES_UNSEEN_FOR_MS_MAX,
    )?;
    state.flows.catch_up(&*state.store).await?;
    let services = current_services(&*state.store).await?.views;
    let (flows, observations_dropped) = state.flows.snapshot();
    let now_ms = unix_ms();
    let output = check(CheckInput {
        services: &services,
        flows,
        observing: state.flows.observing(),
        now_ms,
        unseen_for_ms,
    });
    Ok(json_answer(&BoundariesAnswer {
        services,
        flows: output.flows,
        edges: output.edges,
        violations: output.violations,
        observing: state.flows.observing(),
        observations_dropped,
        unseen_for_ms,
        now_ms,
    }))
}
