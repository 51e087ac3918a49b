//! Check of the schema registration path (`PUT
//! /v1/schemas/{type}/{version}` bodies), step by step as the server takes
//! it: strict JSON, the wire type, compilation, the compatibility judgement
//! against earlier versions, then what a registered schema is used for —
//! validating written facts and upcasting stored ones for readers. A
//! schema comes from the network, so none of these steps may panic or
//! stall, and each answer stays within its documented limit.

use std::sync::OnceLock;

use cairn_api::limits::{
    SCHEMA_BODY_BYTES_MAX, SCHEMA_BREAKING_CHANGES_MAX, SCHEMA_VIOLATIONS_MAX,
};
use cairn_api::schemas::{upcast_fields, Compatibility, SchemaRegistration, UpcastOperation};
use cairn_fact::{CanonicalFact, Fact, Hash, FACT_CANONICAL_BYTES_MAX_DEFAULT};
use cairn_schema::compatibility;
use cairn_schema::validator::CompiledSchema;
use cairn_server::limits::REQUEST_JSON_DEPTH_MAX;
use serde_json::{json, Map, Value};

/// The type every fixed fact and schema fact of this check is written as.
const FACT_TYPE: &str = "Shop.Order";

/// Parses `data` as the server parses a registration body and, when it is
/// accepted and compiles, runs every later use of a schema on it; panics
/// when a step panics or an answer breaks its limit or is not
/// deterministic.
pub fn check_schema_registration(data: &[u8]) {
    // The server refuses larger bodies before parsing them.
    if data.len() > SCHEMA_BODY_BYTES_MAX {
        return;
    }
    if cairn_fact::parse_json(data, REQUEST_JSON_DEPTH_MAX).is_err() {
        return;
    }
    let Ok(registration) = cairn_api::parse_body::<SchemaRegistration>(data) else {
        return;
    };
    let Ok(compiled) = CompiledSchema::compile(&registration) else {
        return;
    };
    check_stored_registration_loads(&registration);
    check_validation(&registration, &compiled);
    check_compatibility(&registration);
    check_upcasts(&registration);
}

/// A registration the server can store as a `Cairn.Schema` fact compiles
/// again from that fact's canonical bytes, as the server reads it back
/// when it loads its registry: otherwise an accepted schema would break
/// every later load.
fn check_stored_registration_loads(registration: &SchemaRegistration) {
    let schema_fact = json!({
        "type": "Cairn.Schema",
        "fields": {"type": FACT_TYPE, "version": 2, "registration": registration},
        "predecessors": {},
    });
    let bytes = serde_json::to_vec(&schema_fact).expect("a registration serializes to JSON");
    let Ok(stored) = CanonicalFact::from_json(&bytes, FACT_CANONICAL_BYTES_MAX_DEFAULT) else {
        // The server refuses such a registration as `invalid_schema`.
        return;
    };
    let stored_value: Value =
        serde_json::from_slice(&stored.canonical).expect("canonical bytes are JSON");
    let reloaded: SchemaRegistration =
        serde_json::from_value(stored_value["fields"]["registration"].clone())
            .expect("a stored registration parses back");
    if let Err(error) = CompiledSchema::compile(&reloaded) {
        panic!("a stored registration no longer compiles once read back: {error}");
    }
}

/// Validates the fixed facts, and each of them after the registration's
/// upcasts: at most [`SCHEMA_VIOLATIONS_MAX`] violations, and the same
/// answer twice.
fn check_validation(registration: &SchemaRegistration, compiled: &CompiledSchema) {
    let predecessor_type =
        |hash: &Hash| (*hash == known_predecessor_hash()).then(|| "Shop.Customer".to_string());
    let upcast_facts = fixed_fields()
        .into_iter()
        .filter_map(|mut fields| {
            upcast_fields(&mut fields, 1, 2, |_| registration.upcast.as_slice()).ok()?;
            fact_of(&fields, &json!({}))
        })
        .collect::<Vec<_>>();
    for fact in fixed_facts().iter().chain(&upcast_facts) {
        let violations = compiled.validate(fact, &predecessor_type);
        assert!(
            violations.len() <= SCHEMA_VIOLATIONS_MAX,
            "{} violations, more than {SCHEMA_VIOLATIONS_MAX}",
            violations.len()
        );
        let again = compiled.validate(fact, &predecessor_type);
        assert_eq!(violations, again, "validating the same fact twice differs");
    }
}

