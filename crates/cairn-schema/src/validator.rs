//! A schema registration compiled once, and the check of a fact against
//! it (`docs/api-v1.md`, "Schemas and upcasting").
//!
//! The JSON Schema (draft 2020-12 only) is validated by the `jsonschema`
//! crate, built without its remote-reference features and compiled
//! offline: only local references (`#…`) resolve, nothing is ever
//! fetched. `pattern` uses the linear-time `regex` engine, so no fact can
//! make a pattern backtrack for long. What `jsonschema` does not check,
//! or checks with an unclear message (size, depth, `$schema`, non-local
//! references, reference cycles that never move into the fact), is
//! checked first by [`schema_walk`].
//!
//! The server compiles each registered version once and keeps the
//! [`CompiledSchema`] in an `Arc`; validating a fact runs the compiled
//! validator on its parsed fields in place (without Cairn's `cairn_…`
//! ones), through the representation in [`fact_json`].

mod fact_json;
mod role_rules;
mod schema_walk;

use std::sync::Arc;

use cairn_api::limits::{
    SCHEMA_PREDECESSOR_ROLES_MAX, SCHEMA_UPCAST_OPERATIONS_MAX, SCHEMA_VIOLATIONS_MAX,
};
use cairn_api::schemas::{pointer_tokens, SchemaRegistration, UpcastOperation, Violation};
use cairn_fact::{Fact, Hash};
use jsonschema::error::ValidationErrorKind;
use jsonschema::json::{Node, SerdeJson};
use jsonschema::{Draft, PatternOptions, Retrieve, ValidationError, ValidationOptions, Validator};
use serde_json::Value;

use self::fact_json::{FactJson, FactNode};
use self::role_rules::RoleRules;
use self::schema_walk::{
    check_schema, count_patterns, escape_pointer_token, holds_reference, PATTERNS_MAX,
    PATTERN_COMPILED_BYTES_MAX,
};

/// Characters of a violation's message at most: a message quotes the
/// offending value, which may be large.
const VIOLATION_MESSAGE_CHARS_MAX: usize = 300;

/// Why a registration is refused (`400 invalid_schema`): a sentence for a
/// person naming what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// A registration checked and compiled: the validator of `fields` and the
/// predecessor rules. Compiled once per version, shared in an `Arc`.
#[derive(Debug)]
pub struct CompiledSchema {
    fields_validator: Validator<FactJson>,
    role_rules: RoleRules,
}

// The server shares compiled schemas between its worker threads.
const _: () = {
    const fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<CompiledSchema>();
};

impl CompiledSchema {
    /// Checks and compiles a registration: the schema is a valid draft
    /// 2020-12 schema (meta-validated), with only local references and no
    /// reference cycle that never moves into the fact, within the size and
    /// depth limits; the upcast operations pass [`UpcastOperation::check`];
    /// every `default` upcast value is valid against the schema at its path
    /// when that is simple to tell (the path follows `properties` only, to
    /// a subschema without references); the predecessor roles and their
    /// type patterns parse.
    pub fn compile(registration: &SchemaRegistration) -> Result<CompiledSchema, SchemaError> {
        let schema = &registration.schema;
        if !schema.is_object() && !schema.is_boolean() {
            return Err(SchemaError(
                "schema must be a JSON Schema: an object or a boolean".into(),
            ));
        }
        check_schema(schema).map_err(SchemaError)?;
        let fields_validator = validator_options::<FactJson>()
            .build(schema)
            .map_err(|error| SchemaError(build_error_message(&error)))?;
        check_upcast(&registration.upcast, schema)?;
        if let Some(roles) = &registration.predecessors {
            if roles.len() > SCHEMA_PREDECESSOR_ROLES_MAX {
                return Err(SchemaError(format!(
                    "predecessors names {} roles, more than the {SCHEMA_PREDECESSOR_ROLES_MAX} \
                     a schema may constrain",
                    roles.len()
                )));
            }
        }
        let role_rules =
            RoleRules::compile(registration.predecessors.as_ref()).map_err(SchemaError)?;
        Ok(CompiledSchema {
            fields_validator,
            role_rules,
        })
    }

