//! The compatibility rule table, executed: for every rule of
//! `cairn_schema::compatibility::Rule`, an older and a newer schema that
//! exhibit it, and the breaking changes `check` must answer in each mode
//! (backward, forward, full, none). Then the cases the table cannot show
//! in one row: a transitive mode, upcasts (rename, default, map, and a
//! chain of them), recursive schemas, paths, the comparison's limit, and
//! the user-facing table in `docs/api-v1.md` ("Compatibility between versions")
//! naming every rule.

use std::collections::BTreeSet;

use cairn_api::schemas::{BreakingChange, Compatibility, SchemaRegistration, UpcastOperation};
use cairn_schema::compatibility::{check, differences, Rule};
use serde_json::{json, Value};

/// One row: the rule the change from `old` to `new` exhibits (when read
/// backward: `new` reads what `old` wrote), and the breaking rules `check`
/// must name in backward and in forward mode. Full must name both; none,
/// nothing.
struct Row {
    rule: &'static str,
    old: Value,
    new: Value,
    backward: &'static [&'static str],
    forward: &'static [&'static str],
}

fn row(
    rule: &'static str,
    old: Value,
    new: Value,
    backward: &'static [&'static str],
    forward: &'static [&'static str],
) -> Row {
    Row {
        rule,
        old,
        new,
        backward,
        forward,
    }
}

fn registration(schema: Value, compatibility: Compatibility) -> SchemaRegistration {
    SchemaRegistration {
        schema,
        compatibility,
        upcast: Vec::new(),
        predecessors: None,
    }
}

fn with_upcast(mut registration: SchemaRegistration, upcast: Value) -> SchemaRegistration {
    registration.upcast = serde_json::from_value::<Vec<UpcastOperation>>(upcast).expect("upcast");
    registration
}

fn rule_names(changes: &[BreakingChange]) -> BTreeSet<String> {
    changes.iter().map(|change| change.rule.clone()).collect()
}

fn names(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|rule| rule.to_string()).collect()
}

fn string(extra: Value) -> Value {
    merged(json!({"type": "string"}), extra)
}

fn number(extra: Value) -> Value {
    merged(json!({"type": "number"}), extra)
}

fn object(extra: Value) -> Value {
    merged(json!({"type": "object"}), extra)
}

fn array(extra: Value) -> Value {
    merged(json!({"type": "array"}), extra)
}

fn merged(mut base: Value, extra: Value) -> Value {
    let base_members = base.as_object_mut().expect("an object");
    for (keyword, value) in extra.as_object().expect("an object") {
        base_members.insert(keyword.clone(), value.clone());
    }
    base
}

const S: &str = "string";
const I: &str = "integer";

fn typed(name: &str) -> Value {
    json!({"type": name})
}

