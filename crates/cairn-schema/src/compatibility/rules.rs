//! The catalogue of differences between a writer's schema and a reader's
//! schema: each rule's wire name, whether it breaks the reader, and the
//! sentence a person reads. The names and the judgements follow the
//! difference kinds of Confluent Schema Registry's JSON Schema checker
//! (in snake_case), so that users who know that table recognise this one;
//! the few rules Cairn adds are marked as such. `docs/api-v1.md`
//! ("Schema compatibility") holds the same table for users, with examples.
//!
//! Every rule is phrased for one check: can a reader holding the *reader*
//! schema read every value the *writer* schema allows? Backward
//! compatibility asks it with the new version as reader and the older one
//! (after its upcasts) as writer; forward compatibility asks it with the
//! roles swapped.

/// Declares [`Rule`] with, for each variant, its wire name, whether it
/// breaks the reader, and its explanation, so that the three can never
/// drift apart.
macro_rules! rules {
    ($($variant:ident => $name:literal, $breaking:literal, $explanation:literal;)*) => {
        /// One kind of difference between a writer's schema and a reader's.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $(
                #[doc = $explanation]
                $variant,
            )*
        }

        impl Rule {
            /// Every rule, in the order of the table in `docs/api-v1.md`.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// The rule's name on the wire (`BreakingChange::rule`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Rule::$variant => $name,)*
                }
            }

            /// Whether a reader with the reader schema may fail on a value
            /// the writer schema allows.
            pub const fn is_breaking(self) -> bool {
                match self {
                    $(Rule::$variant => $breaking,)*
                }
            }

            /// One sentence for a person, in terms of the writer's and the
            /// reader's schema.
            pub const fn explanation(self) -> &'static str {
                match self {
                    $(Rule::$variant => $explanation,)*
                }
            }
        }
    };
}