    /// Whether validating needs the types of the fact's predecessors (some
    /// role constrains `types`).
    pub fn needs_predecessor_types(&self) -> bool {
        self.role_rules.needs_predecessor_types()
    }

    /// Checks one fact written at this version: its fields without the
    /// `cairn_` ones against the schema (pointers `/fields/…`, rule = the
    /// JSON Schema keyword), and its predecessors against the role
    /// constraints (pointers `/predecessors/<role>`, rules `role`,
    /// `required`, `many`, `role_type`; a predecessor whose type
    /// `predecessor_type` does not know is not judged). At most
    /// [`SCHEMA_VIOLATIONS_MAX`] violations, sorted by pointer, rule and
    /// message, so the answer does not depend on how the client ordered
    /// the fields. Empty: the fact conforms.
    pub fn validate(
        &self,
        fact: &Fact,
        predecessor_type: &dyn Fn(&Hash) -> Option<String>,
    ) -> Vec<Violation> {
        let instance = FactNode::Fields(&fact.fields);
        let mut violations = Vec::new();
        // The fast path: most facts conform, and `is_valid` stops at the
        // first error without building any.
        if !self.fields_validator.is_valid(instance) {
            for error in self.fields_validator.iter_errors(instance) {
                push_field_violations(&error, instance, &mut violations);
            }
        }
        self.role_rules
            .check(fact, predecessor_type, &mut violations);
        violations.sort_by(|left, right| {
            (&left.pointer, &left.rule, &left.message).cmp(&(
                &right.pointer,
                &right.rule,
                &right.message,
            ))
        });
        violations.dedup();
        violations.truncate(SCHEMA_VIOLATIONS_MAX);
        violations
    }
}

/// The options every schema is compiled with: draft 2020-12, offline (a
/// reference not in the schema itself is an error, never a fetch), and the
/// linear-time regex engine, each expression at most
/// [`PATTERN_COMPILED_BYTES_MAX`] compiled.
pub(crate) fn validator_options<J: jsonschema::json::Json>(
) -> ValidationOptions<'static, Arc<dyn Retrieve>, J> {
    jsonschema::options_for::<J>()
        .with_draft(Draft::Draft202012)
        .offline()
        .with_pattern_options(PatternOptions::regex().size_limit(PATTERN_COMPILED_BYTES_MAX))
}

/// A sentence for a compile error: where in the schema, and what.
fn build_error_message(error: &ValidationError<'_>) -> String {
    let location = error.instance_path().as_str();
    match error.kind() {
        ValidationErrorKind::Referencing(reference_error) => format!(
            "the schema's references do not resolve locally ({reference_error}); only \
             references within the schema (starting with #) resolve, nothing is ever fetched"
        ),
        ValidationErrorKind::Format { format } if format == "regex" => format!(
            "the schema is not a valid JSON Schema (draft 2020-12) at #{location}: {} is not a \
             regular expression Cairn accepts: it must suit a linear-time engine (no lookaround, no backreferences) and \
             compile to at most {} KiB (a long repetition of . or of a Unicode class, such as \
             .{{999}}, is larger)",
            shortened(&error.instance().to_string()),
            PATTERN_COMPILED_BYTES_MAX / 1024
        ),
        _ if location.is_empty() => {
            format!("the schema is not a valid JSON Schema (draft 2020-12): {error}")
        }
        _ => {
            format!("the schema is not a valid JSON Schema (draft 2020-12) at #{location}: {error}")
        }
    }
}

