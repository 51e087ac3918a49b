//! `/v1/claims`: first writer wins on a key (see "Claims" in
//! `docs/api-v1.md`). The store decides, linearizably within the
//! deployment, and writes each decision as a fact (`Cairn.Claimed`,
//! `Cairn.ClaimReleased`).
//!
//! With `--auth`, claiming and releasing need `write` on `Cairn.Claimed`
//! and reading a claim needs `read` on it; the claimed fact must be one
//! the caller may read (one it may not is answered as missing, like an
//! absent one, so a claim reveals nothing).
//!
//! The claimed fact is looked up before the store decides, except for a
//! caller that may read every fact (no `--auth`, or an admin): the store
//! refuses a winning claim of an absent fact itself, so the look-up is
//! needed only when the claim does not win, and is made after it — the
//! same answers, without a read on the path of every winning claim.

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use cairn_api::{ClaimAnswer, ClaimReleased, ClaimRequest, ErrorCode};
use cairn_fact::{canonical_type, Hash};
use cairn_store::{ClaimRecord, ClaimReleaseOutcome, Store, WriteError};

use super::facts::{json_answer, read_json_body, ContentType};
use super::subscriptions::parse_body;
use super::ApiPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// The type whose permissions govern claims.
const CLAIMED_TYPE: &str = "Cairn.Claimed";

/// The body of a POST on claims, after the checks every one shares.
async fn claim_request(
    caller: &Caller,
    raw_query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<ClaimRequest, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    caller.require_write(CLAIMED_TYPE)?;
    parse_body(&read_json_body(headers, body, ContentType::Optional).await?)
}

/// Refuses a claimed fact that is absent or that the caller may not read,
/// answered alike (as missing, as the store answers an absent one).
async fn check_claimed_fact<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    fact: &Hash,
) -> Result<(), ApiError> {
    let readable = match state.store.get_fact(fact).await? {
        None => false,
        Some(stored) => canonical_type(&stored.canonical).is_some_and(|t| caller.may_read(t)),
    };
    if readable {
        Ok(())
    } else {
        Err(WriteError::MissingPredecessors {
            missing: vec![*fact],
        }
        .into())
    }
}

fn answer(record: &ClaimRecord, won: Option<bool>) -> Result<ClaimAnswer, ApiError> {
    let holder = record
        .holder
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "a claim answer without a holder"))?;
    Ok(ClaimAnswer {
        key: record.key.clone(),
        fact: holder.fact,
        won,
        seq: holder.claimed_seq,
        generation: record.generation,
        claimed: holder.claimed,
    })
}

/// `POST /v1/claims`: claims a key for a stored fact; the first claim wins.
pub async fn claim<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = claim_request(&caller, raw_query, &headers, body).await?;
    // An admin (or anyone, without `--auth`) may read every fact, so only
    // its absence matters, which a winning claim finds out in the store.
    let may_read_every_fact = caller.is_admin();
    if !may_read_every_fact {
        check_claimed_fact(&state, &caller, &request.fact).await?;
    }
    let outcome = state.coordination.claim(&request.key, request.fact).await?;
    if may_read_every_fact && !outcome.won {
        // A claim that does not win was not checked by the store.
        check_claimed_fact(&state, &caller, &request.fact).await?;
    }
    Ok(json_answer(&answer(&outcome.record, Some(outcome.won))?))
}

/// `GET /v1/claims/{key}`: the key's winner, or 404.
pub async fn get_claim<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(key): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    caller.require_read(CLAIMED_TYPE)?;
    cairn_api::coordination::check_claim_key(&key).map_err(ApiError::invalid_request)?;
    match state.coordination.claim_record(&key).await? {
        Some(record) if record.holder.is_some() => Ok(json_answer(&answer(&record, None)?)),
        _ => Err(ApiError::not_found(format!(
            "nobody holds the claim {key:?}"
        ))),
    }
}

/// `POST /v1/claims/release`: frees a key, only for the fact that holds it.
pub async fn release<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = claim_request(&caller, raw_query, &headers, body).await?;
    check_claimed_fact(&state, &caller, &request.fact).await?;
    match state
        .coordination
        .release_claim(&request.key, request.fact)
        .await?
    {
        ClaimReleaseOutcome::Released(record) => {
            let release = record.released.ok_or_else(|| {
                ApiError::new(ErrorCode::Internal, "a release answer without a release")
            })?;
            Ok(json_answer(&ClaimReleased {
                key: record.key,
                fact: release.fact,
                released: release.released,
                seq: release.released_seq,
            }))
        }
        ClaimReleaseOutcome::NotHolder(holder) => {
            let holder_hash: Option<Hash> = holder.map(|holder| holder.fact);
            Err(ApiError::new(
                ErrorCode::NotClaimHolder,
                match holder_hash {
                    Some(holder) => format!(
                        "fact {} does not hold the claim {:?}: fact {holder} does; nothing changed",
                        request.fact, request.key
                    ),
                    None => format!("nobody holds the claim {:?}; nothing changed", request.key),
                },
            )
            .with_detail(
                "holder",
                serde_json::json!(holder_hash.map(|hash| hash.to_hex())),
            ))
        }
    }
}
