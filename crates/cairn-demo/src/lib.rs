//! `cairn demo`: a coffee shop built on Cairn, run under faults, judged by
//! its facts.
//!
//! Six services — [`services::orders`], [`services::payments`] (with a
//! deliberately flaky [`provider`]), [`services::stock`], two cooks of
//! [`services::kitchen`] and [`services::notifications`] — each run as a
//! separate OS process of the `cairn` binary (`cairn demo-service NAME`),
//! each written only against the public SDK: typed facts and tombstones,
//! subscriptions with retries and dead letters, the outbox and inbox of
//! `cairn-sql` in the service's own SQLite file, resilient calls,
//! request/reply, a saga ([`services::fulfilment`]), claims (the cooks),
//! a durable timer (stock's restock), schema versions with an upcast
//! ([`schemas`]), and an identity of its own with only the permissions it
//! needs.
//!
//! [`run::run`] starts Cairn (`cairn serve --auth`, a child process it can
//! `kill -9`) and the services, drives customers at a steady rate
//! ([`customers`]), injects the faults of a seeded [`schedule`], prints a
//! live progress line, then drains and checks the business
//! [`invariants`] from the facts alone. Nothing here depends on
//! `cairn-server` or `cairn-store`.

#![forbid(unsafe_code)]

pub mod customers;
pub mod error;
pub mod facts;
pub mod invariants;
pub mod limits;
pub mod observer;
pub mod processes;
pub mod provider;
pub mod random;
pub mod run;
pub mod schedule;
pub mod schemas;
pub mod services;

pub use error::DemoError;
pub use run::{run, DemoOptions};
