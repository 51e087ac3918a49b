//! The comparison of a writer's schema with a reader's: walks both
//! documents side by side and records every [`Difference`], judged by the
//! [`Rule`] catalogue. This file holds the walk itself (references,
//! recursion, memoisation, booleans), types and enumerations, the scalar
//! keywords and the combinations (`allOf`, `anyOf`, `oneOf`, `not`);
//! objects and arrays are in their own files.
//!
//! Recursion terminates because every pair of locations (one in each
//! document) is compared at most once: a pair met again while it is still
//! being compared is a cycle through `$ref` and is assumed compatible (the
//! rest of the cycle is judged where it was first entered); a pair met
//! again later reuses its recorded differences. Paths in differences are
//! locations in the new version's document, so they do not depend on the
//! route by which a pair was reached.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use jsonschema::json::SerdeJson;
use serde_json::{Map, Value};

use super::document::{accepts_everything, escape_token, rejects_everything, Document};
use super::rules::Rule;

/// Pairs of locations one comparison may judge, at most: a bound on the
/// work a registration can cause. Members and items pair up one to one,
/// so a schema judges about as many pairs as it has subschemas; only
/// combinations pair every alternative with every other (two `anyOf` of
/// 200 alternatives judge 40,000 pairs).
const PAIRS_COMPARED_MAX: usize = 50_000;

/// How many `$ref` hops lead from one location to a schema, at most.
const REFERENCE_HOPS_MAX: usize = 32;

/// One difference between the writer's and the reader's schema.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Difference {
    /// The kind of difference.
    pub rule: Rule,
    /// Where, as a JSON pointer into the new version's schema.
    pub path: String,
}

/// Which of the two documents a location is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Side {
    Writer,
    Reader,
}

/// A schema and where it is.
#[derive(Clone, Debug)]
pub(super) struct At<'d> {
    pub(super) schema: &'d Value,
    pub(super) location: String,
    pub(super) side: Side,
}

impl<'d> At<'d> {
    /// The subschema under `keyword_path` (tokens, already escaped, joined
    /// by `/`), if there is one.
    pub(super) fn child(&self, keyword_path: &str) -> Option<At<'d>> {
        let mut schema = self.schema;
        for token in keyword_path.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            schema = match schema {
                Value::Object(members) => members.get(&token)?,
                Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(At {
            schema,
            location: format!("{}/{keyword_path}", self.location),
            side: self.side,
        })
    }

    /// The member `name` of the map under `keyword` (for example a
    /// property's schema).
    pub(super) fn member(&self, keyword: &str, name: &str) -> Option<At<'d>> {
        self.child(&format!("{keyword}/{}", escape_token(name)))
    }

    /// The keyword's value, if present.
    pub(super) fn keyword(&self, keyword: &str) -> Option<&'d Value> {
        self.schema.get(keyword)
    }
}

type PairKey = (Side, String, Side, String);

/// The state of one comparison between two documents.
pub(super) struct Comparison<'d> {
    writer: &'d Document,
    reader: &'d Document,
    new_side: Side,
    memo: HashMap<PairKey, Vec<Difference>>,
    in_progress: HashSet<PairKey>,
    validators: HashMap<(Side, String), Option<jsonschema::Validator>>,
    patterns: HashMap<String, Option<jsonschema::Validator>>,
    pairs_compared: usize,
    limit_reached: bool,
}

/// Whether any difference breaks the reader.
pub(super) fn any_breaking(differences: &[Difference]) -> bool {
    differences
        .iter()
        .any(|difference| difference.rule.is_breaking())
}

fn count_breaking(differences: &[Difference]) -> usize {
    differences
        .iter()
        .filter(|difference| difference.rule.is_breaking())
        .count()
}

/// The JSON types as bits, so that sets of them are cheap to compare;
/// `number` is integer or fraction.
mod types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const OBJECT: u8 = 4;
    pub const ARRAY: u8 = 8;
    pub const STRING: u8 = 16;
    pub const INTEGER: u8 = 32;
    pub const FRACTION: u8 = 64;
    pub const NUMBER: u8 = INTEGER | FRACTION;
    pub const ALL: u8 = 127;
}

