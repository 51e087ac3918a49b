//! The headers of a deprecated route (`cairn_api::versioning`): every
//! answer of a route in the deprecation table carries `Deprecation` (RFC
//! 9745), `Sunset` (RFC 8594) and a `Link` to its replacement, so that a
//! client learns of it from any answer, while the route is served as
//! before until its sunset.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// Middleware of every route: adds the headers to a deprecated route's
/// answers.
pub async fn deprecation_headers(request: Request, next: Next) -> Response {
    let deprecated = request.extensions().get::<MatchedPath>().and_then(|route| {
        cairn_api::versioning::deprecation_of(request.method().as_str(), route.as_str())
    });
    let mut response = next.run(request).await;
    if let Some(deprecated) = deprecated {
        let headers = response.headers_mut();
        for (name, value) in [
            ("deprecation", deprecated.deprecation_header()),
            ("sunset", deprecated.sunset_http_date.to_string()),
            ("link", deprecated.link_header()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
    }
    response
}