/// Judges the registration as version 2 after a fixed version 1 (in its
/// own mode and in `full`, so that the comparison always runs), and a fixed
/// version 2 after it as version 1 (in every direction): each judgement
/// ends, and answers at most [`SCHEMA_BREAKING_CHANGES_MAX`] changes.
fn check_compatibility(registration: &SchemaRegistration) {
    let fixed_version_1 = fixed_version_1();
    let fixed_version_2 = fixed_version_2();
    let mut as_full = registration.clone();
    as_full.compatibility = Compatibility::Full;
    for new in [registration, &as_full] {
        let breaking = compatibility::check(2, new, &[(1, &fixed_version_1)]);
        assert_breaking_within_limit(breaking.len());
    }
    let breaking = compatibility::check(2, &fixed_version_2, &[(1, registration)]);
    assert_breaking_within_limit(breaking.len());
    // Transitively, both as an earlier version and as the new one.
    let mut as_transitive = fixed_version_2.clone();
    as_transitive.compatibility = Compatibility::FullTransitive;
    let breaking = compatibility::check(
        3,
        &as_transitive,
        &[(1, &fixed_version_1), (2, registration)],
    );
    assert_breaking_within_limit(breaking.len());
}

fn assert_breaking_within_limit(n_breaking: usize) {
    assert!(
        n_breaking <= SCHEMA_BREAKING_CHANGES_MAX,
        "{n_breaking} breaking changes, more than {SCHEMA_BREAKING_CHANGES_MAX}"
    );
}

/// Applies the registration's upcast operations to the fixed `fields`
/// objects, one by one and as a reader's chain: errors are answers, but
/// nothing panics, and the chain sets the version field.
fn check_upcasts(registration: &SchemaRegistration) {
    if registration.upcast.is_empty() {
        return;
    }
    for fields in fixed_fields() {
        let mut one_by_one = fields.clone();
        for operation in &registration.upcast {
            let _ = operation.apply(&mut one_by_one);
        }
        let mut chained = fields;
        if upcast_fields(&mut chained, 1, 3, |version| match version {
            2 | 3 => registration.upcast.as_slice(),
            _ => &[] as &[UpcastOperation],
        })
        .is_ok()
        {
            assert_eq!(
                chained.get(cairn_api::schemas::VERSION_FIELD),
                Some(&Value::from(3)),
                "an upcast chain names the version it reads as"
            );
        }
    }
}

/// The `fields` objects the check validates and upcasts: empty, a typical
/// order, wrong types and extra members, deep nesting, a recursive tree,
/// Cairn's own fields.
fn fixed_fields() -> Vec<Map<String, Value>> {
    [
        json!({}),
        json!({
            "order_id": "ORD-000042",
            "status": "paid",
            "total": 12.5,
            "currency": "EUR",
            "lines": [{"sku": "A-1", "quantity": 2}, {"sku": "B-7", "quantity": 1}],
            "customer": {"name": "Ada", "email": "ada@example.org"},
        }),
        json!({
            "order_id": 42,
            "status": "lost",
            "total": "twelve",
            "lines": {"sku": null},
            "unexpected": [true, false, null, -1, 1e300, "", {}],
            "a": "old",
            "b": {"c": "d"},
        }),
        json!({"a": {"b": {"c": {"d": {"e": {"f": [[[[[["deep"]]]]]]}}}}}}),
        json!({
            "value": 1,
            "children": [
                {"value": 2, "children": []},
                {"value": 3, "children": [{"value": 4, "children": []}]},
            ],
        }),
        json!({"cairn_version": 2, "cairn_note": "ignored", "name": "x"}),
    ]
    .into_iter()
    .map(|value| match value {
        Value::Object(fields) => fields,
        _ => unreachable!("every fixed fields value is an object"),
    })
    .collect()
}