/// Checks the upcast operations, and the `default` values where the
/// schema at their path is simple to find.
fn check_upcast(operations: &[UpcastOperation], schema: &Value) -> Result<(), SchemaError> {
    if operations.len() > SCHEMA_UPCAST_OPERATIONS_MAX {
        return Err(SchemaError(format!(
            "upcast holds {} operations, more than the {SCHEMA_UPCAST_OPERATIONS_MAX} allowed",
            operations.len()
        )));
    }
    // Judging a default compiles the subschema at its path again, its
    // regular expressions with it: past this budget, the remaining defaults
    // whose subschema holds any are not judged, so that a hundred defaults
    // into one pattern-heavy subschema cannot multiply the compile time.
    let mut patterns_to_compile_left = PATTERNS_MAX;
    for (index, operation) in operations.iter().enumerate() {
        operation
            .check()
            .map_err(|error| SchemaError(format!("upcast[{index}]: {error}")))?;
        let UpcastOperation::Default { path, value } = operation else {
            continue;
        };
        let tokens = pointer_tokens(path)
            .map_err(|error| SchemaError(format!("upcast[{index}]: {error}")))?;
        let Some(subschema) = subschema_at(schema, &tokens) else {
            continue;
        };
        // A subschema with references would resolve them against itself
        // alone, wrongly: such defaults are not judged here.
        if holds_reference(subschema) {
            continue;
        }
        let Some(patterns_left) = patterns_to_compile_left.checked_sub(count_patterns(subschema))
        else {
            continue;
        };
        patterns_to_compile_left = patterns_left;
        let Ok(subschema_validator) = validator_options::<SerdeJson>().build(subschema) else {
            continue;
        };
        let first_error = subschema_validator
            .iter_errors(value)
            .next()
            .map(|error| shortened(&error.to_string()));
        if let Some(error) = first_error {
            return Err(SchemaError(format!(
                "upcast[{index}]: the default value {value} for {path:?} does not satisfy the \
                 schema there: {error}"
            )));
        }
    }
    Ok(())
}

/// The subschema of the member at `tokens`, found by following
/// `properties` only; `None` when the way there is anything else.
fn subschema_at<'a>(schema: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(schema, |current, token| {
        current.get("properties")?.get(token)
    })
}

/// Keywords whose value, when it is the schema `false`, is named as the
/// rule of the error (rather than `false`): they apply it to members or items.
const FALSE_SCHEMA_KEYWORDS: [&str; 7] = [
    "additionalProperties",
    "items",
    "prefixItems",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
];

/// Appends the violations one validation error stands for: one per
/// missing or unexpected member, naming it, else one at the error's place.
fn push_field_violations(
    error: &ValidationError<'_>,
    instance: FactNode<'_>,
    violations: &mut Vec<Violation>,
) {
    let instance_pointer = error.instance_path().as_str();
    let pointer = format!("/fields{instance_pointer}");
    let mut rule = error.kind().keyword().to_string();
    let mut message = shortened(&error.to_string());
    let mut members: Vec<String> = match error.kind() {
        ValidationErrorKind::Required { property } => match property {
            Value::String(name) => vec![name.clone()],
            other => vec![other.to_string()],
        },
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected.clone(),
        _ => Vec::new(),
    };
    if let ValidationErrorKind::FalseSchema = error.kind() {
        let keyword = error
            .schema_path()
            .as_str()
            .rsplit('/')
            .next()
            .filter(|keyword| FALSE_SCHEMA_KEYWORDS.contains(keyword));
        rule = keyword.unwrap_or("false").to_string();
        // `jsonschema` checks `additionalProperties: false` beside no
        // `properties` nor `patternProperties` as one error at the object
        // (every member is unexpected there): name each member instead.
        if keyword == Some("additionalProperties") {
            if let Some(object) = instance
                .at_pointer(instance_pointer)
                .and_then(|node| node.as_object())
            {
                members = object.member_names();
                members.sort();
                message = format!(
                    "no properties are allowed here ({} were given)",
                    shortened(&members.join(", "))
                );
            }
        }
    }
    if members.is_empty() {
        violations.push(Violation {
            pointer,
            rule,
            message,
        });
        return;
    }
    for member in members {
        violations.push(Violation {
            pointer: format!("{pointer}/{}", escape_pointer_token(&member)),
            rule: rule.clone(),
            message: message.clone(),
        });
    }
}

/// A message cut to [`VIOLATION_MESSAGE_CHARS_MAX`] characters.
fn shortened(message: &str) -> String {
    match message.char_indices().nth(VIOLATION_MESSAGE_CHARS_MAX) {
        None => message.to_string(),
        Some((cut, _)) => format!("{}…", &message[..cut]),
    }
}
