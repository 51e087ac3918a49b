//! [`RemoteTransport`]: API v1 over HTTP with failover between equivalent
//! endpoints — or, with the `embedded` feature, to a server embedded in this
//! process, whose router answers the same requests without a socket.
//!
//! Retrying is safe because every call of the API is idempotent or
//! harmless to repeat: `POST /v1/facts` stores a fact once however often it
//! is sent, `PUT` of a subscription puts the same definition again (a
//! repeat after an update finds it done: `"updated": false`), and a
//! repeated ack, nack or extend only reports the token as `expired`.
//! Connection failures, timeouts and 502/503/504 move the call to the next
//! endpoint; 429 is retried too; every other error answer is returned at
//! once, with the server's code.

use cairn_api::{
    AuditPage, IdentityList, IdentityView, TokenCreateRequest, TokenCreated, TokenRotateRequest,
};
use cairn_api::{ClaimRequest, LeaseAcquireRequest, LeaseGrantRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backoff::Backoff;
use crate::error::{is_retryable_status, ClientError, Result};
use crate::error_text::error_text;
use crate::limits;
use crate::options::ClientOptions;
use crate::transport::Transport;
use crate::wire::{
    AckRequest, AppliedSubscription, ApplyOutcome, DeadLetter, DeadLetterPage, DeadLetterQuery,
    ExtendRequest, FactPage, GenerationPrecondition, LogQuery, Message, NackOptions, NackRequest,
    PullOptions, PutResult, RawMessage, ReplaySelection, StoredFact, SubscriptionDefinition,
    SubscriptionView, SuccessorsQuery, TimerDefinition, TimerList, TimerView, TokenResult,
};
use crate::wire::{BoundariesAnswer, ServiceDeclaration, ServiceList, ServiceView};
use crate::wire::{ClaimAnswer, ClaimReleased, LeaseAction, LeaseGrant};
use crate::wire::{LinkDefinition, LinkList, LinkRepaired, LinkView};
use crate::wire::{SchemaList, SchemaRegistration, SchemaTypes, SchemaVersionView};
use cairn_api::precondition::IF_MATCH_HEADER;
use cairn_api::{
    ErrorBody, ErrorCode, PullAnswer, PutFactsAnswer, ReplayAnswer, SubscriptionList,
    SubscriptionPutAnswer, TokenResults,
};
/// HTTP status of "not found".
const STATUS_NOT_FOUND: u16 = 404;
/// HTTP status of "created".
const STATUS_CREATED: u16 = 201;

/// A [`Transport`] that speaks API v1: to remote Cairn servers over HTTP,
/// or to a server embedded in this process.
pub struct RemoteTransport {
    wire: Wire,
    endpoints: Vec<Url>,
    /// Index of the endpoint that answered last; calls start there.
    preferred_endpoint: AtomicUsize,
    request_timeout: Duration,
    attempts_max: u32,
    backoff: Backoff,
    /// Set by [`Transport::close`]: every later call fails with
    /// [`ClientError::Closed`].
    closed: AtomicBool,
}

/// Where requests go.
enum Wire {
    /// Over the network.
    Network(reqwest::Client),
    /// Into the router of a server in this process that someone else owns.
    #[cfg(feature = "embedded")]
    InProcess(axum::Router),
    /// Into the router of a node that the transport owns: it lives as long
    /// as the transport, and [`Transport::close`] closes it.
    #[cfg(feature = "embedded")]
    Embedded(std::sync::Arc<crate::embedded::EmbeddedNode>),
}

/// One HTTP request, described so that it can be sent again.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
    body: Option<Bytes>,
    timeout: Duration,
}

/// A successful (2xx) answer.
struct Answer {
    status: u16,
    body: Bytes,
}

