//! One schema document prepared for comparison: its local references
//! (`#`, `#/json/pointer`, `#anchor`) resolved to locations inside it, and
//! each `$ref` that has constraining siblings merged with its target, so
//! that the comparison sees one object schema where JSON Schema 2020-12
//! sees the conjunction of the two.
//!
//! Merging is best effort: members of the same keyword are united
//! (`properties`, `required`, `allOf`), otherwise the target's keyword
//! wins. Merges nest at most [`MERGES_NESTED_MAX`] deep on one path, which
//! bounds a recursive type whose reference has siblings; deeper, the
//! siblings are ignored and the reference alone is followed.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// How many `$ref`-with-siblings merges may nest along one path.
const MERGES_NESTED_MAX: usize = 4;

/// Keywords that never constrain a value: changing them changes no
/// judgement. (`format` is an annotation in draft 2020-12 unless a
/// vocabulary asserts it, and Cairn's validator does not.)
const ANNOTATION_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$anchor",
    "$dynamicAnchor",
    "$comment",
    "$defs",
    "definitions",
    "$vocabulary",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
];

/// Keywords whose value is one subschema.
const SINGLE_SUBSCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
];

/// Keywords whose value is a map of subschemas (`dependencies` may also
/// hold arrays of names, which are skipped as they are not objects).
const MAP_SUBSCHEMA_KEYWORDS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependencies",
];

/// Keywords whose value is a list of subschemas (`items` may also be one).
const LIST_SUBSCHEMA_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];

/// Whether a keyword never constrains a value.
pub(super) fn is_annotation(keyword: &str) -> bool {
    ANNOTATION_KEYWORDS.contains(&keyword)
}

/// Whether a schema allows every value: `true`, or an object with no
/// constraining keyword.
pub(super) fn accepts_everything(schema: &Value) -> bool {
    match schema {
        Value::Bool(allowed) => *allowed,
        Value::Object(members) => members.keys().all(|keyword| is_annotation(keyword)),
        _ => false,
    }
}

/// Whether a schema allows no value.
pub(super) fn rejects_everything(schema: &Value) -> bool {
    matches!(schema, Value::Bool(false))
}

/// A JSON pointer token, escaped (RFC 6901).
pub(super) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A schema document ready for comparison.
pub(super) struct Document {
    root: Value,
    anchors: HashMap<String, String>,
}

impl Document {
    /// Prepares `schema`: collects its anchors and merges references that
    /// have constraining siblings.
    pub(super) fn new(schema: &Value) -> Document {
        let mut anchors = HashMap::new();
        collect_anchors(schema, String::new(), &mut anchors);
        let mut root = schema.clone();
        normalize(&mut root, schema, &anchors, 0);
        Document { root, anchors }
    }

    /// The document's root schema.
    pub(super) fn root(&self) -> &Value {
        &self.root
    }

    /// The location (a JSON pointer into the document) and schema a local
    /// reference names; `None` for a reference that is not local or does
    /// not resolve.
    pub(super) fn resolve(&self, reference: &str) -> Option<(String, &Value)> {
        let location = reference_location(reference, &self.anchors)?;
        let schema = self.root.pointer(&location)?;
        Some((location, schema))
    }
}

/// The JSON pointer a local reference names.
fn reference_location(reference: &str, anchors: &HashMap<String, String>) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    if fragment.is_empty() || fragment.starts_with('/') {
        percent_decode(fragment)
    } else {
        anchors.get(fragment).cloned()
    }
}

/// Decodes `%XX` escapes of a URI fragment; `None` if one is malformed or
/// the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Calls `visit` with the keyword path (one or two tokens) and value of
/// every direct subschema of `schema`.
pub(super) fn for_each_subschema<'a>(schema: &'a Value, mut visit: impl FnMut(String, &'a Value)) {
    let Value::Object(members) = schema else {
        return;
    };
    for (keyword, value) in members {
        if SINGLE_SUBSCHEMA_KEYWORDS.contains(&keyword.as_str()) {
            visit(escape_token(keyword), value);
        } else if MAP_SUBSCHEMA_KEYWORDS.contains(&keyword.as_str()) {
            if let Value::Object(entries) = value {
                for (name, subschema) in entries {
                    if subschema.is_object() || subschema.is_boolean() {
                        visit(format!("{keyword}/{}", escape_token(name)), subschema);
                    }
                }
            }
        } else if LIST_SUBSCHEMA_KEYWORDS.contains(&keyword.as_str()) {
            match value {
                Value::Array(list) => {
                    for (index, subschema) in list.iter().enumerate() {
                        visit(format!("{keyword}/{index}"), subschema);
                    }
                }
                other => visit(escape_token(keyword), other),
            }
        }
    }
}

