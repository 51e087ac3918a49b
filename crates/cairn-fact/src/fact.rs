//! A validated fact: its type name, its fields and its predecessors by role,
//! checked against the rules of the API contract and normalized (predecessor
//! sets sorted and deduplicated, roles sorted) so that it has exactly one
//! canonical form.

use crate::canonical::{write_canonical_object, write_canonical_string};
use crate::canonical_number::is_beyond_safe_integer_notation;
use crate::excerpt::{excerpt, EXCERPT_CHARS_MAX};
use crate::limits::{JSON_DEPTH_MAX, ROLE_NAME_CHARS_MAX, TYPE_NAME_CHARS_MAX};
use crate::parse::reject_duplicate_keys;
use crate::{to_canonical, FactError, Hash, JsonError, PredecessorRef, Value};

/// Nesting depth of the values of `fields`: the fact object is depth 1 and
/// its `fields` object depth 2.
const FIELD_VALUE_DEPTH: usize = 3;

/// A fact that satisfies every rule of the API contract.
///
/// Built by [`Fact::from_value`], it holds: a valid type name; fields whose
/// values are finite, unique-keyed and nested at most
/// [`JSON_DEPTH_MAX`] deep (counting from the fact); and valid roles in
/// ascending order, each with a normalized [`PredecessorRef`].
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    /// The type name, such as `Shop.Order`.
    pub type_name: String,
    /// The fields, in the order the client wrote them (the canonical form
    /// sorts them).
    pub fields: Vec<(String, Value)>,
    /// The predecessors by role, sorted by role.
    pub predecessors: Vec<(String, PredecessorRef)>,
}

impl Fact {
    /// Validates a fact given as a JSON value: an object with exactly the
    /// members `type`, `fields` and `predecessors`.
    pub fn from_value(value: &Value) -> Result<Fact, FactError> {
        let members = fact_members(value)?;
        let fields = members
            .fields
            .as_object()
            .ok_or(FactError::FieldsNotObject)?;
        // Values built in code may break rules the parser enforces.
        reject_duplicate_keys(fields)?;
        for (_, field_value) in fields {
            check_canonicalizable(field_value, FIELD_VALUE_DEPTH)?;
        }
        let predecessors = validate_predecessors(members.predecessors)?;
        Ok(Fact {
            type_name: members.type_name.to_string(),
            fields: fields.to_vec(),
            predecessors,
        })
    }

    /// Validates a fact as [`Fact::from_value`] does, from a value that
    /// [`parse_json`](crate::parse_json) returned with a depth limit of at
    /// most [`JSON_DEPTH_MAX`], taking its fields and type name over rather
    /// than copying them.
    ///
    /// Such a value already has unique keys, only numbers that can be
    /// canonicalized, and nesting within [`JSON_DEPTH_MAX`] counted from
    /// the fact, so the checks of [`check_canonicalizable`] cannot fail and
    /// are skipped (debug builds still run them); every other check, and
    /// so every error, is that of [`Fact::from_value`].
    pub(crate) fn from_parsed_value(value: Value) -> Result<Fact, FactError> {
        let members = fact_members(&value)?;
        if !matches!(members.fields, Value::Object(_)) {
            return Err(FactError::FieldsNotObject);
        }
        debug_assert!(members
            .fields
            .as_object()
            .is_some_and(|fields| reject_duplicate_keys(fields).is_ok()
                && fields.iter().all(|(_, field_value)| {
                    check_canonicalizable(field_value, FIELD_VALUE_DEPTH).is_ok()
                })));
        let predecessors = validate_predecessors(members.predecessors)?;
        let Value::Object(members) = value else {
            unreachable!("fact_members accepted only an object");
        };
        let mut type_name = String::new();
        let mut fields = Vec::new();
        for (name, member_value) in members {
            match (name.as_str(), member_value) {
                ("type", Value::String(text)) => type_name = text,
                ("fields", Value::Object(field_members)) => fields = field_members,
                _ => {}
            }
        }
        Ok(Fact {
            type_name,
            fields,
            predecessors,
        })
    }