fn table() -> Vec<Row> {
    let a = json!({"a": {"type": "string"}});
    let ab = json!({"a": {"type": "string"}, "b": {"type": "string"}});
    let ab_int = json!({"a": {"type": "string"}, "b": {"type": "integer"}});
    vec![
        // Types and values.
        row(
            "type_extended",
            typed(I),
            typed("number"),
            &[],
            &["type_narrowed"],
        ),
        row(
            "type_extended",
            json!({"type": ["string"]}),
            json!({"type": ["string", "null"]}),
            &[],
            &["type_narrowed"],
        ),
        row(
            "type_narrowed",
            typed("number"),
            typed(I),
            &["type_narrowed"],
            &[],
        ),
        row(
            "type_changed",
            typed(S),
            typed(I),
            &["type_changed"],
            &["type_changed"],
        ),
        row(
            "type_changed",
            typed(S),
            json!(false),
            &["type_changed"],
            &[],
        ),
        row(
            "enum_array_extended",
            json!({"enum": ["a", "b"]}),
            json!({"enum": ["a", "b", "c"]}),
            &[],
            &["enum_array_narrowed"],
        ),
        row(
            "enum_array_narrowed",
            json!({"enum": ["a", "b", "c"]}),
            json!({"enum": ["a", "b"]}),
            &["enum_array_narrowed"],
            &[],
        ),
        row(
            "enum_array_changed",
            json!({"enum": ["a", "b"]}),
            json!({"enum": ["a", "c"]}),
            &["enum_array_changed"],
            &["enum_array_changed"],
        ),
        row(
            "enum_array_changed",
            json!({"const": "a"}),
            json!({"const": "b"}),
            &["enum_array_changed"],
            &["enum_array_changed"],
        ),
        // Strings.
        row(
            "max_length_added",
            string(json!({})),
            string(json!({"maxLength": 5})),
            &["max_length_added"],
            &[],
        ),
        row(
            "max_length_removed",
            string(json!({"maxLength": 5})),
            string(json!({})),
            &[],
            &["max_length_added"],
        ),
        row(
            "max_length_increased",
            string(json!({"maxLength": 5})),
            string(json!({"maxLength": 9})),
            &[],
            &["max_length_decreased"],
        ),
        row(
            "max_length_decreased",
            string(json!({"maxLength": 9})),
            string(json!({"maxLength": 5})),
            &["max_length_decreased"],
            &[],
        ),
        row(
            "min_length_added",
            string(json!({})),
            string(json!({"minLength": 2})),
            &["min_length_added"],
            &[],
        ),
        row(
            "min_length_removed",
            string(json!({"minLength": 2})),
            string(json!({})),
            &[],
            &["min_length_added"],
        ),
        row(
            "min_length_increased",
            string(json!({"minLength": 1})),
            string(json!({"minLength": 3})),
            &["min_length_increased"],
            &[],
        ),
        row(
            "min_length_decreased",
            string(json!({"minLength": 3})),
            string(json!({"minLength": 1})),
            &[],
            &["min_length_increased"],
        ),
        row(
            "pattern_added",
            string(json!({})),
            string(json!({"pattern": "^a"})),
            &["pattern_added"],
            &[],
        ),
        row(
            "pattern_removed",
            string(json!({"pattern": "^a"})),
            string(json!({})),
            &[],
            &["pattern_added"],
        ),
        row(
            "pattern_changed",
            string(json!({"pattern": "^a"})),
            string(json!({"pattern": "^b"})),
            &["pattern_changed"],
            &["pattern_changed"],
        ),
        // Numbers.
        row(
            "maximum_added",
            number(json!({})),
            number(json!({"maximum": 10})),
            &["maximum_added"],
            &[],
        ),
        row(
            "maximum_removed",
            number(json!({"maximum": 10})),
            number(json!({})),
            &[],
            &["maximum_added"],
        ),
        row(
            "maximum_increased",
            number(json!({"maximum": 10})),
            number(json!({"maximum": 20})),
            &[],
            &["maximum_decreased"],
        ),
        row(
            "maximum_decreased",
            number(json!({"maximum": 20})),
            number(json!({"maximum": 10})),
            &["maximum_decreased"],
            &[],
        ),
        row(
            "minimum_added",
            number(json!({})),
            number(json!({"minimum": 0})),
            &["minimum_added"],
            &[],
        ),
        row(
            "minimum_removed",
            number(json!({"minimum": 0})),
            number(json!({})),
            &[],
            &["minimum_added"],
        ),
        row(
            "minimum_increased",
            number(json!({"minimum": 0})),
            number(json!({"minimum": 5})),
            &["minimum_increased"],
            &[],
        ),
        row(
            "minimum_decreased",
            number(json!({"minimum": 5})),
            number(json!({"minimum": 0})),
            &[],
            &["minimum_increased"],
        ),
        row(
            "exclusive_maximum_added",
            number(json!({})),
            number(json!({"exclusiveMaximum": 10})),
            &["exclusive_maximum_added"],
            &[],
        ),
        row(
            "exclusive_maximum_removed",
            number(json!({"exclusiveMaximum": 10})),
            number(json!({})),
            &[],
            &["exclusive_maximum_added"],
        ),
        row(
            "exclusive_maximum_increased",
            number(json!({"exclusiveMaximum": 10})),
            number(json!({"exclusiveMaximum": 20})),
            &[],
            &["exclusive_maximum_decreased"],
        ),
        row(
            "exclusive_maximum_decreased",
            number(json!({"exclusiveMaximum": 20})),
            number(json!({"exclusiveMaximum": 10})),
            &["exclusive_maximum_decreased"],
            &[],
        ),
        row(
            "exclusive_minimum_added",
            number(json!({})),
            number(json!({"exclusiveMinimum": 0})),
            &["exclusive_minimum_added"],
            &[],
        ),
        row(
            "exclusive_minimum_removed",
            number(json!({"exclusiveMinimum": 0})),
            number(json!({})),
            &[],
            &["exclusive_minimum_added"],
        ),
        row(
            "exclusive_minimum_increased",
            number(json!({"exclusiveMinimum": 0})),
            number(json!({"exclusiveMinimum": 5})),
            &["exclusive_minimum_increased"],
            &[],
        ),
        row(
            "exclusive_minimum_decreased",
            number(json!({"exclusiveMinimum": 5})),
            number(json!({"exclusiveMinimum": 0})),
            &[],
            &["exclusive_minimum_increased"],
        ),
        row(
            "multiple_of_added",
            number(json!({})),
            number(json!({"multipleOf": 2})),
            &["multiple_of_added"],
            &[],
        ),
        row(
            "multiple_of_removed",
            number(json!({"multipleOf": 2})),
            number(json!({})),
            &[],
            &["multiple_of_added"],
        ),
        row(
            "multiple_of_expanded",
            number(json!({"multipleOf": 2})),
            number(json!({"multipleOf": 4})),
            &["multiple_of_expanded"],
            &[],
        ),
        row(
            "multiple_of_reduced",
            number(json!({"multipleOf": 4})),
            number(json!({"multipleOf": 2})),
            &[],
            &["multiple_of_expanded"],
        ),
        row(
            "multiple_of_changed",
            number(json!({"multipleOf": 2})),
            number(json!({"multipleOf": 3})),
            &["multiple_of_changed"],
            &["multiple_of_changed"],
        ),
        // Objects: required members, sizes, dependencies.
        row(
            "required_attribute_added",
            object(json!({"properties": a})),
            object(json!({"properties": a, "required": ["a"]})),
            &["required_attribute_added"],
            &[],
        ),
        row(
            "required_attribute_removed",
            object(json!({"properties": a, "required": ["a"]})),
            object(json!({"properties": a})),
            &[],
            &["required_attribute_added"],
        ),
        row(
            "max_properties_added",
            object(json!({})),
            object(json!({"maxProperties": 3})),
            &["max_properties_added"],
            &[],
        ),
        row(
            "max_properties_removed",
            object(json!({"maxProperties": 3})),
            object(json!({})),
            &[],
            &["max_properties_added"],
        ),
        row(
            "max_properties_increased",
            object(json!({"maxProperties": 3})),
            object(json!({"maxProperties": 5})),
            &[],
            &["max_properties_decreased"],
        ),
        row(
            "max_properties_decreased",
            object(json!({"maxProperties": 5})),
            object(json!({"maxProperties": 3})),
            &["max_properties_decreased"],
            &[],
        ),
        row(
            "min_properties_added",
            object(json!({})),
            object(json!({"minProperties": 1})),
            &["min_properties_added"],
            &[],
        ),
        row(
            "min_properties_removed",
            object(json!({"minProperties": 1})),
            object(json!({})),
            &[],
            &["min_properties_added"],
        ),
        row(
            "min_properties_increased",
            object(json!({"minProperties": 1})),
            object(json!({"minProperties": 2})),
            &["min_properties_increased"],
            &[],
        ),
        row(
            "min_properties_decreased",
            object(json!({"minProperties": 2})),
            object(json!({"minProperties": 1})),
            &[],
            &["min_properties_increased"],
        ),
        row(
            "dependency_array_added",
            object(json!({})),
            object(json!({"dependentRequired": {"a": ["b"]}})),
            &["dependency_array_added"],
            &[],
        ),
        row(
            "dependency_array_removed",
            object(json!({"dependentRequired": {"a": ["b"]}})),
            object(json!({})),
            &[],
            &["dependency_array_added"],
        ),
        row(
            "dependency_array_extended",
            object(json!({"dependentRequired": {"a": ["b"]}})),
            object(json!({"dependentRequired": {"a": ["b", "c"]}})),
            &["dependency_array_extended"],
            &[],
        ),
        row(
            "dependency_array_narrowed",
            object(json!({"dependentRequired": {"a": ["b", "c"]}})),
            object(json!({"dependentRequired": {"a": ["b"]}})),
            &[],
            &["dependency_array_extended"],
        ),
        row(
            "dependency_array_changed",
            object(json!({"dependentRequired": {"a": ["b"]}})),
            object(json!({"dependentRequired": {"a": ["c"]}})),
            &["dependency_array_changed"],
            &["dependency_array_changed"],
        ),
        row(
            "dependency_array_extended",
            object(json!({"dependencies": {"a": ["b"]}})),
            object(json!({"dependencies": {"a": ["b", "c"]}})),
            &["dependency_array_extended"],
            &[],
        ),
        row(
            "dependency_schema_added",
            object(json!({})),
            object(json!({"dependentSchemas": {"a": {"required": ["b"]}}})),
            &["dependency_schema_added"],
            &[],
        ),
        row(
            "dependency_schema_removed",
            object(json!({"dependentSchemas": {"a": {"required": ["b"]}}})),
            object(json!({})),
            &[],
            &["dependency_schema_added"],
        ),
        // Objects: the content model.
        row(
            "additional_properties_added",
            object(json!({"properties": a, "additionalProperties": false})),
            object(json!({"properties": a})),
            &[],
            &["additional_properties_removed"],
        ),
        row(
            "additional_properties_removed",
            object(json!({"properties": a})),
            object(json!({"properties": a, "additionalProperties": false})),
            &["additional_properties_removed"],
            &[],
        ),
        row(
            "additional_properties_extended",
            object(json!({"additionalProperties": {"type": "string"}})),
            object(json!({})),
            &[],
            &["additional_properties_narrowed"],
        ),
        row(
            "additional_properties_narrowed",
            object(json!({})),
            object(json!({"additionalProperties": {"type": "string"}})),
            &["additional_properties_narrowed"],
            &[],
        ),
        row(
            "additional_properties_narrowed",
            object(json!({})),
            object(json!({"patternProperties": {"^x_": {"type": "string"}}})),
            &["additional_properties_narrowed"],
            &[],
        ),
        row(
            "unevaluated_properties_added",
            object(json!({"properties": a, "unevaluatedProperties": false})),
            object(json!({"properties": a})),
            &[],
            &["unevaluated_properties_removed"],
        ),
        row(
            "unevaluated_properties_removed",
            object(json!({"properties": a})),
            object(json!({"properties": a, "unevaluatedProperties": false})),
            &["unevaluated_properties_removed"],
            &[],
        ),
        row(
            "unevaluated_properties_extended",
            object(json!({"unevaluatedProperties": {"type": "string"}})),
            object(json!({})),
            &[],
            &["unevaluated_properties_narrowed"],
        ),
        row(
            "unevaluated_properties_narrowed",
            object(json!({})),
            object(json!({"unevaluatedProperties": {"type": "string"}})),
            &["unevaluated_properties_narrowed"],
            &[],
        ),
        row(
            "property_added_to_open_content_model",
            object(json!({"properties": a})),
            object(json!({"properties": ab})),
            &["property_added_to_open_content_model"],
            &[],
        ),
        row(
            "required_property_added_to_open_content_model",
            object(json!({"properties": a})),
            object(json!({"properties": ab, "required": ["b"]})),
            &["required_property_added_to_open_content_model"],
            &[],
        ),
        row(
            "property_with_empty_schema_added_to_open_content_model",
            object(json!({"properties": a})),
            object(json!({"properties": {"a": {"type": "string"}, "b": {}}})),
            &[],
            &[],
        ),
        row(
            "required_property_added_to_unopen_content_model",
            object(json!({"properties": a, "additionalProperties": false})),
            object(json!({"properties": ab, "required": ["b"], "additionalProperties": false})),
            &["required_property_added_to_unopen_content_model"],
            &["property_removed_from_closed_content_model"],
        ),
        row(
            "optional_property_added_to_unopen_content_model",
            object(json!({"properties": a, "additionalProperties": false})),
            object(json!({"properties": ab, "additionalProperties": false})),
            &[],
            &["property_removed_from_closed_content_model"],
        ),
        row(
            "property_removed_from_open_content_model",
            object(json!({"properties": ab})),
            object(json!({"properties": a})),
            &[],
            &["property_added_to_open_content_model"],
        ),
        row(
            "property_with_false_removed_from_closed_content_model",
            object(
                json!({"properties": {"a": {"type": "string"}, "b": false}, "additionalProperties": false}),
            ),
            object(json!({"properties": a, "additionalProperties": false})),
            &[],
            &[],
        ),
        row(
            "property_removed_from_closed_content_model",
            object(json!({"properties": ab, "additionalProperties": false})),
            object(json!({"properties": a, "additionalProperties": false})),
            &["property_removed_from_closed_content_model"],
            &[],
        ),
        row(
            "property_removed_is_covered_by_partially_open_content_model",
            object(json!({"properties": ab, "additionalProperties": {"type": "string"}})),
            object(json!({"properties": a, "additionalProperties": {"type": "string"}})),
            &[],
            &[],
        ),
        row(
            "property_removed_not_covered_by_partially_open_content_model",
            object(json!({"properties": ab_int, "additionalProperties": {"type": "string"}})),
            object(json!({"properties": a, "additionalProperties": {"type": "string"}})),
            &[
                "type_changed",
                "property_removed_not_covered_by_partially_open_content_model",
            ],
            &[
                "type_changed",
                "property_added_not_covered_by_partially_open_content_model",
            ],
        ),
        row(
            "property_added_is_covered_by_partially_open_content_model",
            object(json!({"properties": a, "additionalProperties": {"type": "string"}})),
            object(json!({"properties": ab, "additionalProperties": {"type": "string"}})),
            &[],
            &[],
        ),
        row(
            "property_added_is_covered_by_partially_open_content_model",
            object(
                json!({"patternProperties": {"^x_": {"type": "string"}}, "additionalProperties": false}),
            ),
            object(
                json!({"properties": {"x_1": {"type": "string"}}, "patternProperties": {"^x_": {"type": "string"}}, "additionalProperties": false}),
            ),
            &[],
            &[],
        ),
        row(
            "optional_property_added_to_unopen_content_model",
            object(
                json!({"patternProperties": {"^x_": {"type": "string"}}, "additionalProperties": false}),
            ),
            object(
                json!({"properties": {"y": {"type": "string"}}, "patternProperties": {"^x_": {"type": "string"}}, "additionalProperties": false}),
            ),
            &[],
            &["property_removed_from_closed_content_model"],
        ),
        row(
            "property_added_not_covered_by_partially_open_content_model",
            object(json!({"properties": a, "additionalProperties": {"type": "string"}})),
            object(json!({"properties": ab_int, "additionalProperties": {"type": "string"}})),
            &[
                "type_changed",
                "property_added_not_covered_by_partially_open_content_model",
            ],
            &[
                "type_changed",
                "property_removed_not_covered_by_partially_open_content_model",
            ],
        ),
        // Arrays.
        row(
            "max_items_added",
            array(json!({})),
            array(json!({"maxItems": 3})),
            &["max_items_added"],
            &[],
        ),
        row(
            "max_items_removed",
            array(json!({"maxItems": 3})),
            array(json!({})),
            &[],
            &["max_items_added"],
        ),
        row(
            "max_items_increased",
            array(json!({"maxItems": 3})),
            array(json!({"maxItems": 5})),
            &[],
            &["max_items_decreased"],
        ),
        row(
            "max_items_decreased",
            array(json!({"maxItems": 5})),
            array(json!({"maxItems": 3})),
            &["max_items_decreased"],
            &[],
        ),
        row(
            "min_items_added",
            array(json!({})),
            array(json!({"minItems": 1})),
            &["min_items_added"],
            &[],
        ),
        row(
            "min_items_removed",
            array(json!({"minItems": 1})),
            array(json!({})),
            &[],
            &["min_items_added"],
        ),
        row(
            "min_items_increased",
            array(json!({"minItems": 1})),
            array(json!({"minItems": 2})),
            &["min_items_increased"],
            &[],
        ),
        row(
            "min_items_decreased",
            array(json!({"minItems": 2})),
            array(json!({"minItems": 1})),
            &[],
            &["min_items_increased"],
        ),
        row(
            "unique_items_added",
            array(json!({})),
            array(json!({"uniqueItems": true})),
            &["unique_items_added"],
            &[],
        ),
        row(
            "unique_items_removed",
            array(json!({"uniqueItems": true})),
            array(json!({})),
            &[],
            &["unique_items_added"],
        ),
        row(
            "max_contains_added",
            array(json!({"contains": {"type": "string"}})),
            array(json!({"contains": {"type": "string"}, "maxContains": 2})),
            &["max_contains_added"],
            &[],
        ),
        row(
            "max_contains_removed",
            array(json!({"contains": {"type": "string"}, "maxContains": 2})),
            array(json!({"contains": {"type": "string"}})),
            &[],
            &["max_contains_added"],
        ),
        row(
            "max_contains_increased",
            array(json!({"maxContains": 2})),
            array(json!({"maxContains": 4})),
            &[],
            &["max_contains_decreased"],
        ),
        row(
            "max_contains_decreased",
            array(json!({"maxContains": 4})),
            array(json!({"maxContains": 2})),
            &["max_contains_decreased"],
            &[],
        ),
        row(
            "min_contains_added",
            array(json!({})),
            array(json!({"minContains": 2})),
            &["min_contains_added"],
            &[],
        ),
        row(
            "min_contains_removed",
            array(json!({"minContains": 2})),
            array(json!({})),
            &[],
            &["min_contains_added"],
        ),
        row(
            "min_contains_increased",
            array(json!({"minContains": 1})),
            array(json!({"minContains": 2})),
            &["min_contains_increased"],
            &[],
        ),
        row(
            "min_contains_decreased",
            array(json!({"minContains": 2})),
            array(json!({"minContains": 1})),
            &[],
            &["min_contains_increased"],
        ),
        row(
            "additional_items_added",
            array(json!({"prefixItems": [typed(S)], "items": false})),
            array(json!({"prefixItems": [typed(S)]})),
            &[],
            &["additional_items_removed"],
        ),
        row(
            "additional_items_removed",
            array(json!({"prefixItems": [typed(S)]})),
            array(json!({"prefixItems": [typed(S)], "items": false})),
            &["additional_items_removed"],
            &[],
        ),
        row(
            "additional_items_removed",
            array(json!({"items": [typed(S)]})),
            array(json!({"items": [typed(S)], "additionalItems": false})),
            &["additional_items_removed"],
            &[],
        ),
        row(
            "additional_items_extended",
            array(json!({"prefixItems": [typed(S)], "items": typed(S)})),
            array(json!({"prefixItems": [typed(S)]})),
            &[],
            &["additional_items_narrowed"],
        ),
        row(
            "additional_items_narrowed",
            array(json!({"prefixItems": [typed(S)]})),
            array(json!({"prefixItems": [typed(S)], "items": typed(S)})),
            &["additional_items_narrowed"],
            &[],
        ),
        row(
            "additional_items_narrowed",
            array(json!({})),
            array(json!({"items": typed(S)})),
            &["additional_items_narrowed"],
            &[],
        ),
        row(
            "type_changed",
            array(json!({"items": typed(S)})),
            array(json!({"items": typed(I)})),
            &["type_changed"],
            &["type_changed"],
        ),
        row(
            "unevaluated_items_added",
            array(json!({"unevaluatedItems": false})),
            array(json!({})),
            &[],
            &["unevaluated_items_removed"],
        ),
        row(
            "unevaluated_items_removed",
            array(json!({})),
            array(json!({"unevaluatedItems": false})),
            &["unevaluated_items_removed"],
            &[],
        ),
        row(
            "unevaluated_items_extended",
            array(json!({"unevaluatedItems": typed(S)})),
            array(json!({})),
            &[],
            &["unevaluated_items_narrowed"],
        ),
        row(
            "unevaluated_items_narrowed",
            array(json!({})),
            array(json!({"unevaluatedItems": typed(S)})),
            &["unevaluated_items_narrowed"],
            &[],
        ),
        row(
            "item_added_to_open_content_model",
            array(json!({"prefixItems": [typed(S)]})),
            array(json!({"prefixItems": [typed(S), typed(I)]})),
            &["item_added_to_open_content_model"],
            &[],
        ),
        row(
            "item_with_empty_schema_added_to_open_content_model",
            array(json!({"prefixItems": [typed(S)]})),
            array(json!({"prefixItems": [typed(S), {}]})),
            &[],
            &[],
        ),
        row(
            "item_added_to_closed_content_model",
            array(json!({"prefixItems": [typed(S)], "items": false})),
            array(json!({"prefixItems": [typed(S), typed(I)], "items": false})),
            &[],
            &["item_removed_from_closed_content_model"],
        ),
        row(
            "item_removed_from_open_content_model",
            array(json!({"prefixItems": [typed(S), typed(I)]})),
            array(json!({"prefixItems": [typed(S)]})),
            &[],
            &["item_added_to_open_content_model"],
        ),
        row(
            "item_with_false_removed_from_closed_content_model",
            array(json!({"prefixItems": [typed(S), false], "items": false})),
            array(json!({"prefixItems": [typed(S)], "items": false})),
            &[],
            &[],
        ),
        row(
            "item_removed_from_closed_content_model",
            array(json!({"prefixItems": [typed(S), typed(I)], "items": false})),
            array(json!({"prefixItems": [typed(S)], "items": false})),
            &["item_removed_from_closed_content_model"],
            &[],
        ),
        row(
            "item_removed_is_covered_by_partially_open_content_model",
            array(json!({"prefixItems": [typed(S), typed(S)], "items": typed(S)})),
            array(json!({"prefixItems": [typed(S)], "items": typed(S)})),
            &[],
            &[],
        ),
        row(
            "item_removed_not_covered_by_partially_open_content_model",
            array(json!({"prefixItems": [typed(S), typed(I)], "items": typed(S)})),
            array(json!({"prefixItems": [typed(S)], "items": typed(S)})),
            &[
                "type_changed",
                "item_removed_not_covered_by_partially_open_content_model",
            ],
            &[
                "type_changed",
                "item_added_not_covered_by_partially_open_content_model",
            ],
        ),
        row(
            "item_added_is_covered_by_partially_open_content_model",
            array(json!({"prefixItems": [typed(S)], "items": typed(S)})),
            array(json!({"prefixItems": [typed(S), typed(S)], "items": typed(S)})),
            &[],
            &[],
        ),
        row(
            "item_added_not_covered_by_partially_open_content_model",
            array(json!({"prefixItems": [typed(S)], "items": typed(S)})),
            array(json!({"prefixItems": [typed(S), typed(I)], "items": typed(S)})),
            &[
                "type_changed",
                "item_added_not_covered_by_partially_open_content_model",
            ],
            &[
                "type_changed",
                "item_removed_not_covered_by_partially_open_content_model",
            ],
        ),
        // Combinations.
        row(
            "combined_type_extended",
            json!({"oneOf": [typed(S), typed(I)]}),
            json!({"anyOf": [typed(S), typed(I)]}),
            &[],
            &["combined_type_changed"],
        ),
        row(
            "combined_type_changed",
            json!({"anyOf": [typed(S), typed(I)]}),
            json!({"allOf": [typed(S), typed(I)]}),
            &["combined_type_changed"],
            &[],
        ),
        row(
            "product_type_extended",
            json!({"allOf": [{"minLength": 1}, {"maxLength": 9}]}),
            json!({"allOf": [{"minLength": 1}, {"maxLength": 9}, {"pattern": "^a"}]}),
            &["product_type_extended"],
            &[],
        ),
        row(
            "product_type_narrowed",
            json!({"allOf": [{"minLength": 1}, {"maxLength": 9}, {"pattern": "^a"}]}),
            json!({"allOf": [{"minLength": 1}, {"maxLength": 9}]}),
            &[],
            &["product_type_extended"],
        ),
        row(
            "sum_type_extended",
            json!({"anyOf": [typed(S), typed(I)]}),
            json!({"anyOf": [typed(S), typed(I), typed("null")]}),
            &[],
            &["sum_type_narrowed"],
        ),
        row(
            "sum_type_extended",
            typed(S),
            json!({"anyOf": [typed(S), typed("null")]}),
            &[],
            &["type_changed"],
        ),
        row(
            "sum_type_narrowed",
            json!({"anyOf": [typed(S), typed(I), typed("null")]}),
            json!({"anyOf": [typed(S), typed(I)]}),
            &["sum_type_narrowed"],
            &[],
        ),
        row(
            "combined_type_subschemas_changed",
            json!({"anyOf": [typed(S), typed(I)]}),
            json!({"anyOf": [typed(S), typed("boolean")]}),
            &["combined_type_subschemas_changed"],
            &["combined_type_subschemas_changed"],
        ),
        row(
            "not_type_extended",
            string(json!({})),
            string(json!({"not": {"enum": ["x"]}})),
            &["not_type_extended"],
            &[],
        ),
        row(
            "not_type_extended",
            json!({"not": {"enum": ["x"]}}),
            json!({"not": {"enum": ["x", "y"]}}),
            &["not_type_extended"],
            &[],
        ),
        row(
            "not_type_narrowed",
            json!({"not": {"enum": ["x", "y"]}}),
            json!({"not": {"enum": ["x"]}}),
            &[],
            &["not_type_extended"],
        ),
        // Cairn's own rules.
        row(
            "conditional_changed",
            object(json!({})),
            object(json!({"if": {"required": ["a"]}, "then": {"required": ["b"]}})),
            &["conditional_changed"],
            &[],
        ),
        row(
            "reference_changed",
            json!({"$ref": "#/$defs/missing"}),
            json!({"$ref": "#/$defs/other"}),
            &["reference_changed"],
            &["reference_changed"],
        ),
    ]
}

