//! A fact's `fields` as the instance the JSON Schema validates, read in
//! place: `jsonschema` accepts custom in-memory JSON representations, so
//! the parsed `cairn_fact::Value`s are validated without being converted
//! to `serde_json::Value` (the conversion's allocations cost more than the
//! validation itself: see the ignored timing test in `tests/validation.rs`).
//!
//! The root is the fields without Cairn's own members (`cairn_…`): those
//! are left out of validation, at the top level only.

use std::borrow::Cow;

use cairn_api::schemas::RESERVED_FIELD_PREFIX;
use cairn_fact::Value as FactValue;
use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::{Map, Number, Value};

/// The largest integer a double holds exactly (2^53): integral numbers up
/// to it read as JSON integers, so messages show `5`, not `5.0`.
const EXACT_INTEGER_MAGNITUDE_MAX: f64 = 9_007_199_254_740_992.0;

/// The representation: nodes borrow a fact's parsed fields.
pub(crate) struct FactJson;

impl Json for FactJson {
    type Node<'a> = FactNode<'a>;
    type PreparedKey = String;
    type StringBuffer = Option<FactValue>;

    // Members are a vector searched linearly: a pass over them is never
    // dearer than the lookups it replaces.
    const KEYS_PER_LOOKUP: usize = 16;
    // Parsed values are trees: no node is its own descendant.
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Option<FactValue>,
        string: &str,
        f: impl FnOnce(FactNode<'_>) -> T,
    ) -> T {
        let node = buffer.insert(FactValue::String(string.to_owned()));
        f(FactNode::Value(node))
    }
}

/// One node: the root (the fields without Cairn's), or a value inside.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FactNode<'a> {
    /// The fields of a fact; members named `cairn_…` are not seen.
    Fields(&'a [(String, FactValue)]),
    /// A value of a field, at any depth.
    Value(&'a FactValue),
}

/// An object's members: those of the root skip Cairn's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FactObject<'a> {
    members: &'a [(String, FactValue)],
    skips_reserved: bool,
}

impl<'a> FactObject<'a> {
    fn visible(&self) -> impl Iterator<Item = &'a (String, FactValue)> + 'a {
        let skips_reserved = self.skips_reserved;
        self.members
            .iter()
            .filter(move |(name, _)| !(skips_reserved && name.starts_with(RESERVED_FIELD_PREFIX)))
    }

    /// The names of the members, as validated.
    pub(crate) fn member_names(&self) -> Vec<String> {
        self.visible().map(|(name, _)| name.clone()).collect()
    }
}

/// A number of a fact: always a finite double.
pub(crate) struct FactNumber(f64);

impl FactNumber {
    fn is_exact_integer(&self) -> bool {
        self.0.fract() == 0.0 && self.0.abs() <= EXACT_INTEGER_MAGNITUDE_MAX
    }
}

impl JsonNumber for FactNumber {
    fn as_u64(&self) -> Option<u64> {
        (self.is_exact_integer() && self.0 >= 0.0).then_some(self.0 as u64)
    }

    fn as_i64(&self) -> Option<i64> {
        self.is_exact_integer().then_some(self.0 as i64)
    }

    fn as_f64(&self) -> Option<f64> {
        Some(self.0)
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_number().to_string())
    }

    fn to_number(&self) -> Cow<'_, Number> {
        Cow::Owned(json_number(self.0))
    }

    fn is_integer(&self) -> bool {
        self.0.fract() == 0.0
    }

    fn is_written_as_integer(&self) -> bool {
        self.0.fract() == 0.0
    }
}

impl<'a> FactNode<'a> {
    /// The node at a JSON pointer (RFC 6901) from this one, if any.
    pub(crate) fn at_pointer(self, pointer: &str) -> Option<FactNode<'a>> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for raw in pointer.strip_prefix('/')?.split('/') {
            let token = raw.replace("~1", "/").replace("~0", "~");
            node = if let Some(object) = node.as_object() {
                object.get(&token)?
            } else {
                let items = node.as_array()?;
                items
                    .items
                    .get(token.parse::<usize>().ok()?)
                    .map(FactNode::Value)?
            };
        }
        Some(node)
    }
}

