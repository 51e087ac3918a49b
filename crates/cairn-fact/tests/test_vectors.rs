//! The language-neutral test vectors in `docs/test-vectors.json`: facts as
//! sent, with the canonical form and hash every implementation must compute,
//! and invalid facts with the error code they must get.
//!
//! `checked_in_vectors_hold` checks the file against this crate on every run.
//! The file is written by the ignored test `generate_test_vectors`, from the
//! lists below and the real code, never by hand:
//! `CAIRN_WRITE_VECTORS=1 cargo test -p cairn-fact --test test_vectors -- --ignored`.

use std::fs;
use std::path::PathBuf;

use cairn_fact::{
    parse_json, to_canonical, CanonicalFact, Hash, Value, FACT_CANONICAL_BYTES_MAX_DEFAULT,
    JSON_DEPTH_MAX, TYPE_NAME_CHARS_MAX,
};

const VALID_VECTORS_N_MIN: usize = 20;
const INVALID_VECTORS_N_MIN: usize = 10;

/// Depth allowed when reading the vectors document, whose facts are nested
/// inside it; the facts themselves are checked with the normal limits.
const DOCUMENT_DEPTH_MAX: usize = JSON_DEPTH_MAX + 8;

const DESCRIPTION: &str = "Cairn fact test vectors. Each entry of \"vectors\" holds a fact \
exactly as a client sends it (\"input\", the UTF-8 text of the JSON), its canonical form \
(\"canonical\": RFC 8785 after sorting and deduplicating predecessor arrays) and its hash \
(\"hash\": BLAKE3-256 of the UTF-8 bytes of the canonical form, as 64 lowercase hexadecimal \
characters). Each entry of \"invalid\" holds a fact that must be refused, with the stable \
error code of the refusal. Generated from the cairn-fact crate by \
`CAIRN_WRITE_VECTORS=1 cargo test -p cairn-fact --test test_vectors -- --ignored`; \
checked by `cargo test -p cairn-fact`.";

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/test-vectors.json")
}

/// A hash to use as a predecessor, made from a seed by the real hash.
fn predecessor(seed: &str) -> String {
    Hash::of_bytes(seed.as_bytes()).to_hex()
}