rules! {
    // Types and values.
    TypeExtended => "type_extended", false,
        "The reader allows every type the writer allows, and more.";
    TypeNarrowed => "type_narrowed", true,
        "The reader allows fewer types than the writer.";
    TypeChanged => "type_changed", true,
        "The reader and the writer allow different types.";
    EnumArrayExtended => "enum_array_extended", false,
        "The reader allows every enumerated value the writer allows, and more.";
    EnumArrayNarrowed => "enum_array_narrowed", true,
        "The reader allows fewer enumerated values than the writer.";
    EnumArrayChanged => "enum_array_changed", true,
        "The reader and the writer allow different enumerated values.";
    // Strings.
    MaxLengthAdded => "max_length_added", true,
        "The reader limits the length of a string the writer did not limit.";
    MaxLengthRemoved => "max_length_removed", false,
        "The reader no longer limits the length of a string.";
    MaxLengthIncreased => "max_length_increased", false,
        "The reader allows longer strings than the writer.";
    MaxLengthDecreased => "max_length_decreased", true,
        "The reader allows only shorter strings than the writer.";
    MinLengthAdded => "min_length_added", true,
        "The reader sets a minimum length the writer did not set.";
    MinLengthRemoved => "min_length_removed", false,
        "The reader no longer sets a minimum length.";
    MinLengthIncreased => "min_length_increased", true,
        "The reader's minimum length is above the writer's.";
    MinLengthDecreased => "min_length_decreased", false,
        "The reader's minimum length is below the writer's.";
    PatternAdded => "pattern_added", true,
        "The reader requires a pattern the writer did not require.";
    PatternRemoved => "pattern_removed", false,
        "The reader no longer requires a pattern.";
    PatternChanged => "pattern_changed", true,
        "The reader requires a different pattern than the writer.";
    // Numbers.
    MaximumAdded => "maximum_added", true,
        "The reader sets a maximum the writer did not set.";
    MaximumRemoved => "maximum_removed", false,
        "The reader no longer sets a maximum.";
    MaximumIncreased => "maximum_increased", false,
        "The reader's maximum is above the writer's.";
    MaximumDecreased => "maximum_decreased", true,
        "The reader's maximum is below the writer's.";
    MinimumAdded => "minimum_added", true,
        "The reader sets a minimum the writer did not set.";
    MinimumRemoved => "minimum_removed", false,
        "The reader no longer sets a minimum.";
    MinimumIncreased => "minimum_increased", true,
        "The reader's minimum is above the writer's.";
    MinimumDecreased => "minimum_decreased", false,
        "The reader's minimum is below the writer's.";
    ExclusiveMaximumAdded => "exclusive_maximum_added", true,
        "The reader sets an exclusive maximum the writer did not set.";
    ExclusiveMaximumRemoved => "exclusive_maximum_removed", false,
        "The reader no longer sets an exclusive maximum.";
    ExclusiveMaximumIncreased => "exclusive_maximum_increased", false,
        "The reader's exclusive maximum is above the writer's.";
    ExclusiveMaximumDecreased => "exclusive_maximum_decreased", true,
        "The reader's exclusive maximum is below the writer's.";
    ExclusiveMinimumAdded => "exclusive_minimum_added", true,
        "The reader sets an exclusive minimum the writer did not set.";
    ExclusiveMinimumRemoved => "exclusive_minimum_removed", false,
        "The reader no longer sets an exclusive minimum.";
    ExclusiveMinimumIncreased => "exclusive_minimum_increased", true,
        "The reader's exclusive minimum is above the writer's.";
    ExclusiveMinimumDecreased => "exclusive_minimum_decreased", false,
        "The reader's exclusive minimum is below the writer's.";
    MultipleOfAdded => "multiple_of_added", true,
        "The reader requires a multiple the writer did not require.";
    MultipleOfRemoved => "multiple_of_removed", false,
        "The reader no longer requires a multiple.";
    MultipleOfExpanded => "multiple_of_expanded", true,
        "The reader requires a multiple of the writer's multiple.";
    MultipleOfReduced => "multiple_of_reduced", false,
        "The reader requires a divisor of the writer's multiple.";
    MultipleOfChanged => "multiple_of_changed", true,
        "The reader requires a multiple unrelated to the writer's.";
    // Objects: required members, sizes, dependencies.
    RequiredAttributeAdded => "required_attribute_added", true,
        "The reader requires a member the writer did not require.";
    RequiredAttributeRemoved => "required_attribute_removed", false,
        "The reader no longer requires a member the writer required.";
    MaxPropertiesAdded => "max_properties_added", true,
        "The reader limits the number of members the writer did not limit.";
    MaxPropertiesRemoved => "max_properties_removed", false,
        "The reader no longer limits the number of members.";
    MaxPropertiesIncreased => "max_properties_increased", false,
        "The reader allows more members than the writer.";
    MaxPropertiesDecreased => "max_properties_decreased", true,
        "The reader allows fewer members than the writer.";
    MinPropertiesAdded => "min_properties_added", true,
        "The reader sets a minimum number of members the writer did not set.";
    MinPropertiesRemoved => "min_properties_removed", false,
        "The reader no longer sets a minimum number of members.";
    MinPropertiesIncreased => "min_properties_increased", true,
        "The reader's minimum number of members is above the writer's.";
    MinPropertiesDecreased => "min_properties_decreased", false,
        "The reader's minimum number of members is below the writer's.";
    DependencyArrayAdded => "dependency_array_added", true,
        "The reader requires members alongside a member where the writer did not.";
    DependencyArrayRemoved => "dependency_array_removed", false,
        "The reader no longer requires members alongside a member.";
    DependencyArrayExtended => "dependency_array_extended", true,
        "The reader requires more members alongside a member than the writer.";
    DependencyArrayNarrowed => "dependency_array_narrowed", false,
        "The reader requires fewer members alongside a member than the writer.";
    DependencyArrayChanged => "dependency_array_changed", true,
        "The reader requires different members alongside a member than the writer.";
    DependencySchemaAdded => "dependency_schema_added", true,
        "The reader applies a schema when a member is present where the writer did not.";
    DependencySchemaRemoved => "dependency_schema_removed", false,
        "The reader no longer applies a schema when a member is present.";
    // Objects: undeclared members (the content model).
    AdditionalPropertiesAdded => "additional_properties_added", false,
        "The reader allows undeclared members the writer forbade.";
    AdditionalPropertiesRemoved => "additional_properties_removed", true,
        "The reader forbids undeclared members the writer allowed (it closed its content model).";
    AdditionalPropertiesExtended => "additional_properties_extended", false,
        "The reader allows any undeclared member where the writer constrained them.";
    AdditionalPropertiesNarrowed => "additional_properties_narrowed", true,
        "The reader constrains undeclared members the writer allowed with any value.";
    UnevaluatedPropertiesAdded => "unevaluated_properties_added", false,
        "The reader allows unevaluated members the writer forbade.";
    UnevaluatedPropertiesRemoved => "unevaluated_properties_removed", true,
        "The reader forbids unevaluated members the writer allowed.";
    UnevaluatedPropertiesExtended => "unevaluated_properties_extended", false,
        "The reader allows any unevaluated member where the writer constrained them.";
    UnevaluatedPropertiesNarrowed => "unevaluated_properties_narrowed", true,
        "The reader constrains unevaluated members the writer allowed with any value.";
    PropertyAddedToOpenContentModel => "property_added_to_open_content_model", true,
        "The reader declares a member that the writer's open content model allowed with any value.";
    RequiredPropertyAddedToOpenContentModel => "required_property_added_to_open_content_model", true,
        "The reader declares and requires a member that the writer's open content model neither declared nor required.";
    PropertyWithEmptySchemaAddedToOpenContentModel => "property_with_empty_schema_added_to_open_content_model", false,
        "The reader declares, with an empty schema, a member the writer's open content model allowed.";
    RequiredPropertyAddedToUnopenContentModel => "required_property_added_to_unopen_content_model", true,
        "The reader requires a member the writer's closed or partially open content model did not declare.";
    OptionalPropertyAddedToUnopenContentModel => "optional_property_added_to_unopen_content_model", false,
        "The reader declares an optional member the writer's closed content model forbade.";
    PropertyRemovedFromOpenContentModel => "property_removed_from_open_content_model", false,
        "The reader no longer declares a member, and its open content model allows any value there.";
    PropertyWithFalseRemovedFromClosedContentModel => "property_with_false_removed_from_closed_content_model", false,
        "The reader no longer declares a member the writer forbade with `false`.";
    PropertyRemovedFromClosedContentModel => "property_removed_from_closed_content_model", true,
        "The reader no longer declares a member, and its closed content model forbids it.";
    PropertyRemovedIsCoveredByPartiallyOpenContentModel => "property_removed_is_covered_by_partially_open_content_model", false,
        "The reader no longer declares a member, and its schema for undeclared members reads the writer's values.";
    PropertyRemovedNotCoveredByPartiallyOpenContentModel => "property_removed_not_covered_by_partially_open_content_model", true,
        "The reader no longer declares a member, and its schema for undeclared members does not read the writer's values.";
    PropertyAddedIsCoveredByPartiallyOpenContentModel => "property_added_is_covered_by_partially_open_content_model", false,
        "The reader declares a member whose schema reads what the writer's schema for undeclared members allowed.";
    PropertyAddedNotCoveredByPartiallyOpenContentModel => "property_added_not_covered_by_partially_open_content_model", true,
        "The reader declares a member whose schema does not read what the writer's schema for undeclared members allowed.";
    // Arrays.
    MaxItemsAdded => "max_items_added", true,
        "The reader limits the number of items the writer did not limit.";
    MaxItemsRemoved => "max_items_removed", false,
        "The reader no longer limits the number of items.";
    MaxItemsIncreased => "max_items_increased", false,
        "The reader allows more items than the writer.";
    MaxItemsDecreased => "max_items_decreased", true,
        "The reader allows fewer items than the writer.";
    MinItemsAdded => "min_items_added", true,
        "The reader sets a minimum number of items the writer did not set.";
    MinItemsRemoved => "min_items_removed", false,
        "The reader no longer sets a minimum number of items.";
    MinItemsIncreased => "min_items_increased", true,
        "The reader's minimum number of items is above the writer's.";
    MinItemsDecreased => "min_items_decreased", false,
        "The reader's minimum number of items is below the writer's.";
    UniqueItemsAdded => "unique_items_added", true,
        "The reader requires unique items where the writer did not.";
    UniqueItemsRemoved => "unique_items_removed", false,
        "The reader no longer requires unique items.";
    MaxContainsAdded => "max_contains_added", true,
        "The reader limits how many items match `contains` where the writer did not.";
    MaxContainsRemoved => "max_contains_removed", false,
        "The reader no longer limits how many items match `contains`.";
    MaxContainsIncreased => "max_contains_increased", false,
        "The reader allows more items to match `contains` than the writer.";
    MaxContainsDecreased => "max_contains_decreased", true,
        "The reader allows fewer items to match `contains` than the writer.";
    MinContainsAdded => "min_contains_added", true,
        "The reader sets a minimum of items matching `contains` the writer did not set.";
    MinContainsRemoved => "min_contains_removed", false,
        "The reader no longer sets a minimum of items matching `contains`.";
    MinContainsIncreased => "min_contains_increased", true,
        "The reader's minimum of items matching `contains` is above the writer's.";
    MinContainsDecreased => "min_contains_decreased", false,
        "The reader's minimum of items matching `contains` is below the writer's.";
    AdditionalItemsAdded => "additional_items_added", false,
        "The reader allows items beyond its tuple where the writer forbade them.";
    AdditionalItemsRemoved => "additional_items_removed", true,
        "The reader forbids items beyond its tuple where the writer allowed them.";
    AdditionalItemsExtended => "additional_items_extended", false,
        "The reader allows any item where the writer constrained them.";
    AdditionalItemsNarrowed => "additional_items_narrowed", true,
        "The reader constrains items the writer allowed with any value.";
    UnevaluatedItemsAdded => "unevaluated_items_added", false,
        "The reader allows unevaluated items the writer forbade.";
    UnevaluatedItemsRemoved => "unevaluated_items_removed", true,
        "The reader forbids unevaluated items the writer allowed.";
    UnevaluatedItemsExtended => "unevaluated_items_extended", false,
        "The reader allows any unevaluated item where the writer constrained them.";
    UnevaluatedItemsNarrowed => "unevaluated_items_narrowed", true,
        "The reader constrains unevaluated items the writer allowed with any value.";
    ItemAddedToOpenContentModel => "item_added_to_open_content_model", true,
        "The reader's tuple has a position the writer's open tuple allowed with any value.";
    ItemWithEmptySchemaAddedToOpenContentModel => "item_with_empty_schema_added_to_open_content_model", false,
        "The reader's tuple has a position, with an empty schema, that the writer's open tuple allowed.";
    ItemAddedToClosedContentModel => "item_added_to_closed_content_model", false,
        "The reader's tuple has a position the writer's closed tuple forbade.";
    ItemRemovedFromOpenContentModel => "item_removed_from_open_content_model", false,
        "The reader's tuple lost a position, and its open tuple allows any value there.";
    ItemWithFalseRemovedFromClosedContentModel => "item_with_false_removed_from_closed_content_model", false,
        "The reader's tuple lost a position the writer forbade with `false`.";
    ItemRemovedFromClosedContentModel => "item_removed_from_closed_content_model", true,
        "The reader's tuple lost a position, and its closed tuple forbids it.";
    ItemRemovedIsCoveredByPartiallyOpenContentModel => "item_removed_is_covered_by_partially_open_content_model", false,
        "The reader's tuple lost a position, and its schema for further items reads the writer's values.";
    ItemRemovedNotCoveredByPartiallyOpenContentModel => "item_removed_not_covered_by_partially_open_content_model", true,
        "The reader's tuple lost a position, and its schema for further items does not read the writer's values.";
    ItemAddedIsCoveredByPartiallyOpenContentModel => "item_added_is_covered_by_partially_open_content_model", false,
        "The reader's tuple has a position whose schema reads what the writer's schema for further items allowed.";
    ItemAddedNotCoveredByPartiallyOpenContentModel => "item_added_not_covered_by_partially_open_content_model", true,
        "The reader's tuple has a position whose schema does not read what the writer's schema for further items allowed.";
    // Combinations: allOf (product), anyOf and oneOf (sum), not.
    CombinedTypeExtended => "combined_type_extended", false,
        "The reader combines its alternatives more loosely (to anyOf, or from a single alternative).";
    CombinedTypeChanged => "combined_type_changed", true,
        "The reader combines its subschemas differently (for example anyOf to allOf).";
    ProductTypeExtended => "product_type_extended", true,
        "The reader's allOf has more subschemas than the writer's.";
    ProductTypeNarrowed => "product_type_narrowed", false,
        "The reader's allOf has fewer subschemas than the writer's.";
    SumTypeExtended => "sum_type_extended", false,
        "The reader's anyOf or oneOf has more alternatives than the writer's.";
    SumTypeNarrowed => "sum_type_narrowed", true,
        "The reader's anyOf or oneOf has fewer alternatives than the writer's.";
    CombinedTypeSubschemasChanged => "combined_type_subschemas_changed", true,
        "Some subschemas of the writer's combination have no counterpart in the reader's that reads them.";
    NotTypeExtended => "not_type_extended", true,
        "The reader's `not` excludes values the writer's did not exclude.";
    NotTypeNarrowed => "not_type_narrowed", false,
        "The reader's `not` excludes fewer values than the writer's.";
    // Cairn's own rules, where Confluent's table has nothing to say.
    ConditionalChanged => "conditional_changed", true,
        "The reader's if/then/else differs from the writer's (Cairn compares conditionals as text).";
    ReferenceChanged => "reference_changed", true,
        "A reference that does not resolve in the document differs between the reader and the writer (compared as text).";
    ComparisonLimitReached => "comparison_limit_reached", true,
        "The schemas are too large to compare within Cairn's limit; simplify them or split the type.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for rule in Rule::ALL {
            let name = rule.name();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
            assert!(rule.explanation().ends_with('.'), "{name}");
        }
    }
}
