//! `ResilientClient`: the `tower` stack (retry → circuit breaker → attempt
//! timeout → `reqwest`) behind a small request-builder API, giving each
//! logical call one `Idempotency-Key` that all its retries share.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Serialize;
use tower::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::TpsBudget;
use tower::retry::Retry;
use tower::util::rng::HasherRng;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::breaker_state::CircuitState;
use crate::call::{CallRequest, CallResponse};
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::error::CallError;
use crate::idempotency_key::{is_valid_idempotency_key, IDEMPOTENCY_KEY_HEADER};
use crate::options::{BuildError, ResilientOptions};
use crate::retry_policy::RetryPolicy;
use crate::transport::HttpTransport;

/// An HTTP client for service-to-service calls; clones share the connection
/// pool, the retry budget and the circuit breaker.
#[derive(Clone, Debug)]
pub struct ResilientClient {
    /// Circuit breaker → attempt timeout → transport; the retry layer is added per call.
    attempt_service: BoxCloneSyncService<CallRequest, CallResponse, CallError>,
    breaker: CircuitBreakerLayer,
    budget: Arc<TpsBudget>,
    options: Arc<ResilientOptions>,
}

impl ResilientClient {
    /// Builds a client after checking every option.
    pub fn new(options: ResilientOptions) -> Result<Self, BuildError> {
        options.validate()?;
        let breaker = CircuitBreakerLayer::new(options.circuit_breaker.clone())?;
        let http = reqwest::Client::builder()
            .connect_timeout(options.attempt_timeout)
            .build()
            .map_err(BuildError::HttpClient)?;
        let attempt_service = ServiceBuilder::new()
            .layer(breaker.clone())
            .map_err(CallError::from_layer)
            .timeout(options.attempt_timeout)
            .service(HttpTransport::new(http));
        let budget = Arc::new(TpsBudget::new(
            options.retry_budget.ttl,
            options.retry_budget.retries_min_per_second,
            options.retry_budget.retry_ratio,
        ));
        let client = ResilientClient {
            attempt_service: BoxCloneSyncService::new(attempt_service),
            breaker,
            budget,
            options: Arc::new(options),
        };
        client
            .fresh_backoff()
            .map_err(|_| BuildError::InvalidOption {
                reason: "backoff options rejected",
            })?;
        Ok(client)
    }

    /// Starts a GET request.
    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a POST request with `body` as JSON.
    pub fn post_json<T: Serialize + ?Sized>(&self, url: &str, body: &T) -> RequestBuilder {
        self.request(Method::POST, url).json(body)
    }

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            url: url.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            idempotency_key: KeyChoice::Generated,
            build_error: None,
        }
    }

    /// The circuit breaker's state now.
    pub fn circuit_state(&self) -> CircuitState {
        self.breaker.state()
    }

    /// A backoff with its own random source (each `RandomState` is keyed
    /// differently), so that concurrent calls jitter apart instead of
    /// replaying one shared sequence.
    fn fresh_backoff(&self) -> Result<ExponentialBackoff, CallError> {
        ExponentialBackoffMaker::new(
            self.options.backoff_initial,
            self.options.backoff_max,
            self.options.backoff_jitter_ratio,
            HasherRng::default(),
        )
        .map(|mut maker| maker.make_backoff())
        .map_err(|error| CallError::InvalidRequest {
            reason: format!("backoff options: {error}"),
        })
    }

    async fn execute(&self, request: CallRequest) -> Result<CallResponse, CallError> {
        let policy = RetryPolicy::new(
            self.options.attempts_max,
            Arc::clone(&self.budget),
            self.fresh_backoff()?,
            self.options.retry_after_max,
        );
        let call = Retry::new(policy, self.attempt_service.clone()).oneshot(request);
        tokio::time::timeout(self.options.call_timeout, call)
            .await
            .unwrap_or(Err(CallError::Timeout))
    }
}

/// Which `Idempotency-Key` a call sends.
enum KeyChoice {
    Generated,
    Given(String),
    Omitted,
}

/// One logical call being put together; [`RequestBuilder::send`] runs it.
pub struct RequestBuilder {
    client: ResilientClient,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    idempotency_key: KeyChoice,
    /// The first mistake made while building, reported by `send`.
    build_error: Option<CallError>,
}

impl RequestBuilder {
    /// Uses `key` as the `Idempotency-Key` instead of a random UUID v4.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = KeyChoice::Given(key.into());
        self
    }

    /// Sends no `Idempotency-Key`; a POST or PATCH is then never retried.
    pub fn without_idempotency_key(mut self) -> Self {
        self.idempotency_key = KeyChoice::Omitted;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.fail(format!("invalid header {name:?}")),
        }
        self
    }

    /// Sets `body` as the JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Bytes::from(bytes);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(error) => self.fail(format!("body is not JSON-serialisable: {error}")),
        }
        self
    }

    /// Sets raw bytes as the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Runs the call: attempts, retries and waits within the client's limits,
    /// and returns the first 2xx answer or the reason there was none.
    pub async fn send(self) -> Result<CallResponse, CallError> {
        if let Some(error) = self.build_error {
            return Err(error);
        }
        let url = Url::parse(&self.url).map_err(|error| CallError::InvalidRequest {
            reason: format!("invalid URL {:?}: {error}", self.url),
        })?;
        let mut headers = self.headers;
        let key = match self.idempotency_key {
            KeyChoice::Generated => Some(uuid::Uuid::new_v4().to_string()),
            KeyChoice::Given(key) => Some(key),
            KeyChoice::Omitted => None,
        };
        if let Some(key) = key {
            let value = HeaderValue::try_from(key)
                .ok()
                .filter(|value| is_valid_idempotency_key(value.as_bytes()))
                .ok_or_else(|| CallError::InvalidRequest {
                    reason: "idempotency key must be 1 to 255 visible ASCII characters".into(),
                })?;
            headers.insert(IDEMPOTENCY_KEY_HEADER, value);
        }
        let request = CallRequest {
            method: self.method,
            url,
            headers,
            body: self.body,
        };
        self.client.execute(request).await
    }

    fn fail(&mut self, reason: String) {
        self.build_error
            .get_or_insert(CallError::InvalidRequest { reason });
    }
}
