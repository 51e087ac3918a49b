//! `PUT /v1/blobs`, `PUT /v1/blobs/{hash}` and `GET`/`HEAD
//! /v1/blobs/{hash}`: streamed both ways, never the whole body in memory,
//! to whichever backend the `BlobStore` has (files or PostgreSQL).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use cairn_api::{BlobStored, ErrorCode};
use cairn_fact::Hash;
use cairn_store::Store;
use futures_util::StreamExt;

use super::facts::json_answer;
use super::ApiPath;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// `PUT /v1/blobs`: streams the body into the blob store while hashing it.
pub async fn put_blob<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    store_blob(&state, &headers, body, None).await
}

/// `PUT /v1/blobs/{hash}`: as `PUT /v1/blobs`, but the bytes are stored
/// only if they hash to `hash` (`422 blob_hash_mismatch` otherwise, and
/// nothing is stored), so an upload corrupted on its way is refused
/// instead of stored under another hash.
pub async fn put_blob_with_hash<S: Store>(
    State(state): State<AppState<S>>,
    ApiPath(hash_text): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let expected = parse_hash(&hash_text)?;
    store_blob(&state, &headers, body, Some(expected)).await
}

async fn store_blob<S: Store>(
    state: &AppState<S>,
    headers: &HeaderMap,
    body: Body,
    expected: Option<Hash>,
) -> Result<Response, ApiError> {
    let bytes_max = state.blobs.bytes_max();
    if super::declared_content_length(headers).is_some_and(|length| length > bytes_max) {
        return Err(cairn_store::BlobError::TooLarge { bytes_max }.into());
    }
    let mut writer = state.blobs.writer().await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::new(
                ErrorCode::IncompleteBody,
                format!("the upload was interrupted: {error}"),
            )
        })?;
        writer.write(&chunk).await?;
    }
    if let Some(expected) = expected {
        let actual = writer.hash();
        if actual != expected {
            // Dropping the writer discards the upload.
            return Err(ApiError::new(
                ErrorCode::BlobHashMismatch,
                format!("the bytes hash to {actual}, not {expected}; nothing was stored"),
            ));
        }
    }
    let (hash, size) = writer.finish().await?;
    Ok(json_answer(&BlobStored { hash, size }))
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|error| ApiError::new(ErrorCode::InvalidHash, error.to_string()))
}

/// `GET` and `HEAD /v1/blobs/{hash}`.
pub async fn get_blob<S: Store>(
    State(state): State<AppState<S>>,
    method: Method,
    ApiPath(hash_text): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = parse_hash(&hash_text)?;
    let (reader, size) = state
        .blobs
        .open_blob(&hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no blob with hash {hash}")))?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, size.to_string()),
        (header::ETAG, format!("\"{hash}\"")),
    ];
    if method == Method::HEAD {
        return Ok((headers, Body::empty()).into_response());
    }
    // The reader checks the bytes against the hash as they stream; on a
    // mismatch the body ends early with an error (the connection is cut
    // short of `Content-Length`), so a corrupt blob is never served whole.
    Ok((headers, Body::from_stream(reader)).into_response())
}