const STRING_KEYWORDS: &[&str] = &["maxLength", "minLength", "pattern"];
const NUMBER_KEYWORDS: &[&str] = &[
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
];
const OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "maxProperties",
    "minProperties",
    "propertyNames",
];
const ARRAY_KEYWORDS: &[&str] = &[
    "items",
    "prefixItems",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
];

fn type_of_value(value: &Value) -> u8 {
    match value {
        Value::Null => types::NULL,
        Value::Bool(_) => types::BOOLEAN,
        Value::Object(_) => types::OBJECT,
        Value::Array(_) => types::ARRAY,
        Value::String(_) => types::STRING,
        Value::Number(number) => {
            let integral = number.is_i64()
                || number.is_u64()
                || number.as_f64().is_some_and(|float| float.fract() == 0.0);
            if integral {
                types::INTEGER
            } else {
                types::FRACTION
            }
        }
    }
}

fn type_of_name(name: &str) -> u8 {
    match name {
        "null" => types::NULL,
        "boolean" => types::BOOLEAN,
        "object" => types::OBJECT,
        "array" => types::ARRAY,
        "string" => types::STRING,
        "integer" => types::INTEGER,
        "number" => types::NUMBER,
        _ => 0,
    }
}

/// The values an `enum` or `const` allows, if either is present.
pub(super) fn enumerated(schema: &Value) -> Option<Vec<&Value>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(values.iter().collect());
    }
    schema.get("const").map(|value| vec![value])
}

/// The JSON types a schema allows: from `type`; else from `enum`/`const`;
/// else, as Confluent's parser does, from the families of keywords it
/// uses (a schema with only `properties` describes objects); else all.
fn type_set(schema: &Value) -> u8 {
    match schema.get("type") {
        Some(Value::String(name)) => return type_of_name(name),
        Some(Value::Array(names)) => {
            return names
                .iter()
                .filter_map(Value::as_str)
                .fold(0, |set, name| set | type_of_name(name))
        }
        _ => {}
    }
    if let Some(values) = enumerated(schema) {
        return values
            .into_iter()
            .fold(0, |set, value| set | type_of_value(value));
    }
    let mut inferred = 0;
    for (family, keywords) in [
        (types::STRING, STRING_KEYWORDS),
        (types::NUMBER, NUMBER_KEYWORDS),
        (types::OBJECT, OBJECT_KEYWORDS),
        (types::ARRAY, ARRAY_KEYWORDS),
    ] {
        if keywords.iter().any(|keyword| schema.get(keyword).is_some()) {
            inferred |= family;
        }
    }
    if inferred == 0 {
        types::ALL
    } else {
        inferred
    }
}

/// A combination a schema consists of alone (no other constraining
/// keyword beside it).
struct PureCombination<'d> {
    keyword: &'static str,
    subschemas: Vec<At<'d>>,
}

const COMBINATION_KEYWORDS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// The rules of a bound that only a reader may raise (`maxLength`,
/// `maximum`, …) or lower (`minLength`, `minimum`, …).
pub(super) struct BoundRules {
    pub(super) added: Rule,
    pub(super) removed: Rule,
    pub(super) increased: Rule,
    pub(super) decreased: Rule,
}

/// The rules of a schema for values nothing else declares
/// (`additionalProperties`, `unevaluatedItems`, …), absent meaning `true`.
pub(super) struct OpenEndRules {
    pub(super) added: Rule,
    pub(super) removed: Rule,
    pub(super) extended: Rule,
    pub(super) narrowed: Rule,
}

/// What a schema says of values it does not declare by name or position.
pub(super) enum Coverage<'d> {
    /// Any value is allowed (an open content model).
    Anything,
    /// No value is allowed (a closed content model).
    Nothing,
    /// Values must match this schema (a partially open content model).
    Schema(At<'d>),
}

impl<'d> Coverage<'d> {
    /// The coverage a keyword's value gives, absent meaning `fallback`.
    pub(super) fn of(at: Option<At<'d>>, fallback: Coverage<'d>) -> Coverage<'d> {
        match at {
            None => fallback,
            Some(at) if accepts_everything(at.schema) => Coverage::Anything,
            Some(at) if rejects_everything(at.schema) => Coverage::Nothing,
            Some(at) => Coverage::Schema(at),
        }
    }
}

