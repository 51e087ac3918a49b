//! `GET /v1/digests`: digests over the hash space, for anti-entropy
//! between deployments (`cairn diff`; "Anti-entropy" in `docs/api-v1.md`).
//! Answered by the store's `DigestStore`; only facts of the types asked
//! for that the caller may read are counted, so a caller learns nothing
//! of the facts it may not read.

use std::sync::Arc;

use axum::extract::{Extension, RawQuery, State};
use axum::response::Response;
use cairn_api::access::any_matches;
use cairn_api::limits::{DIGEST_HASHES_MAX, DIGEST_TYPES_MAX};
use cairn_api::{DigestBucket, DigestsAnswer, ErrorCode, Pattern};
use cairn_store::digests::{DigestQuery, HashPrefix, HashPrefixError, TypeFilter};
use cairn_store::{DigestStore, ReadError, Store};

use super::facts::json_answer;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// `GET /v1/digests?prefix=…&types=…`.
pub async fn get_digests<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw_query.as_deref(), &["prefix", "types"])?;
    let prefix_text = params.single("prefix")?.unwrap_or("");
    let prefix = HashPrefix::parse(prefix_text).map_err(|error| {
        let code = match error {
            HashPrefixError::TooLong(_) => ErrorCode::ParameterOutOfRange,
            HashPrefixError::NotHex => ErrorCode::InvalidParameter,
        };
        ApiError::new(code, format!("query parameter \"prefix\": {error}"))
    })?;
    let type_texts = params.all("types");
    if type_texts.len() > DIGEST_TYPES_MAX {
        return Err(ApiError::new(
            ErrorCode::ParameterOutOfRange,
            format!("at most {DIGEST_TYPES_MAX} \"types\" parameters"),
        ));
    }
    let patterns = type_texts
        .iter()
        .map(|text| {
            Pattern::parse(text).map_err(|error| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("query parameter \"types\": {error}"),
                )
            })
        })
        .collect::<Result<Vec<Pattern>, ApiError>>()?;
    let reader = caller.clone();
    let types: TypeFilter = Arc::new(move |type_name: &str| {
        (patterns.is_empty() || any_matches(&patterns, type_name)) && reader.may_read(type_name)
    });
    let answer = digests_answer(
        state.digests.as_ref(),
        state.coordination.deployment(),
        prefix,
        types,
    )
    .await?;
    Ok(json_answer(&answer))
}

/// The digests of `deployment` under `prefix` of the facts `types`
/// accepts, as `GET /v1/digests` answers them (also what a link's repair
/// compares with its source).
pub(crate) async fn digests_answer(
    digests: &dyn DigestStore,
    deployment: &str,
    prefix: HashPrefix,
    types: TypeFilter,
) -> Result<DigestsAnswer, ReadError> {
    let query = DigestQuery {
        prefix,
        types,
        hashes_max: DIGEST_HASHES_MAX,
    };
    let answer = digests.digests(&query).await?;
    let buckets = answer
        .buckets
        .iter()
        .enumerate()
        .map(|(nibble, digest)| DigestBucket {
            prefix: format!("{}{nibble:x}", query.prefix),
            count: digest.count,
            digest: digest.xor_hex(),
        })
        .collect();
    Ok(DigestsAnswer {
        store: deployment.to_string(),
        prefix: query.prefix.to_string(),
        count: answer.total.count,
        digest: answer.total.xor_hex(),
        buckets,
        hashes: answer.hashes,
    })
}