fn judge(old: &Value, new: &Value, mode: Compatibility) -> BTreeSet<String> {
    let earlier = registration(old.clone(), Compatibility::None);
    let new = registration(new.clone(), mode);
    rule_names(&check(2, &new, &[(1, &earlier)]))
}

#[test]
fn each_rule_in_each_mode() {
    let mut failures = Vec::new();
    for (index, row) in table().iter().enumerate() {
        let found: BTreeSet<&str> = differences(&row.old, &row.new)
            .iter()
            .map(|difference| difference.rule.name())
            .collect();
        if !found.contains(row.rule) {
            failures.push(format!(
                "row {index} ({}): differences were {found:?}",
                row.rule
            ));
        }
        let backward = names(row.backward);
        let forward = names(row.forward);
        let full: BTreeSet<String> = backward.union(&forward).cloned().collect();
        for (mode, expected) in [
            (Compatibility::Backward, backward),
            (Compatibility::Forward, forward),
            (Compatibility::Full, full),
            (Compatibility::None, BTreeSet::new()),
        ] {
            let answered = judge(&row.old, &row.new, mode);
            if answered != expected {
                failures.push(format!(
                    "row {index} ({}), {}: expected {expected:?}, got {answered:?}",
                    row.rule,
                    mode.as_str()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_exercises_every_rule() {
    let exercised: BTreeSet<&str> = table().iter().map(|row| row.rule).collect();
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .map(|rule| rule.name())
        .filter(|name| !exercised.contains(name) && *name != "comparison_limit_reached")
        .collect();
    assert!(missing.is_empty(), "rules without a row: {missing:?}");
}

#[test]
fn the_user_table_names_every_rule_and_its_judgement() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api-v1.md");
    let text = std::fs::read_to_string(path).expect("the user table");
    let rows = table();
    let judgement = |breaks: bool| if breaks { "breaks" } else { "ok" };
    for rule in Rule::ALL {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", rule.name())))
            .unwrap_or_else(|| panic!("{} has no row in {path}", rule.name()));
        // Columns: rule | example | backward | forward | full.
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (backward, forward, full) = (
            cells[cells.len() - 4],
            cells[cells.len() - 3],
            cells[cells.len() - 2],
        );
        assert_eq!(
            backward,
            judgement(rule.is_breaking()),
            "backward of {}",
            rule.name()
        );
        // The forward judgement is that of the first row of the test table
        // for the rule (the user table's example is of the same kind).
        if let Some(row) = rows.iter().find(|row| row.rule == rule.name()) {
            assert_eq!(
                forward,
                judgement(!row.forward.is_empty()),
                "forward of {}",
                rule.name()
            );
        }
        let full_breaks = backward == "breaks" || forward == "breaks";
        assert_eq!(full, judgement(full_breaks), "full of {}", rule.name());
    }
}

#[test]
fn transitive_modes_judge_every_earlier_version() {
    let v1 = registration(typed(S), Compatibility::None);
    let v2 = registration(typed(I), Compatibility::None);
    let earlier = [(1, &v1), (2, &v2)];
    let v3 = registration(typed("number"), Compatibility::Backward);
    assert!(check(3, &v3, &earlier).is_empty(), "number reads integer");
    let v3 = registration(typed("number"), Compatibility::BackwardTransitive);
    let changes = check(3, &v3, &earlier);
    assert_eq!(rule_names(&changes), names(&["type_changed"]));
    assert_eq!(changes[0].version, 1);
    assert_eq!(changes[0].direction, "backward");
    let v3 = registration(typed("number"), Compatibility::FullTransitive);
    let changes = check(3, &v3, &earlier);
    let by_version_and_direction: BTreeSet<(u32, String, String)> = changes
        .iter()
        .map(|change| {
            (
                change.version,
                change.direction.clone(),
                change.rule.clone(),
            )
        })
        .collect();
    assert_eq!(
        by_version_and_direction,
        [
            (1, "backward".into(), "type_changed".into()),
            (1, "forward".into(), "type_changed".into()),
            (2, "forward".into(), "type_narrowed".into()),
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn a_rename_upcast_makes_renaming_a_required_member_backward_compatible() {
    let old = registration(
        object(json!({"properties": {"name": typed(S)}, "required": ["name"]})),
        Compatibility::None,
    );
    let new_schema =
        object(json!({"properties": {"full_name": typed(S)}, "required": ["full_name"]}));
    let without = registration(new_schema.clone(), Compatibility::Backward);
    assert_eq!(
        rule_names(&check(2, &without, &[(1, &old)])),
        names(&["required_property_added_to_open_content_model"])
    );
    let with = with_upcast(
        registration(new_schema.clone(), Compatibility::Backward),
        json!([{"op": "rename", "from": "/name", "to": "/full_name"}]),
    );
    assert!(check(2, &with, &[(1, &old)]).is_empty());
    // Facts are never downcast: old readers still miss `name`.
    let full = with_upcast(
        registration(new_schema, Compatibility::Full),
        json!([{"op": "rename", "from": "/name", "to": "/full_name"}]),
    );
    let changes = check(2, &full, &[(1, &old)]);
    assert_eq!(
        rule_names(&changes),
        names(&["required_property_added_to_open_content_model"])
    );
    assert!(changes.iter().all(|change| change.direction == "forward"));
}

#[test]
fn a_rename_upcast_in_a_closed_model_too() {
    let old = registration(
        object(
            json!({"properties": {"name": typed(S)}, "required": ["name"], "additionalProperties": false}),
        ),
        Compatibility::None,
    );
    let new_schema = object(json!({
        "properties": {"full_name": typed(S)},
        "required": ["full_name"],
        "additionalProperties": false
    }));
    let without = registration(new_schema.clone(), Compatibility::Backward);
    assert_eq!(
        rule_names(&check(2, &without, &[(1, &old)])),
        names(&[
            "property_removed_from_closed_content_model",
            "required_property_added_to_unopen_content_model"
        ])
    );
    let with = with_upcast(
        registration(new_schema, Compatibility::Backward),
        json!([{"op": "rename", "from": "/name", "to": "/full_name"}]),
    );
    assert!(check(2, &with, &[(1, &old)]).is_empty());
}

#[test]
fn a_default_upcast_makes_a_newly_required_member_backward_compatible() {
    let old = registration(
        object(json!({"properties": {"total": typed("number")}})),
        Compatibility::None,
    );
    let new_schema = object(json!({
        "properties": {"total": typed("number"), "currency": {"type": "string", "enum": ["EUR", "USD"]}},
        "required": ["currency"]
    }));
    let without = registration(new_schema.clone(), Compatibility::Backward);
    assert_eq!(
        rule_names(&check(2, &without, &[(1, &old)])),
        names(&["required_property_added_to_open_content_model"])
    );
    let with = with_upcast(
        registration(new_schema, Compatibility::Backward),
        json!([{"op": "default", "path": "/currency", "value": "EUR"}]),
    );
    assert!(check(2, &with, &[(1, &old)]).is_empty());
}

#[test]
fn a_default_upcast_for_a_declared_member_must_fit_the_reader() {
    let old = registration(
        object(json!({"properties": {"currency": {"type": "string", "enum": ["EUR", "USD"]}}})),
        Compatibility::None,
    );
    let new_schema = object(json!({
        "properties": {"currency": {"type": "string", "enum": ["EUR", "USD"]}},
        "required": ["currency"]
    }));
    let fitting = with_upcast(
        registration(new_schema.clone(), Compatibility::Backward),
        json!([{"op": "default", "path": "/currency", "value": "EUR"}]),
    );
    assert!(check(2, &fitting, &[(1, &old)]).is_empty());
    let unfitting = with_upcast(
        registration(new_schema, Compatibility::Backward),
        json!([{"op": "default", "path": "/currency", "value": "GBP"}]),
    );
    assert_eq!(
        rule_names(&check(2, &unfitting, &[(1, &old)])),
        names(&["enum_array_changed"])
    );
}

#[test]
fn a_map_upcast_turns_strings_into_the_readers_values() {
    let old = registration(
        object(json!({"properties": {"state": {"enum": ["on", "off"]}}})),
        Compatibility::None,
    );
    let new_schema = object(json!({"properties": {"state": typed("boolean")}}));
    let without = registration(new_schema.clone(), Compatibility::Backward);
    assert_eq!(
        rule_names(&check(2, &without, &[(1, &old)])),
        names(&["type_changed"])
    );
    let with = with_upcast(
        registration(new_schema, Compatibility::Backward),
        json!([{"op": "map", "path": "/state", "values": {"on": true, "off": false}}]),
    );
    assert!(check(2, &with, &[(1, &old)]).is_empty());
}

#[test]
fn transitive_backward_applies_every_upcast_in_between() {
    let v1 = registration(
        object(json!({"properties": {"name": typed(S)}, "required": ["name"]})),
        Compatibility::None,
    );
    let v2_schema =
        object(json!({"properties": {"full_name": typed(S)}, "required": ["full_name"]}));
    let v2 = with_upcast(
        registration(v2_schema.clone(), Compatibility::Backward),
        json!([{"op": "rename", "from": "/name", "to": "/full_name"}]),
    );
    let v3_schema = object(json!({
        "properties": {"full_name": typed(S), "city": typed(S)},
        "required": ["full_name", "city"]
    }));
    let v3 = with_upcast(
        registration(v3_schema, Compatibility::BackwardTransitive),
        json!([{"op": "default", "path": "/city", "value": "unknown"}]),
    );
    assert!(check(3, &v3, &[(1, &v1), (2, &v2)]).is_empty());
    // Without version 2's rename in the chain, version 1's facts would
    // lack `full_name`.
    let v2_without_upcast = registration(v2_schema, Compatibility::None);
    let changes = check(3, &v3, &[(1, &v1), (2, &v2_without_upcast)]);
    assert_eq!(
        rule_names(&changes),
        names(&["required_property_added_to_open_content_model"])
    );
    assert!(changes.iter().all(|change| change.version == 1));
}

#[test]
fn recursive_schemas_terminate_and_changes_inside_them_are_found() {
    let list = |value_type: &str| {
        json!({
            "type": "object",
            "properties": {"value": {"type": value_type}, "next": {"$ref": "#"}},
            "required": ["value"]
        })
    };
    assert!(judge(&list(I), &list(I), Compatibility::Full).is_empty());
    assert!(judge(&list(I), &list("number"), Compatibility::Backward).is_empty());
    assert_eq!(
        judge(&list(I), &list("number"), Compatibility::Forward),
        names(&["type_narrowed"])
    );
    assert_eq!(
        judge(&list(I), &list(S), Compatibility::Full),
        names(&["type_changed"])
    );

    // Mutual recursion through $defs, and a reference with siblings that
    // recurses (merged at most a few levels deep).
    let tree = |leaf_type: &str| {
        json!({
            "$defs": {
                "node": {"type": "object", "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/$defs/child"}},
                    "leaf": {"type": leaf_type}
                }},
                "child": {"$ref": "#/$defs/node", "required": ["leaf"]}
            },
            "$ref": "#/$defs/node"
        })
    };
    assert!(judge(&tree(S), &tree(S), Compatibility::Full).is_empty());
    assert_eq!(
        judge(&tree(S), &tree(I), Compatibility::Backward),
        names(&["type_changed"])
    );

    let old = json!({"$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/b"}}}, "b": {"properties": {"a": {"$ref": "#/$defs/a"}}}}, "$ref": "#/$defs/a"});
    assert!(judge(&old, &old, Compatibility::Full).is_empty());
    // A reference cycle with no schema in it at all.
    let cycle = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    assert!(judge(&cycle, &cycle, Compatibility::Full).is_empty());
}

#[test]
fn paths_point_into_the_new_schema() {
    let old = json!({
        "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/address"}}
    });
    let new = json!({
        "$defs": {"place": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}}},
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/place"}, "note": {"type": "string"}}
    });
    let earlier = registration(old, Compatibility::None);
    let changes = check(2, &registration(new, Compatibility::Full), &[(1, &earlier)]);
    let found: BTreeSet<(String, String, String)> = changes
        .iter()
        .map(|change| {
            (
                change.direction.clone(),
                change.rule.clone(),
                change.path.clone(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "backward".into(),
                "max_length_added".into(),
                "/$defs/place/properties/city/maxLength".into()
            ),
            (
                "backward".into(),
                "property_added_to_open_content_model".into(),
                "/properties/note".into()
            ),
        ]
        .into_iter()
        .collect()
    );
    assert!(
        changes[0]
            .message
            .starts_with("Reader version 2, writer version 1, at /"),
        "{}",
        changes[0].message
    );
}