impl<'d> Comparison<'d> {
    /// A comparison of `writer` with `reader`; paths in differences are
    /// locations in the document on `new_side`.
    pub(super) fn new(writer: &'d Document, reader: &'d Document, new_side: Side) -> Self {
        Comparison {
            writer,
            reader,
            new_side,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            validators: HashMap::new(),
            patterns: HashMap::new(),
            pairs_compared: 0,
            limit_reached: false,
        }
    }

    /// Every difference between the two documents' roots.
    pub(super) fn run(mut self) -> Vec<Difference> {
        let writer = At {
            schema: self.writer.root(),
            location: String::new(),
            side: Side::Writer,
        };
        let reader = At {
            schema: self.reader.root(),
            location: String::new(),
            side: Side::Reader,
        };
        let mut differences = self.compare(writer, reader);
        if self.limit_reached {
            differences.push(Difference {
                rule: Rule::ComparisonLimitReached,
                path: String::new(),
            });
        }
        let unique: BTreeSet<Difference> = differences.into_iter().collect();
        unique.into_iter().collect()
    }

    fn document(&self, side: Side) -> &'d Document {
        match side {
            Side::Writer => self.writer,
            Side::Reader => self.reader,
        }
    }

    /// A difference located at `suffix` under whichever of the two schemas
    /// is in the new version's document.
    pub(super) fn difference(
        &self,
        writer: &At<'d>,
        reader: &At<'d>,
        suffix: &str,
        rule: Rule,
    ) -> Difference {
        let base = if writer.side == self.new_side {
            &writer.location
        } else {
            &reader.location
        };
        Difference {
            rule,
            path: format!("{base}{suffix}"),
        }
    }

    /// Follows `$ref` to the schema it names; `Err` with the last schema
    /// reached for a reference that does not resolve (or loops).
    pub(super) fn resolve(&self, mut at: At<'d>) -> Result<At<'d>, At<'d>> {
        for _ in 0..REFERENCE_HOPS_MAX {
            let Some(reference) = at.schema.get("$ref").and_then(Value::as_str) else {
                return Ok(at);
            };
            let document = self.document(at.side);
            let Some((location, schema)) = document.resolve(reference) else {
                return Err(at);
            };
            at = At {
                schema,
                location,
                side: at.side,
            };
        }
        Err(at)
    }

    /// Every difference between `writer` and `reader`, each pair of
    /// locations judged once (see the module's comment).
    pub(super) fn compare(&mut self, writer: At<'d>, reader: At<'d>) -> Vec<Difference> {
        let (writer, reader) = match (self.resolve(writer), self.resolve(reader)) {
            (Ok(writer), Ok(reader)) => (writer, reader),
            (writer, reader) => {
                let (writer, reader) = (
                    writer.unwrap_or_else(|at| at),
                    reader.unwrap_or_else(|at| at),
                );
                if writer.schema == reader.schema || accepts_everything(reader.schema) {
                    return Vec::new();
                }
                return vec![self.difference(&writer, &reader, "", Rule::ReferenceChanged)];
            }
        };
        let key = (
            writer.side,
            writer.location.clone(),
            reader.side,
            reader.location.clone(),
        );
        if let Some(known) = self.memo.get(&key) {
            return known.clone();
        }
        if self.in_progress.contains(&key) {
            return Vec::new();
        }
        self.pairs_compared += 1;
        if self.pairs_compared > PAIRS_COMPARED_MAX {
            self.limit_reached = true;
            return Vec::new();
        }
        self.in_progress.insert(key.clone());
        let differences = self.compare_resolved(&writer, &reader);
        self.in_progress.remove(&key);
        self.memo.insert(key, differences.clone());
        differences
    }

    fn compare_resolved(&mut self, writer: &At<'d>, reader: &At<'d>) -> Vec<Difference> {
        if accepts_everything(reader.schema) || rejects_everything(writer.schema) {
            return Vec::new();
        }
        if writer.schema == &Value::Bool(true) {
            // `true` is `{}`: judged as the schema that constrains nothing.
            static EMPTY_SCHEMA: LazyLock<Value> = LazyLock::new(|| Value::Object(Map::new()));
            let writer = At {
                schema: &EMPTY_SCHEMA,
                location: writer.location.clone(),
                side: writer.side,
            };
            return self.compare_resolved(&writer, reader);
        }
        if rejects_everything(reader.schema)
            || !writer.schema.is_object()
            || !reader.schema.is_object()
        {
            // A reader that allows nothing (`false`), or a schema that is
            // not a schema at all: only an identical one reads everything.
            if writer.schema == reader.schema {
                return Vec::new();
            }
            return vec![self.difference(writer, reader, "", Rule::TypeChanged)];
        }
        if self.enumeration_is_read(writer, reader) {
            // Every value the writer may write is read; only the
            // (compatible) change of enumeration is worth recording.
            let mut differences = Vec::new();
            self.compare_enumerations(writer, reader, &mut differences);
            return differences;
        }
        match (pure_combination(writer), pure_combination(reader)) {
            (Some(writers), Some(readers)) => {
                self.compare_combinations(writer, reader, &writers, &readers)
            }
            (None, Some(readers)) => self.compare_with_reader_combination(writer, reader, &readers),
            (Some(writers), None) => self.compare_writer_combination(writer, reader, &writers),
            (None, None) => {
                let mut differences = Vec::new();
                self.compare_types_and_values(writer, reader, &mut differences);
                self.compare_mixed_combinations(writer, reader, &mut differences);
                self.compare_not(writer, reader, &mut differences);
                self.compare_conditional(writer, reader, &mut differences);
                differences
            }
        }
    }

    /// Whether the writer enumerates its values and the reader accepts
    /// every one (checked by validating them, when the reader's schema has
    /// no reference that would need its document; compiled with the
    /// validator's options, so its patterns cost what they cost to register).
    fn enumeration_is_read(&mut self, writer: &At<'d>, reader: &At<'d>) -> bool {
        let Some(values) = enumerated(writer.schema) else {
            return false;
        };
        let key = (reader.side, reader.location.clone());
        let validator = self.validators.entry(key).or_insert_with(|| {
            if contains_reference(reader.schema) {
                None
            } else {
                crate::validator::validator_options::<SerdeJson>()
                    .build(reader.schema)
                    .ok()
            }
        });
        match validator {
            Some(validator) => values.into_iter().all(|value| validator.is_valid(value)),
            None => false,
        }
    }

    /// Whether an ECMA-262 `pattern` (as JSON Schema uses) matches `name`,
    /// with the validator's own regular expressions, compiled with the
    /// same options (the linear-time engine and its size limit, so that a
    /// pattern costs here what it cost to register); a pattern that does
    /// not compile matches nothing.
    pub(super) fn pattern_matches(&mut self, pattern: &str, name: &str) -> bool {
        let validator = self.patterns.entry(pattern.to_string()).or_insert_with(|| {
            crate::validator::validator_options::<SerdeJson>()
                .build(&serde_json::json!({ "pattern": pattern }))
                .ok()
        });
        validator
            .as_ref()
            .is_some_and(|validator| validator.is_valid(&Value::String(name.to_string())))
    }

    fn compare_types_and_values(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let writer_types = type_set(writer.schema);
        let reader_types = type_set(reader.schema);
        if writer_types != reader_types {
            let rule = if writer_types & !reader_types == 0 {
                Rule::TypeExtended
            } else if reader_types & !writer_types == 0 {
                Rule::TypeNarrowed
            } else {
                Rule::TypeChanged
            };
            differences.push(self.difference(writer, reader, "/type", rule));
        }
        self.compare_enumerations(writer, reader, differences);
        let shared = writer_types & reader_types;
        if shared & types::STRING != 0 {
            self.compare_strings(writer, reader, differences);
        }
        if shared & types::NUMBER != 0 {
            self.compare_numbers(writer, reader, differences);
        }
        if shared & types::OBJECT != 0 {
            self.compare_objects(writer, reader, differences);
        }
        if shared & types::ARRAY != 0 {
            self.compare_arrays(writer, reader, differences);
        }
    }

    fn compare_enumerations(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let suffix = if reader.keyword("enum").is_some() || writer.keyword("enum").is_some() {
            "/enum"
        } else {
            "/const"
        };
        let rule = match (enumerated(writer.schema), enumerated(reader.schema)) {
            (None, None) => return,
            (Some(_), None) => Rule::EnumArrayExtended,
            (None, Some(_)) => Rule::EnumArrayNarrowed,
            (Some(written), Some(read)) => {
                let reader_has_all = written.iter().all(|value| read.contains(value));
                let writer_has_all = read.iter().all(|value| written.contains(value));
                match (reader_has_all, writer_has_all) {
                    (true, true) => return,
                    (true, false) => Rule::EnumArrayExtended,
                    (false, true) => Rule::EnumArrayNarrowed,
                    (false, false) => Rule::EnumArrayChanged,
                }
            }
        };
        differences.push(self.difference(writer, reader, suffix, rule));
    }

    fn compare_strings(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        self.compare_bound(
            writer,
            reader,
            "maxLength",
            &BoundRules {
                added: Rule::MaxLengthAdded,
                removed: Rule::MaxLengthRemoved,
                increased: Rule::MaxLengthIncreased,
                decreased: Rule::MaxLengthDecreased,
            },
            differences,
        );
        self.compare_bound(
            writer,
            reader,
            "minLength",
            &BoundRules {
                added: Rule::MinLengthAdded,
                removed: Rule::MinLengthRemoved,
                increased: Rule::MinLengthIncreased,
                decreased: Rule::MinLengthDecreased,
            },
            differences,
        );
        let rule = match (writer.keyword("pattern"), reader.keyword("pattern")) {
            (None, Some(_)) => Rule::PatternAdded,
            (Some(_), None) => Rule::PatternRemoved,
            (Some(written), Some(read)) if written != read => Rule::PatternChanged,
            _ => return,
        };
        differences.push(self.difference(writer, reader, "/pattern", rule));
    }

    fn compare_numbers(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let bounds = [
            (
                "maximum",
                BoundRules {
                    added: Rule::MaximumAdded,
                    removed: Rule::MaximumRemoved,
                    increased: Rule::MaximumIncreased,
                    decreased: Rule::MaximumDecreased,
                },
            ),
            (
                "minimum",
                BoundRules {
                    added: Rule::MinimumAdded,
                    removed: Rule::MinimumRemoved,
                    increased: Rule::MinimumIncreased,
                    decreased: Rule::MinimumDecreased,
                },
            ),
            (
                "exclusiveMaximum",
                BoundRules {
                    added: Rule::ExclusiveMaximumAdded,
                    removed: Rule::ExclusiveMaximumRemoved,
                    increased: Rule::ExclusiveMaximumIncreased,
                    decreased: Rule::ExclusiveMaximumDecreased,
                },
            ),
            (
                "exclusiveMinimum",
                BoundRules {
                    added: Rule::ExclusiveMinimumAdded,
                    removed: Rule::ExclusiveMinimumRemoved,
                    increased: Rule::ExclusiveMinimumIncreased,
                    decreased: Rule::ExclusiveMinimumDecreased,
                },
            ),
        ];
        for (keyword, rules) in &bounds {
            self.compare_bound(writer, reader, keyword, rules, differences);
        }
        let written = writer.keyword("multipleOf").and_then(Value::as_f64);
        let read = reader.keyword("multipleOf").and_then(Value::as_f64);
        let rule = match (written, read) {
            (None, Some(_)) => Rule::MultipleOfAdded,
            (Some(_), None) => Rule::MultipleOfRemoved,
            (Some(written), Some(read)) if written != read => {
                if is_whole_multiple(written, read) {
                    Rule::MultipleOfReduced
                } else if is_whole_multiple(read, written) {
                    Rule::MultipleOfExpanded
                } else {
                    Rule::MultipleOfChanged
                }
            }
            _ => return,
        };
        differences.push(self.difference(writer, reader, "/multipleOf", rule));
    }

    /// Compares a numeric keyword the two schemas may set.
    pub(super) fn compare_bound(
        &self,
        writer: &At<'d>,
        reader: &At<'d>,
        keyword: &str,
        rules: &BoundRules,
        differences: &mut Vec<Difference>,
    ) {
        let written = writer.keyword(keyword).and_then(Value::as_f64);
        let read = reader.keyword(keyword).and_then(Value::as_f64);
        let rule = match (written, read) {
            (None, Some(_)) => rules.added,
            (Some(_), None) => rules.removed,
            (Some(written), Some(read)) if written < read => rules.increased,
            (Some(written), Some(read)) if written > read => rules.decreased,
            _ => return,
        };
        differences.push(self.difference(writer, reader, &format!("/{keyword}"), rule));
    }

    /// Compares the schemas of values nothing else declares, absent
    /// meaning `fallback`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn compare_open_end(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        written: Coverage<'d>,
        read: Coverage<'d>,
        suffix: &str,
        rules: &OpenEndRules,
        differences: &mut Vec<Difference>,
    ) {
        let rule = match (written, read) {
            (Coverage::Nothing, Coverage::Nothing) | (Coverage::Anything, Coverage::Anything) => {
                return
            }
            (Coverage::Nothing, _) => rules.added,
            (_, Coverage::Nothing) => rules.removed,
            (Coverage::Anything, Coverage::Schema(_)) => rules.narrowed,
            (Coverage::Schema(_), Coverage::Anything) => rules.extended,
            (Coverage::Schema(written), Coverage::Schema(read)) => {
                let nested = self.compare(written, read);
                differences.extend(nested);
                return;
            }
        };
        differences.push(self.difference(writer, reader, suffix, rule));
    }

    /// Compares two combinations (the schemas consist of them alone), as
    /// Confluent does: the kind of combination first, then the number of
    /// subschemas, then a matching that pairs each subschema of the smaller
    /// side with one of the other side that reads it.
    fn compare_combinations(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        writers: &PureCombination<'d>,
        readers: &PureCombination<'d>,
    ) -> Vec<Difference> {
        let mut differences = Vec::new();
        let writer_single = writers.subschemas.len() == 1;
        let reader_single = readers.subschemas.len() == 1;
        let kind_rule = if writers.keyword == readers.keyword {
            None
        } else if readers.keyword == "anyOf"
            || (readers.keyword == "oneOf" && writer_single)
            || (readers.keyword == "allOf" && writer_single && reader_single)
        {
            Some(Rule::CombinedTypeExtended)
        } else {
            Some(Rule::CombinedTypeChanged)
        };
        let suffix = format!("/{}", readers.keyword);
        if let Some(rule) = kind_rule {
            differences.push(self.difference(writer, reader, &suffix, rule));
            if rule == Rule::CombinedTypeChanged {
                return differences;
            }
        }
        let writer_subschemas = distinct(&writers.subschemas);
        let reader_subschemas = distinct(&readers.subschemas);
        let reader_is_product = readers.keyword == "allOf";
        let size_rule = match writer_subschemas.len().cmp(&reader_subschemas.len()) {
            std::cmp::Ordering::Less if reader_is_product => Some(Rule::ProductTypeExtended),
            std::cmp::Ordering::Less => Some(Rule::SumTypeExtended),
            std::cmp::Ordering::Greater if reader_is_product => Some(Rule::ProductTypeNarrowed),
            std::cmp::Ordering::Greater => Some(Rule::SumTypeNarrowed),
            std::cmp::Ordering::Equal => None,
        };
        if let Some(rule) = size_rule {
            differences.push(self.difference(writer, reader, &suffix, rule));
        }
        let mut compatible_pairs: HashMap<(usize, usize), Vec<Difference>> = HashMap::new();
        for (writer_index, written) in writer_subschemas.iter().enumerate() {
            for (reader_index, read) in reader_subschemas.iter().enumerate() {
                let nested = self.compare(written.clone(), read.clone());
                if !any_breaking(&nested) {
                    compatible_pairs.insert((writer_index, reader_index), nested);
                }
            }
        }
        let matching = maximum_matching(
            writer_subschemas.len(),
            reader_subschemas.len(),
            |writer_index, reader_index| {
                compatible_pairs.contains_key(&(writer_index, reader_index))
            },
        );
        for pair in &matching {
            differences.extend(compatible_pairs[pair].iter().cloned());
        }
        if matching.len() < writer_subschemas.len().min(reader_subschemas.len()) {
            differences.push(self.difference(
                writer,
                reader,
                &suffix,
                Rule::CombinedTypeSubschemasChanged,
            ));
        }
        differences
    }

    /// A plain writer against a reader that is a combination alone.
    fn compare_with_reader_combination(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        readers: &PureCombination<'d>,
    ) -> Vec<Difference> {
        if readers.subschemas.len() == 1 {
            return self.compare(writer.clone(), readers.subschemas[0].clone());
        }
        if readers.keyword == "allOf" {
            // The reader accepts what every subschema accepts.
            let mut differences = Vec::new();
            for read in &readers.subschemas {
                differences.extend(self.compare(writer.clone(), read.clone()));
            }
            return differences;
        }
        let suffix = format!("/{}", readers.keyword);
        self.compare_with_alternatives(writer, reader, &readers.subschemas, &suffix)
    }

    /// A writer against a reader's alternatives (anyOf/oneOf): one that
    /// reads it is a `sum_type_extended`; if none does, the differences of
    /// the closest alternative.
    fn compare_with_alternatives(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        alternatives: &[At<'d>],
        suffix: &str,
    ) -> Vec<Difference> {
        let mut closest: Option<Vec<Difference>> = None;
        for read in alternatives {
            let nested = self.compare(writer.clone(), read.clone());
            if !any_breaking(&nested) {
                let mut differences = nested;
                differences.push(self.difference(writer, reader, suffix, Rule::SumTypeExtended));
                return differences;
            }
            if closest
                .as_ref()
                .is_none_or(|best| count_breaking(&nested) < count_breaking(best))
            {
                closest = Some(nested);
            }
        }
        closest.unwrap_or_else(|| vec![self.difference(writer, reader, suffix, Rule::TypeChanged)])
    }

    /// A writer that is a combination alone against a plain reader.
    fn compare_writer_combination(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        writers: &PureCombination<'d>,
    ) -> Vec<Difference> {
        if writers.subschemas.len() == 1 {
            return self.compare(writers.subschemas[0].clone(), reader.clone());
        }
        if writers.keyword != "allOf" {
            // Every alternative the writer may have used must be read.
            let mut differences = Vec::new();
            for written in &writers.subschemas {
                differences.extend(self.compare(written.clone(), reader.clone()));
            }
            return differences;
        }
        // A value of the writer matches every subschema: one that the
        // reader reads is enough (best effort: conjunctions are not merged).
        let mut closest: Option<Vec<Difference>> = None;
        for written in &writers.subschemas {
            let nested = self.compare(written.clone(), reader.clone());
            if !any_breaking(&nested) {
                return nested;
            }
            if closest
                .as_ref()
                .is_none_or(|best| count_breaking(&nested) < count_breaking(best))
            {
                closest = Some(nested);
            }
        }
        closest
            .unwrap_or_else(|| vec![self.difference(writer, reader, "/allOf", Rule::TypeChanged)])
    }

    /// Combinations beside other keywords: the same keyword on both sides
    /// is compared as combinations; one the reader adds must read the
    /// whole writer; one the reader drops only loosens it.
    fn compare_mixed_combinations(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        for keyword in COMBINATION_KEYWORDS {
            let read = subschemas(reader, keyword);
            if read.is_empty() {
                continue;
            }
            let written = subschemas(writer, keyword);
            if !written.is_empty() {
                let writers = PureCombination {
                    keyword,
                    subschemas: written,
                };
                let readers = PureCombination {
                    keyword,
                    subschemas: read,
                };
                let nested = self.compare_combinations(writer, reader, &writers, &readers);
                differences.extend(nested);
            } else if keyword == "allOf" {
                for read in read {
                    differences.extend(self.compare(writer.clone(), read));
                }
            } else {
                let nested =
                    self.compare_with_alternatives(writer, reader, &read, &format!("/{keyword}"));
                differences.extend(nested);
            }
        }
    }

    /// `not`: the reader must exclude no more than the writer, so the
    /// excluded schemas are compared with the roles swapped.
    fn compare_not(&mut self, writer: &At<'d>, reader: &At<'d>, differences: &mut Vec<Difference>) {
        let rule = match (writer.child("not"), reader.child("not")) {
            (_, None) => return,
            (None, Some(_)) => Rule::NotTypeExtended,
            (Some(written), Some(read)) => {
                if any_breaking(&self.compare(read, written)) {
                    Rule::NotTypeExtended
                } else {
                    Rule::NotTypeNarrowed
                }
            }
        };
        differences.push(self.difference(writer, reader, "/not", rule));
    }

    /// `if`/`then`/`else`: compared as text (Cairn's rule).
    fn compare_conditional(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let conditional =
            |at: &At<'d>| ["if", "then", "else"].map(|keyword| at.keyword(keyword).cloned());
        let read = conditional(reader);
        if read.iter().all(Option::is_none) || read == conditional(writer) {
            return;
        }
        differences.push(self.difference(writer, reader, "/if", Rule::ConditionalChanged));
    }
}

