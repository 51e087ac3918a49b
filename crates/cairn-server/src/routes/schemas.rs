//! `/v1/schemas/...`: schemas per fact type and version (see "Schemas and
//! upcasting" in `docs/api-v1.md` and `crate::schemas`). Registering needs
//! `admin` (a schema decides what every writer of the type may write);
//! reading a type's schemas needs permission to read the type.

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::limits::SCHEMA_BODY_BYTES_MAX;
use cairn_api::schemas::parse_version;
use cairn_api::{ErrorCode, SchemaRegistration, SchemaTypes};
use cairn_store::Store;

use super::facts::{json_answer, read_definition_body};
use super::ApiPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSchema, message)
}

/// The type and version of a path, checked.
fn type_and_version(type_name: &str, version: &str) -> Result<u32, ApiError> {
    cairn_fact::validate_type_name(type_name)?;
    parse_version(version).map_err(|message| ApiError::new(ErrorCode::InvalidParameter, message))
}

fn unknown(type_name: &str, version: Option<u32>) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownSchema,
        match version {
            Some(version) => format!("{type_name} has no schema version {version}"),
            None => format!("{type_name} has no schema"),
        },
    )
}

/// `PUT /v1/schemas/{type}/{version}`: registers a version (201), or
/// answers the same registration again (200).
pub async fn put_schema<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath((type_name, version)): ApiPath<(String, String)>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let version = type_and_version(&type_name, &version)?;
    if cairn_api::facts::is_reserved_type(&type_name) {
        return Err(ApiError::new(
            ErrorCode::ReservedType,
            format!("{type_name} is one of Cairn's own types; its shape is Cairn's"),
        ));
    }
    let bytes = read_definition_body(
        &headers,
        body,
        SCHEMA_BODY_BYTES_MAX,
        "a schema registration",
    )
    .await?;
    let registration: SchemaRegistration = cairn_api::parse_body(&bytes).map_err(invalid)?;
    let view = state
        .schemas
        .register(
            state.store.as_ref(),
            &type_name,
            version,
            registration,
            state.config.fact_canonical_bytes_max,
        )
        .await?;
    let status = if view.registered == Some(true) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json_answer(&view)).into_response())
}

/// `GET /v1/schemas/{type}/{version}`.
pub async fn get_schema<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath((type_name, version)): ApiPath<(String, String)>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let version = type_and_version(&type_name, &version)?;
    caller.require_read(&type_name)?;
    let view = state
        .schemas
        .get(&type_name, version)
        .ok_or_else(|| unknown(&type_name, Some(version)))?;
    Ok(json_answer(&view))
}

/// `GET /v1/schemas/{type}`.
pub async fn list_versions<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(type_name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    cairn_fact::validate_type_name(&type_name)?;
    caller.require_read(&type_name)?;
    let list = state
        .schemas
        .list(&type_name)
        .ok_or_else(|| unknown(&type_name, None))?;
    Ok(json_answer(&list))
}

/// `GET /v1/schemas`: every type with a schema the caller may read.
pub async fn list_types<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let types = state
        .schemas
        .list_all(|type_name| caller.may_read(type_name));
    Ok(json_answer(&SchemaTypes { types }))
}