fn collect_anchors(schema: &Value, location: String, anchors: &mut HashMap<String, String>) {
    if let Some(anchor) = schema.get("$anchor").and_then(Value::as_str) {
        anchors
            .entry(anchor.to_string())
            .or_insert_with(|| location.clone());
    }
    for_each_subschema(schema, |path, subschema| {
        collect_anchors(subschema, format!("{location}/{path}"), anchors);
    });
}

/// Merges every `$ref` that has constraining siblings with its target
/// (resolved in `original`), then does the same inside every subschema.
fn normalize(
    schema: &mut Value,
    original: &Value,
    anchors: &HashMap<String, String>,
    merges_on_path: usize,
) {
    let mut merges_on_path = merges_on_path;
    while merges_on_path < MERGES_NESTED_MAX {
        let Some(merged) = merge_reference(schema, original, anchors) else {
            break;
        };
        *schema = merged;
        merges_on_path += 1;
    }
    let Value::Object(members) = schema else {
        return;
    };
    for (keyword, value) in members.iter_mut() {
        if SINGLE_SUBSCHEMA_KEYWORDS.contains(&keyword.as_str()) {
            normalize(value, original, anchors, merges_on_path);
        } else if MAP_SUBSCHEMA_KEYWORDS.contains(&keyword.as_str()) {
            if let Value::Object(entries) = value {
                for subschema in entries.values_mut() {
                    normalize(subschema, original, anchors, merges_on_path);
                }
            }
        } else if LIST_SUBSCHEMA_KEYWORDS.contains(&keyword.as_str()) {
            match value {
                Value::Array(list) => {
                    for subschema in list {
                        normalize(subschema, original, anchors, merges_on_path);
                    }
                }
                other => normalize(other, original, anchors, merges_on_path),
            }
        }
    }
}

/// The merge of a `$ref` that has constraining siblings with its target,
/// or `None` if `schema` is not such a reference or the target is unknown.
fn merge_reference(
    schema: &Value,
    original: &Value,
    anchors: &HashMap<String, String>,
) -> Option<Value> {
    let members = schema.as_object()?;
    let reference = members.get("$ref")?.as_str()?;
    let has_constraining_siblings = members
        .keys()
        .any(|keyword| keyword != "$ref" && !is_annotation(keyword));
    if !has_constraining_siblings {
        return None;
    }
    let target = original.pointer(&reference_location(reference, anchors)?)?;
    let mut merged = match target {
        Value::Object(target_members) => target_members.clone(),
        Value::Bool(true) => Map::new(),
        Value::Bool(false) => return Some(Value::Bool(false)),
        _ => return None,
    };
    for (keyword, value) in members {
        if keyword == "$ref" {
            continue;
        }
        match (merged.get_mut(keyword), value) {
            (None, _) => {
                merged.insert(keyword.clone(), value.clone());
            }
            (Some(Value::Object(existing)), Value::Object(extra)) if keyword == "properties" => {
                for (name, subschema) in extra {
                    existing
                        .entry(name.clone())
                        .or_insert_with(|| subschema.clone());
                }
            }
            (Some(Value::Array(existing)), Value::Array(extra))
                if keyword == "required" || keyword == "allOf" =>
            {
                for item in extra {
                    if !existing.contains(item) {
                        existing.push(item.clone());
                    }
                }
            }
            // Conflicting keywords: the target's wins (best effort).
            (Some(_), _) => {}
        }
    }
    Some(Value::Object(merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_references_resolve_by_pointer_anchor_and_root() {
        let document = Document::new(&json!({
            "$defs": {"a b": {"type": "string"}, "n": {"$anchor": "node", "type": "object"}},
            "properties": {"x": {"$ref": "#/$defs/a%20b"}}
        }));
        assert_eq!(document.resolve("#/$defs/a%20b").unwrap().0, "/$defs/a b");
        assert_eq!(document.resolve("#node").unwrap().0, "/$defs/n");
        assert_eq!(document.resolve("#").unwrap().0, "");
        assert!(document.resolve("other.json#/x").is_none());
        assert!(document.resolve("#/$defs/missing").is_none());
    }

    #[test]
    fn a_reference_with_siblings_is_merged_and_recursion_is_bounded() {
        let document = Document::new(&json!({
            "$defs": {"node": {
                "type": "object",
                "properties": {"next": {"$ref": "#/$defs/node", "required": ["v"]}},
            }},
            "$ref": "#/$defs/node",
            "properties": {"extra": {"type": "string"}},
            "required": ["extra"]
        }));
        let root = document.root();
        assert_eq!(root["type"], "object");
        assert_eq!(root["required"], json!(["extra"]));
        assert!(root["properties"]["extra"].is_object());
        assert!(root["properties"]["next"].is_object());
        assert!(root.get("$ref").is_none());
    }
}
