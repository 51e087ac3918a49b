//! The validator as the server uses it: registrations compiled or refused
//! with a message naming what is wrong, and facts checked against them,
//! each error named by JSON pointer and rule. Facts are built from JSON
//! text through `cairn_fact`, as the server receives them.

use std::collections::HashMap;
use std::time::Instant;

use cairn_api::limits::SCHEMA_VIOLATIONS_MAX;
use cairn_api::schemas::{SchemaRegistration, Violation};
use cairn_fact::{CanonicalFact, Fact, Hash, FACT_CANONICAL_BYTES_MAX_DEFAULT};
use cairn_schema::validator::CompiledSchema;
use serde_json::{json, Value};

fn registration(schema: Value) -> SchemaRegistration {
    serde_json::from_value(json!({"schema": schema, "compatibility": "none"}))
        .expect("a registration")
}

fn compiled(schema: Value) -> CompiledSchema {
    CompiledSchema::compile(&registration(schema)).expect("the schema compiles")
}

fn fact_with(fields: Value, predecessors: Value) -> Fact {
    let text = serde_json::to_vec(&json!({
        "type": "Shop.Order",
        "fields": fields,
        "predecessors": predecessors
    }))
    .expect("serializable");
    CanonicalFact::from_json(&text, FACT_CANONICAL_BYTES_MAX_DEFAULT)
        .expect("a valid fact")
        .fact
}

fn fact(fields: Value) -> Fact {
    fact_with(fields, json!({}))
}

fn no_types(_: &Hash) -> Option<String> {
    None
}

/// (pointer, rule) of each violation, in the order given.
fn named(violations: &[Violation]) -> Vec<(&str, &str)> {
    violations
        .iter()
        .map(|violation| (violation.pointer.as_str(), violation.rule.as_str()))
        .collect()
}

/// Ten fields, a nested object, an enum and a pattern: the shape of a
/// typical business fact.
fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"},
            "status": {"enum": ["open", "paid", "shipped", "cancelled"]},
            "total": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "minLength": 3, "maxLength": 3},
            "quantity": {"type": "integer", "minimum": 1},
            "customer": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "email": {"type": "string"},
                    "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
                },
                "required": ["name", "country"],
                "additionalProperties": false
            },
            "notes": {"type": "string", "maxLength": 500},
            "gift": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
            "placed_at": {"type": "string"}
        },
        "required": ["order_id", "status", "total", "customer"],
        "additionalProperties": false
    })
}

fn good_order() -> Value {
    json!({
        "order_id": "ORD-123456",
        "status": "paid",
        "total": 99.5,
        "currency": "EUR",
        "quantity": 3,
        "customer": {"name": "Ada", "email": "ada@example.com", "country": "GB"},
        "notes": "leave at the door",
        "gift": false,
        "tags": ["priority", "fragile"],
        "placed_at": "2024-05-01T10:00:00Z"
    })
}

#[test]
fn a_conforming_fact_has_no_violations() {
    let schema = compiled(order_schema());
    assert_eq!(schema.validate(&fact(good_order()), &no_types), vec![]);
    assert!(!schema.needs_predecessor_types());
}

#[test]
fn each_rule_is_reported_with_its_pointer_and_rule() {
    let schema = compiled(order_schema());
    let violations = schema.validate(
        &fact(json!({
            "order_id": "ORD-12",
            "status": "lost",
            "total": "ninety",
            "quantity": 0,
            "customer": {"name": "Ada", "country": "gb", "age": 7},
            "extra": true
        })),
        &no_types,
    );
    assert_eq!(
        named(&violations),
        vec![
            ("/fields/customer/age", "additionalProperties"),
            ("/fields/customer/country", "pattern"),
            ("/fields/extra", "additionalProperties"),
            ("/fields/order_id", "pattern"),
            ("/fields/quantity", "minimum"),
            ("/fields/status", "enum"),
            ("/fields/total", "type"),
        ]
    );
    for violation in &violations {
        assert!(!violation.message.is_empty(), "{violation:?}");
    }
    let missing = schema.validate(&fact(json!({"customer": {"name": "Ada"}})), &no_types);
    assert_eq!(
        named(&missing),
        vec![
            ("/fields/customer/country", "required"),
            ("/fields/order_id", "required"),
            ("/fields/status", "required"),
            ("/fields/total", "required"),
        ]
    );
    assert!(missing[1].message.contains("order_id"), "{:?}", missing[1]);
}

