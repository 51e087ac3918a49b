//! Cairn's fact model: the strict JSON parser, the RFC 8785 canonical form,
//! fact validation and the BLAKE3 hash that gives every fact its identity.
//!
//! This crate is pure: no I/O, no async, and only `blake3` and `thiserror`
//! as dependencies (plus `serde`, behind the optional `serde` feature, for
//! [`Hash`] as a string), so that every other crate (and every client that wants
//! to compute a fact hash offline) can rely on it and test it in isolation.
//!
//! The usual entry point is [`CanonicalFact::from_json`]: it parses a fact,
//! validates it against the API contract, and returns its canonical bytes
//! and hash. [`CanonicalFact::verify_stored`] checks facts read back from
//! storage.

#![forbid(unsafe_code)]

mod canonical;
mod canonical_fact;
mod canonical_number;
mod excerpt;
mod fact;
mod fact_error;
mod hash;
#[cfg(feature = "serde")]
mod hash_serde;
mod json_error;
mod limits;
mod parse;
mod predecessors;
mod scan;
mod value;

pub use canonical::{to_canonical, write_canonical};
pub use canonical_fact::{canonical_type, CanonicalFact};
pub use fact::{validate_role, validate_type_name, Fact};
pub use fact_error::FactError;
pub use hash::{Hash, HashParseError};
pub use json_error::JsonError;
pub use limits::{
    FACT_CANONICAL_BYTES_MAX_DEFAULT, INTEGER_LITERAL_MAGNITUDE_MAX, JSON_DEPTH_MAX,
    ROLE_NAME_CHARS_MAX, TYPE_NAME_CHARS_MAX,
};
pub use parse::parse_json;
pub use predecessors::PredecessorRef;
pub use value::Value;