impl RemoteTransport {
    /// Checks the options and prepares the HTTP client; connects lazily.
    pub fn new(options: ClientOptions) -> Result<RemoteTransport> {
        if options.endpoints.is_empty() {
            return Err(ClientError::InvalidOptions(
                "at least one endpoint is needed".to_string(),
            ));
        }
        if options.attempts_max == 0 {
            return Err(ClientError::InvalidOptions(
                "attempts_max must be at least 1".to_string(),
            ));
        }
        if options.request_timeout.is_zero() {
            return Err(ClientError::InvalidOptions(
                "request_timeout must be positive".to_string(),
            ));
        }
        let endpoints = options
            .endpoints
            .iter()
            .map(|text| parse_endpoint(text))
            .collect::<Result<Vec<Url>>>()?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &options.access_token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        ClientError::InvalidOptions(
                            "the access token holds characters a header cannot".to_string(),
                        )
                    })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(limits::CONNECT_TIMEOUT_DEFAULT.min(options.request_timeout))
            .default_headers(headers);
        for ca_certificate in &options.ca_certificates {
            for certificate in ca_certificate.certificates()? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|error| {
            ClientError::InvalidOptions(error_text(&error, limits::TRANSPORT_ERROR_TEXT_BYTES_MAX))
        })?;

        Ok(RemoteTransport {
            wire: Wire::Network(http),
            endpoints,
            preferred_endpoint: AtomicUsize::new(0),
            request_timeout: options.request_timeout,
            attempts_max: options.attempts_max,
            backoff: Backoff {
                initial: options.backoff_initial,
                max: options.backoff_max.max(options.backoff_initial),
            },
            closed: AtomicBool::new(false),
        })
    }

    /// A transport into `router`, the application of a Cairn server running
    /// in this process (see `cairn_server::app`); its owner keeps the node
    /// running and closes it.
    #[cfg(feature = "embedded")]
    pub fn in_process(router: axum::Router) -> RemoteTransport {
        RemoteTransport::in_process_over(Wire::InProcess(router))
    }

    /// A transport into `node`, which it owns: the node lives as long as
    /// the transport and closes with it.
    #[cfg(feature = "embedded")]
    pub(crate) fn embedded(node: std::sync::Arc<crate::embedded::EmbeddedNode>) -> RemoteTransport {
        RemoteTransport::in_process_over(Wire::Embedded(node))
    }

    #[cfg(feature = "embedded")]
    fn in_process_over(wire: Wire) -> RemoteTransport {
        RemoteTransport {
            wire,
            endpoints: vec![Url::parse(EMBEDDED_ENDPOINT).expect("a valid URL")],
            preferred_endpoint: AtomicUsize::new(0),
            request_timeout: limits::REQUEST_TIMEOUT_DEFAULT,
            attempts_max: 1,
            backoff: Backoff {
                initial: Duration::ZERO,
                max: Duration::ZERO,
            },
            closed: AtomicBool::new(false),
        }
    }

    /// The endpoints, in the order given.
    pub fn endpoints(&self) -> &[Url] {
        &self.endpoints
    }

    /// The timeout of a request that long-polls for `wait_ms`.
    fn long_poll_timeout(&self, wait_ms: u64) -> Duration {
        self.request_timeout + Duration::from_millis(wait_ms) + limits::LONG_POLL_MARGIN
    }

    fn call<'a>(&self, method: Method, path: &'a [&'a str]) -> Call<'a> {
        Call {
            method,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            timeout: self.request_timeout,
        }
    }

    /// `POST /v1/facts`, with a `Cairn-Fence` header if `fence` is given.
    async fn put_facts_with(
        &self,
        facts: Vec<CanonicalFact>,
        fence: Option<String>,
    ) -> Result<Vec<PutResult>> {
        let mut call = self.call(Method::POST, &["v1", "facts"]);
        call.body = Some(facts_body(&facts));
        if let Some(fence) = fence {
            call.headers.push((cairn_api::FENCE_HEADER, fence));
        }
        let answer: PutFactsAnswer = self.call_json(call).await?;
        if answer.results.len() != facts.len() {
            return Err(ClientError::Protocol(format!(
                "a batch of {} fact(s) answered {} result(s)",
                facts.len(),
                answer.results.len()
            )));
        }
        Ok(answer.results)
    }

    /// Sends `call`, failing over and retrying as the module doc says.
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        let endpoints_n = self.endpoints.len();
        let first_endpoint = self.preferred_endpoint.load(Ordering::Relaxed) % endpoints_n;
        let mut last_error = String::new();
        let mut backoffs_n = 0;
        for attempt_index in 0..self.attempts_max {
            // Checked on every attempt, so that retries stop at a close too.
            if self.closed.load(Ordering::Acquire) {
                return Err(ClientError::Closed);
            }
            // The first pass over the endpoints is immediate (another server
            // may well be fine); after that every retry backs off.
            if attempt_index as usize >= endpoints_n {
                backoffs_n += 1;
                tokio::time::sleep(self.backoff.delay(backoffs_n)).await;
            }
            let endpoint_index = (first_endpoint + attempt_index as usize) % endpoints_n;
            let endpoint = &self.endpoints[endpoint_index];
            match self.send_once(endpoint, &call).await {
                Ok(answer) => {
                    self.preferred_endpoint
                        .store(endpoint_index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(Failure::Final(error)) => {
                    self.preferred_endpoint
                        .store(endpoint_index, Ordering::Relaxed);
                    return Err(error);
                }
                Err(Failure::Retryable(description)) => {
                    tracing::debug!(
                        endpoint = %endpoint,
                        attempt = attempt_index + 1,
                        "request failed, retrying: {description}"
                    );
                    last_error = format!("{endpoint}: {description}");
                }
            }
        }
        Err(ClientError::Unavailable {
            attempts: self.attempts_max,
            last_error,
        })
    }

    async fn send_once(&self, endpoint: &Url, call: &Call<'_>) -> Result<Answer, Failure> {
        let url = endpoint_url(endpoint, call.path).map_err(Failure::Final)?;
        match &self.wire {
            Wire::Network(http) => send_over_network(http, url, call).await,
            #[cfg(feature = "embedded")]
            Wire::InProcess(router) => send_in_process(router, url, call).await,
            #[cfg(feature = "embedded")]
            Wire::Embedded(node) => match node.router() {
                Some(router) => send_in_process(&router, url, call).await,
                None => Err(Failure::Final(ClientError::Closed)),
            },
        }
    }

    async fn call_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let answer = self.execute(call).await?;
        decode(&answer.body)
    }

    /// Sends `call` and answers `None` for a 404 that `is_absent` accepts.
    async fn call_optional<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        is_absent: impl Fn(&str) -> bool,
    ) -> Result<Option<T>> {
        match self.execute(call).await {
            Ok(answer) => decode(&answer.body).map(Some),
            Err(ClientError::Api { status, code, .. })
                if status == STATUS_NOT_FOUND && is_absent(&code) =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Leases messages, reading each fact as an `F`.
    async fn pull_as<F: DeserializeOwned>(
        &self,
        name: &str,
        options: PullOptions,
    ) -> Result<Vec<cairn_api::Message<F>>> {
        let path = ["v1", "subscriptions", name, "pull"];
        let mut call = self.call(Method::POST, &path);
        call.body = Some(json_body(&options.request())?);
        call.timeout = self.long_poll_timeout(options.wait_ms);
        let answer: PullAnswer<F> = self.call_json(call).await?;
        Ok(answer.messages)
    }

    async fn token_call(
        &self,
        name: &str,
        action: &str,
        body: &impl Serialize,
        tokens_n: usize,
    ) -> Result<Vec<TokenResult>> {
        let path = ["v1", "subscriptions", name, action];
        let mut call = self.call(Method::POST, &path);
        call.body = Some(json_body(body)?);
        let answer: TokenResults = self.call_json(call).await?;
        if answer.results.len() != tokens_n {
            return Err(ClientError::Protocol(format!(
                "{action} of {tokens_n} token(s) answered {} result(s)",
                answer.results.len()
            )));
        }
        Ok(answer.results)
    }
}

/// A 2xx answer, or the failure an error answer means.
fn answer(status: u16, body: Bytes) -> Result<Answer, Failure> {
    if (200..300).contains(&status) {
        return Ok(Answer { status, body });
    }
    let error = api_error(status, &body);
    if is_retryable_status(status) {
        Err(Failure::Retryable(error.to_string()))
    } else {
        Err(Failure::Final(error))
    }
}

/// Sends one request over the network.
async fn send_over_network(
    http: &reqwest::Client,
    url: Url,
    call: &Call<'_>,
) -> Result<Answer, Failure> {
    let mut request = http.request(call.method.clone(), url).timeout(call.timeout);
    if !call.query.is_empty() {
        request = request.query(&call.query);
    }
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = &call.body {
        request = request
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    let response = request.send().await.map_err(|error| {
        Failure::Retryable(error_text(&error, limits::TRANSPORT_ERROR_TEXT_BYTES_MAX))
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|error| {
        Failure::Retryable(error_text(&error, limits::TRANSPORT_ERROR_TEXT_BYTES_MAX))
    })?;
    answer(status, body)
}

/// The placeholder endpoint of an in-process server (never connected to).
#[cfg(feature = "embedded")]
const EMBEDDED_ENDPOINT: &str = "http://embedded.invalid/";

/// Dispatches one request into an in-process router.
#[cfg(feature = "embedded")]
async fn send_in_process(
    router: &axum::Router,
    url: Url,
    call: &Call<'_>,
) -> Result<Answer, Failure> {
    use tower::ServiceExt as _;
    let mut url = url;
    if !call.query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(call.query.iter().map(|(key, value)| (*key, value.as_str())));
    }
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let mut request = axum::http::Request::builder()
        .method(call.method.clone())
        .uri(path_and_query);
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    let body = match &call.body {
        Some(body) => {
            request = request.header(CONTENT_TYPE, "application/json");
            axum::body::Body::from(body.clone())
        }
        None => axum::body::Body::empty(),
    };
    let request = request
        .body(body)
        .map_err(|error| Failure::Final(ClientError::Protocol(error.to_string())))?;
    let response = tokio::time::timeout(call.timeout, router.clone().oneshot(request))
        .await
        .map_err(|_| Failure::Retryable("timed out".to_string()))?
        .map_err(|error| Failure::Retryable(error.to_string()))?;
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|error| Failure::Retryable(error.to_string()))?;
    answer(status, body)
}

/// Why one attempt failed.
enum Failure {
    /// Try again, on the next endpoint.
    Retryable(String),
    /// Give up and report this.
    Final(ClientError),
}

fn parse_endpoint(text: &str) -> Result<Url> {
    let url = Url::parse(text)
        .map_err(|error| ClientError::InvalidOptions(format!("endpoint {text:?}: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::InvalidOptions(format!(
            "endpoint {text:?}: only http:// and https:// endpoints are supported"
        )));
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(ClientError::InvalidOptions(format!(
            "endpoint {text:?} has no host"
        )));
    }
    Ok(url)
}

