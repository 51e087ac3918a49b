//! Resilient service-to-service HTTP calls for Cairn services.
//!
//! Two halves that work together:
//!
//! - **Client**: [`ResilientClient`], a `tower` stack around `reqwest` with a
//!   timeout per attempt and per call, retries with jittered exponential
//!   backoff limited by a shared retry budget, and a circuit breaker
//!   ([`CircuitBreakerLayer`], closed → open → half-open → closed). Every
//!   logical call carries one `Idempotency-Key` (a random UUID v4 unless
//!   given) that all its retries repeat. Only timeouts, transport failures,
//!   429, 502, 503 and 504 are retried (a `Retry-After` in seconds replaces
//!   the backoff, capped by `retry_after_max`), and only for requests that
//!   carry a key or whose method is GET, HEAD, PUT or DELETE.
//! - **Server**: [`IdempotencyLayer`], a `tower` layer for axum routers that
//!   runs a handler once per key and replays its answer (2xx and 4xx only,
//!   marked `Idempotent-Replayed: true`) to repeated requests. A key still in
//!   progress gets 409 `idempotency_key_in_use`, a key reused with another
//!   request 422 `idempotency_key_reused`, a malformed key 400
//!   `invalid_idempotency_key`. Answers live in an [`IdempotencyStore`]; the
//!   crate ships the bounded [`InMemoryIdempotencyStore`].
//!
//! ```
//! use std::sync::Arc;
//! use cairn_resilient::{
//!     CallError, IdempotencyLayer, InMemoryIdempotencyStore, InMemoryStoreOptions,
//!     ResilientClient, ResilientOptions,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Server: wrap the routes whose side effects must happen once.
//! let store = Arc::new(InMemoryIdempotencyStore::new(InMemoryStoreOptions::default()));
//! let router: axum::Router = axum::Router::new()
//!     .route("/orders", axum::routing::post(|| async { "created" }))
//!     .layer(IdempotencyLayer::new(store));
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let orders_url = format!("http://{}/orders", listener.local_addr()?);
//! # tokio::spawn(async move { axum::serve(listener, router).await });
//!
//! // Client: one per remote service, cloned freely.
//! let client = ResilientClient::new(ResilientOptions::default())?;
//! let order = serde_json::json!({ "sku": "cairn-1", "quantity": 2 });
//! match client
//!     .post_json(&orders_url, &order) // e.g. "http://orders.internal/orders"
//!     .idempotency_key("order-7f3a")
//!     .send()
//!     .await
//! {
//!     Ok(answer) => println!("{}: {:?}", answer.status, answer.body),
//!     Err(CallError::CircuitOpen) => println!("orders is down; not calling it"),
//!     Err(error) => println!("failed (retryable: {}): {error}", error.is_retryable()),
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod breaker_state;
mod call;
mod circuit_breaker;
mod client;
mod error;
mod idempotency_key;
mod idempotency_layer;
mod idempotency_store;
pub mod limits;
mod memory_store;
mod options;
mod retry_policy;
mod transport;

pub use breaker_state::CircuitState;
pub use call::{CallRequest, CallResponse};
pub use circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
pub use client::{RequestBuilder, ResilientClient};
pub use error::{BoxError, CallError};
pub use idempotency_key::{
    is_valid_idempotency_key, IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER,
};
pub use idempotency_layer::{IdempotencyLayer, IdempotencyOptions, IdempotencyService};
pub use idempotency_store::{
    BeginOutcome, IdempotencyStore, IdempotencyStoreError, RequestFingerprint, StoreKey,
    StoredAnswer,
};
pub use memory_store::{InMemoryIdempotencyStore, InMemoryStoreOptions};
pub use options::{BuildError, CircuitBreakerOptions, ResilientOptions, RetryBudgetOptions};
pub use retry_policy::RetryPolicy;
pub use transport::HttpTransport;
