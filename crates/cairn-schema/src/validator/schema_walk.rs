//! The checks of a registration's JSON Schema that the `jsonschema` crate
//! does not make, or makes with a message that does not say what Cairn
//! allows: its size and depth, its `$schema` (draft 2020-12 only), its
//! references (only local ones, `#…`: nothing is ever fetched), and
//! reference cycles that never move into the fact.
//!
//! The walk knows the draft 2020-12 keywords that hold subschemas, so that
//! a property named `$ref` or a `$ref` member inside an `enum` value is
//! not taken for a reference. Schemas the walk does not see (inside
//! unknown keywords) are still compiled offline by `jsonschema`, which
//! refuses any reference it cannot resolve locally: the walk gives the
//! clear message, the offline compiler the guarantee.

use std::collections::HashMap;

use cairn_api::limits::SCHEMA_BODY_BYTES_MAX;
use serde_json::{Map, Value};

/// The `$schema` URI of draft 2020-12, the only draft Cairn accepts.
pub(crate) const DRAFT_2020_12_URI: &str = "https://json-schema.org/draft/2020-12/schema";

/// Nesting of a schema at most, in JSON levels: a schema is stored inside
/// a `Cairn.Schema` fact, whose values nest at most this deep anyway.
pub(crate) const SCHEMA_DEPTH_MAX: usize = cairn_fact::JSON_DEPTH_MAX;

/// Schemas applied to one value through one schema at most, counting
/// every way through same-location keywords (`allOf` of two references to
/// a definition that is itself such an `allOf`, and so on, doubles at each
/// step: 24 steps cost a quarter of a second per fact). Generous for
/// composed schemas written by people.
pub(crate) const SAME_LOCATION_APPLICATIONS_MAX: u64 = 1_000;

/// Regular expressions (`pattern` values and `patternProperties` names)
/// one schema holds at most. Each costs up to a few milliseconds to
/// compile even within [`PATTERN_COMPILED_BYTES_MAX`] (measured: about
/// 2 ms for one that reaches the limit), and a registration compiles them
/// more than once (the schema, the subschemas that judge `default`
/// upcasts, again when the server loads its registry), so thousands of
/// them in a 60 KiB body would stall the server for seconds. Generous for
/// schemas written by people.
pub(crate) const PATTERNS_MAX: usize = 100;

/// Bytes one compiled regular expression may take at most (the `regex`
/// crate's size limit, 10 MiB by default): compiling is linear in this
/// size, about 2 ms at 512 KiB against 90 ms at the default. Enough for
/// every pattern of a person's schema (`^[A-Z]{3}-[0-9]{6}$`,
/// `^[\p{L} '-]{1,100}$`, `.{300}`); what it refuses is a large bounded
/// repetition of `.` or a Unicode class (`.{999}`, `\p{L}{100}`).
pub(crate) const PATTERN_COMPILED_BYTES_MAX: usize = 512 * 1024;

/// Keywords whose value is one subschema applied to the same instance.
const SAME_LOCATION_SCHEMA_KEYWORDS: [&str; 4] = ["not", "if", "then", "else"];
/// Keywords whose value is an array of subschemas applied to the same instance.
const SAME_LOCATION_ARRAY_KEYWORDS: [&str; 3] = ["allOf", "anyOf", "oneOf"];
/// Keywords whose value is a map of subschemas applied to the same instance.
const SAME_LOCATION_MAP_KEYWORDS: [&str; 1] = ["dependentSchemas"];
/// Keywords whose value is one subschema applied to members or items.
const CHILD_SCHEMA_KEYWORDS: [&str; 7] = [
    "items",
    "contains",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas applied to items.
const CHILD_ARRAY_KEYWORDS: [&str; 1] = ["prefixItems"];
/// Keywords whose value is a map of subschemas applied to members, or of
/// definitions applied only where referenced.
const CHILD_MAP_KEYWORDS: [&str; 4] = ["properties", "patternProperties", "$defs", "definitions"];

/// Checks everything this module owns; the error is a sentence for a person.
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    check_depth(schema, 0)?;
    let schema_bytes = serde_json::to_vec(schema)
        .map_err(|error| error.to_string())?
        .len();
    if schema_bytes > SCHEMA_BODY_BYTES_MAX {
        return Err(format!(
            "the schema is {schema_bytes} bytes of JSON, more than the {SCHEMA_BODY_BYTES_MAX} \
             a schema may hold"
        ));
    }
    let n_patterns = count_patterns(schema);
    if n_patterns > PATTERNS_MAX {
        return Err(format!(
            "the schema holds {n_patterns} regular expressions (pattern values and \
             patternProperties names), more than the {PATTERNS_MAX} allowed: compiling them \
             would cost too much"
        ));
    }
    let mut walk = SchemaWalk::default();
    walk.visit(schema, String::new(), String::new())?;
    walk.refuse_cycles_without_progress()
}

