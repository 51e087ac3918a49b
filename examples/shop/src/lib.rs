//! Cairn's shop example: two services, `orders` and `billing`, that run as
//! separate processes and talk only through Cairn (facts and durable
//! subscriptions) plus one resilient HTTP call.
//!
//! - `orders` ([`orders`]) takes orders over HTTP. Each order is one local
//!   SQLite transaction that inserts the order row and enqueues a
//!   `Shop.OrderPlaced` fact in the transactional outbox; a relay publishes
//!   the outbox to Cairn. It learns the payment outcome from
//!   `Shop.PaymentSucceeded` / `Shop.PaymentFailed` facts through an
//!   idempotent inbox.
//! - `billing` ([`billing`]) consumes `Shop.OrderPlaced` from the durable
//!   subscription `billing`, charges a fake card gateway inside its own
//!   inbox transaction, publishes `Shop.PaymentSucceeded` through its own
//!   outbox, and tells `orders` about the payment with a resilient HTTP
//!   call keyed by the payment fact's hash. Declines are retried by Cairn
//!   with backoff and end in the subscription's dead letters.
//!
//! The binaries in `src/bin/` only parse their command line; everything
//! else lives here so that it reads as a library of small parts.

#![forbid(unsafe_code)]

pub mod billing;
pub mod error;
pub mod facts;
pub mod limits;
pub mod orders;
pub mod process;
pub mod sqlite;
pub mod subscriptions;