#[test]
fn member_names_are_escaped_in_pointers() {
    let schema =
        compiled(json!({"properties": {"a/b": {"type": "string"}, "c~d": {"type": "string"}}}));
    let violations = schema.validate(&fact(json!({"a/b": 1, "c~d": 2})), &no_types);
    assert_eq!(
        named(&violations),
        vec![("/fields/a~1b", "type"), ("/fields/c~0d", "type")]
    );
}

#[test]
fn cairn_fields_are_left_out_of_validation() {
    let schema = compiled(json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "additionalProperties": false,
        "required": ["a"]
    }));
    let with_cairn_fields = fact(json!({"a": 1, "cairn_version": 2, "cairn_other": "x"}));
    assert_eq!(schema.validate(&with_cairn_fields, &no_types), vec![]);
    // Only at the top: inside a member, `cairn_` is an ordinary name.
    let nested = compiled(json!({
        "properties": {"n": {"type": "object", "additionalProperties": false}}
    }));
    assert_eq!(
        named(&nested.validate(&fact(json!({"n": {"cairn_version": 2}})), &no_types)),
        vec![("/fields/n/cairn_version", "additionalProperties")]
    );
}

#[test]
fn false_schemas_name_their_keyword_and_each_unexpected_member() {
    let schema = compiled(json!({
        "properties": {
            "closed": {"type": "object", "additionalProperties": false},
            "never": false,
            "empty": {"type": "array", "items": false}
        }
    }));
    let violations = schema.validate(
        &fact(json!({"closed": {"a": 1, "b": 2}, "never": 0, "empty": [1]})),
        &no_types,
    );
    assert_eq!(
        named(&violations),
        vec![
            ("/fields/closed/a", "additionalProperties"),
            ("/fields/closed/b", "additionalProperties"),
            ("/fields/empty/0", "items"),
            ("/fields/never", "false"),
        ]
    );
}

#[test]
fn at_most_twenty_violations_in_a_stable_order() {
    let schema = compiled(json!({"additionalProperties": {"type": "string"}}));
    let members: Vec<(String, Value)> = (0..100)
        .map(|index| (format!("m{index:03}"), json!(index)))
        .collect();
    let forward: serde_json::Map<String, Value> = members.iter().cloned().collect();
    let violations = schema.validate(&fact(Value::Object(forward)), &no_types);
    assert_eq!(violations.len(), SCHEMA_VIOLATIONS_MAX);
    let pointers: Vec<&str> = violations
        .iter()
        .map(|violation| violation.pointer.as_str())
        .collect();
    let expected: Vec<String> = (0..20)
        .map(|index| format!("/fields/m{index:03}"))
        .collect();
    assert_eq!(pointers, expected);
    // The client's order of the fields does not change the answer.
    let reversed = format!(
        "{{\"type\":\"T\",\"predecessors\":{{}},\"fields\":{{{}}}}}",
        members
            .iter()
            .rev()
            .map(|(name, value)| format!("\"{name}\":{value}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let reversed_fact =
        CanonicalFact::from_json(reversed.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
            .expect("a fact")
            .fact;
    assert_eq!(reversed_fact.fields[0].0, "m099");
    assert_eq!(schema.validate(&reversed_fact, &no_types), violations);
}

#[test]
fn a_recursive_tree_schema_validates() {
    let schema = compiled(json!({
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
                },
                "required": ["value"]
            }
        },
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}}
    }));
    let tree = json!({"root": {"value": 1, "children": [
        {"value": 2, "children": [{"value": 3}]},
        {"value": 4}
    ]}});
    assert_eq!(schema.validate(&fact(tree), &no_types), vec![]);
    let broken =
        json!({"root": {"value": 1, "children": [{"value": 2, "children": [{"value": "x"}, {}]}]}});
    assert_eq!(
        named(&schema.validate(&fact(broken), &no_types)),
        vec![
            ("/fields/root/children/0/children/0/value", "type"),
            ("/fields/root/children/0/children/1/value", "required"),
        ]
    );
    // The schema's root itself may recur.
    let root_tree = compiled(json!({
        "properties": {"next": {"$ref": "#"}, "n": {"type": "integer"}}
    }));
    let violations = root_tree.validate(&fact(json!({"next": {"next": {"n": "x"}}})), &no_types);
    assert_eq!(named(&violations), vec![("/fields/next/next/n", "type")]);
}

