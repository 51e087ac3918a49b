//! Schemas over the wire (`/v1/schemas`, "Schemas and upcasting" in
//! `docs/api-v1.md`): the registration body of a version, the views a
//! `GET` answers, the reserved field that names a fact's version, the
//! upcast operations and how they apply to a fact's `fields`.
//!
//! The upcast operations live here, not beside the validator, because
//! both sides run them: the server when a reader asks `as_version`, the
//! SDK when a typed fact reads an older version of itself. They are a
//! small declarative set on JSON pointers; nothing else is executed.

use std::collections::BTreeMap;

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::limits::{
    SCHEMA_PREDECESSOR_ROLES_MAX, SCHEMA_UPCAST_OPERATIONS_MAX, SCHEMA_VERSION_MAX,
};
use crate::request_body::RequestBody;

/// The reserved field of `fields` that names the schema version a fact
/// was written at; absent means version 1. Fields whose names start with
/// [`RESERVED_FIELD_PREFIX`] are Cairn's and are left out of validation.
pub const VERSION_FIELD: &str = "cairn_version";

/// The prefix of the fields that are Cairn's, not the schema's.
pub const RESERVED_FIELD_PREFIX: &str = "cairn_";

/// The fact type a registered schema version is stored as.
pub const SCHEMA_FACT_TYPE: &str = "Cairn.Schema";

/// How a new version must relate to the earlier ones (the modes of
/// Confluent Schema Registry). `backward`: a reader of the new version
/// reads facts of the previous one; `forward`: a reader of the previous
/// version reads facts of the new one; `full`: both. The `_transitive`
/// modes judge against every earlier version instead of the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// Not judged.
    None,
    /// New readers read the previous version's facts.
    Backward,
    /// Readers of the previous version read the new version's facts.
    Forward,
    /// Both backward and forward.
    Full,
    /// Backward against every earlier version.
    BackwardTransitive,
    /// Forward against every earlier version.
    ForwardTransitive,
    /// Full against every earlier version.
    FullTransitive,
}

impl Compatibility {
    /// The mode as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "none",
            Compatibility::Backward => "backward",
            Compatibility::Forward => "forward",
            Compatibility::Full => "full",
            Compatibility::BackwardTransitive => "backward_transitive",
            Compatibility::ForwardTransitive => "forward_transitive",
            Compatibility::FullTransitive => "full_transitive",
        }
    }

    /// Whether new readers must read older facts.
    pub const fn is_backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::Full
                | Compatibility::BackwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Whether older readers must read new facts.
    pub const fn is_forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::Full
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Whether every earlier version is judged, not only the previous one.
    pub const fn is_transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

/// What a schema requires of one predecessor role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleConstraint {
    /// Type patterns (as in permissions) the facts of this role must
    /// match; absent: any type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Whether every fact must name this role (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Whether the role may name several facts (default true); false: one
    /// hash, not an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub many: Option<bool>,
}

/// One upcast operation: how a fact of the previous version is read as
/// this version. Paths are JSON pointers (RFC 6901) into `fields`, whose
/// tokens name object members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpcastOperation {
    /// Renames a member within its object: the value at `from` moves to
    /// `to`, which must have the same parent. Nothing happens if `from` is
    /// absent; a value at `to` is replaced.
    Rename {
        /// The old member.
        from: String,
        /// The new member, a sibling of `from`.
        to: String,
    },
    /// Sets `path` to `value` where the fact has no value there (missing
    /// parent objects are created).
    Default {
        /// Where.
        path: String,
        /// The value of facts that have none.
        value: Value,
    },
    /// Moves the value at `from` to `to` anywhere in `fields`, creating
    /// missing parent objects. Nothing happens if `from` is absent; a value
    /// at `to` is replaced.
    Move {
        /// Where the value was.
        from: String,
        /// Where it goes.
        to: String,
    },
    /// Replaces a string value at `path` found among the keys of `values`
    /// by the value it maps to; any other value is left as it is.
    Map {
        /// Where.
        path: String,
        /// Old string value → new value.
        values: BTreeMap<String, Value>,
    },
}

/// The body of `PUT /v1/schemas/{type}/{version}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistration {
    /// A JSON Schema (draft 2020-12) of the fact's `fields` (its `cairn_`
    /// members left out). Only local references (`#…`) resolve; nothing
    /// is ever fetched.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub schema: Value,
    /// How this version must relate to the earlier ones.
    pub compatibility: Compatibility,
    /// How a fact of the previous version is read as this one, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upcast: Vec<UpcastOperation>,
    /// If present, the predecessor roles a fact may name (any other role
    /// is refused) and what each requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessors: Option<BTreeMap<String, RoleConstraint>>,
}

