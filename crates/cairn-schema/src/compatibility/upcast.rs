//! The schema of older facts as a reader sees them after an upcast: the
//! upcast operations (`cairn_api::schemas::UpcastOperation`) applied to
//! the older version's schema instead of to a fact, so that backward
//! compatibility is judged on what the new reader will actually be given.
//!
//! Best effort, on `properties` paths: `rename` and `move` carry a
//! member's sub-schema (and its `required` membership) to the new place;
//! `default` makes the member present (required) with the reader's
//! sub-schema, or with the writer's or the default value where the writer
//! declared it; `map` replaces `enum`/`const` values. A path through
//! something that is not an object schema leaves the schema as it was.

use cairn_api::schemas::{pointer_tokens, UpcastOperation};
use serde_json::{json, Map, Value};

use super::document::Document;

/// How deep references are inlined into a sub-schema copied from the
/// reader's document into the writer's (deeper, the copy is `{}`).
const INLINE_DEPTH_MAX: usize = 8;

/// JSON values one copied sub-schema holds at most, its references
/// inlined; beyond, the whole copy is `{}` (anything), as beyond
/// [`INLINE_DEPTH_MAX`]. Without it, a definition naming the next one from
/// ten properties, nine deep, inlines into 10^8 copies: found by the
/// `schema_registration` fuzz target's hostile inputs (fan-out 6 already
/// took over a second per judgement). A 60 KiB schema holds about 15,000
/// values, and a recursive tree inlined eight deep a few thousand.
const INLINED_VALUES_MAX: usize = 10_000;

/// The schema of older facts as read after `operations`. `reader` is the
/// schema of the version that declares them (where `default` takes a
/// member's schema from).
pub fn upcast_schema(schema: &Value, operations: &[UpcastOperation], reader: &Value) -> Value {
    let reader = Document::new(reader);
    let mut upcast = schema.clone();
    for operation in operations {
        apply(&mut upcast, operation, &reader);
    }
    upcast
}

fn apply(schema: &mut Value, operation: &UpcastOperation, reader: &Document) {
    match operation {
        UpcastOperation::Rename { from, to } | UpcastOperation::Move { from, to } => {
            let (Ok(from), Ok(to)) = (pointer_tokens(from), pointer_tokens(to)) else {
                return;
            };
            if let Some((member, required)) = take(schema, &from) {
                put(schema, &to, member, required);
            }
        }
        UpcastOperation::Default { path, value } => {
            if let Ok(tokens) = pointer_tokens(path) {
                set_default(schema, &tokens, value, reader);
            }
        }
        UpcastOperation::Map { path, values } => {
            let Ok(tokens) = pointer_tokens(path) else {
                return;
            };
            let Some((last, parents)) = tokens.split_last() else {
                return;
            };
            let snapshot = Document::new(schema);
            let Some(parent) = object_schema(schema, parents, &snapshot, false, false) else {
                return;
            };
            if let Some(member) = parent
                .get_mut("properties")
                .and_then(Value::as_object_mut)
                .and_then(|properties| properties.get_mut(last))
            {
                map_values(member, values);
            }
        }
    }
}

/// The object schema (as a map) at `parents` (names of members), made an
/// object where it was `true` or a reference. With `create`, missing
/// members are added as object schemas, and with `required` they are also
/// required in their parent.
fn object_schema<'a>(
    schema: &'a mut Value,
    parents: &[String],
    snapshot: &Document,
    create: bool,
    required: bool,
) -> Option<&'a mut Map<String, Value>> {
    let mut node = schema;
    for token in parents {
        let members = as_object_schema(node, snapshot)?;
        let declared = members
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|properties| properties.contains_key(token));
        if !declared {
            if !create {
                return None;
            }
            if required {
                add_required(members, token);
            }
        }
        let properties = members
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?;
        node = properties
            .entry(token.clone())
            .or_insert_with(|| json!({"type": "object"}));
    }
    as_object_schema(node, snapshot)
}