/// How many regular expressions a schema holds, counted wherever they are
/// (every string `pattern` member and every name of a `patternProperties`
/// object, also inside values such as `enum`): an upper bound of what the
/// compiler compiles, whichever keywords it descends into.
pub(crate) fn count_patterns(value: &Value) -> usize {
    match value {
        Value::Object(members) => members
            .iter()
            .map(|(name, member)| {
                let here = match (name.as_str(), member) {
                    ("pattern", Value::String(_)) => 1,
                    ("patternProperties", Value::Object(patterns)) => patterns.len(),
                    _ => 0,
                };
                here + count_patterns(member)
            })
            .sum(),
        Value::Array(items) => items.iter().map(count_patterns).sum(),
        _ => 0,
    }
}

/// Whether a schema holds a reference anywhere (a `$ref` or `$dynamicRef`
/// member with a string value): such a subschema cannot be compiled alone.
pub(crate) fn holds_reference(value: &Value) -> bool {
    match value {
        Value::Object(members) => members.iter().any(|(name, member)| {
            ((name == "$ref" || name == "$dynamicRef") && member.is_string())
                || holds_reference(member)
        }),
        Value::Array(items) => items.iter().any(holds_reference),
        _ => false,
    }
}

/// Escapes one JSON pointer token (RFC 6901): `~` as `~0`, `/` as `~1`.
pub(crate) fn escape_pointer_token(token: &str) -> String {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1")
    } else {
        token.to_string()
    }
}

fn check_depth(value: &Value, depth: usize) -> Result<(), String> {
    if depth > SCHEMA_DEPTH_MAX {
        return Err(format!(
            "the schema nests more than {SCHEMA_DEPTH_MAX} levels deep"
        ));
    }
    match value {
        Value::Object(members) => members
            .values()
            .try_for_each(|member| check_depth(member, depth + 1)),
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_depth(item, depth + 1)),
        _ => Ok(()),
    }
}

/// One schema object the walk saw.
struct SchemaNode {
    /// Where it is, as a JSON pointer from the schema's root.
    pointer: String,
    /// Subschemas applied to the same instance: pointers, as written
    /// (references still to resolve are kept apart).
    same_location_children: Vec<String>,
    /// Its `$ref`, if local, resolved to a pointer from the schema's root
    /// when it can be (an anchor of its resource, or a JSON pointer).
    reference_target: Option<String>,
}

#[derive(Default)]
struct SchemaWalk {
    nodes: Vec<SchemaNode>,
    /// `$anchor` names by (resource root pointer, name) → pointer.
    anchors: HashMap<(String, String), String>,
    /// Local `$ref` values not yet resolved: (node index, resource root, fragment).
    pending_references: Vec<(usize, String, String)>,
}