    /// Returns the fact as a JSON value in normalized form: predecessor sets
    /// sorted and deduplicated, a single predecessor still a string, a set
    /// still an array even with one element. Its canonical form is the one
    /// that is hashed.
    pub fn to_value(&self) -> Value {
        let predecessors = self
            .predecessors
            .iter()
            .map(|(role, predecessor)| (role.clone(), predecessor.to_value()))
            .collect();
        Value::Object(vec![
            ("fields".to_string(), Value::Object(self.fields.clone())),
            ("predecessors".to_string(), Value::Object(predecessors)),
            ("type".to_string(), Value::String(self.type_name.clone())),
        ])
    }

    /// Returns `(role, hash)` for every predecessor hash, by role and then
    /// by hash.
    pub fn all_predecessors(&self) -> impl Iterator<Item = (&str, &Hash)> {
        self.predecessors.iter().flat_map(|(role, predecessor)| {
            predecessor
                .hashes()
                .iter()
                .map(move |hash| (role.as_str(), hash))
        })
    }

    /// Appends the canonical form of the fact to `out` without building the
    /// intermediate value of [`Fact::to_value`]. The output is the same as
    /// `to_canonical(&self.to_value())` for any fact built by
    /// [`Fact::from_value`].
    pub(crate) fn write_canonical(&self, out: &mut Vec<u8>) {
        // Member names in canonical (sorted) order; roles are ASCII and
        // sorted, so their byte order is their UTF-16 order.
        out.extend_from_slice(b"{\"fields\":");
        write_canonical_object(&self.fields, out);
        out.extend_from_slice(b",\"predecessors\":{");
        for (role_idx, (role, predecessor)) in self.predecessors.iter().enumerate() {
            if role_idx > 0 {
                out.push(b',');
            }
            write_canonical_string(role, out);
            out.push(b':');
            match predecessor {
                PredecessorRef::One(hash) => write_hash(hash, out),
                PredecessorRef::Many(hashes) => {
                    out.push(b'[');
                    for (hash_idx, hash) in hashes.iter().enumerate() {
                        if hash_idx > 0 {
                            out.push(b',');
                        }
                        write_hash(hash, out);
                    }
                    out.push(b']');
                }
            }
        }
        out.extend_from_slice(b"},\"type\":");
        write_canonical_string(&self.type_name, out);
        out.push(b'}');
        debug_assert!(
            out.ends_with(&to_canonical(&self.to_value())),
            "the direct canonical writer must agree with the value writer"
        );
    }
}

fn write_hash(hash: &Hash, out: &mut Vec<u8>) {
    out.push(b'"');
    hash.write_hex(out);
    out.push(b'"');
}

/// The three members of a fact object, found and checked for presence, and
/// the type name checked; the first error in the order the API contract
/// gives them otherwise.
struct FactMembers<'value> {
    type_name: &'value str,
    fields: &'value Value,
    predecessors: &'value Value,
}

/// Finds the members of a fact object: refuses anything but an object with
/// exactly `type`, `fields` and `predecessors`, and an invalid type name.
fn fact_members(value: &Value) -> Result<FactMembers<'_>, FactError> {
    let members = value.as_object().ok_or(FactError::NotAnObject)?;
    let mut type_value = None;
    let mut fields_value = None;
    let mut predecessors_value = None;
    for (name, member_value) in members {
        let slot = match name.as_str() {
            "type" => &mut type_value,
            "fields" => &mut fields_value,
            "predecessors" => &mut predecessors_value,
            _ => {
                return Err(FactError::UnknownMember {
                    name: excerpt(name, EXCERPT_CHARS_MAX),
                })
            }
        };
        if slot.replace(member_value).is_some() {
            return Err(JsonError::DuplicateKey { key: name.clone() }.into());
        }
    }
    let missing = |name: &str| FactError::MissingMember {
        name: name.to_string(),
    };
    let type_value = type_value.ok_or_else(|| missing("type"))?;
    let fields = fields_value.ok_or_else(|| missing("fields"))?;
    let predecessors = predecessors_value.ok_or_else(|| missing("predecessors"))?;
    Ok(FactMembers {
        type_name: type_name_of(type_value)?,
        fields,
        predecessors,
    })
}