impl RequestBody for SchemaRegistration {
    fn check(&self) -> Result<(), String> {
        if !self.schema.is_object() && !self.schema.is_boolean() {
            return Err("schema must be a JSON Schema: an object or a boolean".into());
        }
        if self.upcast.len() > SCHEMA_UPCAST_OPERATIONS_MAX {
            return Err(format!(
                "upcast holds at most {SCHEMA_UPCAST_OPERATIONS_MAX} operations"
            ));
        }
        for (index, operation) in self.upcast.iter().enumerate() {
            operation
                .check()
                .map_err(|error| format!("upcast[{index}]: {error}"))?;
        }
        if let Some(roles) = &self.predecessors {
            if roles.len() > SCHEMA_PREDECESSOR_ROLES_MAX {
                return Err(format!(
                    "predecessors names at most {SCHEMA_PREDECESSOR_ROLES_MAX} roles"
                ));
            }
            for (role, constraint) in roles {
                cairn_fact::validate_role(role)
                    .map_err(|error| format!("predecessors: {error}"))?;
                for pattern in constraint.types.iter().flatten() {
                    crate::access::Pattern::parse(pattern)
                        .map_err(|error| format!("predecessors.{role}.types: {error}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Checks a schema version number from a path: 1 to [`SCHEMA_VERSION_MAX`].
pub fn parse_version(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(version)
            if (1..=SCHEMA_VERSION_MAX).contains(&version) && !text.starts_with(['0', '+']) =>
        {
            Ok(version)
        }
        _ => Err(format!(
            "a schema version is an integer from 1 to {SCHEMA_VERSION_MAX}, got {text:?}"
        )),
    }
}

/// The schema version a fact's `fields` name: [`VERSION_FIELD`], 1 if
/// absent; an error if it is not an integer from 1 to
/// [`SCHEMA_VERSION_MAX`].
pub fn fact_version(fields: &Map<String, Value>) -> Result<u32, String> {
    match fields.get(VERSION_FIELD) {
        None => Ok(1),
        Some(value) => value
            .as_u64()
            .filter(|version| (1..=u64::from(SCHEMA_VERSION_MAX)).contains(version))
            .map(|version| version as u32)
            .ok_or_else(|| {
                format!(
                    "{VERSION_FIELD} must be an integer from 1 to {SCHEMA_VERSION_MAX}, got {value}"
                )
            }),
    }
}

/// Why an upcast operation is not acceptable, or did not apply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UpcastError(pub String);

impl UpcastOperation {
    /// Checks the operation's pointers: RFC 6901, not empty, and not into
    /// Cairn's own fields; a rename stays within its object.
    pub fn check(&self) -> Result<(), UpcastError> {
        match self {
            UpcastOperation::Rename { from, to } => {
                let from_tokens = pointer_tokens(from)?;
                let to_tokens = pointer_tokens(to)?;
                if from_tokens[..from_tokens.len() - 1] != to_tokens[..to_tokens.len() - 1] {
                    return Err(UpcastError(format!(
                        "rename keeps a member in its object: {from:?} and {to:?} have different \
                         parents (use move)"
                    )));
                }
                if from == to {
                    return Err(UpcastError(format!("rename from {from:?} to itself")));
                }
                Ok(())
            }
            UpcastOperation::Move { from, to } => {
                let from_tokens = pointer_tokens(from)?;
                let to_tokens = pointer_tokens(to)?;
                if to_tokens.starts_with(&from_tokens) {
                    return Err(UpcastError(format!(
                        "move from {from:?} into itself ({to:?})"
                    )));
                }
                Ok(())
            }
            UpcastOperation::Default { path, .. } | UpcastOperation::Map { path, .. } => {
                pointer_tokens(path).map(|_| ())
            }
        }
    }

    /// Applies the operation to a fact's `fields`.
    pub fn apply(&self, fields: &mut Map<String, Value>) -> Result<(), UpcastError> {
        match self {
            UpcastOperation::Rename { from, to } | UpcastOperation::Move { from, to } => {
                if let Some(value) = take(fields, &pointer_tokens(from)?) {
                    put(fields, &pointer_tokens(to)?, value)?;
                }
                Ok(())
            }
            UpcastOperation::Default { path, value } => {
                let tokens = pointer_tokens(path)?;
                if get(fields, &tokens).is_none() {
                    put(fields, &tokens, value.clone())?;
                }
                Ok(())
            }
            UpcastOperation::Map { path, values } => {
                let tokens = pointer_tokens(path)?;
                let mapped = get(fields, &tokens)
                    .and_then(Value::as_str)
                    .and_then(|old| values.get(old))
                    .cloned();
                if let Some(new) = mapped {
                    put(fields, &tokens, new)?;
                }
                Ok(())
            }
        }
    }
}

/// Reads a fact's `fields` written at `from` as version `to`: applies the
/// upcasts of every version from `from + 1` to `to` in order (`upcasts(v)`
/// is what version `v` declares) and sets [`VERSION_FIELD`] to `to`.
pub fn upcast_fields<'a>(
    fields: &mut Map<String, Value>,
    from: u32,
    to: u32,
    upcasts: impl Fn(u32) -> &'a [UpcastOperation],
) -> Result<(), UpcastError> {
    for version in from.saturating_add(1)..=to {
        for operation in upcasts(version) {
            operation
                .apply(fields)
                .map_err(|error| UpcastError(format!("version {version}: {error}")))?;
        }
    }
    if to > 1 {
        fields.insert(VERSION_FIELD.to_string(), Value::from(to));
    } else {
        fields.remove(VERSION_FIELD);
    }
    Ok(())
}

/// The tokens of a JSON pointer into `fields` (RFC 6901: `~1` is `/`, `~0`
/// is `~`); at least one, the first not one of Cairn's fields.
pub fn pointer_tokens(pointer: &str) -> Result<Vec<String>, UpcastError> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(UpcastError(format!(
            "{pointer:?} is not a JSON pointer into fields (it starts with /)"
        )));
    };
    let mut tokens = Vec::new();
    for raw in rest.split('/') {
        let mut token = String::with_capacity(raw.len());
        let mut characters = raw.chars();
        while let Some(character) = characters.next() {
            if character == '~' {
                match characters.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => {
                        return Err(UpcastError(format!(
                            "{pointer:?}: ~ must be followed by 0 or 1 (RFC 6901)"
                        )))
                    }
                }
            } else {
                token.push(character);
            }
        }
        tokens.push(token);
    }
    if tokens[0].starts_with(RESERVED_FIELD_PREFIX) {
        return Err(UpcastError(format!(
            "{pointer:?} points into Cairn's own fields ({RESERVED_FIELD_PREFIX}…)"
        )));
    }
    Ok(tokens)
}

fn get<'a>(fields: &'a Map<String, Value>, tokens: &[String]) -> Option<&'a Value> {
    let (last, parents) = tokens.split_last()?;
    let mut object = fields;
    for token in parents {
        object = object.get(token)?.as_object()?;
    }
    object.get(last)
}

