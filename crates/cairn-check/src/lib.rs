//! The reliability checker behind `cairn check`: it drives a real Cairn
//! deployment with a seeded mixed workload while injecting faults, records
//! every operation and its outcome, and verifies the history with an oracle.
//!
//! Unlike the other crates of the workspace, this one may use `unsafe`:
//! `libc` calls that std does not offer (SIGSTOP, SIGCONT and SIGTERM to
//! the server processes it owns, `geteuid`, and in a test raising
//! `RLIMIT_NOFILE`). Each
//! block says why it is sound in a `// SAFETY:` comment, which the
//! workspace lint `clippy::undocumented_unsafe_blocks` requires.

pub mod api;
pub mod claims;
pub mod coordination;
pub mod delivery_ledger;
pub mod deployment;
pub mod disk;
pub mod error;
pub mod fact_table;
pub mod fences;
pub mod history;
pub mod history_file;
pub mod identities;
pub mod nemesis;
pub mod options;
pub mod oracle;
pub mod postgres;
pub mod proxy;
pub mod replicated_postgres;
pub mod report;
pub mod ring;
pub mod run;
pub mod server;
pub mod timers;
pub mod workload;

pub use error::CheckError;
pub use options::{CheckOptions, FaultKind, Target, Topology};
pub use report::Report;
pub use run::run;