impl<'a> Node<'a, FactJson> for FactNode<'a> {
    type Object = FactObject<'a>;
    type Array = FactArray<'a>;
    type Number = FactNumber;

    fn as_object(&self) -> Option<FactObject<'a>> {
        match *self {
            FactNode::Fields(members) => Some(FactObject {
                members,
                skips_reserved: true,
            }),
            FactNode::Value(FactValue::Object(members)) => Some(FactObject {
                members,
                skips_reserved: false,
            }),
            FactNode::Value(_) => None,
        }
    }

    fn as_array(&self) -> Option<FactArray<'a>> {
        match *self {
            FactNode::Value(FactValue::Array(items)) => Some(FactArray { items }),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match *self {
            FactNode::Value(FactValue::String(text)) => Some(Cow::Borrowed(text)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<FactNumber> {
        match *self {
            FactNode::Value(FactValue::Number(number)) => Some(FactNumber(*number)),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match *self {
            FactNode::Value(FactValue::Bool(boolean)) => Some(*boolean),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, FactNode::Value(FactValue::Null))
    }

    fn json_type(&self) -> JsonType {
        match *self {
            FactNode::Fields(_) | FactNode::Value(FactValue::Object(_)) => JsonType::Object,
            FactNode::Value(FactValue::Null) => JsonType::Null,
            FactNode::Value(FactValue::Bool(_)) => JsonType::Boolean,
            FactNode::Value(FactValue::Number(_)) => JsonType::Number,
            FactNode::Value(FactValue::String(_)) => JsonType::String,
            FactNode::Value(FactValue::Array(_)) => JsonType::Array,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(match *self {
            FactNode::Fields(members) => Value::Object(
                FactObject {
                    members,
                    skips_reserved: true,
                }
                .visible()
                .map(|(name, value)| (name.clone(), json_value(value)))
                .collect::<Map<String, Value>>(),
            ),
            FactNode::Value(value) => json_value(value),
        })
    }

    fn identity(&self) -> Option<NodeIdentity> {
        // Values live at distinct addresses while the fact is borrowed; the
        // root, a slice, is tagged apart since a value may share its address.
        Some(match *self {
            FactNode::Fields(members) => NodeIdentity::tagged(members.as_ptr() as usize, 1),
            FactNode::Value(value) => NodeIdentity::new(std::ptr::from_ref(value) as usize),
        })
    }
}

impl<'a> Object<'a, FactJson> for FactObject<'a> {
    type Node = FactNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Box<dyn Iterator<Item = (&'a str, FactNode<'a>)> + 'a>;

    fn len(&self) -> usize {
        self.visible().count()
    }

    fn get(&self, key: &String) -> Option<FactNode<'a>> {
        if self.skips_reserved && key.starts_with(RESERVED_FIELD_PREFIX) {
            return None;
        }
        self.members
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| FactNode::Value(value))
    }

    fn members(&self) -> Self::MembersIter {
        Box::new(
            self.visible()
                .map(|(name, value)| (name.as_str(), FactNode::Value(value))),
        )
    }
}

/// An array's items.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FactArray<'a> {
    items: &'a [FactValue],
}

impl<'a> Array<'a, FactJson> for FactArray<'a> {
    type Node = FactNode<'a>;
    type ElementsIter =
        std::iter::Map<std::slice::Iter<'a, FactValue>, fn(&'a FactValue) -> FactNode<'a>>;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn elements(&self) -> Self::ElementsIter {
        self.items
            .iter()
            .map(FactNode::Value as fn(&'a FactValue) -> FactNode<'a>)
    }
}

/// One value as `serde_json`, for the cold paths (messages, `enum`, `const`).
fn json_value(value: &FactValue) -> Value {
    match value {
        FactValue::Null => Value::Null,
        FactValue::Bool(boolean) => Value::Bool(*boolean),
        FactValue::Number(number) => Value::Number(json_number(*number)),
        FactValue::String(text) => Value::String(text.clone()),
        FactValue::Array(items) => Value::Array(items.iter().map(json_value).collect()),
        FactValue::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, member)| (name.clone(), json_value(member)))
                .collect(),
        ),
    }
}