/// Appends the path segments to the endpoint (percent-encoding each).
fn endpoint_url(endpoint: &Url, path: &[&str]) -> Result<Url> {
    let mut url = endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| ClientError::InvalidOptions(format!("endpoint {endpoint} has no path")))?
        .pop_if_empty()
        .extend(path);
    Ok(url)
}

/// Builds the typed error of an error answer, whatever its body.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => ClientError::Api {
            status,
            code: parsed.error.code,
            message: parsed.error.message,
            details: parsed.error.details,
        },
        // A proxy or a server that is not Cairn may answer without the JSON
        // error body; keep what it said.
        Err(_) => ClientError::Api {
            status,
            code: format!("http_{status}"),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
            details: serde_json::Map::new(),
        },
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|error| {
        ClientError::Protocol(format!(
            "cannot decode the answer ({error}): {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    })
}

fn json_body(value: &impl Serialize) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|error| ClientError::Protocol(format!("cannot encode the request: {error}")))
}

/// `{"facts": [...]}` from canonical bytes as they are, so the server sees
/// exactly the bytes the client hashed.
fn facts_body(facts: &[CanonicalFact]) -> Bytes {
    let bytes_n: usize = facts.iter().map(|fact| fact.canonical.len() + 1).sum();
    let mut body = Vec::with_capacity(bytes_n + 16);
    body.extend_from_slice(b"{\"facts\":[");
    for (index, fact) in facts.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&fact.canonical);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

