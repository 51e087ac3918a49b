//! HTTP handlers, one file per resource.

pub mod blobs;
pub mod claims;
pub mod deliveries;
pub mod digests;
pub mod facts;
pub mod leases;
pub mod links;
pub mod meta;
mod path;
pub mod schemas;
pub mod services;
pub mod stream;
pub mod subscriptions;
pub mod timers;
pub mod tokens;
mod wait;

pub use path::ApiPath;

/// The `Content-Length` a request declares, if any, so that an oversized
/// body is refused before it is read.
fn declared_content_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}
