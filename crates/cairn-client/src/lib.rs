//! Cairn's Rust SDK.
//!
//! - [`Client`]: a cheap-to-clone handle over a [`Transport`]: a remote
//!   server with failover between endpoints ([`Client::remote`]) or any
//!   other implementation ([`Client::with_transport`]); with the opt-in
//!   `embedded` feature, a Cairn server inside the process
//!   (`Client::embedded`, or `Client::embedded_with` to serve it on a local
//!   port too), owned by the client, so a service runs against either
//!   unchanged. [`Client::close`] closes it durably.
//!   An embedded store syncs with a remote deployment both ways, offline
//!   first (`Client::sync_with`, feature `embedded`).
//!   The default features are the remote client only: no server, no store,
//!   and only the tokio features the SDK uses (`rt`, `time`, `sync`,
//!   `macros`).
//! - Typed facts: `#[derive(Fact)]` maps a struct to a fact type; fields
//!   marked `#[predecessor]` are its predecessors ([`Hash`], `Option<Hash>`
//!   or a set), the rest its `fields`. [`Client::put`] computes the hash on
//!   the client and checks the server's; [`Client::get`],
//!   [`Client::successors`] (with `role`, `without` for tombstones, and
//!   `all`, `stream` or `follow`) and [`Client::log_facts`] read typed
//!   values back as [`Typed`], predecessors filled in.
//! - Safe retries: every call is retried with jittered exponential backoff
//!   on connection failures, timeouts, 429 and 502/503/504; storing a fact
//!   is idempotent, so retrying a put never duplicates it.
//! - [`Subscriber`]: pulls a subscription's messages, runs a handler with a
//!   concurrency limit, acks, nacks with the error text, renews leases and
//!   drains on shutdown.
//! - Request/response over facts: [`Client::request`] stores a [`Request`]
//!   (the command plus its own request id and expiry, so that asking again
//!   is a new question), then [`PendingRequest::reply`] awaits the reply,
//!   whose type must be a [`Reply`] to that command; a responder is one
//!   line, [`Client::responder`], run by a [`Subscriber`].
//! - Sagas ([`saga`]): a [`SagaDefinition`] of ordered [`Step`]s (an async
//!   action and a compensation), run by a [`SagaRunner`] as subscribers,
//!   the journal kept as facts; [`Client::sagas`] reads and starts them.
//!
//! Identity is content: two facts with the same type, fields and
//! predecessors are one fact. That is what makes writes idempotent, and it
//! is right for facts that describe one thing (`Library.Book` with its
//! ISBN). When each occurrence matters — a loan, a payment, a request —
//! give the fact an identity of its own (an id field), or two identical
//! occurrences become one; requests get one from the SDK.
//!
//! ```
//! use cairn_client::{Client, Fact, Hash};
//!
//! #[derive(Fact)]
//! #[fact(type = "Shop.Customer")]
//! struct Customer {
//!     name: String,
//! }
//!
//! #[derive(Fact)]
//! #[fact(type = "Shop.Order")]
//! struct Order {
//!     #[predecessor]
//!     customer: Hash,
//!     id: String,
//!     total: f64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cairn_client::Result<()> {
//! # let data = tempfile::tempdir().expect("a temporary directory");
//! // `Client::remote(ClientOptions::new(["http://127.0.0.1:7710"]))?`
//! // reaches a Cairn server; here one runs inside the process (feature
//! // `embedded`).
//! let client = Client::embedded(data.path()).await?;
//! let customer = client.put(&Customer { name: "Ada".into() }).await?.hash;
//! let order = Order { customer, id: "o-1".into(), total: 4.5 };
//! let stored = client.put(&order).await?;
//! let read = client.get::<Order>(&stored.hash).await?.expect("stored");
//! assert_eq!(read.value.customer, customer);
//! let orders = client.successors::<Order>(&customer).all().await?;
//! assert_eq!(orders.len(), 1);
//! # client.close().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

// The derive's generated code names `::cairn_client`, in this crate too.
extern crate self as cairn_client;

mod backoff;
mod ca_certificate;
mod client;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
mod error_text;
mod fact_streams;
pub mod limits;
mod options;
mod predecessors;
mod remote;
mod request;
pub mod saga;
mod service;
mod subscriber;
#[cfg(feature = "embedded")]
mod sync;
mod transport;
mod typed;
pub mod wire;

pub use backoff::Backoff;
pub use ca_certificate::CaCertificate;
pub use cairn_fact::{CanonicalFact, Hash};
pub use client::Client;
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedOptions;
pub use error::{ClientError, Result};
pub use error_text::error_text;
pub use fact_streams::{LogFacts, Successors, TypedLogFacts};
pub use options::{AccessToken, ClientOptions};
pub use predecessors::{PredecessorHashes, Predecessors};
pub use remote::RemoteTransport;
pub use request::{unique_id, IncomingRequest, PendingRequest, Request};
pub use saga::{
    SagaBoundary, SagaDefinition, SagaError, SagaFilter, SagaJournal, SagaRunner,
    SagaRunnerOptions, SagaState, Sagas, Step, StepContext, StepError,
};
pub use service::{PartError, Service, ServiceError, ServiceReport};
pub use subscriber::{
    Delivery, HandlerError, HandlerFuture, Subscriber, SubscriberOptions, SubscriberReport,
};
#[cfg(feature = "embedded")]
pub use sync::{InboundStatus, OutboundStatus, RemoteSync, SyncOptions, SyncStatus};
pub use transport::Transport;
pub use typed::{
    schema_registration, to_canonical_fact, PredecessorField, Reply, Typed, TypedFact,
};

/// Derives [`TypedFact`] (and [`Reply`]) for a struct: see the
/// `cairn-derive` crate.
pub use cairn_derive::Fact;

/// What the code generated by `#[derive(Fact)]` and `typed_fact!` uses;
/// not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
}
pub use wire::{format_utc_ms, CatchUp, TimerDefinition, TimerList, TimerView};
pub use wire::{Anchor, Bookmark, LinkDefinition, LinkList, LinkRepaired, LinkState, LinkView};
pub use wire::{
    AppliedSubscription, ApplyOutcome, BackoffDefinition, DeadLetter, DeadLetterPage,
    DeadLetterQuery, FactPage, GenerationPrecondition, LogQuery, Message, NackOptions,
    PredecessorSelector, PullOptions, PutResult, RawMessage, ReplaySelection, Start, StoredFact,
    SubscriptionDefinition, SubscriptionView, SuccessorsQuery, TokenResult, TokenStatus,
};
pub use wire::{
    AuditEntry, AuditPage, Authorship, BlobAccess, IdentityView, Pattern, Permissions,
    TokenCreateRequest, TokenCreated, TokenRotateRequest, TokenView,
};
pub use wire::{BoundariesAnswer, ServiceDeclaration, ServiceList, ServiceView};
pub use wire::{
    BreakingChange, Compatibility, RoleConstraint, SchemaList, SchemaRegistration, SchemaTypes,
    SchemaVersionSummary, SchemaVersionView, UpcastMarker, UpcastOperation, Violation,
    VERSION_FIELD,
};
pub use wire::{ClaimAnswer, ClaimReleased, LeaseAction, LeaseGrant};
