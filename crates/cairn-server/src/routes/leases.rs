//! `/v1/leases/{name}/…`: leases with fencing tokens (see "Leases" in
//! `docs/api-v1.md`). The store decides; each grant and release is also a
//! fact (`Cairn.LeaseGranted`, `Cairn.LeaseReleased`), a renewal is not.
//! Expiry is judged by this server's clock on the embedded store and by
//! the database's clock on PostgreSQL.
//!
//! With `--auth`, acquire, renew and release need `write` on
//! `Cairn.LeaseGranted`, and reading a lease needs `read` on it.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use cairn_api::{ErrorCode, LeaseAcquireRequest, LeaseGrant, LeaseGrantRequest, RequestBody};
use cairn_store::{LeaseOutcome, LeaseRecord, LeaseRequest, Store};
use serde_json::json;

use super::facts::{json_answer, read_json_body, ContentType};
use super::subscriptions::parse_body;
use super::ApiPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// The type whose permissions govern leases.
const GRANTED_TYPE: &str = "Cairn.LeaseGranted";

/// RFC 3339 in UTC with milliseconds.
fn rfc3339(time_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(time_ms)).to_string()
}

fn grant(record: LeaseRecord) -> LeaseGrant {
    LeaseGrant {
        expires_at: rfc3339(record.expires_at_ms),
        name: record.name,
        holder: record.holder,
        fence: record.fence,
        expires_at_ms: record.expires_at_ms,
        ttl_ms: record.ttl_ms,
        released: record.released,
        granted: record.granted,
    }
}

/// The checks every POST on a lease shares, and its body.
async fn lease_body<B: RequestBody>(
    caller: &Caller,
    name: &str,
    raw_query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<B, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    caller.require_write(GRANTED_TYPE)?;
    cairn_api::coordination::check_lease_name(name).map_err(ApiError::invalid_request)?;
    parse_body(&read_json_body(headers, body, ContentType::Optional).await?)
}

/// Runs a lease operation and shapes its answer.
async fn decide<S: Store>(
    state: &AppState<S>,
    request: LeaseRequest,
) -> Result<Response, ApiError> {
    let name = request.name().to_string();
    let now_ms = state.clock.now_ms();
    match state.coordination.update_lease(request, now_ms).await? {
        LeaseOutcome::Granted(record) => Ok(json_answer(&grant(record))),
        LeaseOutcome::Held(record) => Err(ApiError::new(
            ErrorCode::LeaseHeld,
            format!(
                "lease {name:?} is held by {:?} until {}",
                record.holder,
                rfc3339(record.expires_at_ms)
            ),
        )
        .with_detail("holder", json!(record.holder))
        .with_detail("expires_at", json!(rfc3339(record.expires_at_ms)))
        .with_detail("expires_at_ms", json!(record.expires_at_ms))),
        LeaseOutcome::Stale(record) => {
            let current = record.filter(|r| !r.released).map(|r| r.fence);
            Err(ApiError::new(
                ErrorCode::StaleFence,
                match current {
                    Some(current) => format!(
                        "that grant of lease {name:?} is not current: fence {current} is; \
                         nothing changed"
                    ),
                    None => {
                        format!("lease {name:?} has no current grant; nothing changed")
                    }
                },
            )
            .with_detail("name", json!(name))
            .with_detail("current", json!(current)))
        }
    }
}

/// `POST /v1/leases/{name}/acquire`.
pub async fn acquire<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: LeaseAcquireRequest =
        lease_body(&caller, &name, raw_query, &headers, body).await?;
    let request = LeaseRequest::Acquire {
        name,
        holder: request.holder,
        ttl_ms: request.ttl_ms,
    };
    decide(&state, request).await
}

/// `POST /v1/leases/{name}/renew`.
pub async fn renew<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: LeaseGrantRequest = lease_body(&caller, &name, raw_query, &headers, body).await?;
    let request = LeaseRequest::Renew {
        name,
        holder: request.holder,
        fence: request.fence,
        ttl_ms: request.ttl_ms,
    };
    decide(&state, request).await
}

/// `POST /v1/leases/{name}/release`.
pub async fn release<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: LeaseGrantRequest = lease_body(&caller, &name, raw_query, &headers, body).await?;
    if request.ttl_ms.is_some() {
        return Err(ApiError::invalid_request(
            "a release takes holder and fence only",
        ));
    }
    let request = LeaseRequest::Release {
        name,
        holder: request.holder,
        fence: request.fence,
    };
    decide(&state, request).await
}

/// `GET /v1/leases/{name}`: the lease's last grant, or 404.
pub async fn get_lease<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    caller.require_read(GRANTED_TYPE)?;
    cairn_api::coordination::check_lease_name(&name).map_err(ApiError::invalid_request)?;
    match state.coordination.lease_record(&name).await? {
        Some(record) => Ok(json_answer(&grant(record))),
        None => Err(ApiError::not_found(format!(
            "lease {name:?} was never granted"
        ))),
    }
}
