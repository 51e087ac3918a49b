//! Property tests of the parser and the canonical form over generated
//! values: canonicalization is idempotent through the parser, member order
//! never changes a fact's hash, and numbers are written exactly as a simple
//! independent model of ECMAScript's Number::toString writes them.

use cairn_fact::{parse_json, to_canonical, CanonicalFact, Hash, Value};
use proptest::prelude::*;

/// Depth allowed when re-parsing generated values, which nest only a few
/// levels.
const TEST_DEPTH_MAX: usize = 32;

/// Large enough that no generated fact is refused for its size.
const TEST_CANONICAL_BYTES_MAX: usize = 1 << 30;

/// Numbers a fact may hold: finite, and not in the range from 2^53 to 1e21
/// whose canonical form would be an integer beyond ±(2^53−1).
fn fact_number() -> impl Strategy<Value = f64> {
    finite_number().prop_filter("not an unsafe integer", |number| {
        !(9_007_199_254_740_992.0..1e21).contains(&number.abs())
    })
}

fn finite_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |number| number.is_finite()),
        (-1_000_000i64..1_000_000).prop_map(|integer| integer as f64),
        (-1_000_000i64..1_000_000, 0u32..6)
            .prop_map(|(integer, places)| integer as f64 / 10f64.powi(places as i32)),
        Just(-0.0),
        Just(5e-324),
        Just(f64::MAX),
    ]
}

/// Strings of any Unicode scalar values, including control characters and
/// characters above U+FFFF.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        prop::collection::vec(
            prop::sample::select(vec![
                'a',
                'B',
                '\u{0}',
                '\n',
                '"',
                '\\',
                '\u{7f}',
                'é',
                '\u{e000}',
                '\u{ffff}',
                '😀',
                '\u{10ffff}'
            ]),
            0..6
        )
        .prop_map(String::from_iter),
    ]
}

/// Object keys drawn often from a small set, so that keys which sort
/// differently in UTF-16 and UTF-8 meet in the same object.
fn object_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "", "a", "b", "A", "é", "\u{e000}", "😀", "😀a", "\u{ffff}", "10", "1"
        ])
        .prop_map(str::to_string),
        any_text(),
    ]
}

fn unique_members(members: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut unique: Vec<(String, Value)> = Vec::with_capacity(members.len());
    for (key, member_value) in members {
        if !unique.iter().any(|(existing, _)| *existing == key) {
            unique.push((key, member_value));
        }
    }
    unique
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        fact_number().prop_map(Value::Number),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((object_key(), inner), 0..8)
                .prop_map(|members| Value::Object(unique_members(members))),
        ]
    })
}

fn any_members() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec((object_key(), any_value()), 0..10).prop_map(unique_members)
}

fn fact_value(
    members_order: &[usize; 3],
    fields: Vec<(String, Value)>,
    predecessors: Vec<(String, Value)>,
) -> Value {
    let members = [
        ("type".to_string(), Value::String("Test.Fact".to_string())),
        ("fields".to_string(), Value::Object(fields)),
        ("predecessors".to_string(), Value::Object(predecessors)),
    ];
    Value::Object(
        members_order
            .iter()
            .map(|&member_idx| members[member_idx].clone())
            .collect(),
    )
}