impl SchemaWalk {
    /// Visits the schema at `pointer`; `resource_root` is the pointer of the
    /// nearest schema (itself included) with an `$id`, against which its
    /// fragments resolve.
    fn visit(
        &mut self,
        schema: &Value,
        pointer: String,
        resource_root: String,
    ) -> Result<(), String> {
        let members = match schema {
            Value::Object(members) => members,
            Value::Bool(_) => return Ok(()),
            other => {
                return Err(format!(
                    "{}: a schema is an object or a boolean, not {}",
                    shown_pointer(&pointer),
                    kind_name(other)
                ))
            }
        };
        let resource_root = if members.contains_key("$id") {
            pointer.clone()
        } else {
            resource_root
        };
        check_meta_schema(members, &pointer)?;
        let node_index = self.nodes.len();
        self.nodes.push(SchemaNode {
            pointer: pointer.clone(),
            same_location_children: Vec::new(),
            reference_target: None,
        });
        if let Some(Value::String(anchor)) = members.get("$anchor") {
            self.anchors
                .insert((resource_root.clone(), anchor.clone()), pointer.clone());
        }
        for keyword in ["$ref", "$dynamicRef"] {
            if let Some(Value::String(reference)) = members.get(keyword) {
                let Some(fragment) = reference.strip_prefix('#') else {
                    return Err(format!(
                        "{}: {keyword} {reference:?} is not local: only references within the \
                         schema (starting with #) resolve, nothing is ever fetched",
                        shown_pointer(&pointer)
                    ));
                };
                // A `$dynamicRef` resolves at validation time, possibly to
                // another schema: its cycles are left to the validator.
                if keyword == "$ref" {
                    self.pending_references.push((
                        node_index,
                        resource_root.clone(),
                        fragment.to_string(),
                    ));
                }
            }
        }
        for (keyword, value) in members {
            let keyword = keyword.as_str();
            let same_location = SAME_LOCATION_SCHEMA_KEYWORDS.contains(&keyword)
                || SAME_LOCATION_ARRAY_KEYWORDS.contains(&keyword)
                || SAME_LOCATION_MAP_KEYWORDS.contains(&keyword);
            for (child_pointer, child) in subschemas(keyword, value, &pointer) {
                if same_location {
                    self.nodes[node_index]
                        .same_location_children
                        .push(child_pointer.clone());
                }
                self.visit(child, child_pointer, resource_root.clone())?;
            }
        }
        Ok(())
    }

    /// Refuses a cycle of subschemas applied to the same instance (through
    /// `$ref`, `allOf`, `not`, …): it never moves into the fact, so it
    /// means nothing, and a naive validator would never end.
    fn refuse_cycles_without_progress(mut self) -> Result<(), String> {
        let index_of: HashMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (node.pointer.clone(), index))
            .collect();
        for (node_index, resource_root, fragment) in std::mem::take(&mut self.pending_references) {
            let target = if fragment.is_empty() || fragment.starts_with('/') {
                Some(format!("{resource_root}{}", percent_decode(&fragment)))
            } else {
                self.anchors
                    .get(&(resource_root, percent_decode(&fragment)))
                    .cloned()
            };
            self.nodes[node_index].reference_target = target;
        }
        let edges: Vec<Vec<usize>> = self
            .nodes
            .iter()
            .map(|node| {
                node.same_location_children
                    .iter()
                    .chain(node.reference_target.iter())
                    .filter_map(|pointer| index_of.get(pointer).copied())
                    .collect()
            })
            .collect();
        if let Some(cycle) = find_cycle(&edges) {
            let path: Vec<String> = cycle
                .iter()
                .map(|&index| shown_pointer(&self.nodes[index].pointer))
                .collect();
            return Err(format!(
                "the schema refers to itself without moving into the fact (through $ref, \
                 allOf, anyOf, oneOf, not, if/then/else or dependentSchemas), so it would \
                 never end: {}",
                path.join(" → ")
            ));
        }
        let applications = same_location_applications(&edges);
        if let Some((index, &count)) = applications
            .iter()
            .enumerate()
            .find(|(_, &count)| count > SAME_LOCATION_APPLICATIONS_MAX)
        {
            return Err(format!(
                "{} applies {}subschemas to the same value (counting every way through $ref, \
                 allOf, anyOf, oneOf, not, if/then/else and dependentSchemas), more than the \
                 {SAME_LOCATION_APPLICATIONS_MAX} allowed: validating a fact would cost too much",
                shown_pointer(&self.nodes[index].pointer),
                if count == u64::MAX {
                    "at least ".to_string()
                } else {
                    format!("{count} ")
                }
            ));
        }
        Ok(())
    }
}