/// `node` as an object schema's members: `true` becomes `{}`, a reference
/// is replaced by (a copy of) its target; `None` for `false` or a
/// reference that does not resolve.
fn as_object_schema<'a>(
    node: &'a mut Value,
    snapshot: &Document,
) -> Option<&'a mut Map<String, Value>> {
    if *node == Value::Bool(true) {
        *node = Value::Object(Map::new());
    }
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let (_, target) = snapshot.resolve(reference)?;
        let mut inlined = match target {
            Value::Object(members) => members.clone(),
            Value::Bool(true) => Map::new(),
            _ => return None,
        };
        if let Value::Object(siblings) = &*node {
            for (keyword, value) in siblings {
                if keyword != "$ref" {
                    inlined
                        .entry(keyword.clone())
                        .or_insert_with(|| value.clone());
                }
            }
        }
        *node = Value::Object(inlined);
    }
    node.as_object_mut()
}

fn add_required(members: &mut Map<String, Value>, name: &str) {
    let list = members
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(names) = list {
        if !names.iter().any(|existing| existing == name) {
            names.push(Value::String(name.to_string()));
        }
    }
}

fn is_required(members: &Map<String, Value>, name: &str) -> bool {
    members
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|names| names.iter().any(|existing| existing == name))
}

/// Removes the member at `tokens` (and its `required` entry); its schema
/// and whether it was required. A member the schema does not declare is
/// `{}` where undeclared members are allowed, and `None` (never present)
/// where they are not.
fn take(schema: &mut Value, tokens: &[String]) -> Option<(Value, bool)> {
    let (last, parents) = tokens.split_last()?;
    let snapshot = Document::new(schema);
    let parent = object_schema(schema, parents, &snapshot, false, false)?;
    let required = is_required(parent, last);
    if let Some(Value::Array(names)) = parent.get_mut("required") {
        names.retain(|existing| existing != last.as_str());
    }
    let declared = parent
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .and_then(|properties| properties.remove(last));
    match declared {
        Some(member) => Some((member, required)),
        None => {
            let closed = parent.get("additionalProperties") == Some(&Value::Bool(false))
                && parent.get("patternProperties").is_none();
            if closed {
                None
            } else {
                let undeclared = match parent.get("additionalProperties") {
                    Some(additional @ Value::Object(_)) => additional.clone(),
                    _ => json!({}),
                };
                Some((undeclared, required))
            }
        }
    }
}

/// Puts `member` at `tokens`. Where a member is already declared there and
/// the moved one is optional, facts keep the old value when they lack the
/// moved one: the schema is either.
fn put(schema: &mut Value, tokens: &[String], member: Value, required: bool) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let snapshot = Document::new(schema);
    let Some(parent) = object_schema(schema, parents, &snapshot, true, required) else {
        return;
    };
    let Some(properties) = parent
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
    else {
        return;
    };
    let combined = match properties.remove(last) {
        Some(existing) if !required => json!({"anyOf": [member, existing]}),
        _ => member,
    };
    properties.insert(last.clone(), combined);
    if required {
        add_required(parent, last);
    }
}

/// Makes the member at `tokens` always present: with the writer's schema
/// or the default value where the writer declared it, else with the
/// reader's schema there (or `{}`).
fn set_default(schema: &mut Value, tokens: &[String], value: &Value, reader: &Document) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let snapshot = Document::new(schema);
    let Some(parent) = object_schema(schema, parents, &snapshot, true, true) else {
        return;
    };
    let Some(properties) = parent
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
    else {
        return;
    };
    let member = match properties.remove(last) {
        Some(existing) => json!({"anyOf": [existing, {"const": value}]}),
        None => reader_member(reader, tokens).unwrap_or_else(|| json!({})),
    };
    properties.insert(last.clone(), member);
    add_required(parent, last);
}

/// The reader's sub-schema for the member at `tokens`, with its references
/// inlined (they name places in the reader's document, not the writer's).
fn reader_member(reader: &Document, tokens: &[String]) -> Option<Value> {
    let mut node = reader.root();
    for token in tokens {
        node = resolve_reference(reader, node)?;
        node = node.get("properties")?.get(token)?;
    }
    // A copy over the budget is `{}`, not a partial copy: cutting an
    // `enum` or `const` short would change what it allows.
    let mut values_left = INLINED_VALUES_MAX;
    Some(inline_references(reader, node, 0, &mut values_left).unwrap_or_else(|| json!({})))
}