fn fact(type_name: &str, fields: &str, predecessors: &str) -> String {
    format!(r#"{{"type":"{type_name}","fields":{fields},"predecessors":{predecessors}}}"#)
}

fn fields_only(fields: &str) -> String {
    fact("Test.Fact", fields, "{}")
}

/// The valid vectors: (name, input).
fn valid_vectors() -> Vec<(&'static str, String)> {
    let (first, second, third) = (
        predecessor("first"),
        predecessor("second"),
        predecessor("third"),
    );
    let mut sorted = [first.clone(), second.clone(), third.clone()];
    sorted.sort();
    let [low, middle, high] = sorted;
    vec![
        ("minimal fact", fact("T", "{}", "{}")),
        (
            "members in any order with whitespace",
            " {\n\t\"predecessors\" : { } ,\r\n \"fields\" : { } , \"type\" : \"Shop.Order\" }\n"
                .to_string(),
        ),
        ("dotted type with digits and underscores", fact("Shop_2.Order.Line_item9", "{}", "{}")),
        ("type of the maximum length", fact(&"T".repeat(TYPE_NAME_CHARS_MAX), "{}", "{}")),
        (
            "example from the API contract",
            fact(
                "Shop.Order",
                r#"{"id":"0b8e","placedAt":"2026-11-28T03:00:00Z","total":450}"#,
                &format!(r#"{{"customer":"{first}","items":["{second}","{third}"]}}"#),
            ),
        ),
        (
            "keys that sort differently in UTF-16 and UTF-8",
            fields_only("{\"\u{e000}\":\"private use\",\"\u{1f600}\":\"astral\",\"\u{ff}\":\"latin\",\"z\":\"ascii\"}"),
        ),
        (
            "escaped astral and private-use keys",
            fields_only(r#"{"\ue000":1,"\ud83d\ude00":2,"\uD83D\uDE02":3,"\uFB33":4}"#),
        ),
        (
            "keys sort by code unit, not by locale",
            fields_only(r#"{"peach":1,"péché":2,"pêche":3,"sin":4,"Z":5,"a":6,"":7,"10":8,"1":9}"#),
        ),
        (
            "string escapes and control characters",
            fields_only(r#"{"s":"quote\" backslash\\ slash\/ \b\f\n\r\t nul\u0000 unit\u001F del\u007f"}"#),
        ),
        (
            "control characters in keys",
            fields_only(r#"{"\n":"newline","\r":"carriage return","\u0001":"start of heading"}"#),
        ),
        (
            "non-ASCII text stays literal",
            fields_only(r#"{"text":"Grüße, 世界 😂 \u20ac \u2028 \u00e9"}"#),
        ),
        (
            "unicode is not normalized",
            fields_only(r#"{"composed":"\u00c5","decomposed":"A\u030a"}"#),
        ),
        (
            "nested objects and arrays",
            fields_only(r#"{"b":{"z":{"y":[1,{"d":null,"c":true}],"x":[]},"w":{}},"a":[[],[{}],[false]]}"#),
        ),
        (
            "keys that look like fact members",
            fields_only(r#"{"type":"Other","predecessors":{},"fields":{"fields":{}}}"#),
        ),
        (
            "doubles with exponents and fractions",
            fields_only(r#"{"a":1E30,"b":4.50,"c":2e-3,"d":1e-7,"e":0.000001,"f":123e-20,"g":1e21,"h":0.1,"i":-1.5,"j":1e-27}"#),
        ),
        (
            "extreme doubles",
            fields_only(r#"{"largest":1.7976931348623157e308,"smallest":5e-324,"negative":-1.7976931348623157E+308,"round":333333333.33333329}"#),
        ),
        (
            "integers and negative zero",
            fields_only(r#"{"zero":0,"minus_zero":-0,"minus_zero_double":-0.0,"hundred":100,"hundred_exp":1e2,"max_safe":9007199254740991,"min_safe":-9007199254740991}"#),
        ),
        (
            "a double exactly between two shortest forms rounds to even",
            fields_only(r#"{"tie":1424953923781206.25,"other":1424953923781206.75}"#),
        ),
        ("literals", fields_only(r#"{"t":true,"f":false,"n":null,"list":[null,true,false]}"#)),
        ("one predecessor", fact("T", "{}", &format!(r#"{{"parent":"{first}"}}"#))),
        (
            "predecessor array already sorted",
            fact("T", "{}", &format!(r#"{{"items":["{low}","{middle}","{high}"]}}"#)),
        ),
        (
            "predecessor array unsorted (same hash as sorted)",
            fact("T", "{}", &format!(r#"{{"items":["{high}","{low}","{middle}"]}}"#)),
        ),
        (
            "predecessor array with duplicates (same hash as sorted)",
            fact("T", "{}", &format!(r#"{{"items":["{middle}","{high}","{low}","{high}","{middle}"]}}"#)),
        ),
        (
            "single-element predecessor array stays an array",
            fact("T", "{}", &format!(r#"{{"parent":["{first}","{first}"]}}"#)),
        ),
        (
            "several roles given in reverse order",
            fact(
                "Chat.Message",
                r#"{"text":"hello"}"#,
                &format!(r#"{{"z_thread":"{third}","author":"{second}","Mentions":["{first}","{third}"]}}"#),
            ),
        ),
        (
            "the RFC 8785 values vector as a field",
            fields_only(r#"{"v":{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}}"#),
        ),
    ]
}

/// The invalid vectors: (name, input, error code).
fn invalid_vectors() -> Vec<(&'static str, String, &'static str)> {
    let hash = predecessor("first");
    let with_predecessors = |predecessors: &str| fact("T", "{}", predecessors);
    let with_type =
        |type_json: &str| format!(r#"{{"type":{type_json},"fields":{{}},"predecessors":{{}}}}"#);
    vec![
        (
            "integer beyond 2^53-1",
            fields_only(r#"{"n":9007199254740992}"#),
            "integer_out_of_range",
        ),
        (
            "negative integer beyond 2^53-1",
            fields_only(r#"{"n":-9007199254740993}"#),
            "integer_out_of_range",
        ),
        (
            "huge integer",
            fields_only(r#"{"n":123456789012345678901234567890}"#),
            "integer_out_of_range",
        ),
        (
            "double whose canonical form would be an unsafe integer",
            fields_only(r#"{"n":1e20}"#),
            "integer_out_of_range",
        ),
        (
            "number too large to be finite",
            fields_only(r#"{"n":1e400}"#),
            "non_finite_number",
        ),
        ("empty type", with_type(r#""""#), "invalid_type"),
        (
            "type starting with a digit",
            with_type(r#""1Order""#),
            "invalid_type",
        ),
        (
            "type with an empty segment",
            with_type(r#""Shop..Order""#),
            "invalid_type",
        ),
        (
            "type ending with a dot",
            with_type(r#""Shop.""#),
            "invalid_type",
        ),
        (
            "type with a hyphen",
            with_type(r#""Shop-Order""#),
            "invalid_type",
        ),
        (
            "type with non-ASCII letters",
            with_type(r#""Bestellüng""#),
            "invalid_type",
        ),
        (
            "type too long",
            with_type(&format!("\"{}\"", "T".repeat(TYPE_NAME_CHARS_MAX + 1))),
            "invalid_type",
        ),
        ("type not a string", with_type("42"), "invalid_type"),
        (
            "role with a dot",
            with_predecessors(&format!(r#"{{"a.b":"{hash}"}}"#)),
            "invalid_role",
        ),
        (
            "role starting with a digit",
            with_predecessors(&format!(r#"{{"1st":"{hash}"}}"#)),
            "invalid_role",
        ),
        (
            "empty role",
            with_predecessors(&format!(r#"{{"":"{hash}"}}"#)),
            "invalid_role",
        ),
        (
            "uppercase hash",
            with_predecessors(&format!(r#"{{"p":"{}"}}"#, hash.to_uppercase())),
            "invalid_hash",
        ),
        (
            "short hash",
            with_predecessors(&format!(r#"{{"p":"{}"}}"#, &hash[..63])),
            "invalid_hash",
        ),
        (
            "bad hash inside an array",
            with_predecessors(&format!(r#"{{"p":["{hash}","xyz"]}}"#)),
            "invalid_hash",
        ),
        (
            "empty predecessor array",
            with_predecessors(r#"{"p":[]}"#),
            "invalid_predecessor",
        ),
        (
            "predecessor not a string",
            with_predecessors(r#"{"p":7}"#),
            "invalid_predecessor",
        ),
        (
            "predecessor array of non-strings",
            with_predecessors(r#"{"p":[null]}"#),
            "invalid_predecessor",
        ),
        (
            "extra member",
            r#"{"type":"T","fields":{},"predecessors":{},"extra":1}"#.to_string(),
            "invalid_fact",
        ),
        (
            "missing member",
            r#"{"type":"T","fields":{}}"#.to_string(),
            "invalid_fact",
        ),
        (
            "fields not an object",
            r#"{"type":"T","fields":[],"predecessors":{}}"#.to_string(),
            "invalid_fact",
        ),
        (
            "predecessors not an object",
            r#"{"type":"T","fields":{},"predecessors":"x"}"#.to_string(),
            "invalid_fact",
        ),
        ("fact not an object", "[]".to_string(), "invalid_fact"),
        (
            "lone high surrogate",
            fields_only(r#"{"s":"\ud83d"}"#),
            "invalid_unicode",
        ),
        (
            "lone low surrogate",
            fields_only(r#"{"s":"\ude00x"}"#),
            "invalid_unicode",
        ),
        (
            "duplicate field key",
            fields_only(r#"{"k":1,"k":2}"#),
            "duplicate_key",
        ),
        (
            "duplicate key via escape",
            fields_only(r#"{"é":1,"\u00e9":2}"#),
            "duplicate_key",
        ),
        (
            "duplicate fact member",
            r#"{"type":"T","type":"U","fields":{},"predecessors":{}}"#.to_string(),
            "duplicate_key",
        ),
        (
            "trailing comma",
            fields_only(r#"{"a":1,}"#),
            "malformed_json",
        ),
        ("leading zero", fields_only(r#"{"a":01}"#), "malformed_json"),
        ("NaN literal", fields_only(r#"{"a":NaN}"#), "malformed_json"),
        (
            "raw control character in a string",
            fields_only("{\"a\":\"tab\there\"}"),
            "malformed_json",
        ),
        (
            "text after the fact",
            format!("{} x", fact("T", "{}", "{}")),
            "malformed_json",
        ),
        (
            "nesting too deep",
            fields_only(&format!(
                r#"{{"a":{}{}}}"#,
                "[".repeat(JSON_DEPTH_MAX),
                "]".repeat(JSON_DEPTH_MAX)
            )),
            "nesting_too_deep",
        ),
    ]
}

/// Writes `text` as a JSON string (the canonical escaping).
fn json_string(text: &str) -> String {
    String::from_utf8(to_canonical(&Value::String(text.to_string()))).unwrap()
}

/// Builds the whole vectors document from the lists and the real code.
fn generate_document() -> String {
    let mut document = String::new();
    document.push_str("{\n");
    document.push_str(&format!(
        "  \"description\": {},\n",
        json_string(DESCRIPTION)
    ));
    document.push_str("  \"vectors\": [\n");
    let valid = valid_vectors();
    for (vector_idx, (name, input)) in valid.iter().enumerate() {
        let canonical_fact =
            CanonicalFact::from_json(input.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
                .unwrap_or_else(|error| panic!("valid vector {name:?} is refused: {error}"));
        let canonical = String::from_utf8(canonical_fact.canonical).unwrap();
        document.push_str("    {\n");
        document.push_str(&format!("      \"name\": {},\n", json_string(name)));
        document.push_str(&format!("      \"input\": {},\n", json_string(input)));
        document.push_str(&format!(
            "      \"canonical\": {},\n",
            json_string(&canonical)
        ));
        document.push_str(&format!(
            "      \"hash\": {}\n",
            json_string(&canonical_fact.hash.to_hex())
        ));
        document.push_str(if vector_idx + 1 < valid.len() {
            "    },\n"
        } else {
            "    }\n"
        });
    }
    document.push_str("  ],\n");
    document.push_str("  \"invalid\": [\n");
    let invalid = invalid_vectors();
    for (vector_idx, (name, input, code)) in invalid.iter().enumerate() {
        let error = CanonicalFact::from_json(input.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
            .err()
            .unwrap_or_else(|| panic!("invalid vector {name:?} is accepted"));
        assert_eq!(error.code(), *code, "invalid vector {name:?}: {error}");
        document.push_str("    {\n");
        document.push_str(&format!("      \"name\": {},\n", json_string(name)));
        document.push_str(&format!("      \"input\": {},\n", json_string(input)));
        document.push_str(&format!("      \"code\": {}\n", json_string(code)));
        document.push_str(if vector_idx + 1 < invalid.len() {
            "    },\n"
        } else {
            "    }\n"
        });
    }
    document.push_str("  ]\n}\n");
    document
}

fn member_str<'value>(entry: &'value Value, name: &str) -> &'value str {
    entry
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vector entry lacks the string member {name:?}"))
}

#[test]
fn checked_in_vectors_hold() {
    let path = vectors_path();
    let document_bytes =
        fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let document = parse_json(&document_bytes, DOCUMENT_DEPTH_MAX).unwrap();
    assert!(member_str(&document, "description").contains("BLAKE3"));

    let vectors = document.get("vectors").and_then(Value::as_array).unwrap();
    assert!(
        vectors.len() >= VALID_VECTORS_N_MIN,
        "only {} valid vectors",
        vectors.len()
    );
    for vector in vectors {
        let name = member_str(vector, "name");
        let input = member_str(vector, "input");
        let canonical = member_str(vector, "canonical");
        let hash = Hash::from_hex(member_str(vector, "hash")).unwrap();
        let canonical_fact =
            CanonicalFact::from_json(input.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
                .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(canonical_fact.canonical, canonical.as_bytes(), "{name}");
        assert_eq!(canonical_fact.hash, hash, "{name}");
        assert_eq!(Hash::of_bytes(canonical.as_bytes()), hash, "{name}");
        // The canonical form is itself a valid input with the same identity.
        let verified = CanonicalFact::verify_stored(canonical.as_bytes(), &hash).unwrap();
        assert_eq!(verified.canonical, canonical.as_bytes(), "{name}");
    }

    let invalid = document.get("invalid").and_then(Value::as_array).unwrap();
    assert!(
        invalid.len() >= INVALID_VECTORS_N_MIN,
        "only {} invalid vectors",
        invalid.len()
    );
    for vector in invalid {
        let name = member_str(vector, "name");
        let input = member_str(vector, "input");
        let error = CanonicalFact::from_json(input.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(error.code(), member_str(vector, "code"), "{name}: {error}");
    }
}

#[test]
fn checked_in_vectors_are_the_generated_ones() {
    let checked_in = fs::read_to_string(vectors_path()).unwrap();
    assert!(
        checked_in == generate_document(),
        "docs/test-vectors.json is out of date; regenerate it with \
         CAIRN_WRITE_VECTORS=1 cargo test -p cairn-fact --test test_vectors -- --ignored"
    );
}

#[test]
fn unsorted_and_duplicated_predecessor_vectors_share_the_sorted_hash() {
    let hash_of = |wanted: &str| {
        let (_, input) = valid_vectors()
            .into_iter()
            .find(|(name, _)| *name == wanted)
            .unwrap();
        CanonicalFact::from_json(input.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
            .unwrap()
            .hash
    };
    let sorted = hash_of("predecessor array already sorted");
    assert_eq!(
        hash_of("predecessor array unsorted (same hash as sorted)"),
        sorted
    );
    assert_eq!(
        hash_of("predecessor array with duplicates (same hash as sorted)"),
        sorted
    );
}

#[test]
#[ignore = "writes docs/test-vectors.json when CAIRN_WRITE_VECTORS=1"]
fn generate_test_vectors() {
    let document = generate_document();
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some_and(|value| value == "1") {
        fs::write(vectors_path(), document).unwrap();
        println!("wrote {}", vectors_path().display());
    } else {
        println!(
            "set CAIRN_WRITE_VECTORS=1 to write {}",
            vectors_path().display()
        );
    }
}