/// For each node of an acyclic graph, how many times validating a value
/// against it applies a schema to that same value: itself, plus what each
/// of its same-location children applies (saturating). Iterative post-order,
/// so a long chain cannot overflow the stack.
fn same_location_applications(edges: &[Vec<usize>]) -> Vec<u64> {
    const UNKNOWN: u64 = 0;
    let mut applications = vec![UNKNOWN; edges.len()];
    for start in 0..edges.len() {
        if applications[start] != UNKNOWN {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(top) = path.last_mut() {
            let node = top.0;
            let next_target = edges[node].get(top.1).copied();
            top.1 += 1;
            match next_target {
                Some(target) if applications[target] == UNKNOWN => path.push((target, 0)),
                Some(_) => {}
                None => {
                    applications[node] = edges[node].iter().fold(1_u64, |total, &child| {
                        total.saturating_add(applications[child])
                    });
                    path.pop();
                }
            }
        }
    }
    applications
}

/// The subschemas a keyword holds, with their pointers.
fn subschemas<'a>(keyword: &str, value: &'a Value, pointer: &str) -> Vec<(String, &'a Value)> {
    let at = |token: &str| {
        format!(
            "{pointer}/{}/{}",
            escape_pointer_token(keyword),
            escape_pointer_token(token)
        )
    };
    if SAME_LOCATION_SCHEMA_KEYWORDS.contains(&keyword) || CHILD_SCHEMA_KEYWORDS.contains(&keyword)
    {
        return vec![(
            format!("{pointer}/{}", escape_pointer_token(keyword)),
            value,
        )];
    }
    if SAME_LOCATION_ARRAY_KEYWORDS.contains(&keyword) || CHILD_ARRAY_KEYWORDS.contains(&keyword) {
        return match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (at(&index.to_string()), item))
                .collect(),
            _ => Vec::new(),
        };
    }
    if SAME_LOCATION_MAP_KEYWORDS.contains(&keyword) || CHILD_MAP_KEYWORDS.contains(&keyword) {
        return match value {
            Value::Object(members) => members
                .iter()
                .map(|(name, member)| (at(name), member))
                .collect(),
            _ => Vec::new(),
        };
    }
    Vec::new()
}

/// Refuses a `$schema` other than draft 2020-12's.
fn check_meta_schema(members: &Map<String, Value>, pointer: &str) -> Result<(), String> {
    match members.get("$schema") {
        None => Ok(()),
        Some(Value::String(uri)) if uri.trim_end_matches('#') == DRAFT_2020_12_URI => Ok(()),
        Some(other) => Err(format!(
            "{}: $schema {other} is not draft 2020-12: Cairn validates with draft 2020-12 \
             only (leave $schema out, or write {DRAFT_2020_12_URI:?})",
            shown_pointer(pointer)
        )),
    }
}

/// A cycle of the graph, as the nodes along it with the first repeated at
/// the end; iterative, so a long chain cannot overflow the stack.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        Unseen,
        OnPath,
        Done,
    }
    let mut colors = vec![Color::Unseen; edges.len()];
    for start in 0..edges.len() {
        if colors[start] != Color::Unseen {
            continue;
        }
        // The current path: (node, index of its next edge to follow).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        colors[start] = Color::OnPath;
        while let Some(top) = path.last_mut() {
            let node = top.0;
            let next_target = edges[node].get(top.1).copied();
            top.1 += 1;
            if let Some(target) = next_target {
                match colors[target] {
                    Color::Unseen => {
                        colors[target] = Color::OnPath;
                        path.push((target, 0));
                    }
                    Color::OnPath => {
                        let cycle_start = path
                            .iter()
                            .position(|&(on_path, _)| on_path == target)
                            .unwrap_or(0);
                        let mut cycle: Vec<usize> = path[cycle_start..]
                            .iter()
                            .map(|&(on_path, _)| on_path)
                            .collect();
                        cycle.push(target);
                        return Some(cycle);
                    }
                    Color::Done => {}
                }
            } else {
                colors[node] = Color::Done;
                path.pop();
            }
        }
    }
    None
}

