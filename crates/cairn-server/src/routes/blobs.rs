//! `PUT /v1/blobs` and `GET`/`HEAD /v1/blobs/{hash}`: streamed both ways,
//! never the whole body in memory, to whichever backend the `BlobStore`
//! has (files or PostgreSQL).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use cairn_fact::Hash;
use cairn_store::Store;
use futures_util::StreamExt;

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
    let bytes_max = state.blobs.bytes_max();
    if super::declared_content_length(&headers).is_some_and(|length| length > bytes_max) {
        return Err(cairn_store::BlobError::TooLarge { bytes_max }.into());
    }
    let mut writer = state.blobs.writer().await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::bad_request(
                "incomplete_body",
                format!("the upload was interrupted: {error}"),
            )
        })?;
        writer.write(&chunk).await?;
    }
    let (hash, size) = writer.finish().await?;
    Ok(axum::Json(serde_json::json!({ "hash": hash.to_hex(), "size": size })).into_response())
}

/// `GET` and `HEAD /v1/blobs/{hash}`.
pub async fn get_blob<S: Store>(
    State(state): State<AppState<S>>,
    method: Method,
    Path(hash_text): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    let hash = Hash::from_hex(&hash_text)
        .map_err(|error| ApiError::bad_request("invalid_hash", error.to_string()))?;
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