/// Checks the fact's `type` member: it must be a string that is a valid
/// type name (see [`validate_type_name`]).
fn type_name_of(value: &Value) -> Result<&str, FactError> {
    let Value::String(type_name) = value else {
        return Err(FactError::InvalidType {
            type_name: excerpt(
                &String::from_utf8_lossy(&to_canonical(value)),
                EXCERPT_CHARS_MAX,
            ),
            reason: format!("it must be a string, not {}", value.kind_name()),
        });
    };
    validate_type_name(type_name)?;
    Ok(type_name)
}

/// Checks a type name: 1 to [`TYPE_NAME_CHARS_MAX`] characters,
/// dot-separated names each made of a letter followed by letters, digits
/// and underscores. Queries use it for their `type` and `without` values.
pub fn validate_type_name(type_name: &str) -> Result<(), FactError> {
    let invalid = |reason: String| FactError::InvalidType {
        type_name: excerpt(type_name, EXCERPT_CHARS_MAX),
        reason,
    };
    if type_name.is_empty() {
        return Err(invalid("it is empty".to_string()));
    }
    if !is_dotted_name(type_name) {
        return Err(invalid(
            "it must be one or more names separated by dots, each a letter followed by \
             letters, digits or underscores"
                .to_string(),
        ));
    }
    // The name is ASCII now, so bytes count characters.
    if type_name.len() > TYPE_NAME_CHARS_MAX {
        return Err(invalid(format!(
            "it is {} characters long, more than {TYPE_NAME_CHARS_MAX}",
            type_name.len()
        )));
    }
    Ok(())
}

/// Checks a role name: a letter followed by letters, digits or underscores,
/// at most [`ROLE_NAME_CHARS_MAX`] characters.
pub fn validate_role(role: &str) -> Result<(), FactError> {
    if is_name(role) && role.len() <= ROLE_NAME_CHARS_MAX {
        Ok(())
    } else {
        Err(FactError::InvalidRole {
            role: excerpt(role, EXCERPT_CHARS_MAX),
        })
    }
}

/// Tells whether `text` is one or more names (see [`is_name`]) separated
/// by dots, in one pass over its bytes; the same as
/// `text.split('.').all(is_name)`.
fn is_dotted_name(text: &str) -> bool {
    let mut at_name_start = true;
    for byte in text.bytes() {
        let is_valid = if at_name_start {
            byte.is_ascii_alphabetic()
        } else {
            byte == b'.' || byte.is_ascii_alphanumeric() || byte == b'_'
        };
        if !is_valid {
            return false;
        }
        at_name_start = byte == b'.';
    }
    !at_name_start
}

/// Tells whether `text` is a letter followed by letters, digits or
/// underscores (ASCII only).
fn is_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Checks the roles and hashes of the `predecessors` member and returns them
/// normalized, sorted by role.
fn validate_predecessors(value: &Value) -> Result<Vec<(String, PredecessorRef)>, FactError> {
    let members = value.as_object().ok_or(FactError::PredecessorsNotObject)?;
    let mut predecessors = Vec::with_capacity(members.len());
    for (role, role_value) in members {
        validate_role(role)?;
        predecessors.push((role.clone(), PredecessorRef::from_value(role, role_value)?));
    }
    predecessors.sort_unstable_by(|left, right| left.0.cmp(&right.0));
    if let Some(pair) = predecessors.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(JsonError::DuplicateKey {
            key: pair[0].0.clone(),
        }
        .into());
    }
    Ok(predecessors)
}

/// Checks that a field value at nesting `depth` can be canonicalized into
/// text that parses again: only finite numbers outside the range that would
/// be written as integers beyond ±(2^53−1), unique keys, and nesting within
/// [`JSON_DEPTH_MAX`]. Parsed values always pass; values built in code might
/// not.
fn check_canonicalizable(value: &Value, depth: usize) -> Result<(), JsonError> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
        Value::Number(number) if !number.is_finite() => Err(JsonError::NonFinite { offset: 0 }),
        Value::Number(number) if is_beyond_safe_integer_notation(*number) => {
            Err(JsonError::IntegerOutOfRange {
                offset: 0,
                literal: String::from_utf8_lossy(&to_canonical(value)).into_owned(),
            })
        }
        Value::Number(_) => Ok(()),
        Value::Array(items) => {
            check_depth(depth)?;
            items
                .iter()
                .try_for_each(|item| check_canonicalizable(item, depth + 1))
        }
        Value::Object(members) => {
            check_depth(depth)?;
            reject_duplicate_keys(members)?;
            members
                .iter()
                .try_for_each(|(_, member_value)| check_canonicalizable(member_value, depth + 1))
        }
    }
}

