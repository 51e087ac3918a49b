//! `/v1/tokens` and `/v1/audit`: identities, their access tokens and the
//! audit trail, for admins of a server that runs with `--auth` (see
//! "Access control" in `docs/api-v1.md`). A token is answered once, when
//! it is made; lists never hold a secret.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::{
    AuditEntry, AuditPage, IdentityList, IdentityView, Permissions, Revoked, TokenCreateRequest,
    TokenCreated, TokenRotateRequest, TokenView, Whoami,
};
use cairn_store::Store;

use super::facts::{json_answer, read_json_body, ContentType};
use super::ApiPath;
use crate::auth::identities::{create_identity, created_detail, expiry, identity_error, new_token};
use crate::auth::{unix_ms, Auth, Caller};
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// Seconds a rotated identity's earlier tokens keep working by default.
pub const ROTATION_OVERLAP_S_DEFAULT: u64 = 3_600;
/// Audit entries per page at most.
const AUDIT_LIMIT_MAX: u64 = 1_000;

fn auth_of<S>(state: &AppState<S>) -> Result<&Arc<Auth>, ApiError> {
    state.auth.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "access control is off on this server (start it with cairn serve --auth)",
        )
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|error| ApiError::invalid_request(error.to_string()))
}

fn caller_name(caller: &Caller) -> String {
    caller
        .name()
        .map_or_else(|| "-".to_string(), |name| name.to_string())
}

/// The start of the POSTs: no query parameters, access control on, and a
/// JSON body of shape `T` (empty counts as `{}`).
async fn auth_and_body<'s, S, T: serde::de::DeserializeOwned>(
    state: &'s AppState<S>,
    raw_query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(&'s Arc<Auth>, T), ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let auth = auth_of(state)?;
    let request = parse_json(&read_json_body(headers, body, ContentType::Optional).await?)?;
    Ok((auth, request))
}

/// `POST /v1/tokens`: creates an identity and answers its first token.
pub async fn create<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (auth, request): (_, TokenCreateRequest) =
        auth_and_body(&state, raw_query, &headers, body).await?;
    let answer = create_identity(auth.registry.store().as_ref(), &request).await?;
    auth.registry.reload().await?;
    auth.audit
        .action(
            &caller_name(&caller),
            "POST",
            "/v1/tokens",
            "created",
            201,
            created_detail(&request, &answer),
        )
        .await;
    Ok((StatusCode::CREATED, json_answer(&answer)).into_response())
}

/// `POST /v1/tokens/{name}/rotate`: a new token; the others keep working
/// for the overlap.
pub async fn rotate<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (auth, request): (_, TokenRotateRequest) =
        auth_and_body(&state, raw_query, &headers, body).await?;
    let now_ms = unix_ms();
    let overlap_s = request.overlap_s.unwrap_or(ROTATION_OVERLAP_S_DEFAULT);
    let others_expire_at_ms = overlap_s
        .checked_mul(1_000)
        .and_then(|ms| now_ms.checked_add(ms))
        .ok_or_else(|| ApiError::invalid_request("overlap_s is absurdly large"))?;
    let (made, record) = new_token(now_ms, expiry(now_ms, request.expires_in_s)?)?;
    auth.registry
        .store()
        .rotate_token(&name, record.clone(), others_expire_at_ms)
        .await
        .map_err(identity_error)?;
    auth.registry.reload().await?;
    auth.audit
        .action(
            &caller_name(&caller),
            "POST",
            &format!("/v1/tokens/{name}/rotate"),
            "rotated",
            200,
            format!(
                "identity {name} new token {} overlap {overlap_s} s",
                record.id
            ),
        )
        .await;
    Ok(json_answer(&TokenCreated {
        name,
        token_id: record.id,
        token: made.text,
        expires_at_ms: record.expires_at_ms,
    }))
}

/// `DELETE /v1/tokens/{name}`: revokes the identity and all its tokens.
pub async fn revoke<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let auth = auth_of(&state)?;
    auth.registry
        .store()
        .revoke_identity(&name)
        .await
        .map_err(identity_error)?;
    auth.registry.reload().await?;
    auth.audit
        .action(
            &caller_name(&caller),
            "DELETE",
            &format!("/v1/tokens/{name}"),
            "revoked",
            200,
            format!("identity {name}"),
        )
        .await;
    Ok(json_answer(&Revoked {
        name,
        revoked: true,
    }))
}

/// `GET /v1/tokens`: every identity, its permissions and token dates.
pub async fn list<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let auth = auth_of(&state)?;
    let now_ms = unix_ms();
    let mut identities = Vec::new();
    for record in auth.registry.store().identities().await? {
        let permissions: Permissions =
            serde_json::from_str(&record.permissions_json).unwrap_or_default();
        let tokens: Vec<TokenView> = record
            .tokens
            .iter()
            .filter(|token| token.expires_at_ms.is_none_or(|at| at > now_ms))
            .map(|token| TokenView {
                token_id: token.id.clone(),
                created_at_ms: token.created_at_ms,
                expires_at_ms: token.expires_at_ms,
                last_used_at_ms: token.last_used_at_ms,
            })
            .collect();
        identities.push(IdentityView {
            last_used_at_ms: record.tokens.iter().filter_map(|t| t.last_used_at_ms).max(),
            name: record.name,
            permissions,
            rate_per_s: record.rate_per_s,
            write_rate_per_s: record.write_rate_per_s,
            created_at_ms: record.created_at_ms,
            tokens,
        });
    }
    identities.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(json_answer(&IdentityList { identities }))
}

/// `GET /v1/whoami` (addition, issue 17): the caller's own identity and
/// permissions — never a token or a secret. Any valid token may ask; a
/// server without `--auth` answers that everything is allowed.
pub async fn whoami<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    Ok(json_answer(&Whoami {
        auth: state.auth.is_some(),
        identity: caller.name().map(|name| name.to_string()),
        permissions: caller.granted(),
    }))
}

/// `GET /v1/audit?after=&limit=`: the audit trail, oldest first.
pub async fn audit<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["after", "limit"])?;
    let after = params.integer("after", 0, 0, u64::MAX)?;
    let limit = params.integer("limit", 100, 1, AUDIT_LIMIT_MAX)? as usize;
    let auth = auth_of(&state)?;
    // Refusals aggregated so far are written first, so the trail is current.
    auth.audit.flush().await;
    let records = auth.registry.store().audit(after, limit).await?;
    let next = records.last().map_or(after, |record| record.seq);
    let entries = records
        .into_iter()
        .map(|record| AuditEntry {
            seq: record.seq,
            at_ms: record.at_ms,
            identity: record.identity,
            method: record.method,
            route: record.route,
            outcome: record.outcome,
            status: record.status,
            count: record.count,
            detail: record.detail,
        })
        .collect();
    Ok(json_answer(&AuditPage { entries, next }))
}
