//! [`ApiPath`]: axum's `Path` extractor with the API's JSON error body. A
//! path parameter that does not decode (percent-encoded bytes that are
//! not UTF-8, say) is answered `400 invalid_request` like any other bad
//! input, not with axum's plain-text rejection.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The path parameters of a route, decoded.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid_request(format!(
                "the path is not acceptable: {}",
                rejection.body_text()
            ))),
        }
    }
}