fn resolve_reference<'a>(document: &'a Document, mut node: &'a Value) -> Option<&'a Value> {
    for _ in 0..INLINE_DEPTH_MAX {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => node = document.resolve(reference)?.1,
            None => return Some(node),
        }
    }
    None
}

/// A copy of `node` with its references inlined, `{}` below
/// [`INLINE_DEPTH_MAX`] references; `None` once the copy would hold more
/// than `values_left` values.
fn inline_references(
    document: &Document,
    node: &Value,
    depth: usize,
    values_left: &mut usize,
) -> Option<Value> {
    if depth >= INLINE_DEPTH_MAX {
        return Some(json!({}));
    }
    *values_left = values_left.checked_sub(1)?;
    match node {
        Value::Object(members) => {
            if let Some(reference) = members.get("$ref").and_then(Value::as_str) {
                return match document.resolve(reference) {
                    Some((_, target)) => {
                        inline_references(document, target, depth + 1, values_left)
                    }
                    None => Some(node.clone()),
                };
            }
            members
                .iter()
                .filter(|(keyword, _)| {
                    keyword.as_str() != "$defs" && keyword.as_str() != "definitions"
                })
                .map(|(keyword, value)| {
                    Some((
                        keyword.clone(),
                        inline_references(document, value, depth, values_left)?,
                    ))
                })
                .collect::<Option<Map<String, Value>>>()
                .map(Value::Object)
        }
        Value::Array(items) => items
            .iter()
            .map(|item| inline_references(document, item, depth, values_left))
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array),
        other => Some(other.clone()),
    }
}