fn refusal(registration_value: Value) -> String {
    let registration: SchemaRegistration =
        serde_json::from_value(registration_value.clone()).expect("a registration");
    match CompiledSchema::compile(&registration) {
        Ok(_) => panic!("{registration_value} was accepted"),
        Err(error) => error.0,
    }
}

fn schema_refusal(schema: Value) -> String {
    refusal(json!({"schema": schema, "compatibility": "none"}))
}

#[test]
fn invalid_schemas_are_refused_with_what_is_wrong() {
    let cases = [
        (
            json!({"type": 5}),
            vec!["not a valid JSON Schema", "#/type"],
        ),
        (
            json!({"properties": {"a": {"minLength": -1}}}),
            vec!["#/properties/a/minLength"],
        ),
        (json!({"required": "a"}), vec!["#/required"]),
        (
            json!({"properties": {"a": {"pattern": "("}}}),
            vec![
                "not a valid JSON Schema",
                "#/properties/a/pattern",
                "not a regular expression",
            ],
        ),
        // Lookaround needs a backtracking engine; Cairn's is linear-time.
        (
            json!({"pattern": "^(?=a)a$"}),
            vec!["not a valid JSON Schema", "no lookaround"],
        ),
        // Compiled, it would take megabytes (and tens of milliseconds).
        (
            json!({"patternProperties": {".{999}": {}}}),
            vec!["#/patternProperties/.{999}", "at most 512 KiB"],
        ),
        (
            json!({"$ref": "#/$defs/missing"}),
            vec!["do not resolve locally", "missing"],
        ),
        (json!("a string"), vec!["an object or a boolean"]),
    ];
    for (schema, expected) in cases {
        let message = schema_refusal(schema.clone());
        for part in expected {
            assert!(
                message.contains(part),
                "{schema}: {message:?} lacks {part:?}"
            );
        }
    }
}

#[test]
fn non_local_references_are_refused_and_never_fetched() {
    for (schema, expected) in [
        (
            json!({"$ref": "https://example.com/order.json"}),
            "$ref \"https://example.com/order.json\"",
        ),
        (
            json!({"properties": {"a": {"$ref": "other.json#"}}}),
            "#/properties/a: $ref \"other.json#\"",
        ),
        (json!({"$ref": "other.json#/$defs/a"}), "other.json"),
        (
            json!({"$dynamicRef": "https://example.com/meta#node"}),
            "$dynamicRef",
        ),
        (
            json!({"items": {"$dynamicRef": "tree.json#node"}}),
            "#/items: $dynamicRef",
        ),
        (json!({"$ref": "file:///etc/passwd"}), "file:///etc/passwd"),
    ] {
        let message = schema_refusal(schema.clone());
        assert!(message.contains(expected), "{schema}: {message}");
        assert!(
            message.contains("nothing is ever fetched"),
            "{schema}: {message}"
        );
    }
    // A reference hidden where the walk does not look (an unknown keyword,
    // reached by a pointer) is refused by the offline compiler.
    let message = schema_refusal(json!({
        "x-hidden": {"$ref": "https://example.com/a.json"},
        "$ref": "#/x-hidden"
    }));
    assert!(message.contains("nothing is ever fetched"), "{message}");
}

#[test]
fn other_drafts_are_refused() {
    let message = schema_refusal(json!({"$schema": "http://json-schema.org/draft-07/schema#"}));
    assert!(message.contains("draft 2020-12"), "{message}");
    compiled(json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}));
}

#[test]
fn reference_cycles_without_progress_are_refused_not_run() {
    for schema in [
        json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
               "properties": {"x": {"$ref": "#/$defs/a"}}}),
    ] {
        let message = schema_refusal(schema.clone());
        assert!(message.contains("never end"), "{schema}: {message}");
        assert!(message.contains("#/$defs/a"), "{schema}: {message}");
    }
}

#[test]
fn huge_schemas_are_refused() {
    let properties: serde_json::Map<String, Value> = (0..3000)
        .map(|index| {
            (
                format!("field_{index}"),
                json!({"type": "string", "maxLength": 10}),
            )
        })
        .collect();
    let message = schema_refusal(json!({"properties": properties}));
    assert!(message.contains("bytes"), "{message}");
}