#[test]
fn boolean_schemas() {
    assert!(judge(&json!(true), &json!(true), Compatibility::Full).is_empty());
    assert!(judge(&typed(S), &json!(true), Compatibility::Backward).is_empty());
    assert!(judge(&json!(false), &typed(S), Compatibility::Backward).is_empty());
    assert_eq!(
        judge(&json!(true), &typed(S), Compatibility::Backward),
        names(&["type_narrowed"])
    );
    assert_eq!(
        judge(&json!(true), &json!(false), Compatibility::Backward),
        names(&["type_changed"])
    );
}

#[test]
fn the_number_of_breaking_changes_is_bounded() {
    let many: serde_json::Map<String, Value> = (0..300)
        .map(|index| (format!("p{index}"), typed(S)))
        .collect();
    let old = object(json!({"properties": many.clone()}));
    let retyped: serde_json::Map<String, Value> =
        many.keys().map(|name| (name.clone(), typed(I))).collect();
    let new = object(json!({"properties": retyped}));
    let changes = check(
        2,
        &registration(new, Compatibility::Full),
        &[(1, &registration(old, Compatibility::None))],
    );
    assert_eq!(
        changes.len(),
        cairn_api::limits::SCHEMA_BREAKING_CHANGES_MAX
    );
}

#[test]
fn a_comparison_too_large_stops_at_its_limit() {
    // Two combinations of 250 alternatives each: 62,500 pairs to judge,
    // more than a comparison may.
    let alternatives = |offset: usize| -> Value {
        let list: Vec<Value> = (0..250)
            .map(|index| json!({"type": "object", "required": [format!("p{}", index + offset)]}))
            .collect();
        json!({"anyOf": list})
    };
    let found = differences(&alternatives(0), &alternatives(1000));
    assert!(
        found
            .iter()
            .any(|difference| difference.rule == Rule::ComparisonLimitReached),
        "{found:?}"
    );
}