fn json_number(number: f64) -> Number {
    if number.fract() == 0.0 && number.abs() <= EXACT_INTEGER_MAGNITUDE_MAX {
        // Exact: the magnitude is at most 2^53, well inside i64.
        return Number::from(number as i64);
    }
    // A fact's numbers are finite (cairn_fact::Fact's invariant), so
    // `from_f64` answers; zero would only stand for a broken invariant.
    Number::from_f64(number).unwrap_or_else(|| Number::from(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_fields() -> Vec<(String, FactValue)> {
        vec![
            ("cairn_version".to_string(), FactValue::Number(2.0)),
            ("total".to_string(), FactValue::Number(12.5)),
            (
                "nested".to_string(),
                FactValue::Object(vec![("cairn_kept".to_string(), FactValue::Bool(true))]),
            ),
            (
                "items".to_string(),
                FactValue::Array(vec![FactValue::Null, FactValue::String("a/b".into())]),
            ),
            ("count".to_string(), FactValue::Number(-3.0)),
            ("big".to_string(), FactValue::Number(1e300)),
        ]
    }

    #[test]
    fn reserved_members_are_left_out_only_at_the_top() {
        let fields = sample_fields();
        let root = FactNode::Fields(&fields);
        assert_eq!(
            root.to_value().into_owned(),
            json!({
                "total": 12.5,
                "nested": {"cairn_kept": true},
                "items": [null, "a/b"],
                "count": -3,
                "big": 1e300
            })
        );
        let object = root.as_object().expect("an object");
        assert_eq!(object.len(), 5);
        assert!(object.get(&"cairn_version".to_string()).is_none());
        assert_eq!(
            object.member_names(),
            vec!["total", "nested", "items", "count", "big"]
        );
    }

    #[test]
    fn pointers_reach_members_and_items() {
        let fields = sample_fields();
        let root = FactNode::Fields(&fields);
        let item = root.at_pointer("/items/1").expect("present");
        assert_eq!(item.as_string().as_deref(), Some("a/b"));
        assert!(root.at_pointer("/nested/cairn_kept").is_some());
        assert!(root.at_pointer("/cairn_version").is_none());
        assert!(root.at_pointer("/items/7").is_none());
        assert!(root.at_pointer("").is_some());
    }

    #[test]
    fn numbers_read_as_json_numbers() {
        assert_eq!(FactNumber(3.0).as_u64(), Some(3));
        assert_eq!(FactNumber(-3.0).as_u64(), None);
        assert_eq!(FactNumber(-3.0).as_i64(), Some(-3));
        assert_eq!(FactNumber(2.5).as_i64(), None);
        assert!(FactNumber(1e300).is_integer());
        assert_eq!(FactNumber(1e300).as_i64(), None);
        assert_eq!(FactNumber(7.0).as_str(), "7");
        assert_eq!(FactNumber(0.5).as_str(), "0.5");
    }

    #[test]
    fn schemas_validate_the_representation_as_serde_json() {
        let schema = json!({
            "type": "object",
            "properties": {
                "total": {"type": "number", "maximum": 10},
                "count": {"type": "integer"},
                "items": {"type": "array", "items": {"type": ["null", "string"]}, "uniqueItems": true},
                "nested": {"propertyNames": {"pattern": "^cairn_"}, "minProperties": 1}
            },
            "additionalProperties": false
        });
        let validator = jsonschema::options_for::<FactJson>()
            .build(&schema)
            .expect("compiles");
        let fields = sample_fields();
        let errors: Vec<String> = validator
            .iter_errors(FactNode::Fields(&fields))
            .map(|error| format!("{} {}", error.instance_path(), error.kind().keyword()))
            .collect();
        assert_eq!(errors, vec!["/total maximum", " additionalProperties"]);
    }
}