/// A schema can hold many regular expressions only up to a bound, so that
/// compiling a 60 KiB registration stays cheap (each expression may cost
/// milliseconds). Found by the `schema_registration` fuzz target's
/// hostile inputs: 2,500 patterns such as `.{999}7` took 20 s to compile.
#[test]
fn regular_expressions_are_bounded_in_number_and_size() {
    let pattern_properties = |n_patterns: usize| -> serde_json::Map<String, Value> {
        (0..n_patterns)
            .map(|index| (format!("^.{{300}}{index}$"), json!({"type": "string"})))
            .collect()
    };
    CompiledSchema::compile(&registration(
        json!({"patternProperties": pattern_properties(100)}),
    ))
    .expect("100 patterns compile");
    let message = schema_refusal(json!({"patternProperties": pattern_properties(101)}));
    assert!(
        message.contains("holds 101 regular expressions") && message.contains("100 allowed"),
        "{message}"
    );
    // Schemas people write stay well within the size of one expression.
    for pattern in [
        "^[A-Z]{3}-[0-9]{6}$",
        "^[\\p{L} '-]{1,100}$",
        "^\\w{1,64}$",
        "^.{1,256}$",
        "^\\S+@\\S+\\.\\S+$",
        ".{300}",
    ] {
        compiled(json!({"properties": {"a": {"type": "string", "pattern": pattern}}}));
    }
}

/// Judging a `default` upcast compiles the subschema at its path again:
/// past a budget of regular expressions, further defaults into
/// pattern-heavy subschemas are not judged rather than compiled again.
#[test]
fn defaults_are_judged_within_a_budget_of_regular_expressions() {
    let schema = json!({"properties": {
        "a": {"type": "string", "allOf": [{"pattern": "^o"}, {"pattern": "k$"}]},
        "b": {"type": "string", "maxLength": 2}
    }});
    let with_upcasts = |upcast: Vec<Value>| -> SchemaRegistration {
        serde_json::from_value(
            json!({"schema": schema, "compatibility": "backward", "upcast": upcast}),
        )
        .expect("a registration")
    };
    let bad_default = json!({"op": "default", "path": "/a", "value": "bad"});
    let message = CompiledSchema::compile(&with_upcasts(vec![bad_default.clone()]))
        .expect_err("judged and refused");
    assert!(
        message.0.contains("upcast[0]: the default value \"bad\""),
        "{message}"
    );
    // Fifty defaults of two expressions each spend the budget of 100: the
    // fifty-first into that subschema is not judged, one into a subschema
    // without expressions still is.
    let mut upcast: Vec<Value> = (0..50)
        .map(|_| json!({"op": "default", "path": "/a", "value": "ok"}))
        .collect();
    upcast.push(bad_default);
    CompiledSchema::compile(&with_upcasts(upcast.clone())).expect("the last default is not judged");
    upcast.push(json!({"op": "default", "path": "/b", "value": "too long"}));
    let message = CompiledSchema::compile(&with_upcasts(upcast)).expect_err("judged and refused");
    assert!(message.0.contains("upcast[51]"), "{message}");
}

#[test]
fn invalid_upcasts_are_refused() {
    let schema = json!({"properties": {
        "status": {"enum": ["open", "closed"]},
        "address": {"properties": {"zip": {"type": "string"}}},
        "linked": {"$ref": "#/$defs/s"}
    }, "$defs": {"s": {"type": "string"}}});
    let upcast_refusal = |operation: Value| {
        refusal(
            json!({"schema": schema, "compatibility": "backward", "upcast": [
                {"op": "rename", "from": "/old", "to": "/new"},
                operation
            ]}),
        )
    };
    for (operation, expected) in [
        (
            json!({"op": "rename", "from": "/a", "to": "/x/b"}),
            "upcast[1]: rename keeps a member",
        ),
        (
            json!({"op": "move", "from": "/a", "to": "/a/b"}),
            "upcast[1]: move from \"/a\" into itself",
        ),
        (
            json!({"op": "default", "path": "/cairn_version", "value": 2}),
            "Cairn's own fields",
        ),
        (
            json!({"op": "map", "path": "status", "values": {}}),
            "not a JSON pointer",
        ),
        (
            json!({"op": "default", "path": "/status", "value": "unknown"}),
            "upcast[1]: the default value \"unknown\" for \"/status\"",
        ),
        (
            json!({"op": "default", "path": "/address/zip", "value": 75001}),
            "\"/address/zip\"",
        ),
    ] {
        let message = upcast_refusal(operation.clone());
        assert!(message.contains(expected), "{operation}: {message}");
    }
    // Defaults whose schema is simple to find and that fit, or whose schema
    // is not simple to find (a reference, a path outside `properties`),
    // are accepted.
    for operation in [
        json!({"op": "default", "path": "/status", "value": "open"}),
        json!({"op": "default", "path": "/address/zip", "value": "75001"}),
        json!({"op": "default", "path": "/linked", "value": 5}),
        json!({"op": "default", "path": "/elsewhere/x", "value": 5}),
    ] {
        let registration: SchemaRegistration = serde_json::from_value(json!({
            "schema": schema, "compatibility": "backward", "upcast": [operation]
        }))
        .expect("a registration");
        CompiledSchema::compile(&registration).expect("accepted");
    }
}