/// Decodes `%XX` escapes of a URI fragment; anything malformed is kept as
/// written (it then resolves to nothing, which the compiler reports).
fn percent_decode(fragment: &str) -> String {
    if !fragment.contains('%') {
        return fragment.to_string();
    }
    let bytes = fragment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| fragment.to_string())
}

/// A pointer as shown in messages: the root is `#`, not an empty string.
fn shown_pointer(pointer: &str) -> String {
    format!("#{pointer}")
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(schema: Value) -> String {
        check_schema(&schema).expect_err("refused")
    }

    #[test]
    fn references_must_be_local() {
        assert!(refusal(json!({"$ref": "https://example.com/a.json"})).contains("not local"));
        assert!(
            refusal(json!({"properties": {"a": {"$ref": "other.json#"}}}))
                .contains("#/properties/a: $ref \"other.json#\"")
        );
        assert!(
            refusal(json!({"$dynamicRef": "https://example.com/a.json#meta"}))
                .contains("$dynamicRef")
        );
        // A property named `$ref` and a `$ref` inside a value are not references.
        check_schema(&json!({
            "properties": {"$ref": {"type": "string"}},
            "enum": [{"$ref": "https://example.com/a.json"}],
            "$defs": {"a": {"type": "integer"}},
            "items": {"$ref": "#/$defs/a"}
        }))
        .expect("accepted");
    }

    #[test]
    fn only_draft_2020_12_is_accepted() {
        check_schema(&json!({"$schema": DRAFT_2020_12_URI})).expect("accepted");
        check_schema(&json!({"$schema": format!("{DRAFT_2020_12_URI}#")})).expect("accepted");
        let message = refusal(json!({"$schema": "http://json-schema.org/draft-07/schema#"}));
        assert!(message.contains("not draft 2020-12"), "{message}");
    }

    #[test]
    fn cycles_that_never_move_into_the_fact_are_refused() {
        for schema in [
            json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            json!({"$ref": "#"}),
            json!({"allOf": [{"$ref": "#"}]}),
            json!({"$defs": {"a": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/b"}]},
                             "b": {"not": {"$ref": "#/$defs/a"}}}}),
            json!({"$defs": {"a": {"$anchor": "here", "allOf": [{"$ref": "#here"}]}}}),
            json!({"$defs": {"a b": {"$ref": "#/$defs/a%20b"}}}),
        ] {
            let message = refusal(schema.clone());
            assert!(message.contains("never end"), "{schema}: {message}");
        }
    }

    #[test]
    fn recursion_through_members_and_items_is_progress() {
        check_schema(&json!({
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#"}}
            },
            "additionalProperties": {"$ref": "#/properties/children"}
        }))
        .expect("a tree is accepted");
    }

    #[test]
    fn long_reference_chains_do_not_overflow_the_stack() {
        let links = 20_000;
        let mut definitions = Map::new();
        for link in 0..links {
            definitions.insert(
                format!("d{link}"),
                json!({"$ref": format!("#/$defs/d{}", link + 1)}),
            );
        }
        definitions.insert(format!("d{links}"), json!({"$ref": "#/$defs/d0"}));
        let schema = json!({"$defs": definitions});
        let mut walk = SchemaWalk::default();
        walk.visit(&schema, String::new(), String::new())
            .expect("walked");
        let message = walk.refuse_cycles_without_progress().expect_err("a cycle");
        assert!(message.contains("never end"));
    }

    #[test]
    fn schemas_that_apply_exponentially_many_subschemas_are_refused() {
        let doubling = |steps: usize| {
            let mut definitions = Map::new();
            definitions.insert("d0".into(), json!({"type": "object"}));
            for step in 1..=steps {
                let previous = format!("#/$defs/d{}", step - 1);
                definitions.insert(
                    format!("d{step}"),
                    json!({"allOf": [{"$ref": previous}, {"$ref": previous}]}),
                );
            }
            json!({"$defs": definitions, "properties": {"a": {"$ref": format!("#/$defs/d{steps}")}}})
        };
        // Step k applies itself and twice a `$ref` object applying step k - 1:
        // 2^(k+2) - 3 in all, so 509 at step 7 and 1021 at step 8.
        check_schema(&doubling(7)).expect("509 applications are accepted");
        let message = refusal(doubling(8));
        assert!(
            message.contains("#/$defs/d8 applies 1021 subschemas"),
            "{message}"
        );
        let message = refusal(doubling(200));
        assert!(message.contains("more than the 1000 allowed"), "{message}");
        // Counts saturate rather than overflow.
        let chain_of_doublings: Vec<Vec<usize>> = (0..100)
            .map(|node| {
                if node == 99 {
                    vec![]
                } else {
                    vec![node + 1, node + 1]
                }
            })
            .collect();
        assert_eq!(same_location_applications(&chain_of_doublings)[0], u64::MAX);
        // Shared definitions applied at different places do not add up.
        let mut definitions = Map::new();
        definitions.insert("leaf".into(), json!({"type": "string"}));
        let properties: Map<String, Value> = (0..500)
            .map(|index| {
                (
                    format!("p{index}"),
                    json!({"allOf": [{"$ref": "#/$defs/leaf"}]}),
                )
            })
            .collect();
        check_schema(&json!({"$defs": definitions, "properties": properties})).expect("accepted");
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let mut deep = json!({"type": "string"});
        for _ in 0..SCHEMA_DEPTH_MAX {
            deep = json!({"not": deep});
        }
        assert!(refusal(deep).contains("levels deep"));
        let huge = json!({"enum": vec!["x".repeat(1000); 100]});
        assert!(refusal(huge).contains("bytes"));
    }

    #[test]
    fn the_number_of_regular_expressions_is_bounded() {
        let properties = |n_properties: usize| -> Map<String, Value> {
            (0..n_properties)
                .map(|index| {
                    (
                        format!("p{index}"),
                        json!({"pattern": format!("^{index}$")}),
                    )
                })
                .collect()
        };
        check_schema(&json!({"properties": properties(PATTERNS_MAX)})).expect("accepted");
        let message = refusal(json!({"properties": properties(PATTERNS_MAX + 1)}));
        assert!(
            message.contains("holds 101 regular expressions"),
            "{message}"
        );
        // `patternProperties` names count, wherever they are; a property
        // named `pattern` or a `pattern` member that is not a string does not.
        let schema = json!({
            "patternProperties": {"^a": {}, "^b": {"pattern": "c"}},
            "properties": {"pattern": {"type": "string"}},
            "items": {"patternProperties": {"^d": true}},
            "enum": [{"pattern": 5}]
        });
        assert_eq!(count_patterns(&schema), 4);
    }

    #[test]
    fn non_schemas_in_schema_places_are_refused() {
        assert!(refusal(json!({"properties": {"a": 5}})).contains("#/properties/a"));
    }

    #[test]
    fn pointer_tokens_and_fragments_are_escaped_and_decoded() {
        assert_eq!(escape_pointer_token("a/b~c"), "a~1b~0c");
        assert_eq!(percent_decode("/a%20b/%zz"), "/a b/%zz");
        assert!(holds_reference(&json!({"items": [{"$ref": "#"}]})));
        assert!(!holds_reference(
            &json!({"properties": {"$ref": {"type": "string"}}})
        ));
    }
}
