//! Replication between autonomous Cairn stores ("Replication links" in
//! `docs/api-v1.md`, formats in `docs/design.md`).
//!
//! A fact's identity is its content hash, the same on every store, and
//! facts never change, so stores exchange facts in any order, any number
//! of times, and converge: a grow-only set, closed under predecessors.
//! This crate holds what every replicating party shares — the server's
//! links, the SDK's offline sync and the simulation that checks
//! convergence — independent of where facts come from and go to:
//! a `Source` (another store's log) and a `Sink` (this store, or another
//! deployment written over HTTP by the sender: `HttpSink`).

#![forbid(unsafe_code)]

mod closure;
pub mod diff;
mod follower;
mod http;
mod http_sink;
mod http_source;
pub mod limits;
mod progress;
mod sink;
mod source;

pub use cairn_api::links::{Anchor, Bookmark};
pub use closure::predecessors_first;
pub use diff::{diff, DiffError, DiffOptions, Difference, DigestSource, HttpDigestSource, Side};
pub use follower::{store_with_predecessors, Follower, FollowerOptions, LinkError, StepOutcome};
pub use http_sink::HttpSink;
pub use http_source::{
    parse_fact_answer, parse_log_page, parse_source_url, source_text, ApiAnswerResult, ApiReader,
    ApiSource, HttpSource,
};
pub use progress::Progress;
/// The URL of a source, and a certificate authority to trust for it.
pub use reqwest::{Certificate, Url};
pub use sink::{ProgressKeeper, Sink, SinkError};
pub use source::{Source, SourceEntry, SourceError, SourcePage};