/// Replaces mapped string values in `enum`/`const`, widening `type` to
/// the mapped values' types.
fn map_values(member: &mut Value, values: &std::collections::BTreeMap<String, Value>) {
    let Some(members) = member.as_object_mut() else {
        return;
    };
    let map_one = |value: &Value| match value.as_str().and_then(|old| values.get(old)) {
        Some(new) => new.clone(),
        None => value.clone(),
    };
    let mut produced = Vec::new();
    if let Some(Value::Array(enumerated)) = members.get_mut("enum") {
        let mut mapped: Vec<Value> = Vec::new();
        for value in enumerated.iter() {
            let new = map_one(value);
            if !mapped.contains(&new) {
                mapped.push(new);
            }
        }
        produced.extend(mapped.iter().cloned());
        *enumerated = mapped;
    }
    if let Some(constant) = members.get_mut("const") {
        *constant = map_one(constant);
        produced.push(constant.clone());
    }
    let Some(declared) = members.get("type").cloned() else {
        return;
    };
    let mut names: Vec<Value> = match declared {
        Value::String(name) => vec![Value::String(name)],
        Value::Array(names) => names,
        _ => return,
    };
    for value in &produced {
        let name = json_type_name(value);
        let covered = names
            .iter()
            .any(|existing| existing == name || (name == "integer" && existing == "number"));
        if !covered {
            names.push(Value::String(name.to_string()));
        }
    }
    members.insert(
        "type".into(),
        if names.len() == 1 {
            names.remove(0)
        } else {
            Value::Array(names)
        },
    );
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(value: Value) -> Vec<UpcastOperation> {
        serde_json::from_value(value).expect("operations")
    }

    /// A reader whose definition `d{level}` names `d{level + 1}` from
    /// `fan_out` properties, nine levels: inlined, `fan_out^8` copies.
    fn fanned_out_reader(fan_out: usize) -> Value {
        let mut definitions = Map::new();
        for level in 0..9 {
            let properties: Map<String, Value> = (0..fan_out)
                .map(|index| {
                    (
                        format!("p{index}"),
                        json!({"$ref": format!("#/$defs/d{}", level + 1)}),
                    )
                })
                .collect();
            definitions.insert(
                format!("d{level}"),
                json!({"type": "object", "properties": properties}),
            );
        }
        definitions.insert("d9".into(), json!({"type": "string"}));
        json!({"properties": {"z": {"$ref": "#/$defs/d0"}}, "$defs": definitions})
    }

    #[test]
    fn a_default_copies_a_bounded_schema_from_the_reader() {
        let default_z = operations(json!([{"op": "default", "path": "/z", "value": {}}]));
        // Fan-out 2: 2^7 copies of `d6` fit, so the copy is whole down to
        // `d7`, eight references from `z` and so `{}`.
        let upcast = upcast_schema(&json!({}), &default_z, &fanned_out_reader(2));
        let copied = &upcast["properties"]["z"];
        assert_eq!(copied["type"], json!("object"));
        let mut innermost = copied;
        for _ in 0..6 {
            innermost = &innermost["properties"]["p1"];
        }
        assert_eq!(innermost["type"], json!("object"));
        assert_eq!(innermost["properties"]["p0"], json!({}));
        // Fan-out 10 would be 10^8 copies: over the budget, the member is
        // `{}` as a whole (and the call ends at once rather than after
        // minutes and gigabytes).
        let upcast = upcast_schema(&json!({}), &default_z, &fanned_out_reader(10));
        assert_eq!(upcast["properties"]["z"], json!({}));
        assert_eq!(upcast["required"], json!(["z"]));
    }

    #[test]
    fn rename_carries_the_schema_and_required() {
        let schema = json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name"]
        });
        let upcast = upcast_schema(
            &schema,
            &operations(json!([{"op": "rename", "from": "/name", "to": "/full_name"}])),
            &json!({}),
        );
        assert_eq!(
            upcast,
            json!({
                "type": "object",
                "properties": {"full_name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["full_name"]
            })
        );
    }

    #[test]
    fn move_creates_required_parents_for_a_required_member() {
        let schema = json!({"properties": {"city": {"type": "string"}}, "required": ["city"]});
        let upcast = upcast_schema(
            &schema,
            &operations(json!([{"op": "move", "from": "/city", "to": "/address/city"}])),
            &json!({}),
        );
        assert_eq!(
            upcast,
            json!({
                "properties": {"address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"]
                }},
                "required": ["address"]
            })
        );
    }

    #[test]
    fn default_takes_the_readers_schema_or_keeps_the_writers() {
        let reader = json!({
            "$defs": {"currency": {"type": "string", "enum": ["EUR", "USD"]}},
            "properties": {"currency": {"$ref": "#/$defs/currency"}}
        });
        let upcast = upcast_schema(
            &json!({"properties": {"total": {"type": "number"}}}),
            &operations(json!([
                {"op": "default", "path": "/currency", "value": "EUR"},
                {"op": "default", "path": "/total", "value": 0}
            ])),
            &reader,
        );
        assert_eq!(
            upcast,
            json!({
                "properties": {
                    "total": {"anyOf": [{"type": "number"}, {"const": 0}]},
                    "currency": {"type": "string", "enum": ["EUR", "USD"]}
                },
                "required": ["currency", "total"]
            })
        );
    }

    #[test]
    fn map_replaces_enumerated_values_and_widens_the_type() {
        let upcast = upcast_schema(
            &json!({"properties": {"state": {"type": "string", "enum": ["on", "off", "maybe"]}}}),
            &operations(json!([
                {"op": "map", "path": "/state", "values": {"on": true, "off": false}}
            ])),
            &json!({}),
        );
        assert_eq!(
            upcast,
            json!({"properties": {"state": {
                "type": ["string", "boolean"],
                "enum": [true, false, "maybe"]
            }}})
        );
    }

    #[test]
    fn a_member_of_a_closed_model_that_is_not_declared_moves_nothing() {
        let schema = json!({"properties": {}, "additionalProperties": false});
        let upcast = upcast_schema(
            &schema,
            &operations(json!([{"op": "rename", "from": "/a", "to": "/b"}])),
            &json!({}),
        );
        assert_eq!(upcast, schema);
    }
}
