//! Cairn's Rust SDK.
//!
//! - [`Client`]: a cheap-to-clone handle over a [`Transport`]: a remote
//!   server with failover between endpoints ([`Client::remote`]) or any
//!   other implementation ([`Client::with_transport`]); with the opt-in
//!   `embedded` feature, a Cairn server inside the process
//!   (`Client::embedded`), so a service runs against either unchanged.
//!   The default features are the remote client only: no server, no store,
//!   and only the tokio features the SDK uses (`rt`, `time`, `sync`,
//!   `macros`).
//! - Typed facts: [`TypedFact`] maps a serde type to a fact type;
//!   [`Client::put`] computes the hash on the client and checks the
//!   server's, [`Client::get`] and [`Client::successors`] read typed values
//!   back as [`Typed`], with their [`Predecessors`] beside them.
//! - Safe retries: every call is retried with jittered exponential backoff
//!   on connection failures, timeouts, 429 and 502/503/504; storing a fact
//!   is idempotent, so retrying a put never duplicates it.
//! - [`Subscriber`]: pulls a subscription's messages, runs a handler with a
//!   concurrency limit, acks, nacks with the error text, renews leases and
//!   drains on shutdown.
//! - Request/response over facts: [`Client::request`] then
//!   [`PendingRequest::reply`]; the responder answers with
//!   [`Client::reply_to`].
//!
//! ```no_run
//! use cairn_client::{Client, ClientOptions, Predecessors, TypedFact};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order {
//!     id: String,
//!     total: f64,
//!     #[serde(skip)]
//!     customer: Option<cairn_client::Hash>,
//! }
//!
//! impl TypedFact for Order {
//!     const TYPE_NAME: &'static str = "Shop.Order";
//!     fn predecessors(&self) -> Predecessors {
//!         self.customer
//!             .map(|customer| Predecessors::new().with_one("customer", customer))
//!             .unwrap_or_default()
//!     }
//! }
//!
//! # async fn example() -> cairn_client::Result<()> {
//! let client = Client::remote(ClientOptions::new(["http://127.0.0.1:7710"]))?;
//! let order = Order { id: "o-1".into(), total: 4.5, customer: None };
//! let stored = client.put(&order).await?;
//! let read = client.get::<Order>(&stored.hash).await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod backoff;
mod client;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
pub mod limits;
mod options;
mod predecessors;
mod remote;
mod request;
mod subscriber;
mod transport;
mod typed;
pub mod wire;

pub use backoff::Backoff;
pub use cairn_fact::{CanonicalFact, Hash};
pub use client::Client;
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedNode;
pub use error::{ClientError, Result};
pub use options::ClientOptions;
pub use predecessors::{PredecessorHashes, Predecessors};
pub use remote::RemoteTransport;
pub use request::PendingRequest;
pub use subscriber::{Delivery, HandlerError, Subscriber, SubscriberOptions, SubscriberReport};
pub use transport::Transport;
pub use typed::{to_canonical_fact, Typed, TypedFact};
pub use wire::{
    AppliedSubscription, ApplyOutcome, BackoffDefinition, DeadLetter, DeadLetterPage,
    DeadLetterQuery, FactPage, GenerationPrecondition, LogQuery, Message, NackOptions,
    PredecessorSelector, PullOptions, PutResult, RawMessage, ReplaySelection, Start, StoredFact,
    SubscriptionDefinition, SubscriptionView, SuccessorsQuery, TokenResult, TokenStatus,
};
