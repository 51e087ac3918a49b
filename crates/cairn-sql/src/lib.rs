//! Transactional outbox and idempotent inbox for a service's own SQL
//! database (SQLite by default, PostgreSQL too), built on sqlx.
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
//!   no second effect.
//!
//! Call [`migrate`] at start-up to create both tables. Both work with any
//! [`CairnDatabase`]: `sqlx::Sqlite` and `sqlx::Postgres`. The
//! `with_fault_injector` methods and the [`fault`] module exist for crash
//! tests; services never use them.

#![forbid(unsafe_code)]

mod backoff;
mod client_publisher;
mod database;
pub mod fault;
mod http_publisher;
mod inbox;
pub mod limits;
mod outbox;
mod publisher;
mod relay;

pub use database::{migrate, CairnDatabase};
pub use http_publisher::{HttpClientError, HttpPublisher};
pub use inbox::{Inbox, InboxError, Processed};
pub use outbox::{Outbox, OutboxError};
pub use publisher::{FactPublisher, PublishError};
pub use relay::{OutboxRelay, RelayError, RelayHandle};