/// The ECMAScript Number::toString of a finite double, computed the slow
/// and obvious way: the fewest correctly rounded significant digits (ties to
/// even, as Rust's precision formatting rounds) that read back as the
/// number, then the layout rules of the specification.
fn ecmascript_number_model(number: f64) -> String {
    if number == 0.0 {
        return "0".to_string();
    }
    let sign = if number < 0.0 { "-" } else { "" };
    let magnitude = number.abs();
    let scientific = (1..=17)
        .map(|digits_n| format!("{:.*e}", digits_n - 1, magnitude))
        .find(|text| text.parse::<f64>() == Ok(magnitude))
        .expect("17 digits always read back");
    let (mantissa, exponent) = scientific.split_once('e').unwrap();
    let digits = mantissa.replace('.', "");
    let digits = digits.trim_end_matches('0');
    let k = digits.len() as i32;
    let n = exponent.parse::<i32>().unwrap() + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let exponent_sign = if n - 1 < 0 { '-' } else { '+' };
        let exponent_magnitude = (n - 1).abs();
        if k == 1 {
            format!("{digits}e{exponent_sign}{exponent_magnitude}")
        } else {
            format!(
                "{}.{}e{exponent_sign}{exponent_magnitude}",
                &digits[..1],
                &digits[1..]
            )
        }
    };
    format!("{sign}{body}")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn canonicalization_is_idempotent_through_the_parser(value in any_value()) {
        let canonical = to_canonical(&value);
        let reparsed = parse_json(&canonical, TEST_DEPTH_MAX);
        prop_assert!(reparsed.is_ok(), "{:?}: {}", reparsed, String::from_utf8_lossy(&canonical));
        prop_assert_eq!(to_canonical(&reparsed.unwrap()), canonical);
    }

    #[test]
    fn parsing_canonical_output_preserves_the_value(value in any_value()) {
        // Canonical output parses back to the same value up to member order
        // and the sign of zero, which the canonical form drops.
        let reparsed = parse_json(&to_canonical(&value), TEST_DEPTH_MAX).unwrap();
        prop_assert_eq!(to_canonical(&reparsed), to_canonical(&value));
        prop_assert_eq!(
            std::mem::discriminant(&reparsed),
            std::mem::discriminant(&value)
        );
    }

    #[test]
    fn member_order_does_not_change_the_hash(
        fields in any_members(),
        permutation_seed in any::<u64>(),
        members_order in Just([0usize, 1, 2]).prop_shuffle(),
    ) {
        let mut shuffled_fields = fields.clone();
        // A seeded rotation and reversal reorder the members deterministically.
        if !shuffled_fields.is_empty() {
            let rotation = (permutation_seed as usize) % shuffled_fields.len();
            shuffled_fields.rotate_left(rotation);
            if permutation_seed % 2 == 1 {
                shuffled_fields.reverse();
            }
        }
        let predecessor = Value::String(Hash::of_bytes(b"p").to_hex());
        let predecessors = vec![("b".to_string(), predecessor.clone()), ("a".to_string(), predecessor)];
        let mut reversed_predecessors = predecessors.clone();
        reversed_predecessors.reverse();

        let reference = CanonicalFact::from_value(&fact_value(&[0, 1, 2], fields, predecessors), TEST_CANONICAL_BYTES_MAX).unwrap();
        let shuffled = CanonicalFact::from_value(
            &fact_value(&members_order, shuffled_fields, reversed_predecessors),
            TEST_CANONICAL_BYTES_MAX,
        ).unwrap();
        prop_assert_eq!(&shuffled.canonical, &reference.canonical);
        prop_assert_eq!(shuffled.hash, reference.hash);
        prop_assert_eq!(reference.hash, Hash::of_bytes(&reference.canonical));
        // What was stored verifies, and the text form gives the same fact.
        let verified = CanonicalFact::verify_stored(&reference.canonical, &reference.hash).unwrap();
        prop_assert_eq!(verified.hash, reference.hash);
        let from_text = CanonicalFact::from_json(&reference.canonical, TEST_CANONICAL_BYTES_MAX).unwrap();
        prop_assert_eq!(from_text.canonical, reference.canonical);
    }

    #[test]
    fn numbers_read_back_as_the_same_double(number in finite_number()) {
        let text = String::from_utf8(to_canonical(&Value::Number(number))).unwrap();
        let read_back: f64 = text.parse().unwrap();
        if number == 0.0 {
            prop_assert_eq!(text, "0");
        } else {
            prop_assert_eq!(read_back.to_bits(), number.to_bits(), "{}", text);
        }
    }

    #[test]
    fn numbers_match_the_ecmascript_model(bits in any::<u64>()) {
        let number = f64::from_bits(bits);
        prop_assume!(number.is_finite());
        let text = String::from_utf8(to_canonical(&Value::Number(number))).unwrap();
        prop_assert_eq!(text, ecmascript_number_model(number));
    }

    #[test]
    fn numbers_with_few_digits_match_the_ecmascript_model(
        significand in 1u64..100_000,
        exponent in -330i32..310,
    ) {
        // Short decimals are where layout rules and exponent edges meet.
        if let Ok(number) = format!("{significand}e{exponent}").parse::<f64>() {
            prop_assume!(number.is_finite());
            let text = String::from_utf8(to_canonical(&Value::Number(number))).unwrap();
            prop_assert_eq!(text, ecmascript_number_model(number));
        }
    }

    #[test]
    fn numbers_written_as_unsafe_integers_are_refused(number in finite_number()) {
        let canonical = to_canonical(&Value::Number(number));
        let text = String::from_utf8(canonical.clone()).unwrap();
        let is_unsafe_integer = !text.contains(['.', 'e']) && text.trim_start_matches('-').len() >= 16
            && text.trim_start_matches('-').parse::<u64>().map_or(true, |magnitude| magnitude > 9_007_199_254_740_991);
        match parse_json(&canonical, TEST_DEPTH_MAX) {
            Ok(_) => prop_assert!(!is_unsafe_integer, "{}", text),
            Err(error) => {
                prop_assert!(is_unsafe_integer, "{}: {}", text, error);
                prop_assert_eq!(error.code(), "integer_out_of_range");
            }
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(value) = parse_json(&bytes, TEST_DEPTH_MAX) {
            let canonical = to_canonical(&value);
            prop_assert_eq!(to_canonical(&parse_json(&canonical, TEST_DEPTH_MAX).unwrap()), canonical);
        }
    }
}

#[test]
fn number_model_agrees_on_tie_breaking_near_two_to_the_fifty() {
    // n + 0.25 in [2^50, 2^51) lies exactly between two 17-digit candidates.
    let number = 2f64.powi(50) + 12_345.25;
    assert_eq!(ecmascript_number_model(number), "1125899906854969.2");
    assert_eq!(
        String::from_utf8(to_canonical(&Value::Number(number))).unwrap(),
        "1125899906854969.2"
    );
}
