//! The checks behind Cairn's fuzz targets, one per parser that reads bytes
//! from the network. Each check takes arbitrary bytes, feeds them to a
//! parser and panics when an invariant breaks (or the parser panics).
//!
//! They live in this small workspace crate, not in the fuzz crate, because
//! two runners share them: the cargo-fuzz targets in `fuzz/` (nightly
//! features, outside the workspace) call them on generated inputs, and
//! `tests/regressions.rs` replays every kept input of `fuzz/regressions/`
//! through them on stable as part of `cargo test --workspace`.

#![forbid(unsafe_code)]

mod access;
mod canonical_json;
mod collaboration;
mod fact_batch;
mod fact_json;
mod hash_hex;
mod lease_token;
mod query_params;
mod schema_registration;
mod source_page;
mod stream_frame;
mod subscription_definition;
mod subscription_request_body;

pub use access::check_access;
pub use canonical_json::check_canonical_json;
pub use collaboration::check_collaboration;
pub use fact_batch::check_fact_batch;
pub use fact_json::check_fact_json;
pub use hash_hex::check_hash_hex;
pub use lease_token::check_lease_token;
pub use query_params::check_query_params;
pub use schema_registration::check_schema_registration;
pub use source_page::check_source_page;
pub use stream_frame::check_stream_frame;
pub use subscription_definition::check_subscription_definition;
pub use subscription_request_body::check_subscription_request_body;

/// A check: takes arbitrary bytes and panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every fuzz target by name with its check. The name is the target's
/// binary in `fuzz/Cargo.toml` and its folder in `fuzz/regressions/`.
pub const TARGETS: [(&str, Check); 13] = [
    ("access", check_access),
    ("canonical_json", check_canonical_json),
    ("collaboration", check_collaboration),
    ("fact_batch", check_fact_batch),
    ("fact_json", check_fact_json),
    ("hash_hex", check_hash_hex),
    ("lease_token", check_lease_token),
    ("query_params", check_query_params),
    ("schema_registration", check_schema_registration),
    ("source_page", check_source_page),
    ("stream_frame", check_stream_frame),
    ("subscription_definition", check_subscription_definition),
    ("subscription_request_body", check_subscription_request_body),
];