fn take(fields: &mut Map<String, Value>, tokens: &[String]) -> Option<Value> {
    let (last, parents) = tokens.split_last()?;
    let mut object = fields;
    for token in parents {
        object = object.get_mut(token)?.as_object_mut()?;
    }
    object.remove(last)
}

fn put(
    fields: &mut Map<String, Value>,
    tokens: &[String],
    value: Value,
) -> Result<(), UpcastError> {
    let Some((last, parents)) = tokens.split_last() else {
        return Err(UpcastError("an empty pointer".into()));
    };
    let mut object = fields;
    for token in parents {
        object = object
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| {
                UpcastError(format!(
                    "{token:?} is not an object, so nothing can be put inside it"
                ))
            })?;
    }
    object.insert(last.clone(), value);
    Ok(())
}

/// One version in `GET /v1/schemas/{type}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaVersionSummary {
    /// The version number.
    pub version: u32,
    /// Its declared compatibility.
    pub compatibility: Compatibility,
    /// The hash of the `Cairn.Schema` fact that registered it.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
}

/// The answer of `GET /v1/schemas/{type}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaList {
    /// The fact type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its versions, oldest first.
    pub versions: Vec<SchemaVersionSummary>,
}

/// The answer of `GET /v1/schemas`: every type that has a schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaTypes {
    /// The types, sorted, each with its versions.
    pub types: Vec<SchemaList>,
}

/// The answer of `GET /v1/schemas/{type}/{version}` and of a `PUT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaVersionView {
    /// The fact type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The version number.
    pub version: u32,
    /// The hash of the `Cairn.Schema` fact that registered it.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// The registration as it was stored.
    #[serde(flatten)]
    pub registration: SchemaRegistration,
    /// Of a `PUT` only: false if this very registration was already
    /// stored (the call was idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
}

/// One breaking change in the details of `409 incompatible_schema`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakingChange {
    /// The earlier version it breaks with.
    pub version: u32,
    /// `backward` (new readers cannot read that version's facts) or
    /// `forward` (that version's readers cannot read new facts).
    pub direction: String,
    /// The rule of the table in `docs/api-v1.md`, e.g.
    /// `property_added_to_open_content_model`.
    pub rule: String,
    /// Where, as a JSON pointer into the new schema.
    pub path: String,
    /// A sentence for a person.
    pub message: String,
}

/// One error in the details of `422 schema_violation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// Where in the fact, as a JSON pointer from the fact's root (e.g.
    /// `/fields/total`, `/predecessors/customer`).
    pub pointer: String,
    /// The rule it breaks: the JSON Schema keyword (`type`, `required`,
    /// `pattern`, …) or Cairn's (`version`, `role`, `role_type`).
    pub rule: String,
    /// A sentence for a person.
    pub message: String,
}

