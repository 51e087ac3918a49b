//! The compatibility rules between schema versions (`docs/api-v1.md`,
//! "Schema compatibility"): whether a new version may follow the earlier
//! ones under its declared [`Compatibility`], and if not, every breaking
//! change, each named by a rule of Confluent Schema Registry's table for
//! JSON Schema (open, closed and partially open content models).
//!
//! One question underlies every mode: can a reader holding one schema read
//! every value another schema (the writer's) allows? *Backward* asks it
//! with the new version as reader and an earlier version as writer, after
//! the upcasts that lead from that version to the new one, because that is
//! what new readers are given; *forward* asks it with the new version as
//! writer and the earlier one as reader (facts are never downcast, so no
//! upcast applies); *full* asks both.
//!
//! - [`rules`]: the catalogue of differences and their judgement.
//! - `document`: local references and `$ref` merging in one schema.
//! - `comparison`, `objects`, `arrays`: the side-by-side walk.
//! - `upcast`: the schema of older facts after an upcast.
//!
//! All of it is pure: no I/O, and every walk is bounded (each pair of
//! locations is judged once, and a comparison judges at most a fixed
//! number of pairs).

mod arrays;
mod comparison;
mod document;
mod objects;
pub mod rules;
mod upcast;

use cairn_api::limits::SCHEMA_BREAKING_CHANGES_MAX;
use cairn_api::schemas::{BreakingChange, Compatibility, SchemaRegistration};
use serde_json::Value;

pub use comparison::Difference;
pub use rules::Rule;
pub use upcast::upcast_schema;

use comparison::{Comparison, Side};
use document::Document;

/// Every difference between a writer's schema and a reader's, compatible
/// ones included, with paths into the reader's schema: what a reader
/// holding `reader` meets in values `writer` allows.
pub fn differences(writer: &Value, reader: &Value) -> Vec<Difference> {
    compare(writer, reader, Side::Reader)
}

fn compare(writer: &Value, reader: &Value, new_side: Side) -> Vec<Difference> {
    let writer = Document::new(writer);
    let reader = Document::new(reader);
    Comparison::new(&writer, &reader, new_side).run()
}

/// Judges `new` (registered as `new_version`) against the earlier versions
/// (oldest first, each with its number and registration), by
/// `new.compatibility`: against the latest only, or every one for the
/// `_transitive` modes. Backward is judged on the older schema after the
/// upcasts of every version after it up to and including `new` (see
/// [`upcast_schema`]). Returns every breaking change (at most
/// [`SCHEMA_BREAKING_CHANGES_MAX`]), empty if compatible.
pub fn check(
    new_version: u32,
    new: &SchemaRegistration,
    earlier: &[(u32, &SchemaRegistration)],
) -> Vec<BreakingChange> {
    let mode = new.compatibility;
    if mode == Compatibility::None {
        return Vec::new();
    }
    let judged: &[(u32, &SchemaRegistration)] = if mode.is_transitive() {
        earlier
    } else {
        match earlier.last() {
            Some(_) => &earlier[earlier.len() - 1..],
            None => &[],
        }
    };
    let mut breaking = Vec::new();
    for (version, registration) in judged.iter().rev() {
        if mode.is_backward() {
            let read_as_new = upcast_chain(*version, registration, new, earlier);
            let found = compare(&read_as_new, &new.schema, Side::Reader);
            push_breaking(&mut breaking, found, *version, new_version, "backward");
        }
        if mode.is_forward() {
            let found = compare(&new.schema, &registration.schema, Side::Writer);
            push_breaking(&mut breaking, found, *version, new_version, "forward");
        }
        if breaking.len() >= SCHEMA_BREAKING_CHANGES_MAX {
            break;
        }
    }
    breaking.truncate(SCHEMA_BREAKING_CHANGES_MAX);
    breaking
}

/// The schema of `version`'s facts as read at the new version: the upcasts
/// of every later earlier version, then the new one's, in order.
fn upcast_chain(
    version: u32,
    registration: &SchemaRegistration,
    new: &SchemaRegistration,
    earlier: &[(u32, &SchemaRegistration)],
) -> Value {
    let later = earlier
        .iter()
        .filter(|(later_version, _)| *later_version > version)
        .map(|(_, later)| *later)
        .chain(std::iter::once(new));
    let mut schema = registration.schema.clone();
    for step in later {
        if !step.upcast.is_empty() {
            schema = upcast_schema(&schema, &step.upcast, &step.schema);
        }
    }
    schema
}

fn push_breaking(
    breaking: &mut Vec<BreakingChange>,
    found: Vec<Difference>,
    version: u32,
    new_version: u32,
    direction: &str,
) {
    for difference in found.into_iter().filter(|found| found.rule.is_breaking()) {
        let (writer_version, reader_version) = match direction {
            "backward" => (version, new_version),
            _ => (new_version, version),
        };
        let place = if difference.path.is_empty() {
            "the root".to_string()
        } else {
            difference.path.clone()
        };
        breaking.push(BreakingChange {
            version,
            direction: direction.to_string(),
            rule: difference.rule.name().to_string(),
            message: format!(
                "Reader version {reader_version}, writer version {writer_version}, at {place}: {}",
                difference.rule.explanation()
            ),
            path: difference.path,
        });
    }
}