#[test]
fn bad_predecessor_declarations_are_refused() {
    for (predecessors, expected) in [
        (
            json!({"customer": {"types": ["Shop.Customer", "bad pattern!"]}}),
            "predecessors.customer.types",
        ),
        (json!({"customer": {"types": [""]}}), "empty"),
        (json!({"": {}}), "predecessors"),
    ] {
        let message =
            refusal(json!({"schema": {}, "compatibility": "none", "predecessors": predecessors}));
        assert!(message.contains(expected), "{predecessors}: {message}");
    }
    let too_many: serde_json::Map<String, Value> = (0..65)
        .map(|index| (format!("role{index}"), json!({})))
        .collect();
    let message = refusal(json!({"schema": {}, "compatibility": "none", "predecessors": too_many}));
    assert!(message.contains("roles"), "{message}");
}

fn hash(seed: u8) -> Hash {
    Hash::of_bytes(&[seed])
}

#[test]
fn predecessors_are_checked_against_the_roles() {
    let registration: SchemaRegistration = serde_json::from_value(json!({
        "schema": {},
        "compatibility": "none",
        "predecessors": {
            "customer": {"types": ["Shop.Customer"], "required": true, "many": false},
            "items": {"types": ["Shop.Item*"]},
            "note": {}
        }
    }))
    .expect("a registration");
    let schema = CompiledSchema::compile(&registration).expect("compiles");
    assert!(schema.needs_predecessor_types());
    let types: HashMap<Hash, String> = [
        (hash(1), "Shop.Customer".to_string()),
        (hash(2), "Shop.ItemLine".to_string()),
        (hash(3), "Shop.Order".to_string()),
    ]
    .into_iter()
    .collect();
    let known = |predecessor: &Hash| types.get(predecessor).cloned();

    let good = fact_with(
        json!({}),
        json!({"customer": hash(1).to_hex(), "items": [hash(2).to_hex(), hash(9).to_hex()]}),
    );
    assert_eq!(schema.validate(&good, &known), vec![]);

    let bad = fact_with(
        json!({}),
        json!({
            "customer": [hash(1).to_hex()],
            "items": [hash(2).to_hex(), hash(3).to_hex()],
            "stranger": hash(1).to_hex()
        }),
    );
    let violations = schema.validate(&bad, &known);
    assert_eq!(
        named(&violations),
        vec![
            ("/predecessors/customer", "many"),
            ("/predecessors/items", "role_type"),
            ("/predecessors/stranger", "role"),
        ]
    );
    assert!(
        violations[1].message.contains(&hash(3).to_hex()),
        "{:?}",
        violations[1]
    );
    assert!(
        violations[1].message.contains("Shop.Order"),
        "{:?}",
        violations[1]
    );

    let missing = fact_with(json!({}), json!({"note": hash(3).to_hex()}));
    assert_eq!(
        named(&schema.validate(&missing, &known)),
        vec![("/predecessors/customer", "required")]
    );

    // A type nobody knows is not judged.
    let unknown = fact_with(json!({}), json!({"customer": hash(7).to_hex()}));
    assert_eq!(schema.validate(&unknown, &known), vec![]);
    // A role of the wrong type is judged only when the type is known.
    let wrong = fact_with(json!({}), json!({"customer": hash(3).to_hex()}));
    assert_eq!(
        named(&schema.validate(&wrong, &known)),
        vec![("/predecessors/customer", "role_type")]
    );
    assert_eq!(schema.validate(&wrong, &no_types), vec![]);
}

