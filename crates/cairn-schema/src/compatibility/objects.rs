//! The comparison of object schemas: declared members and whether they
//! are required, the content model (open, closed or partially open, by
//! `additionalProperties`, `unevaluatedProperties` and
//! `patternProperties`), dependencies and sizes.
//!
//! A member one side declares and the other does not is judged against
//! what the other side says of undeclared members *of that name*: a
//! matching `patternProperties` schema first, then `additionalProperties`,
//! then `unevaluatedProperties`. This is Confluent's "partially open"
//! model, judged per name (Confluent judges the whole object as open only
//! when it has no `patternProperties` at all).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::comparison::{
    any_breaking, At, BoundRules, Comparison, Coverage, Difference, OpenEndRules,
};
use super::document::{accepts_everything, escape_token, rejects_everything};
use super::rules::Rule;

/// The names under `keyword` (an object), sorted.
fn names(at: &At<'_>, keyword: &str) -> BTreeSet<String> {
    at.keyword(keyword)
        .and_then(Value::as_object)
        .map(|members| members.keys().cloned().collect())
        .unwrap_or_default()
}

/// The names `required` lists.
fn required(at: &At<'_>) -> BTreeSet<String> {
    at.keyword("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The member dependencies: `dependentRequired`, and the arrays of
/// draft 7's `dependencies`, by keyword and name.
fn dependency_arrays(at: &At<'_>) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut found = BTreeMap::new();
    for keyword in ["dependencies", "dependentRequired"] {
        let Some(members) = at.keyword(keyword).and_then(Value::as_object) else {
            continue;
        };
        for (name, value) in members {
            if let Value::Array(list) = value {
                let set = list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                found.insert(name.clone(), (keyword.to_string(), set));
            }
        }
    }
    found
}

/// The schema dependencies: `dependentSchemas`, and the schemas of
/// draft 7's `dependencies`, as keyword paths by name.
fn dependency_schemas(at: &At<'_>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for keyword in ["dependencies", "dependentSchemas"] {
        let Some(members) = at.keyword(keyword).and_then(Value::as_object) else {
            continue;
        };
        for (name, value) in members {
            if value.is_object() || value.is_boolean() {
                found.insert(name.clone(), format!("{keyword}/{}", escape_token(name)));
            }
        }
    }
    found
}

impl<'d> Comparison<'d> {
    /// What an object schema says of a member `name` it does not declare.
    fn undeclared_member(&mut self, at: &At<'d>, name: &str) -> Coverage<'d> {
        for pattern in names(at, "patternProperties") {
            if self.pattern_matches(&pattern, name) {
                return Coverage::of(at.member("patternProperties", &pattern), Coverage::Anything);
            }
        }
        self.undeclared_names(at)
    }

    /// What an object schema says of members that neither `properties`
    /// nor `patternProperties` cover.
    fn undeclared_names(&self, at: &At<'d>) -> Coverage<'d> {
        let unevaluated = Coverage::of(at.child("unevaluatedProperties"), Coverage::Anything);
        Coverage::of(at.child("additionalProperties"), unevaluated)
    }

    pub(super) fn compare_objects(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        self.compare_members(writer, reader, differences);
        self.compare_content_models(writer, reader, differences);
        self.compare_dependencies(writer, reader, differences);
        for (keyword, rules) in [
            (
                "maxProperties",
                BoundRules {
                    added: Rule::MaxPropertiesAdded,
                    removed: Rule::MaxPropertiesRemoved,
                    increased: Rule::MaxPropertiesIncreased,
                    decreased: Rule::MaxPropertiesDecreased,
                },
            ),
            (
                "minProperties",
                BoundRules {
                    added: Rule::MinPropertiesAdded,
                    removed: Rule::MinPropertiesRemoved,
                    increased: Rule::MinPropertiesIncreased,
                    decreased: Rule::MinPropertiesDecreased,
                },
            ),
        ] {
            self.compare_bound(writer, reader, keyword, &rules, differences);
        }
    }

    fn compare_members(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let written_names = names(writer, "properties");
        let read_names = names(reader, "properties");
        let written_required = required(writer);
        let read_required = required(reader);
        for name in written_names.union(&read_names) {
            let suffix = format!("/properties/{}", escape_token(name));
            let newly_required = read_required.contains(name) && !written_required.contains(name);
            match (
                writer.member("properties", name),
                reader.member("properties", name),
            ) {
                (Some(written), Some(read)) => {
                    differences.extend(self.compare(written, read));
                    if newly_required {
                        differences.push(self.difference(
                            writer,
                            reader,
                            &suffix,
                            Rule::RequiredAttributeAdded,
                        ));
                    } else if written_required.contains(name) && !read_required.contains(name) {
                        differences.push(self.difference(
                            writer,
                            reader,
                            &suffix,
                            Rule::RequiredAttributeRemoved,
                        ));
                    }
                }
                (None, Some(read)) => {
                    self.member_added(writer, reader, name, read, newly_required, differences)
                }
                (Some(written), None) => {
                    self.member_removed(writer, reader, name, written, differences)
                }
                (None, None) => {}
            }
        }
        // Names the reader requires without declaring them.
        for name in read_required.difference(&written_required) {
            if !read_names.contains(name) {
                let suffix = format!("/properties/{}", escape_token(name));
                differences.push(self.difference(
                    writer,
                    reader,
                    &suffix,
                    Rule::RequiredAttributeAdded,
                ));
            }
        }
    }

    /// The reader declares `name`; the writer does not.
    fn member_added(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        name: &str,
        read: At<'d>,
        newly_required: bool,
        differences: &mut Vec<Difference>,
    ) {
        let suffix = format!("/properties/{}", escape_token(name));
        let rule = match self.undeclared_member(writer, name) {
            Coverage::Anything if newly_required => Rule::RequiredPropertyAddedToOpenContentModel,
            Coverage::Anything => {
                let read_is_empty = self
                    .resolve(read)
                    .is_ok_and(|resolved| accepts_everything(resolved.schema));
                if read_is_empty {
                    Rule::PropertyWithEmptySchemaAddedToOpenContentModel
                } else {
                    Rule::PropertyAddedToOpenContentModel
                }
            }
            Coverage::Nothing if newly_required => Rule::RequiredPropertyAddedToUnopenContentModel,
            Coverage::Nothing => Rule::OptionalPropertyAddedToUnopenContentModel,
            Coverage::Schema(written) => {
                let nested = self.compare(written, read);
                let covered = !any_breaking(&nested);
                differences.extend(nested);
                if newly_required {
                    differences.push(self.difference(
                        writer,
                        reader,
                        &suffix,
                        Rule::RequiredPropertyAddedToUnopenContentModel,
                    ));
                }
                if covered {
                    Rule::PropertyAddedIsCoveredByPartiallyOpenContentModel
                } else {
                    Rule::PropertyAddedNotCoveredByPartiallyOpenContentModel
                }
            }
        };
        differences.push(self.difference(writer, reader, &suffix, rule));
    }

    /// The writer declares `name`; the reader does not.
    fn member_removed(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        name: &str,
        written: At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let suffix = format!("/properties/{}", escape_token(name));
        let rule = match self.undeclared_member(reader, name) {
            Coverage::Anything => Rule::PropertyRemovedFromOpenContentModel,
            Coverage::Nothing if rejects_everything(written.schema) => {
                Rule::PropertyWithFalseRemovedFromClosedContentModel
            }
            Coverage::Nothing => Rule::PropertyRemovedFromClosedContentModel,
            Coverage::Schema(read) => {
                let nested = self.compare(written, read);
                let covered = !any_breaking(&nested);
                differences.extend(nested);
                if covered {
                    Rule::PropertyRemovedIsCoveredByPartiallyOpenContentModel
                } else {
                    Rule::PropertyRemovedNotCoveredByPartiallyOpenContentModel
                }
            }
        };
        differences.push(self.difference(writer, reader, &suffix, rule));
    }

    /// `additionalProperties`, `unevaluatedProperties`, and pattern
    /// schemas only one side has (judged against the other side's schema
    /// for undeclared members).
    fn compare_content_models(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let additional_rules = OpenEndRules {
            added: Rule::AdditionalPropertiesAdded,
            removed: Rule::AdditionalPropertiesRemoved,
            extended: Rule::AdditionalPropertiesExtended,
            narrowed: Rule::AdditionalPropertiesNarrowed,
        };
        let written = Coverage::of(writer.child("additionalProperties"), Coverage::Anything);
        let read = Coverage::of(reader.child("additionalProperties"), Coverage::Anything);
        self.compare_open_end(
            writer,
            reader,
            written,
            read,
            "/additionalProperties",
            &additional_rules,
            differences,
        );
        let written = Coverage::of(writer.child("unevaluatedProperties"), Coverage::Anything);
        let read = Coverage::of(reader.child("unevaluatedProperties"), Coverage::Anything);
        self.compare_open_end(
            writer,
            reader,
            written,
            read,
            "/unevaluatedProperties",
            &OpenEndRules {
                added: Rule::UnevaluatedPropertiesAdded,
                removed: Rule::UnevaluatedPropertiesRemoved,
                extended: Rule::UnevaluatedPropertiesExtended,
                narrowed: Rule::UnevaluatedPropertiesNarrowed,
            },
            differences,
        );
        let written_patterns = names(writer, "patternProperties");
        let read_patterns = names(reader, "patternProperties");
        for pattern in written_patterns.union(&read_patterns) {
            let suffix = format!("/patternProperties/{}", escape_token(pattern));
            let written = match writer.member("patternProperties", pattern) {
                Some(at) => Coverage::of(Some(at), Coverage::Anything),
                None => self.undeclared_names(writer),
            };
            let read = match reader.member("patternProperties", pattern) {
                Some(at) => Coverage::of(Some(at), Coverage::Anything),
                None => self.undeclared_names(reader),
            };
            self.compare_open_end(
                writer,
                reader,
                written,
                read,
                &suffix,
                &additional_rules,
                differences,
            );
        }
    }

    fn compare_dependencies(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let written = dependency_arrays(writer);
        let read = dependency_arrays(reader);
        let all_names: BTreeSet<&String> = written.keys().chain(read.keys()).collect();
        for name in all_names {
            let (rule, keyword) = match (written.get(name), read.get(name)) {
                (None, Some((keyword, _))) => (Rule::DependencyArrayAdded, keyword),
                (Some((keyword, _)), None) => (Rule::DependencyArrayRemoved, keyword),
                (Some((_, written_set)), Some((keyword, read_set))) => {
                    if written_set == read_set {
                        continue;
                    } else if read_set.is_superset(written_set) {
                        (Rule::DependencyArrayExtended, keyword)
                    } else if written_set.is_superset(read_set) {
                        (Rule::DependencyArrayNarrowed, keyword)
                    } else {
                        (Rule::DependencyArrayChanged, keyword)
                    }
                }
                (None, None) => continue,
            };
            let suffix = format!("/{keyword}/{}", escape_token(name));
            differences.push(self.difference(writer, reader, &suffix, rule));
        }
        let written = dependency_schemas(writer);
        let read = dependency_schemas(reader);
        let all_names: BTreeSet<&String> = written.keys().chain(read.keys()).collect();
        for name in all_names {
            match (written.get(name), read.get(name)) {
                (None, Some(path)) => {
                    differences.push(self.difference(
                        writer,
                        reader,
                        &format!("/{path}"),
                        Rule::DependencySchemaAdded,
                    ));
                }
                (Some(path), None) => {
                    differences.push(self.difference(
                        writer,
                        reader,
                        &format!("/{path}"),
                        Rule::DependencySchemaRemoved,
                    ));
                }
                (Some(written_path), Some(read_path)) => {
                    if let (Some(written), Some(read)) =
                        (writer.child(written_path), reader.child(read_path))
                    {
                        differences.extend(self.compare(written, read));
                    }
                }
                (None, None) => {}
            }
        }
    }
}
