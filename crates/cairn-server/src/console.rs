//! The web console at `/ui`: static assets compiled into the binary.
//!
//! The console is a single-page application (its source is in `console/`
//! at the root of the repository; its built files are committed under
//! `crates/cairn-server/console/`, so building the server never needs
//! Node.js). Every path under `/ui/` that is not an asset answers the page
//! itself, so that each page of the console has a URL a person can share
//! (`/ui/facts/{hash}`), and the page reads everything it shows from API
//! v1 with the token the person signs in with — these routes are open and
//! carry no data.
//!
//! For work on the console itself, `CAIRN_CONSOLE_DIR=crates/cairn-server/console`
//! makes the server read these same files from that directory at every
//! request instead (only the names listed here, so nothing else there is
//! served), so a rebuilt page shows without rebuilding the server.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles,
//! images and connections from this origin only, no inline script or
//! style, no frames. The page may hold an admin's token, so nothing from
//! another origin may ever run in it.

use std::borrow::Cow;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The policy sent with every answer of the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One built file of the console.
struct Asset {
    /// The path below the console's directory.
    path: &'static str,
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The page every console URL answers.
const INDEX: Asset = Asset {
    path: "index.html",
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../console/index.html"),
};

/// The files under `/ui/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        path: "assets/app.js",
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/assets/app.js"),
    },
    Asset {
        path: "assets/app.css",
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../console/assets/app.css"),
    },
    Asset {
        path: "assets/icon.svg",
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../console/assets/icon.svg"),
    },
];

/// The routes of the console, to be merged into the server's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/{*path}", get(page))
}

async fn page(headers: HeaderMap) -> Response {
    answer(&INDEX, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => answer(asset, &headers),
        None => with_policy(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no such asset\n",
            )
                .into_response(),
        ),
    }
}

/// The asset, or `304 Not Modified` when the browser holds this version:
/// the entity tag is the BLAKE3 hash of the bytes, so a new build is
/// fetched at once and an unchanged one is never sent twice.
fn answer(asset: &Asset, headers: &HeaderMap) -> Response {
    let bytes = match std::env::var_os("CAIRN_CONSOLE_DIR") {
        Some(directory) => match std::fs::read(std::path::Path::new(&directory).join(asset.path)) {
            Ok(bytes) => Cow::Owned(bytes),
            Err(error) => {
                tracing::warn!(%error, path = asset.path, "CAIRN_CONSOLE_DIR: cannot read");
                return with_policy(StatusCode::NOT_FOUND.into_response());
            }
        },
        None => Cow::Borrowed(asset.bytes),
    };
    let entity_tag = format!("\"{}\"", &blake3::hash(&bytes).to_hex()[..32]);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == entity_tag));
    let response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, asset.content_type)],
            bytes.into_owned(),
        )
            .into_response()
    };
    let mut response = with_policy(response);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&entity_tag) {
        headers.insert(header::ETAG, value);
    }
    response
}

fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_that_are_served() {
        let page = std::str::from_utf8(INDEX.bytes).unwrap();
        for reference in page.split("/ui/assets/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|asset| asset.name == name),
                "index.html refers to {name}, which is not served"
            );
        }
        assert!(!page.contains("<script>"), "no inline script");
        assert!(!page.contains("<style"), "no inline style");
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
