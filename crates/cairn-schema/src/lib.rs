//! Schemas per fact type and version (`docs/api-v1.md`, "Schemas and
//! upcasting"), pure: no I/O, no async.
//!
//! - [`validator`]: a registration compiled once (JSON Schema draft
//!   2020-12 of `fields`, only local references, nothing fetched; the
//!   predecessor roles it allows), and the check of a fact against it,
//!   naming each error by JSON pointer and rule.
//! - [`compatibility`]: the rules by which a new version may follow the
//!   earlier ones (Confluent Schema Registry's rules for JSON Schema,
//!   open and closed content models), judged after the upcast a version
//!   declares.
//!
//! The server keeps the registry (schemas are stored as `Cairn.Schema`
//! facts) and calls these; the upcast operations themselves are part of
//! the wire protocol (`cairn_api::schemas`), since the SDK applies them
//! too.

#![forbid(unsafe_code)]

pub mod compatibility;
pub mod validator;