impl Transport for RemoteTransport {
    fn put_facts(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<Vec<PutResult>>> {
        Box::pin(self.put_facts_with(facts, None))
    }

    fn get_fact(&self, hash: Hash) -> BoxFuture<'_, Result<Option<StoredFact>>> {
        Box::pin(async move {
            let hash_text = hash.to_hex();
            let path = ["v1", "facts", hash_text.as_str()];
            self.call_optional(self.call(Method::GET, &path), |_| true)
                .await
        })
    }

    fn get_fact_as(&self, hash: Hash, version: u32) -> BoxFuture<'_, Result<Option<StoredFact>>> {
        Box::pin(async move {
            let hash_text = hash.to_hex();
            let path = ["v1", "facts", hash_text.as_str()];
            let mut call = self.call(Method::GET, &path);
            call.query.push(("as_version", version.to_string()));
            // Only an absent fact is `None`: a type without that version
            // (`unknown_schema`, also a 404) is the caller's error.
            self.call_optional(call, |code| code == ErrorCode::NotFound.as_str())
                .await
        })
    }

    fn successors<'a>(&'a self, query: &'a SuccessorsQuery) -> BoxFuture<'a, Result<FactPage>> {
        Box::pin(async move {
            let hash_text = query.of.to_hex();
            let path = ["v1", "facts", hash_text.as_str(), "successors"];
            let mut call = self.call(Method::GET, &path);
            call.query = query.query_pairs();
            if let Some(wait_ms) = query.wait_ms {
                call.timeout = self.long_poll_timeout(wait_ms);
            }
            self.call_json(call).await
        })
    }

    fn log(&self, query: LogQuery) -> BoxFuture<'_, Result<FactPage>> {
        Box::pin(async move {
            let mut call = self.call(Method::GET, &["v1", "log"]);
            call.query = query.query_pairs();
            if let Some(wait_ms) = query.wait_ms {
                call.timeout = self.long_poll_timeout(wait_ms);
            }
            self.call_json(call).await
        })
    }

    fn apply_subscription<'a>(
        &'a self,
        name: &'a str,
        definition: &'a SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> BoxFuture<'a, Result<AppliedSubscription>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name];
            let mut call = self.call(Method::PUT, &path);
            call.body = Some(json_body(definition)?);
            if let Some(precondition) = precondition {
                call.headers
                    .push((IF_MATCH_HEADER, precondition.header_value()));
            }
            let answer = self.execute(call).await?;
            let put: SubscriptionPutAnswer = decode(&answer.body)?;
            let outcome = if answer.status == STATUS_CREATED {
                ApplyOutcome::Created
            } else if put.updated {
                ApplyOutcome::Updated
            } else {
                ApplyOutcome::Unchanged
            };
            Ok(AppliedSubscription {
                outcome,
                view: put.view,
            })
        })
    }

    fn get_subscription<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SubscriptionView>>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name];
            self.call_optional(self.call(Method::GET, &path), |code| {
                code == ErrorCode::UnknownSubscription.as_str()
            })
            .await
        })
    }

    fn list_subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionView>>> {
        Box::pin(async move {
            let list: SubscriptionList = self
                .call_json(self.call(Method::GET, &["v1", "subscriptions"]))
                .await?;
            Ok(list.subscriptions)
        })
    }

    fn delete_subscription<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name];
            self.execute(self.call(Method::DELETE, &path)).await?;
            Ok(())
        })
    }

    fn pull<'a>(
        &'a self,
        name: &'a str,
        options: PullOptions,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        Box::pin(self.pull_as(name, options))
    }

    fn pull_raw<'a>(
        &'a self,
        name: &'a str,
        options: PullOptions,
    ) -> BoxFuture<'a, Result<Vec<RawMessage>>> {
        Box::pin(self.pull_as(name, options))
    }

    fn ack<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>> {
        Box::pin(async move {
            let body = AckRequest {
                tokens: tokens.to_vec(),
            };
            self.token_call(name, "ack", &body, tokens.len()).await
        })
    }

    fn nack<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
        options: &'a NackOptions,
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>> {
        Box::pin(async move {
            let body = NackRequest {
                tokens: tokens.to_vec(),
                delay_ms: options.delay_ms,
                error: options.error.as_deref().map(|error| {
                    truncate_to_char_boundary(error, limits::NACK_ERROR_BYTES_MAX).to_string()
                }),
            };
            self.token_call(name, "nack", &body, tokens.len()).await
        })
    }

    fn extend<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
        lease_ms: Option<u64>,
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>> {
        Box::pin(async move {
            let body = ExtendRequest {
                tokens: tokens.to_vec(),
                lease_ms,
            };
            self.token_call(name, "extend", &body, tokens.len()).await
        })
    }

    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SubscriptionView>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name, "pause"];
            let mut call = self.call(Method::POST, &path);
            call.body = Some(Bytes::from_static(b"{}"));
            self.call_json(call).await
        })
    }

    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SubscriptionView>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name, "resume"];
            let mut call = self.call(Method::POST, &path);
            call.body = Some(Bytes::from_static(b"{}"));
            self.call_json(call).await
        })
    }

    fn dead_letters<'a>(
        &'a self,
        name: &'a str,
        query: DeadLetterQuery,
    ) -> BoxFuture<'a, Result<DeadLetterPage>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name, "dead"];
            let mut call = self.call(Method::GET, &path);
            call.query = query.query_pairs();
            self.call_json(call).await
        })
    }

    fn dead_letter<'a>(
        &'a self,
        name: &'a str,
        hash: Hash,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>>> {
        Box::pin(async move {
            let hash_text = hash.to_hex();
            let path = ["v1", "subscriptions", name, "dead", hash_text.as_str()];
            self.call_optional(self.call(Method::GET, &path), |code| {
                code == ErrorCode::NotADeadLetter.as_str()
            })
            .await
        })
    }

    fn replay_dead_letters<'a>(
        &'a self,
        name: &'a str,
        selection: &'a ReplaySelection,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let path = ["v1", "subscriptions", name, "dead", "replay"];
            let mut call = self.call(Method::POST, &path);
            call.body = Some(json_body(&selection.request())?);
            let answer: ReplayAnswer = self.call_json(call).await?;
            Ok(answer.replayed)
        })
    }

    fn discard_dead_letter<'a>(&'a self, name: &'a str, hash: Hash) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let hash_text = hash.to_hex();
            let path = ["v1", "subscriptions", name, "dead", hash_text.as_str()];
            self.execute(self.call(Method::DELETE, &path)).await?;
            Ok(())
        })
    }

    fn metrics(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let answer = self.execute(self.call(Method::GET, &["metrics"])).await?;
            String::from_utf8(answer.body.to_vec()).map_err(|_| {
                ClientError::Protocol("the server's metrics are not UTF-8 text".to_string())
            })
        })
    }

    fn create_token<'a>(
        &'a self,
        request: &'a TokenCreateRequest,
    ) -> BoxFuture<'a, Result<TokenCreated>> {
        Box::pin(async move {
            let mut call = self.call(Method::POST, &["v1", "tokens"]);
            call.body = Some(json_body(request)?);
            // A retry after a lost answer is told identity_exists: the
            // first try's token was never seen; revoke and create again.
            self.call_json(call).await
        })
    }

    fn list_tokens(&self) -> BoxFuture<'_, Result<Vec<IdentityView>>> {
        Box::pin(async move {
            let list: IdentityList = self
                .call_json(self.call(Method::GET, &["v1", "tokens"]))
                .await?;
            Ok(list.identities)
        })
    }

    fn revoke_token<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = ["v1", "tokens", name];
            self.execute(self.call(Method::DELETE, &path)).await?;
            Ok(())
        })
    }

    fn rotate_token<'a>(
        &'a self,
        name: &'a str,
        request: &'a TokenRotateRequest,
    ) -> BoxFuture<'a, Result<TokenCreated>> {
        Box::pin(async move {
            let path = ["v1", "tokens", name, "rotate"];
            let mut call = self.call(Method::POST, &path);
            call.body = Some(json_body(request)?);
            self.call_json(call).await
        })
    }

    fn audit(&self, after: u64, limit: u32) -> BoxFuture<'_, Result<AuditPage>> {
        Box::pin(async move {
            let mut call = self.call(Method::GET, &["v1", "audit"]);
            call.query = vec![("after", after.to_string()), ("limit", limit.to_string())];
            self.call_json(call).await
        })
    }

    fn put_timer<'a>(
        &'a self,
        name: &'a str,
        definition: &'a TimerDefinition,
    ) -> BoxFuture<'a, Result<TimerView>> {
        Box::pin(async move {
            let path = ["v1", "timers", name];
            let mut call = self.call(Method::PUT, &path);
            call.body = Some(json_body(definition)?);
            self.call_json(call).await
        })
    }

    fn get_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<TimerView>>> {
        Box::pin(async move {
            let path = ["v1", "timers", name];
            self.call_optional(self.call(Method::GET, &path), |code| {
                code == ErrorCode::UnknownTimer.as_str()
            })
            .await
        })
    }

    fn list_timers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: Option<u32>,
    ) -> BoxFuture<'a, Result<TimerList>> {
        Box::pin(async move {
            let mut call = self.call(Method::GET, &["v1", "timers"]);
            if let Some(after) = after {
                call.query.push(("after", after.to_string()));
            }
            if let Some(limit) = limit {
                call.query.push(("limit", limit.to_string()));
            }
            self.call_json(call).await
        })
    }

    fn delete_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = ["v1", "timers", name];
            self.execute(self.call(Method::DELETE, &path)).await?;
            Ok(())
        })
    }

    fn put_link<'a>(
        &'a self,
        name: &'a str,
        definition: &'a LinkDefinition,
    ) -> BoxFuture<'a, Result<LinkView>> {
        Box::pin(async move {
            let path = ["v1", "links", name];
            let mut call = self.call(Method::PUT, &path);
            call.body = Some(json_body(definition)?);
            self.call_json(call).await
        })
    }

    fn get_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkView>>> {
        Box::pin(async move {
            self.call_optional(self.call(Method::GET, &["v1", "links", name]), |code| {
                code == ErrorCode::UnknownLink.as_str()
            })
            .await
        })
    }

    fn list_links(&self) -> BoxFuture<'_, Result<LinkList>> {
        Box::pin(async move {
            self.call_json(self.call(Method::GET, &["v1", "links"]))
                .await
        })
    }

    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.execute(self.call(Method::DELETE, &["v1", "links", name]))
                .await?;
            Ok(())
        })
    }

    fn repair_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<LinkRepaired>> {
        Box::pin(async move {
            let path = ["v1", "links", name, "repair"];
            self.call_json(self.call(Method::POST, &path)).await
        })
    }

    fn set_link_paused<'a>(
        &'a self,
        name: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<LinkView>> {
        Box::pin(async move {
            let action = if paused { "pause" } else { "resume" };
            self.call_json(self.call(Method::POST, &["v1", "links", name, action]))
                .await
        })
    }

    fn put_service<'a>(
        &'a self,
        declaration: &'a ServiceDeclaration,
        allow_unknown_types: bool,
    ) -> BoxFuture<'a, Result<ServiceView>> {
        Box::pin(async move {
            let path = ["v1", "services", declaration.name.as_str()];
            let mut call = self.call(Method::PUT, &path);
            if allow_unknown_types {
                call.query.push(("allow_unknown_types", "true".to_string()));
            }
            call.body = Some(json_body(declaration)?);
            self.call_json(call).await
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<ServiceList>> {
        Box::pin(async move {
            self.call_json(self.call(Method::GET, &["v1", "services"]))
                .await
        })
    }

    fn boundaries(&self, unseen_for_ms: Option<u64>) -> BoxFuture<'_, Result<BoundariesAnswer>> {
        Box::pin(async move {
            let mut call = self.call(Method::GET, &["v1", "boundaries"]);
            if let Some(unseen_for_ms) = unseen_for_ms {
                call.query
                    .push(("unseen_for_ms", unseen_for_ms.to_string()));
            }
            self.call_json(call).await
        })
    }

    fn claim<'a>(&'a self, key: &'a str, fact: Hash) -> BoxFuture<'a, Result<ClaimAnswer>> {
        Box::pin(async move {
            let mut call = self.call(Method::POST, &["v1", "claims"]);
            call.body = Some(json_body(&ClaimRequest {
                key: key.to_string(),
                fact,
            })?);
            // Idempotent: a retry by the winner answers `won` again.
            self.call_json(call).await
        })
    }

    fn claim_holder<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ClaimAnswer>>> {
        Box::pin(async move {
            let path = ["v1", "claims", key];
            self.call_optional(self.call(Method::GET, &path), |code| code == "not_found")
                .await
        })
    }

    fn release_claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimReleased>> {
        Box::pin(async move {
            let mut call = self.call(Method::POST, &["v1", "claims", "release"]);
            call.body = Some(json_body(&ClaimRequest {
                key: key.to_string(),
                fact,
            })?);
            self.call_json(call).await
        })
    }

    fn lease<'a>(
        &'a self,
        name: &'a str,
        action: LeaseAction,
    ) -> BoxFuture<'a, Result<LeaseGrant>> {
        Box::pin(async move {
            let (verb, body) = match action {
                LeaseAction::Acquire { holder, ttl_ms } => (
                    "acquire",
                    json_body(&LeaseAcquireRequest { holder, ttl_ms })?,
                ),
                LeaseAction::Renew {
                    holder,
                    fence,
                    ttl_ms,
                } => (
                    "renew",
                    json_body(&LeaseGrantRequest {
                        holder,
                        fence,
                        ttl_ms,
                    })?,
                ),
                LeaseAction::Release { holder, fence } => (
                    "release",
                    json_body(&LeaseGrantRequest {
                        holder,
                        fence,
                        ttl_ms: None,
                    })?,
                ),
            };
            let path = ["v1", "leases", name, verb];
            let mut call = self.call(Method::POST, &path);
            call.body = Some(body);
            self.call_json(call).await
        })
    }

    fn get_lease<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        Box::pin(async move {
            let path = ["v1", "leases", name];
            self.call_optional(self.call(Method::GET, &path), |code| code == "not_found")
                .await
        })
    }

    fn put_facts_fenced<'a>(
        &'a self,
        facts: Vec<CanonicalFact>,
        lease: &'a str,
        fence: u64,
    ) -> BoxFuture<'a, Result<Vec<PutResult>>> {
        Box::pin(self.put_facts_with(facts, Some(format!("{lease}={fence}"))))
    }

    fn register_schema<'a>(
        &'a self,
        type_name: &'a str,
        version: u32,
        registration: &'a SchemaRegistration,
    ) -> BoxFuture<'a, Result<SchemaVersionView>> {
        Box::pin(async move {
            let version_text = version.to_string();
            let path = ["v1", "schemas", type_name, version_text.as_str()];
            let mut call = self.call(Method::PUT, &path);
            call.body = Some(json_body(registration)?);
            // Idempotent: a retry after a lost answer finds it registered.
            self.call_json(call).await
        })
    }

    fn get_schema<'a>(
        &'a self,
        type_name: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<SchemaVersionView>>> {
        Box::pin(async move {
            let version_text = version.to_string();
            let path = ["v1", "schemas", type_name, version_text.as_str()];
            self.call_optional(self.call(Method::GET, &path), |code| {
                code == ErrorCode::UnknownSchema.as_str()
            })
            .await
        })
    }

    fn list_schema_versions<'a>(
        &'a self,
        type_name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SchemaList>>> {
        Box::pin(async move {
            let path = ["v1", "schemas", type_name];
            self.call_optional(self.call(Method::GET, &path), |code| {
                code == ErrorCode::UnknownSchema.as_str()
            })
            .await
        })
    }

    fn list_schemas(&self) -> BoxFuture<'_, Result<SchemaTypes>> {
        Box::pin(async move {
            self.call_json(self.call(Method::GET, &["v1", "schemas"]))
                .await
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.closed.store(true, Ordering::Release);
            #[cfg(feature = "embedded")]
            if let Wire::Embedded(node) = &self.wire {
                node.close().await;
            }
        })
    }

    fn local_address(&self) -> Option<SocketAddr> {
        match &self.wire {
            Wire::Network(_) => None,
            #[cfg(feature = "embedded")]
            Wire::InProcess(_) => None,
            #[cfg(feature = "embedded")]
            Wire::Embedded(node) => node.local_address(),
        }
    }
}

