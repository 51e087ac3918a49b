//! `/v1/health`, `/versions`, `/metrics`, and the JSON fallbacks for
//! unknown routes and methods.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cairn_api::ErrorCode;
use cairn_api::{Health, Versions};
use cairn_store::Store;

use super::facts::json_answer;

use crate::error::ApiError;
use crate::state::AppState;

/// The server's version, reported by `/v1/health` and `/versions`.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /v1/health`: 200 while the store accepts writes (with `warnings`
/// about what it serves despite, such as commits acknowledged without a
/// synchronous standby); 503 once it is poisoned, or while its database
/// cannot be reached (it recovers by itself when the database returns).
pub async fn health<S: Store>(State(state): State<AppState<S>>) -> Response {
    if state.store.stats().poisoned {
        let error = ApiError::new(
            ErrorCode::StorePoisoned,
            "the store refuses writes after a storage failure; restart the server",
        );
        return error.into_response();
    }
    if let Err(error) = state.store.ping().await {
        return ApiError::new(ErrorCode::StoreUnavailable, error.to_string()).into_response();
    }
    let warnings = state
        .store
        .stats()
        .database
        .and_then(|database| database.replication)
        .and_then(|replication| replication.warning)
        .into_iter()
        .collect();
    json_answer(&Health {
        status: "ok".to_string(),
        version: SERVER_VERSION.to_string(),
        warnings,
    })
}

/// `GET /versions`.
pub async fn versions() -> Response {
    json_answer(&Versions {
        api: vec!["v1".to_string()],
        server: SERVER_VERSION.to_string(),
        versions: cairn_api::versioning::api_versions(),
    })
}

/// `GET /v1/openapi.json`: the OpenAPI document of API v1, generated from
/// the protocol's types (`cairn_api::openapi`).
pub async fn openapi_document() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(cairn_api::openapi::document_json);
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str(),
    )
        .into_response()
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics<S: Store>(State(state): State<AppState<S>>) -> Response {
    let mut views = Vec::new();
    match state.deliveries.list().await {
        Ok(subscriptions) => {
            for subscription in subscriptions {
                match subscription.view().await {
                    Ok(view) => views.push(view),
                    Err(error) => tracing::warn!(%error, "subscription left out of the metrics"),
                }
            }
        }
        Err(error) => tracing::warn!(%error, "subscriptions left out of the metrics"),
    }
    let text = state.metrics.render(&state.store.stats(), &views);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Any path that is not a route.
pub async fn unknown_route() -> ApiError {
    ApiError::not_found("no such endpoint; see /versions and the API documentation")
}

/// A known path with a method it does not support.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not support that method",
    )
}