#[test]
fn without_declared_roles_any_predecessor_is_allowed_and_an_empty_map_allows_none() {
    let open = compiled(json!({}));
    let with_predecessor = fact_with(json!({}), json!({"anything": hash(1).to_hex()}));
    assert_eq!(open.validate(&with_predecessor, &no_types), vec![]);
    let closed: SchemaRegistration =
        serde_json::from_value(json!({"schema": {}, "compatibility": "none", "predecessors": {}}))
            .expect("a registration");
    let closed = CompiledSchema::compile(&closed).expect("compiles");
    assert!(!closed.needs_predecessor_types());
    assert_eq!(
        named(&closed.validate(&with_predecessor, &no_types)),
        vec![("/predecessors/anything", "role")]
    );
}

/// `fields` converted to `serde_json`, the way the validator does not go
/// (it reads the parsed fields in place): kept to measure the difference.
fn converted_fields(fields: &[(String, cairn_fact::Value)]) -> Value {
    fn converted(value: &cairn_fact::Value) -> Value {
        match value {
            cairn_fact::Value::Null => Value::Null,
            cairn_fact::Value::Bool(boolean) => Value::Bool(*boolean),
            cairn_fact::Value::Number(number) => json!(number),
            cairn_fact::Value::String(text) => Value::String(text.clone()),
            cairn_fact::Value::Array(items) => Value::Array(items.iter().map(converted).collect()),
            cairn_fact::Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(name, member)| (name.clone(), converted(member)))
                    .collect(),
            ),
        }
    }
    Value::Object(
        fields
            .iter()
            .filter(|(name, _)| !name.starts_with("cairn_"))
            .map(|(name, value)| (name.clone(), converted(value)))
            .collect(),
    )
}

/// The cost of `validate` per conforming fact for [`order_schema`], against
/// the other ways to get the instance: converting the parsed fields to
/// `serde_json`, or parsing the canonical bytes again. Run with
/// `cargo test -p cairn-schema --release --test validation -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test: run it by hand"]
fn measure_validation_cost() {
    let rounds: u32 = 200_000;
    let schema = compiled(order_schema());
    let canonical = CanonicalFact::from_json(
        &serde_json::to_vec(
            &json!({"type": "Shop.Order", "fields": good_order(), "predecessors": {}}),
        )
        .expect("serializable"),
        FACT_CANONICAL_BYTES_MAX_DEFAULT,
    )
    .expect("a fact");
    let bare_validator = jsonschema::draft202012::options()
        .build(&order_schema())
        .expect("compiles");
    let per_fact_ns =
        |started: Instant, rounds: u32| started.elapsed().as_nanos() as f64 / f64::from(rounds);

    let started = Instant::now();
    for _ in 0..rounds {
        assert!(schema.validate(&canonical.fact, &no_types).is_empty());
    }
    println!(
        "validate, in place: {:.0} ns per fact",
        per_fact_ns(started, rounds)
    );

    let started = Instant::now();
    for _ in 0..rounds {
        assert!(bare_validator.is_valid(&converted_fields(&canonical.fact.fields)));
    }
    println!(
        "convert to serde_json, then validate: {:.0} ns per fact",
        per_fact_ns(started, rounds)
    );

    let started = Instant::now();
    for _ in 0..rounds {
        let parsed: Value = serde_json::from_slice(&canonical.canonical).expect("JSON");
        assert!(bare_validator.is_valid(&parsed["fields"]));
    }
    println!(
        "parse the canonical bytes, then validate: {:.0} ns per fact",
        per_fact_ns(started, rounds)
    );

    let instance = good_order();
    let started = Instant::now();
    for _ in 0..rounds {
        assert!(bare_validator.is_valid(&instance));
    }
    println!(
        "validate a ready serde_json value (reference): {:.0} ns per fact",
        per_fact_ns(started, rounds)
    );

    let invalid = fact(json!({"order_id": "x", "status": "lost", "customer": {}}));
    let started = Instant::now();
    for _ in 0..rounds / 10 {
        assert_eq!(schema.validate(&invalid, &no_types).len(), 5);
    }
    println!(
        "validate a fact with 5 violations: {:.0} ns per fact",
        per_fact_ns(started, rounds / 10)
    );
}