/// The longest prefix of `text` of at most `bytes_max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate_to_char_boundary(text: &str, bytes_max: usize) -> &str {
    if text.len() <= bytes_max {
        return text;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_or_https_urls() {
        assert!(parse_endpoint("http://127.0.0.1:7710").is_ok());
        assert!(parse_endpoint("https://127.0.0.1:7710").is_ok());
        assert!(parse_endpoint("ftp://127.0.0.1:7710").is_err());
        assert!(parse_endpoint("127.0.0.1:7710").is_err());
        assert!(parse_endpoint("not a url").is_err());
    }

    #[test]
    fn paths_are_appended_and_encoded() {
        let base = parse_endpoint("http://127.0.0.1:7710/").unwrap();
        let url = endpoint_url(&base, &["v1", "subscriptions", "a/b"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:7710/v1/subscriptions/a%2Fb");
        let prefixed = parse_endpoint("http://127.0.0.1:7710/cairn").unwrap();
        let url = endpoint_url(&prefixed, &["v1", "log"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:7710/cairn/v1/log");
    }

    #[test]
    fn error_bodies_keep_code_and_details() {
        let body = br#"{"error":{"code":"missing_predecessors","message":"m","missing":["x"]}}"#;
        match api_error(422, body) {
            ClientError::Api {
                status,
                code,
                details,
                ..
            } => {
                assert_eq!((status, code.as_str()), (422, "missing_predecessors"));
                assert_eq!(details["missing"], serde_json::json!(["x"]));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(api_error(502, b"Bad Gateway").code(), Some("http_502"));
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_to_char_boundary("héllo", 2), "h");
        assert_eq!(truncate_to_char_boundary("héllo", 3), "hé");
        assert_eq!(truncate_to_char_boundary("abc", 10), "abc");
    }
}
