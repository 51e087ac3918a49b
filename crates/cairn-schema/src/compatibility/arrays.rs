//! The comparison of array schemas: tuples (`prefixItems`, or draft 7's
//! array form of `items`), the schema of the items beyond the tuple
//! (`items` beside `prefixItems`, or `additionalItems`; a plain `items`
//! is that schema for an empty tuple), `unevaluatedItems`, and the sizes.
//!
//! A tuple position one side has and the other does not is judged against
//! what the other side says of items beyond its tuple, as Confluent does:
//! open (anything), closed (nothing) or partially open (a schema).

use serde_json::Value;

use super::comparison::{
    any_breaking, At, BoundRules, Comparison, Coverage, Difference, OpenEndRules,
};
use super::document::{accepts_everything, rejects_everything};
use super::rules::Rule;

/// An array schema's tuple and what follows it.
struct ArrayView<'d> {
    tuple: Vec<At<'d>>,
    tuple_keyword: &'static str,
    rest: Option<At<'d>>,
    rest_keyword: &'static str,
}

fn array_view<'d>(at: &At<'d>) -> ArrayView<'d> {
    let tuple_of = |keyword: &str| -> Vec<At<'d>> {
        match at.keyword(keyword) {
            Some(Value::Array(list)) => (0..list.len())
                .filter_map(|index| at.child(&format!("{keyword}/{index}")))
                .collect(),
            _ => Vec::new(),
        }
    };
    if matches!(at.keyword("prefixItems"), Some(Value::Array(_))) {
        ArrayView {
            tuple: tuple_of("prefixItems"),
            tuple_keyword: "prefixItems",
            rest: at.child("items"),
            rest_keyword: "items",
        }
    } else if matches!(at.keyword("items"), Some(Value::Array(_))) {
        ArrayView {
            tuple: tuple_of("items"),
            tuple_keyword: "items",
            rest: at.child("additionalItems"),
            rest_keyword: "additionalItems",
        }
    } else {
        ArrayView {
            tuple: Vec::new(),
            tuple_keyword: "prefixItems",
            rest: at.child("items"),
            rest_keyword: "items",
        }
    }
}

