//! Check of the RFC 8785 canonical form, which every fact hash is taken
//! over: canonicalizing is idempotent through the parser, its output is
//! JSON that an independent parser (serde_json) reads as the same document,
//! and every number is written as ECMAScript writes it (checked against
//! the independent `ryu-js`) and reads back as the same double.

use cairn_fact::{parse_json, to_canonical, Value, JSON_DEPTH_MAX};

/// Magnitudes from which (up to 1e21) the canonical form of a number is an
/// integer literal beyond ±(2^53−1), which the parser refuses by design.
const UNSAFE_INTEGER_MAGNITUDES: std::ops::Range<f64> = 9_007_199_254_740_992.0..1e21;

/// Bytes of one double when `data` is read as raw IEEE-754 bits.
const DOUBLE_BYTES: usize = 8;

/// Canonicalizes `data` when it parses as JSON, and canonicalizes every
/// finite double whose bits `data` holds (so the fuzzer reaches every
/// double, not just those it learns to spell); panics on any difference
/// from the expected form.
pub fn check_canonical_json(data: &[u8]) {
    for bits in data.chunks_exact(DOUBLE_BYTES) {
        let number = f64::from_le_bytes(bits.try_into().expect("chunks have 8 bytes"));
        if number.is_finite() {
            check_number(number);
        }
    }
    let Ok(value) = parse_json(data, JSON_DEPTH_MAX) else {
        return;
    };
    let canonical = to_canonical(&value);
    let reparsed = parse_json(&canonical, JSON_DEPTH_MAX).expect("canonical output parses");
    assert_eq!(
        to_canonical(&reparsed),
        canonical,
        "canonicalization is idempotent"
    );
    let independent: serde_json::Value =
        serde_json::from_slice(&canonical).expect("serde_json reads canonical output");
    assert_same_document(&value, &independent);
    for_each_number(&value, &mut check_number);
}

/// Checks the canonical text of one finite number against ECMAScript's
/// `Number::toString` and against reading it back.
fn check_number(number: f64) {
    let text = String::from_utf8(to_canonical(&Value::Number(number)))
        .expect("a canonical number is ASCII");
    let mut ecmascript = ryu_js::Buffer::new();
    assert_eq!(
        text,
        ecmascript.format_finite(number),
        "canonical form of {number:e} (bits {:#018x}) differs from ECMAScript's",
        number.to_bits()
    );
    let read_back: f64 = text.parse().expect("a canonical number is a Rust float");
    assert_eq!(read_back, number, "{text} reads back as another double");
    match parse_json(text.as_bytes(), JSON_DEPTH_MAX) {
        Ok(parsed) => assert_eq!(parsed, Value::Number(number), "{text} parses differently"),
        Err(error) => assert!(
            UNSAFE_INTEGER_MAGNITUDES.contains(&number.abs()),
            "{text} is refused by the parser: {error}"
        ),
    }
}

/// Calls `visit` on every number inside `value`.
fn for_each_number(value: &Value, visit: &mut impl FnMut(f64)) {
    match value {
        Value::Number(number) => visit(*number),
        Value::Array(items) => items.iter().for_each(|item| for_each_number(item, visit)),
        Value::Object(members) => members
            .iter()
            .for_each(|(_, member)| for_each_number(member, visit)),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// Asserts that serde_json read the same document as Cairn's parser.
/// Numbers are only checked to be numbers: serde_json (without its
/// `float_roundtrip` feature) may round the last bit differently, and
/// [`check_number`] checks their values exactly.
fn assert_same_document(ours: &Value, independent: &serde_json::Value) {
    match (ours, independent) {
        (Value::Null, serde_json::Value::Null) => {}
        (Value::Bool(left), serde_json::Value::Bool(right)) => assert_eq!(left, right),
        (Value::Number(_), serde_json::Value::Number(_)) => {}
        (Value::String(left), serde_json::Value::String(right)) => assert_eq!(left, right),
        (Value::Array(left), serde_json::Value::Array(right)) => {
            assert_eq!(left.len(), right.len(), "array lengths differ");
            for (left_item, right_item) in left.iter().zip(right) {
                assert_same_document(left_item, right_item);
            }
        }
        (Value::Object(left), serde_json::Value::Object(right)) => {
            assert_eq!(left.len(), right.len(), "member counts differ");
            for (key, left_member) in left {
                let right_member = right
                    .get(key)
                    .unwrap_or_else(|| panic!("serde_json lost member {key:?}"));
                assert_same_document(left_member, right_member);
            }
        }
        (left, right) => panic!("kinds differ: {left:?} read by serde_json as {right:?}"),
    }
}