/// The fixed facts, built once: each fixed `fields` object without
/// predecessors, and two with predecessors (a known type, an unknown one,
/// several hashes in one role).
fn fixed_facts() -> &'static [Fact] {
    static FACTS: OnceLock<Vec<Fact>> = OnceLock::new();
    FACTS.get_or_init(|| {
        let known = known_predecessor_hash().to_hex();
        let unknown = Hash::of_bytes(b"an unknown predecessor").to_hex();
        let mut facts: Vec<Fact> = fixed_fields()
            .iter()
            .map(|fields| fact_of(fields, &json!({})).expect("a fixed fact is valid"))
            .collect();
        let order = &fixed_fields()[1];
        for predecessors in [
            json!({"customer": known, "previous": unknown}),
            json!({"customer": [known, unknown], "r": [unknown]}),
        ] {
            facts.push(fact_of(order, &predecessors).expect("a fixed fact is valid"));
        }
        facts
    })
}

/// The hash whose type the check's predecessor lookup knows.
fn known_predecessor_hash() -> Hash {
    Hash::of_bytes(b"a known predecessor")
}

/// A fact of [`FACT_TYPE`] with these fields and predecessors, built
/// through `cairn_fact` as the server receives it; `None` if it is not a
/// valid fact.
fn fact_of(fields: &Map<String, Value>, predecessors: &Value) -> Option<Fact> {
    let text = serde_json::to_vec(&json!({
        "type": FACT_TYPE,
        "fields": fields,
        "predecessors": predecessors,
    }))
    .expect("a fact serializes to JSON");
    CanonicalFact::from_json(&text, FACT_CANONICAL_BYTES_MAX_DEFAULT)
        .ok()
        .map(|canonical| canonical.fact)
}

/// A fixed version 1: an order with nested lines, a recursive part
/// through `$defs`, required members and a closed customer object.
fn fixed_version_1() -> SchemaRegistration {
    registration(json!({
        "schema": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"},
                "status": {"enum": ["open", "paid", "shipped"]},
                "total": {"type": "number", "minimum": 0},
                "a": {"type": "string"},
                "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "maxItems": 100},
                "customer": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "additionalProperties": false,
                },
                "tree": {"$ref": "#/$defs/node"},
            },
            "required": ["order_id"],
            "$defs": {
                "line": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1},
                    },
                    "required": ["sku"],
                },
                "node": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "integer"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    },
                },
            },
        },
        "compatibility": "none",
    }))
}

/// A fixed version 2 in `full` mode with one upcast of each kind.
fn fixed_version_2() -> SchemaRegistration {
    registration(json!({
        "schema": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "state": {"enum": ["open", "paid", "shipped", "cancelled"]},
                "total": {"type": "number"},
                "currency": {"type": "string", "default": "EUR"},
                "b": {"type": "string"},
                "moved": {"type": "object", "properties": {"a": {}}},
                "tree": {"$ref": "#/$defs/node"},
            },
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    },
                },
            },
        },
        "compatibility": "full",
        "upcast": [
            {"op": "rename", "from": "/status", "to": "/state"},
            {"op": "default", "path": "/currency", "value": "EUR"},
            {"op": "move", "from": "/a", "to": "/moved/a"},
            {"op": "map", "path": "/state", "values": {"shipped": "sent"}},
        ],
        "predecessors": {"customer": {"types": ["Shop.*"], "required": false, "many": false}},
    }))
}

fn registration(value: Value) -> SchemaRegistration {
    serde_json::from_value(value).expect("a fixed registration parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed registrations are ones the server accepts, so the
    /// judgements against them compare real schemas.
    #[test]
    fn the_fixed_registrations_compile() {
        for fixed in [fixed_version_1(), fixed_version_2()] {
            CompiledSchema::compile(&fixed).expect("a fixed registration compiles");
        }
        assert_eq!(fixed_facts().len(), fixed_fields().len() + 2);
    }

    /// Every seed kept for this target gets past parsing and compiling, so
    /// the replay runs the later steps on it, not only the parsers.
    #[test]
    fn every_seed_compiles() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/schema_registration");
        let mut n_seeds = 0;
        for entry in std::fs::read_dir(&folder).expect("the seeds folder exists") {
            let path = entry.expect("a readable folder entry").path();
            let is_seed = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("seed-"));
            if !is_seed {
                continue;
            }
            let data = std::fs::read(&path).expect("a readable seed");
            cairn_fact::parse_json(&data, REQUEST_JSON_DEPTH_MAX).expect("a seed is strict JSON");
            let registration = cairn_api::parse_body::<SchemaRegistration>(&data)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            CompiledSchema::compile(&registration)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            n_seeds += 1;
        }
        assert!(n_seeds >= 2, "only {n_seeds} seeds in {}", folder.display());
    }
}