/// What an answer adds to a fact read `as_version` from an older version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpcastMarker {
    /// The version the fact was written at.
    pub from: u32,
    /// The version it is shown as.
    pub to: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    fn operation(value: Value) -> UpcastOperation {
        serde_json::from_value(value).expect("an operation")
    }

    #[test]
    fn each_operation_applies_as_documented() {
        let mut fact = fields(json!({"a": 1, "e": "old", "keep": true}));
        for value in [
            json!({"op": "rename", "from": "/a", "to": "/b"}),
            json!({"op": "default", "path": "/c", "value": "c"}),
            json!({"op": "move", "from": "/b", "to": "/x/b"}),
            json!({"op": "map", "path": "/e", "values": {"old": "new"}}),
        ] {
            operation(value).apply(&mut fact).expect("applies");
        }
        assert_eq!(
            Value::Object(fact),
            json!({"x": {"b": 1}, "c": "c", "e": "new", "keep": true})
        );
    }

    #[test]
    fn absent_sources_and_present_defaults_change_nothing() {
        let original = fields(json!({"c": 0, "e": 7}));
        let mut fact = original.clone();
        for value in [
            json!({"op": "rename", "from": "/a", "to": "/b"}),
            json!({"op": "default", "path": "/c", "value": "c"}),
            json!({"op": "move", "from": "/n/a", "to": "/x/a"}),
            json!({"op": "map", "path": "/e", "values": {"7": "seven"}}),
        ] {
            operation(value).apply(&mut fact).expect("applies");
        }
        assert_eq!(fact, original);
    }

    #[test]
    fn chains_apply_in_version_order_and_name_the_version() {
        let v2 = vec![operation(json!({"op": "rename", "from": "/a", "to": "/b"}))];
        let v3 = vec![operation(json!({"op": "move", "from": "/b", "to": "/x/b"}))];
        let upcasts = |version: u32| match version {
            2 => v2.as_slice(),
            3 => v3.as_slice(),
            _ => &[],
        };
        let mut fact = fields(json!({"a": 1}));
        upcast_fields(&mut fact, 1, 3, upcasts).expect("upcasts");
        assert_eq!(
            Value::Object(fact),
            json!({"x": {"b": 1}, "cairn_version": 3})
        );
        let mut fact = fields(json!({"b": 1, "cairn_version": 2}));
        upcast_fields(&mut fact, 2, 3, upcasts).expect("upcasts");
        assert_eq!(
            Value::Object(fact),
            json!({"x": {"b": 1}, "cairn_version": 3})
        );
    }

    #[test]
    fn bad_operations_are_refused() {
        for (value, expected) in [
            (
                json!({"op": "rename", "from": "/a", "to": "/x/b"}),
                "parents",
            ),
            (
                json!({"op": "rename", "from": "a", "to": "/b"}),
                "JSON pointer",
            ),
            (
                json!({"op": "move", "from": "/a", "to": "/a/b"}),
                "into itself",
            ),
            (
                json!({"op": "default", "path": "/cairn_version", "value": 2}),
                "Cairn's",
            ),
            (json!({"op": "map", "path": "/a~2", "values": {}}), "~"),
            (
                json!({"op": "default", "path": "", "value": 1}),
                "JSON pointer",
            ),
        ] {
            let error = operation(value.clone()).check().expect_err("refused");
            assert!(error.0.contains(expected), "{value}: {error}");
        }
        for value in [
            json!({"op": "delete", "path": "/a"}),
            json!({"op": "rename", "from": "/a"}),
            json!({"op": "map", "path": "/a", "values": {}, "extra": 1}),
        ] {
            assert!(serde_json::from_value::<UpcastOperation>(value).is_err());
        }
    }

    #[test]
    fn a_value_inside_a_non_object_is_an_error_not_a_loss() {
        let mut fact = fields(json!({"x": 5, "a": 1}));
        let error = operation(json!({"op": "move", "from": "/a", "to": "/x/a"}))
            .apply(&mut fact)
            .expect_err("cannot put into a number");
        assert!(error.0.contains("not an object"));
    }

    #[test]
    fn versions_are_read_from_fields_and_paths() {
        assert_eq!(fact_version(&fields(json!({}))), Ok(1));
        assert_eq!(fact_version(&fields(json!({"cairn_version": 3}))), Ok(3));
        for bad in [json!(0), json!(-1), json!(1.5), json!("2"), json!(null)] {
            assert!(fact_version(&fields(json!({"cairn_version": bad}))).is_err());
        }
        assert_eq!(parse_version("12"), Ok(12));
        for bad in ["0", "01", "+1", "-1", "x", "", "99999999999"] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
    }
}