impl<'d> Comparison<'d> {
    pub(super) fn compare_arrays(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let written = array_view(writer);
        let read = array_view(reader);
        let beyond = |at: &At<'d>, view: &ArrayView<'d>| {
            let unevaluated = Coverage::of(at.child("unevaluatedItems"), Coverage::Anything);
            Coverage::of(view.rest.clone(), unevaluated)
        };
        for (written_item, read_item) in written.tuple.iter().zip(&read.tuple) {
            differences.extend(self.compare(written_item.clone(), read_item.clone()));
        }
        for (index, written_item) in written.tuple.iter().enumerate().skip(read.tuple.len()) {
            let suffix = format!("/{}/{index}", read.tuple_keyword);
            let rule = match beyond(reader, &read) {
                Coverage::Anything => Rule::ItemRemovedFromOpenContentModel,
                Coverage::Nothing if rejects_everything(written_item.schema) => {
                    Rule::ItemWithFalseRemovedFromClosedContentModel
                }
                Coverage::Nothing => Rule::ItemRemovedFromClosedContentModel,
                Coverage::Schema(read_rest) => {
                    let nested = self.compare(written_item.clone(), read_rest);
                    let covered = !any_breaking(&nested);
                    differences.extend(nested);
                    if covered {
                        Rule::ItemRemovedIsCoveredByPartiallyOpenContentModel
                    } else {
                        Rule::ItemRemovedNotCoveredByPartiallyOpenContentModel
                    }
                }
            };
            differences.push(self.difference(writer, reader, &suffix, rule));
        }
        for (index, read_item) in read.tuple.iter().enumerate().skip(written.tuple.len()) {
            let suffix = format!("/{}/{index}", read.tuple_keyword);
            let rule = match beyond(writer, &written) {
                Coverage::Anything => {
                    let read_is_empty = self
                        .resolve(read_item.clone())
                        .is_ok_and(|resolved| accepts_everything(resolved.schema));
                    if read_is_empty {
                        Rule::ItemWithEmptySchemaAddedToOpenContentModel
                    } else {
                        Rule::ItemAddedToOpenContentModel
                    }
                }
                Coverage::Nothing => Rule::ItemAddedToClosedContentModel,
                Coverage::Schema(written_rest) => {
                    let nested = self.compare(written_rest, read_item.clone());
                    let covered = !any_breaking(&nested);
                    differences.extend(nested);
                    if covered {
                        Rule::ItemAddedIsCoveredByPartiallyOpenContentModel
                    } else {
                        Rule::ItemAddedNotCoveredByPartiallyOpenContentModel
                    }
                }
            };
            differences.push(self.difference(writer, reader, &suffix, rule));
        }
        let rest_suffix = format!("/{}", read.rest_keyword);
        self.compare_open_end(
            writer,
            reader,
            Coverage::of(written.rest.clone(), Coverage::Anything),
            Coverage::of(read.rest.clone(), Coverage::Anything),
            &rest_suffix,
            &OpenEndRules {
                added: Rule::AdditionalItemsAdded,
                removed: Rule::AdditionalItemsRemoved,
                extended: Rule::AdditionalItemsExtended,
                narrowed: Rule::AdditionalItemsNarrowed,
            },
            differences,
        );
        self.compare_open_end(
            writer,
            reader,
            Coverage::of(writer.child("unevaluatedItems"), Coverage::Anything),
            Coverage::of(reader.child("unevaluatedItems"), Coverage::Anything),
            "/unevaluatedItems",
            &OpenEndRules {
                added: Rule::UnevaluatedItemsAdded,
                removed: Rule::UnevaluatedItemsRemoved,
                extended: Rule::UnevaluatedItemsExtended,
                narrowed: Rule::UnevaluatedItemsNarrowed,
            },
            differences,
        );
        self.compare_array_sizes(writer, reader, differences);
    }

    fn compare_array_sizes(
        &mut self,
        writer: &At<'d>,
        reader: &At<'d>,
        differences: &mut Vec<Difference>,
    ) {
        let bounds = [
            (
                "maxItems",
                BoundRules {
                    added: Rule::MaxItemsAdded,
                    removed: Rule::MaxItemsRemoved,
                    increased: Rule::MaxItemsIncreased,
                    decreased: Rule::MaxItemsDecreased,
                },
            ),
            (
                "minItems",
                BoundRules {
                    added: Rule::MinItemsAdded,
                    removed: Rule::MinItemsRemoved,
                    increased: Rule::MinItemsIncreased,
                    decreased: Rule::MinItemsDecreased,
                },
            ),
            (
                "maxContains",
                BoundRules {
                    added: Rule::MaxContainsAdded,
                    removed: Rule::MaxContainsRemoved,
                    increased: Rule::MaxContainsIncreased,
                    decreased: Rule::MaxContainsDecreased,
                },
            ),
            (
                "minContains",
                BoundRules {
                    added: Rule::MinContainsAdded,
                    removed: Rule::MinContainsRemoved,
                    increased: Rule::MinContainsIncreased,
                    decreased: Rule::MinContainsDecreased,
                },
            ),
        ];
        for (keyword, rules) in &bounds {
            self.compare_bound(writer, reader, keyword, rules, differences);
        }
        let unique = |at: &At<'d>| at.keyword("uniqueItems") == Some(&Value::Bool(true));
        let rule = match (unique(writer), unique(reader)) {
            (false, true) => Rule::UniqueItemsAdded,
            (true, false) => Rule::UniqueItemsRemoved,
            _ => return,
        };
        differences.push(self.difference(writer, reader, "/uniqueItems", rule));
    }
}
