//! Transactional outbox and idempotent inbox for a service's own SQL
//! database (SQLite by default, PostgreSQL with the `postgres` feature),
//! built on sqlx.
//!
//! - [`Outbox::enqueue`] writes outgoing facts into `cairn_outbox` in the
//!   same transaction as the service's business data; [`OutboxRelay`]
//!   publishes committed rows to Cairn through a [`FactPublisher`] (such as
//!   [`HttpPublisher`], or the SDK's `cairn_client::Client`, which
//!   implements it too) and marks them sent. A crash at any point leaves
//!   each committed fact in Cairn exactly once, since a row is marked sent
//!   only after Cairn has it and publishing it again changes nothing.
//! - [`Inbox::process`] records a message's hash in `cairn_inbox` in the
//!   same transaction as the handler's writes, so a redelivered message has
//!   no second effect; [`with_inbox`] makes a subscriber's handler do so in
//!   one line.
//!
//! - A fact Cairn refuses (an invalid fact, or `missing_predecessors`
//!   because its predecessor was never enqueued) does not block the outbox:
//!   the relay sets it aside as an outbox dead letter with its error,
//!   together with every later fact that names it as predecessor, and
//!   publishes the rest in order. [`Outbox::dead_letters`],
//!   [`Outbox::dead_letter_count`], [`Outbox::retry_dead_letter`] and
//!   [`Outbox::discard_dead_letter`] are the operator's tools;
//!   [`RelayHandle::metrics`] counts what the relay did.
//! - [`RelayTask::drain_and_stop`] (or [`RelayHandle::drain_and_stop`])
//!   publishes everything committed, for a bounded time, then stops.
//!
//! Call [`migrate`] at start-up to create both tables (and to upgrade the
//! tables of an earlier version). Both work with any [`CairnDatabase`]:
//! `sqlx::Sqlite` and `sqlx::Postgres`. The `with_fault_injector` methods
//! and the [`fault`] module exist for crash tests; services never use them.
//!
//! # Features
//!
//! - `sqlite` (default): [`CairnDatabase`] for `sqlx::Sqlite`, with sqlx's
//!   SQLite driver (SQLite itself bundled).
//! - `postgres`: [`CairnDatabase`] for `sqlx::Postgres`, with sqlx's
//!   PostgreSQL driver.
//!
//! Each pulls in only its own driver; at least one is needed. A service on
//! PostgreSQL alone depends on
//! `cairn-sql = { version = "…", default-features = false, features = ["postgres"] }`.
//! The SDK's client comes with its default features (the remote client,
//! no embedded server), and tokio with `rt`, `time`, `sync` and `macros`.

#![forbid(unsafe_code)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("cairn-sql needs at least one of its features `sqlite` and `postgres`");

mod backoff;
mod client_publisher;
mod database;
mod dead_letter;
pub mod fault;
mod http_publisher;
mod inbox;
mod inbox_handler;
pub mod limits;
mod outbox;
mod publisher;
mod publishing;
mod relay;
mod relay_handle;
mod relay_metrics;
mod relay_task;
mod triage;

pub use database::{migrate, CairnDatabase};
pub use dead_letter::OutboxDeadLetter;
pub use http_publisher::{HttpClientError, HttpPublisher};
pub use inbox::{Inbox, InboxError, Processed};
pub use inbox_handler::with_inbox;
pub use outbox::{DeadLetterError, Outbox, OutboxError};
pub use publisher::{FactPublisher, PublishError};
pub use relay::{OutboxRelay, RelayError};
pub use relay_handle::{DrainError, DrainOutcome, RelayHandle};
pub use relay_metrics::RelayMetrics;
pub use relay_task::RelayTask;