fn check_depth(depth: usize) -> Result<(), JsonError> {
    if depth > JSON_DEPTH_MAX {
        return Err(JsonError::TooDeep {
            depth_max: JSON_DEPTH_MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_json;

    fn hash(seed: u8) -> Hash {
        Hash::of_bytes(&[seed])
    }

    fn fact_from_text(text: &str) -> Result<Fact, FactError> {
        Fact::from_value(&parse_json(text.as_bytes(), JSON_DEPTH_MAX)?)
    }

    fn error_of(text: &str) -> FactError {
        fact_from_text(text).unwrap_err()
    }

    #[test]
    fn accepts_a_full_fact() {
        let text = format!(
            r#"{{"type":"Shop.Order","fields":{{"id":"x","total":450}},
                "predecessors":{{"items":["{b}","{a}"],"customer":"{c}"}}}}"#,
            a = hash(1),
            b = hash(2),
            c = hash(3),
        );
        let fact = fact_from_text(&text).unwrap();
        assert_eq!(fact.type_name, "Shop.Order");
        assert_eq!(fact.fields[0].0, "id");
        let roles: Vec<&str> = fact
            .predecessors
            .iter()
            .map(|(role, _)| role.as_str())
            .collect();
        assert_eq!(roles, ["customer", "items"]);
        let all: Vec<(&str, &Hash)> = fact.all_predecessors().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], ("customer", &hash(3)));
        assert!(all[1].1 < all[2].1);
        // The value form round-trips.
        assert_eq!(Fact::from_value(&fact.to_value()).unwrap(), fact);
    }

    #[test]
    fn direct_canonical_writer_matches_the_value_writer() {
        let text = format!(
            r#"{{"type":"T","fields":{{"z":[1,{{"b":2,"a":"\u0001"}}],"😂":null,"\ue000":0.5}},
                "predecessors":{{"b":["{a}"],"a":"{b}","c":["{b}","{a}","{b}"]}}}}"#,
            a = hash(1),
            b = hash(2),
        );
        let fact = fact_from_text(&text).unwrap();
        let mut direct = Vec::new();
        fact.write_canonical(&mut direct);
        assert_eq!(direct, to_canonical(&fact.to_value()));
    }

    #[test]
    fn refuses_malformed_facts() {
        let valid_fields = r#""fields":{},"predecessors":{}"#;
        assert_eq!(error_of("[]"), FactError::NotAnObject);
        assert_eq!(error_of("\"fact\""), FactError::NotAnObject);
        assert_eq!(
            error_of(&format!(r#"{{"type":"T",{valid_fields},"extra":1}}"#)),
            FactError::UnknownMember {
                name: "extra".to_string()
            }
        );
        assert_eq!(
            error_of(r#"{"type":"T","fields":{}}"#),
            FactError::MissingMember {
                name: "predecessors".to_string()
            }
        );
        assert_eq!(
            error_of(&format!("{{{valid_fields}}}")),
            FactError::MissingMember {
                name: "type".to_string()
            }
        );
        assert_eq!(
            error_of(r#"{"type":"T","fields":[],"predecessors":{}}"#),
            FactError::FieldsNotObject
        );
        assert_eq!(
            error_of(r#"{"type":"T","fields":{},"predecessors":[]}"#),
            FactError::PredecessorsNotObject
        );
        for error in [
            FactError::NotAnObject,
            FactError::FieldsNotObject,
            FactError::PredecessorsNotObject,
            error_of("{}"),
        ] {
            assert_eq!(error.code(), "invalid_fact");
        }
        assert_eq!(error_of("[1,]").code(), "malformed_json");
    }

    #[test]
    fn checks_type_names() {
        let type_error = |type_json: &str| {
            error_of(&format!(
                r#"{{"type":{type_json},"fields":{{}},"predecessors":{{}}}}"#
            ))
        };
        for type_json in [
            "\"\"",
            "\"1Order\"",
            "\"_Order\"",
            "\"Shop.\"",
            "\".Order\"",
            "\"Shop..Order\"",
            "\"Shop.1Order\"",
            "\"Shop-Order\"",
            "\"Shop._\"",
            "\"Shop Order\"",
            "\"Ördër\"",
            "42",
            "null",
            "[\"T\"]",
        ] {
            let error = type_error(type_json);
            assert_eq!(error.code(), "invalid_type", "{type_json}");
        }
        let long_name = format!("\"{}\"", "A".repeat(TYPE_NAME_CHARS_MAX + 1));
        let error = type_error(&long_name);
        assert_eq!(error.code(), "invalid_type");
        assert!(error.to_string().contains("201 characters"), "{error}");
        assert!(error.to_string().len() < 300, "{error}");
        let number_error = type_error("42");
        assert!(
            number_error.to_string().contains("not a number"),
            "{number_error}"
        );
        for valid in [
            "A",
            "z",
            "Shop.Order",
            "A1.b2.C3_",
            &"A".repeat(TYPE_NAME_CHARS_MAX),
        ] {
            let fact = fact_from_text(&format!(
                r#"{{"type":"{valid}","fields":{{}},"predecessors":{{}}}}"#
            ))
            .unwrap();
            assert_eq!(fact.type_name, valid);
        }
    }

    #[test]
    fn dotted_names_are_the_names_split_by_dots() {
        let texts = [
            "",
            "A",
            "a.b",
            "a..b",
            ".a",
            "a.",
            "A1.b2.C3_",
            "Shop.Order",
            "_a",
            "a._",
            "1a",
            "a.1",
            "a b",
            "é",
            "a.é",
            "a-b",
            ".",
            "..",
            "ab_.c9",
        ];
        for text in texts {
            assert_eq!(
                is_dotted_name(text),
                text.split('.').all(is_name),
                "{text:?}"
            );
        }
    }

    #[test]
    fn checks_roles() {
        let hex = hash(1).to_hex();
        let role_error = |role: &str| {
            error_of(&format!(
                r#"{{"type":"T","fields":{{}},"predecessors":{{"{role}":"{hex}"}}}}"#
            ))
        };
        for role in [
            "",
            "1a",
            "_a",
            "a.b",
            "a-b",
            "é",
            &"r".repeat(ROLE_NAME_CHARS_MAX + 1),
        ] {
            let error = role_error(role);
            assert_eq!(error.code(), "invalid_role", "{role}");
            assert!(matches!(error, FactError::InvalidRole { .. }));
        }
        assert_eq!(
            role_error("a b"),
            FactError::InvalidRole {
                role: "a b".to_string()
            }
        );
        for role in ["a", "Z9_", &"r".repeat(ROLE_NAME_CHARS_MAX)] {
            let text =
                format!(r#"{{"type":"T","fields":{{}},"predecessors":{{"{role}":"{hex}"}}}}"#);
            assert!(fact_from_text(&text).is_ok(), "{role}");
        }
    }

    #[test]
    fn checks_predecessors_and_hashes() {
        let predecessor_error = |predecessor_json: &str| {
            error_of(&format!(
                r#"{{"type":"T","fields":{{}},"predecessors":{{"parent":{predecessor_json}}}}}"#
            ))
        };
        assert_eq!(
            predecessor_error("[]"),
            FactError::InvalidPredecessor {
                role: "parent".to_string(),
                reason: "the array is empty; leave the role out instead".to_string(),
            }
        );
        assert_eq!(predecessor_error("null").code(), "invalid_predecessor");
        assert_eq!(predecessor_error("{}").code(), "invalid_predecessor");
        assert_eq!(predecessor_error("[1]").code(), "invalid_predecessor");
        let upper = hash(1).to_hex().to_uppercase();
        assert_eq!(
            predecessor_error(&format!("\"{upper}\"")),
            FactError::InvalidHash {
                role: "parent".to_string(),
                text: upper.clone(),
            }
        );
        assert_eq!(predecessor_error("\"abc\"").code(), "invalid_hash");
        let error = predecessor_error(&format!("[\"{}\", \"{upper}\"]", hash(2)));
        assert_eq!(error.code(), "invalid_hash");
        assert!(error.to_string().contains("parent"), "{error}");
    }

    #[test]
    fn refuses_values_built_in_code_that_break_parser_rules() {
        let fact_with_fields = |fields: Vec<(String, Value)>| {
            Value::Object(vec![
                ("type".to_string(), Value::String("T".to_string())),
                ("fields".to_string(), Value::Object(fields)),
                ("predecessors".to_string(), Value::Object(Vec::new())),
            ])
        };
        let nan = fact_with_fields(vec![("x".to_string(), Value::Number(f64::NAN))]);
        assert_eq!(
            Fact::from_value(&nan).unwrap_err().code(),
            "non_finite_number"
        );
        let infinite = fact_with_fields(vec![(
            "x".to_string(),
            Value::Array(vec![Value::Number(f64::INFINITY)]),
        )]);
        assert_eq!(
            Fact::from_value(&infinite).unwrap_err().code(),
            "non_finite_number"
        );
        let duplicate = fact_with_fields(vec![
            ("x".to_string(), Value::Null),
            ("x".to_string(), Value::Null),
        ]);
        assert_eq!(
            Fact::from_value(&duplicate).unwrap_err().code(),
            "duplicate_key"
        );
        let many_members: Vec<(String, Value)> = (0..100)
            .map(|member_idx| (format!("k{}", member_idx % 99), Value::Null))
            .collect();
        let nested_duplicate =
            fact_with_fields(vec![("x".to_string(), Value::Object(many_members))]);
        assert_eq!(
            Fact::from_value(&nested_duplicate).unwrap_err(),
            FactError::Json(JsonError::DuplicateKey {
                key: "k0".to_string()
            })
        );
        // A small object names the smallest duplicate key too, as the parser does.
        let small_duplicates = fact_with_fields(
            ["b", "a", "b", "a"]
                .into_iter()
                .map(|key| (key.to_string(), Value::Null))
                .collect(),
        );
        assert_eq!(
            Fact::from_value(&small_duplicates).unwrap_err(),
            FactError::Json(JsonError::DuplicateKey {
                key: "a".to_string()
            })
        );
        let mut deep = Value::Null;
        for _ in 0..JSON_DEPTH_MAX {
            deep = Value::Array(vec![deep]);
        }
        let too_deep = fact_with_fields(vec![("x".to_string(), deep)]);
        assert_eq!(
            Fact::from_value(&too_deep).unwrap_err().code(),
            "nesting_too_deep"
        );
        let mut duplicate_member = fact_with_fields(Vec::new());
        if let Value::Object(members) = &mut duplicate_member {
            members.push(("type".to_string(), Value::String("U".to_string())));
        }
        assert_eq!(
            Fact::from_value(&duplicate_member).unwrap_err().code(),
            "duplicate_key"
        );
    }

    #[test]
    fn depth_limit_counts_from_the_fact() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // The fact object and its fields object take two levels.
        let deepest_allowed = nested(JSON_DEPTH_MAX - 2);
        let text =
            format!(r#"{{"type":"T","fields":{{"x":{deepest_allowed}}},"predecessors":{{}}}}"#);
        let value = parse_json(text.as_bytes(), JSON_DEPTH_MAX).unwrap();
        assert!(Fact::from_value(&value).is_ok());
        let too_deep = nested(JSON_DEPTH_MAX - 1);
        let text = format!(r#"{{"type":"T","fields":{{"x":{too_deep}}},"predecessors":{{}}}}"#);
        assert_eq!(
            parse_json(text.as_bytes(), JSON_DEPTH_MAX)
                .unwrap_err()
                .code(),
            "nesting_too_deep"
        );
        // Parsed more leniently, the fact rule still applies.
        let value = parse_json(text.as_bytes(), JSON_DEPTH_MAX + 10).unwrap();
        assert_eq!(
            Fact::from_value(&value).unwrap_err().code(),
            "nesting_too_deep"
        );
    }
}
