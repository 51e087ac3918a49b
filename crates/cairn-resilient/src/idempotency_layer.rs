//! `IdempotencyLayer`: server-side `tower` layer (usable on axum routers)
//! that runs a handler once per `Idempotency-Key` and replays its answer to
//! repeated requests, so client retries cannot repeat a side effect.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tower::{Layer, Service, ServiceExt};

use crate::idempotency_key::{
    is_valid_idempotency_key, IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER,
};
use crate::idempotency_store::{
    BeginOutcome, IdempotencyStore, RequestFingerprint, StoreKey, StoredAnswer,
};
use crate::limits::{IDEMPOTENT_ANSWER_BYTES_MAX, IDEMPOTENT_REQUEST_BYTES_MAX};

/// Size limits of an [`IdempotencyLayer`].
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyOptions {
    /// Largest request body accepted with an `Idempotency-Key` (it is buffered
    /// to be fingerprinted); larger ones get 413.
    pub request_body_bytes_max: usize,
    /// Largest answer body stored; larger answers are sent but not stored.
    pub answer_body_bytes_max: usize,
}

impl Default for IdempotencyOptions {
    fn default() -> Self {
        IdempotencyOptions {
            request_body_bytes_max: IDEMPOTENT_REQUEST_BYTES_MAX,
            answer_body_bytes_max: IDEMPOTENT_ANSWER_BYTES_MAX,
        }
    }
}

/// Honours `Idempotency-Key` for the services it wraps, with answers kept in `Store`.
#[derive(Debug)]
pub struct IdempotencyLayer<Store> {
    store: Arc<Store>,
    options: IdempotencyOptions,
}

impl<Store> Clone for IdempotencyLayer<Store> {
    fn clone(&self) -> Self {
        IdempotencyLayer {
            store: Arc::clone(&self.store),
            options: self.options,
        }
    }
}

impl<Store: IdempotencyStore> IdempotencyLayer<Store> {
    /// A layer keeping answers in `store`, with default size limits.
    pub fn new(store: Arc<Store>) -> Self {
        IdempotencyLayer {
            store,
            options: IdempotencyOptions::default(),
        }
    }

    /// Replaces the size limits.
    pub fn with_options(mut self, options: IdempotencyOptions) -> Self {
        self.options = options;
        self
    }
}

impl<S, Store> Layer<S> for IdempotencyLayer<Store> {
    type Service = IdempotencyService<S, Store>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            store: Arc::clone(&self.store),
            options: self.options,
        }
    }
}

/// The service made by [`IdempotencyLayer`].
#[derive(Debug)]
pub struct IdempotencyService<S, Store> {
    inner: S,
    store: Arc<Store>,
    options: IdempotencyOptions,
}

impl<S: Clone, Store> Clone for IdempotencyService<S, Store> {
    fn clone(&self) -> Self {
        IdempotencyService {
            inner: self.inner.clone(),
            store: Arc::clone(&self.store),
            options: self.options,
        }
    }
}

impl<S, Store> Service<Request<Body>> for IdempotencyService<S, Store>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    Store: IdempotencyStore,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready serves this request; a clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let store = Arc::clone(&self.store);
        let options = self.options;
        Box::pin(async move { Ok(handle(inner, store, options, request).await) })
    }
}