/// Whether `multiple` is a whole multiple of `divisor` (both positive).
fn is_whole_multiple(multiple: f64, divisor: f64) -> bool {
    if divisor <= 0.0 {
        return false;
    }
    let ratio = multiple / divisor;
    ratio >= 1.0 && (ratio - ratio.round()).abs() < 1e-9
}

/// The subschemas under a combination keyword.
fn subschemas<'d>(at: &At<'d>, keyword: &str) -> Vec<At<'d>> {
    match at.keyword(keyword) {
        Some(Value::Array(list)) => (0..list.len())
            .filter_map(|index| at.child(&format!("{keyword}/{index}")))
            .collect(),
        _ => Vec::new(),
    }
}

/// The combination a schema consists of alone, if it does.
fn pure_combination<'d>(at: &At<'d>) -> Option<PureCombination<'d>> {
    let members = at.schema.as_object()?;
    let mut found = None;
    for (keyword, _) in members {
        if super::document::is_annotation(keyword) {
            continue;
        }
        let combination = COMBINATION_KEYWORDS
            .into_iter()
            .find(|candidate| candidate == keyword)?;
        if found.is_some() {
            return None;
        }
        found = Some(combination);
    }
    let keyword = found?;
    let subschemas = subschemas(at, keyword);
    if subschemas.is_empty() {
        return None;
    }
    Some(PureCombination {
        keyword,
        subschemas,
    })
}

/// Subschemas without repeats (equal JSON), first occurrence kept.
fn distinct<'d>(subschemas: &[At<'d>]) -> Vec<At<'d>> {
    let mut kept: Vec<At<'d>> = Vec::new();
    for at in subschemas {
        if !kept.iter().any(|seen| seen.schema == at.schema) {
            kept.push(at.clone());
        }
    }
    kept
}

/// Whether a schema holds a `$ref` anywhere (then it cannot be validated
/// on its own, away from its document).
fn contains_reference(schema: &Value) -> bool {
    match schema {
        Value::Object(members) => {
            members.contains_key("$ref")
                || members.contains_key("$dynamicRef")
                || members.values().any(contains_reference)
        }
        Value::Array(items) => items.iter().any(contains_reference),
        _ => false,
    }
}

/// A maximum matching of a bipartite graph (Kuhn's augmenting paths; the
/// sides are a handful of subschemas).
fn maximum_matching(
    left_count: usize,
    right_count: usize,
    edge: impl Fn(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    fn augment(
        left: usize,
        right_count: usize,
        edge: &dyn Fn(usize, usize) -> bool,
        visited: &mut [bool],
        matched_left_of_right: &mut [Option<usize>],
    ) -> bool {
        for right in 0..right_count {
            if !edge(left, right) || visited[right] {
                continue;
            }
            visited[right] = true;
            let free = match matched_left_of_right[right] {
                None => true,
                Some(other) => augment(other, right_count, edge, visited, matched_left_of_right),
            };
            if free {
                matched_left_of_right[right] = Some(left);
                return true;
            }
        }
        false
    }
    let mut matched_left_of_right = vec![None; right_count];
    for left in 0..left_count {
        let mut visited = vec![false; right_count];
        augment(
            left,
            right_count,
            &edge,
            &mut visited,
            &mut matched_left_of_right,
        );
    }
    matched_left_of_right
        .iter()
        .enumerate()
        .filter_map(|(right, left)| left.map(|left| (left, right)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_finds_the_augmenting_path() {
        // 0 fits 0 and 1, 1 fits only 0: the greedy choice must be undone.
        let edges = [(0, 0), (0, 1), (1, 0)];
        let matching = maximum_matching(2, 2, |left, right| edges.contains(&(left, right)));
        assert_eq!(matching.len(), 2);
    }

    #[test]
    fn whole_multiples() {
        assert!(is_whole_multiple(10.0, 5.0));
        assert!(is_whole_multiple(0.5, 0.1));
        assert!(!is_whole_multiple(5.0, 10.0));
        assert!(!is_whole_multiple(10.0, 3.0));
    }
}