async fn handle<S, Store>(
    inner: S,
    store: Arc<Store>,
    options: IdempotencyOptions,
    request: Request<Body>,
) -> Response
where
    S: Service<Request<Body>, Error = Infallible>,
    S::Response: IntoResponse,
    Store: IdempotencyStore,
{
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return run(inner, request).await;
    };
    if !is_valid_idempotency_key(key.as_bytes()) {
        return Refusal::InvalidKey.into_response();
    }
    let idempotency_key = String::from_utf8_lossy(key.as_bytes()).into_owned();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, options.request_body_bytes_max).await else {
        return Refusal::RequestTooLarge.into_response();
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("", |value| value.as_str());
    let fingerprint = RequestFingerprint::of(&parts.method, path_and_query, &body);
    let store_key = StoreKey {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        idempotency_key,
    };
    let refusal = match store.begin(&store_key, fingerprint).await {
        Ok(BeginOutcome::Started) => None,
        Ok(BeginOutcome::Completed(answer)) => return replay(answer),
        Ok(BeginOutcome::InProgress) => Some(Refusal::KeyInUse),
        Ok(BeginOutcome::FingerprintMismatch) => Some(Refusal::KeyReused),
        Err(_) => Some(Refusal::StoreUnavailable),
    };
    if let Some(refusal) = refusal {
        return refusal.into_response();
    }
    let claim = Claim {
        store: Some(store),
        key: store_key,
    };
    let request = Request::from_parts(parts, Body::from(body));
    run_and_store(inner, claim, options, request).await
}

/// Runs the handler for a claimed key and stores its answer if storable.
async fn run_and_store<S, Store>(
    inner: S,
    mut claim: Claim<Store>,
    options: IdempotencyOptions,
    request: Request<Body>,
) -> Response
where
    S: Service<Request<Body>, Error = Infallible>,
    S::Response: IntoResponse,
    Store: IdempotencyStore,
{
    let response = run(inner, request).await;
    let status = response.status();
    let fits = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|upper| upper <= options.answer_body_bytes_max as u64);
    // 5xx answers are not stored, so that a retry runs the handler again.
    if !(status.is_success() || status.is_client_error()) || !fits {
        claim.release().await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, options.answer_body_bytes_max).await else {
        claim.release().await;
        return Refusal::AnswerUnreadable.into_response();
    };
    let answer = StoredAnswer {
        status,
        headers: replayable_headers(&parts.headers),
        body: body.clone(),
    };
    claim.complete(answer).await;
    Response::from_parts(parts, Body::from(body))
}

async fn run<S>(inner: S, request: Request<Body>) -> Response
where
    S: Service<Request<Body>, Error = Infallible>,
    S::Response: IntoResponse,
{
    match inner.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// A key claimed by `begin` and not yet answered. If the request is dropped
/// (the client went away) before `complete`, the key is released so that the
/// client's retry can run the handler instead of getting 409 until expiry.
struct Claim<Store: IdempotencyStore> {
    store: Option<Arc<Store>>,
    key: StoreKey,
}

impl<Store: IdempotencyStore> Claim<Store> {
    /// Stores the answer; if the store fails, dropping the claim releases the key.
    async fn complete(mut self, answer: StoredAnswer) {
        if let Some(store) = &self.store {
            if store.complete(&self.key, answer).await.is_ok() {
                self.store = None;
            }
        }
    }

    async fn release(&mut self) {
        if let Some(store) = self.store.take() {
            // A failed release only delays the key until the store expires it.
            let _ = store.release(&self.key).await;
        }
    }
}

impl<Store: IdempotencyStore> Drop for Claim<Store> {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let key = self.key.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = store.release(&key).await;
            });
        }
    }
}

/// Headers worth replaying: all but those describing the original connection
/// and transfer, which the server sets anew for the replay.
fn replayable_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in [CONNECTION, TRANSFER_ENCODING, CONTENT_LENGTH, DATE] {
        kept.remove(name);
    }
    kept
}

fn replay(answer: StoredAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// Answers the layer gives itself, each with a stable code.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    InvalidKey,
    RequestTooLarge,
    StoreUnavailable,
    KeyReused,
    KeyInUse,
    AnswerUnreadable,
}

impl IntoResponse for Refusal {
    /// The API's error shape: `{"error": {"code", "message"}}`.
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Refusal::InvalidKey => (
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ),
            Refusal::RequestTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large (or broke off) for an idempotent request",
            ),
            Refusal::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "idempotency_store_unavailable",
                "the idempotency store failed; retry later",
            ),
            Refusal::KeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ),
            Refusal::KeyInUse => (
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed",
            ),
            Refusal::AnswerUnreadable => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "answer_unreadable",
                "the handler's answer body could not be read",
            ),
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}
