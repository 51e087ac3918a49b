//! The RFC 8785 (JSON Canonicalization Scheme) serialization of a [`Value`]:
//! no whitespace, object members sorted by the UTF-16 code units of their
//! keys, strings escaped as ECMAScript's `JSON.stringify` escapes them, and
//! numbers written as ECMAScript writes them. A fact's hash is taken over
//! these bytes, so every client must produce them byte for byte.
//!
//! Every fact written goes through here, so the writer avoids needless
//! work: plain runs of strings are found a word at a time and copied whole,
//! small objects are sorted on the stack, and keys are compared in UTF-16
//! order without converting them. The tests hold the obvious versions of
//! the sort order and the escaping and check the fast ones against them.

use std::cmp::Ordering;

use crate::canonical_number::write_canonical_number;
use crate::scan::find_special_string_byte;
use crate::Value;

/// Objects with at most this many members are sorted in a buffer on the
/// stack; larger ones in a list on the heap.
const STACK_SORTED_MEMBERS_MAX: usize = 16;

const HEX_DIGITS_LOWERCASE: &[u8; 16] = b"0123456789abcdef";

/// Appends the RFC 8785 canonical form of `value` to `out`.
///
/// Recursion follows the nesting of `value`, which the parser bounds (see
/// [`crate::JSON_DEPTH_MAX`]). Object keys are assumed unique, as the parser
/// guarantees; non-finite numbers, which no parsed value holds, are written
/// as `null`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_canonical_number(*number, out),
        Value::String(text) => write_canonical_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (item_idx, item) in items.iter().enumerate() {
                if item_idx > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => write_canonical_object(members, out),
    }
}

/// Returns the RFC 8785 canonical form of `value`.
pub fn to_canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical form of an object with these members, sorting
/// them by key without moving them.
pub(crate) fn write_canonical_object(members: &[(String, Value)], out: &mut Vec<u8>) {
    out.push(b'{');
    if members.len() <= STACK_SORTED_MEMBERS_MAX {
        // Insertion sort of member indices: stable, and cheap for the few
        // members of a typical object.
        let mut order = [0u8; STACK_SORTED_MEMBERS_MAX];
        for member_idx in 1..members.len() {
            let key = &members[member_idx].0;
            let mut slot = member_idx;
            while slot > 0
                && compare_utf16_code_units(&members[usize::from(order[slot - 1])].0, key)
                    == Ordering::Greater
            {
                order[slot] = order[slot - 1];
                slot -= 1;
            }
            order[slot] = u8::try_from(member_idx).expect("at most 16 members here");
        }
        for (sorted_idx, &member_idx) in order[..members.len()].iter().enumerate() {
            write_member(sorted_idx, &members[usize::from(member_idx)], out);
        }
    } else {
        let mut sorted_members: Vec<&(String, Value)> = members.iter().collect();
        sorted_members.sort_by(|left, right| compare_utf16_code_units(&left.0, &right.0));
        for (sorted_idx, member) in sorted_members.into_iter().enumerate() {
            write_member(sorted_idx, member, out);
        }
    }
    out.push(b'}');
}

/// Appends one member of an object, after a comma unless it is the first.
fn write_member(sorted_idx: usize, (key, member_value): &(String, Value), out: &mut Vec<u8>) {
    if sorted_idx > 0 {
        out.push(b',');
    }
    write_canonical_string(key, out);
    out.push(b':');
    write_canonical(member_value, out);
}

/// Orders strings by their UTF-16 code units, as RFC 8785 requires.
///
/// This differs from UTF-8 byte order (which is code point order) only
/// between characters U+E000 to U+FFFF and characters above U+FFFF, whose
/// surrogates (0xD800 to 0xDFFF) sort before them. So the strings are
/// compared as bytes, and only when their first differing bytes are the
/// lead bytes of two such characters (0xEE or 0xEF against 0xF0 to 0xF4) is
/// the byte order reversed. A difference in a continuation byte lies within
/// two characters with the same lead byte, where both orders agree.
pub(crate) fn compare_utf16_code_units(left: &str, right: &str) -> Ordering {
    let (left_bytes, right_bytes) = (left.as_bytes(), right.as_bytes());
    let Some(mismatch) = left_bytes
        .iter()
        .zip(right_bytes)
        .position(|(left_byte, right_byte)| left_byte != right_byte)
    else {
        return left_bytes.len().cmp(&right_bytes.len());
    };
    match (left_bytes[mismatch], right_bytes[mismatch]) {
        (0xee..=0xef, 0xf0..) => Ordering::Greater,
        (0xf0.., 0xee..=0xef) => Ordering::Less,
        (left_byte, right_byte) => left_byte.cmp(&right_byte),
    }
}

/// Appends `text` as a canonical JSON string: `"` and `\` escaped with a
/// backslash, the control characters with a short escape where JSON has one
/// and `\u00xx` (lowercase hex) otherwise, and every other character as its
/// UTF-8 bytes.
pub(crate) fn write_canonical_string(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut rest = text.as_bytes();
    while let Some(special_idx) = find_special_string_byte(rest) {
        out.extend_from_slice(&rest[..special_idx]);
        write_escape(rest[special_idx], out);
        rest = &rest[special_idx + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Appends the escape of a quote, backslash or control character.
fn write_escape(byte: u8, out: &mut Vec<u8>) {
    let short_escape: &[u8] = match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x0c => b"\\f",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX_DIGITS_LOWERCASE[usize::from(byte >> 4)]);
            out.push(HEX_DIGITS_LOWERCASE[usize::from(byte & 0x0f)]);
            return;
        }
    };
    out.extend_from_slice(short_escape);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_json, JSON_DEPTH_MAX};

    fn canonical_text(json: &str) -> String {
        let value = parse_json(json.as_bytes(), JSON_DEPTH_MAX).unwrap();
        String::from_utf8(to_canonical(&value)).unwrap()
    }

    #[test]
    fn removes_whitespace_and_sorts_members() {
        assert_eq!(
            canonical_text(" { \"b\" : [ 1 , 2 ] , \"a\" : { \"d\" : null , \"c\" : true } } "),
            r#"{"a":{"c":true,"d":null},"b":[1,2]}"#
        );
        assert_eq!(canonical_text("[]"), "[]");
        assert_eq!(canonical_text("{}"), "{}");
        assert_eq!(canonical_text("false"), "false");
    }

    #[test]
    fn sorts_keys_by_utf16_code_units_not_utf8_bytes() {
        // U+E000 is one code unit 0xE000; U+1F600 is the surrogates
        // 0xD83D 0xDE00, which sort first in UTF-16 but last in UTF-8.
        assert_eq!(
            canonical_text(r#"{"\ue000":1,"\ud83d\ude00":2,"a":3,"\u00e9":4}"#),
            "{\"a\":3,\"\u{e9}\":4,\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
        assert_eq!(
            compare_utf16_code_units("\u{1f600}", "\u{e000}"),
            Ordering::Less
        );
        assert_eq!(
            compare_utf16_code_units("\u{1f600}", "\u{d7ff}"),
            Ordering::Greater
        );
        assert_eq!(compare_utf16_code_units("a", "ab"), Ordering::Less);
        assert_eq!(compare_utf16_code_units("B", "a"), Ordering::Less);
        assert_eq!(compare_utf16_code_units("", ""), Ordering::Equal);
    }

    #[test]
    fn escapes_strings_like_json_stringify() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        let mut out = Vec::new();
        write_canonical_string(&all_controls, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
             \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
             \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        assert_eq!(
            canonical_text(r#""q\" b\\ s\/ del\u007f é\u00e9 €\u20ac 😂\ud83d\ude02 \u2028""#),
            "\"q\\\" b\\\\ s/ del\u{7f} éé €€ 😂😂 \u{2028}\""
        );
    }

    #[test]
    fn keeps_input_members_in_place() {
        let value = parse_json(br#"{"z":1,"a":2}"#, JSON_DEPTH_MAX).unwrap();
        assert_eq!(to_canonical(&value), br#"{"a":2,"z":1}"#);
        assert_eq!(value.as_object().unwrap()[0].0, "z");
    }

    /// The obvious UTF-16 order: convert both strings and compare.
    fn reference_utf16_order(left: &str, right: &str) -> Ordering {
        left.encode_utf16().cmp(right.encode_utf16())
    }

    /// The obvious escaping: one byte at a time.
    fn reference_canonical_string(text: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &byte in text.as_bytes() {
            match byte {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x00..=0x1f => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
                _ => out.push(byte),
            }
        }
        out.push(b'"');
        out
    }

    /// Text drawn from characters at the edges that matter: escapes,
    /// ASCII, two- and three-byte characters on both sides of U+E000, and
    /// characters above U+FFFF.
    fn edge_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..20).prop_map(String::from_iter),
            prop::collection::vec(
                prop::sample::select(vec![
                    'a',
                    'b',
                    '"',
                    '\\',
                    '\u{0}',
                    '\u{1f}',
                    '\n',
                    '\u{7f}',
                    '\u{80}',
                    'é',
                    '\u{7ff}',
                    '\u{800}',
                    '\u{d7ff}',
                    '\u{e000}',
                    '\u{efff}',
                    '\u{f000}',
                    '\u{ffff}',
                    '\u{10000}',
                    '😀',
                    '\u{10ffff}',
                ]),
                0..20,
            )
            .prop_map(String::from_iter),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2048,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn utf16_order_matches_the_reference(left in edge_text(), right in edge_text()) {
            proptest::prop_assert_eq!(
                compare_utf16_code_units(&left, &right),
                reference_utf16_order(&left, &right)
            );
            // Shared prefixes put the difference anywhere in the strings.
            let (prefixed_left, prefixed_right) = (format!("{right}{left}"), format!("{right}{right}"));
            proptest::prop_assert_eq!(
                compare_utf16_code_units(&prefixed_left, &prefixed_right),
                reference_utf16_order(&prefixed_left, &prefixed_right)
            );
        }

        #[test]
        fn string_escaping_matches_the_reference(text in edge_text()) {
            let mut out = Vec::new();
            write_canonical_string(&text, &mut out);
            proptest::prop_assert_eq!(out, reference_canonical_string(&text));
        }

        #[test]
        fn members_are_sorted_as_the_reference_sorts_them(
            keys in proptest::collection::vec(edge_text(), 0..40)
        ) {
            // Objects up to 16 members sort on the stack, larger ones on the
            // heap; both must give the order of a stable sort by UTF-16.
            let mut members: Vec<(String, Value)> = Vec::new();
            for key in keys {
                if !members.iter().any(|(existing, _)| *existing == key) {
                    members.push((key, Value::Null));
                }
            }
            let mut expected_keys: Vec<&str> = members.iter().map(|(key, _)| key.as_str()).collect();
            expected_keys.sort_by(|left, right| reference_utf16_order(left, right));
            let mut expected = b"{".to_vec();
            for (key_idx, key) in expected_keys.iter().enumerate() {
                if key_idx > 0 {
                    expected.push(b',');
                }
                expected.extend_from_slice(&reference_canonical_string(key));
                expected.extend_from_slice(b":null");
            }
            expected.push(b'}');
            proptest::prop_assert_eq!(to_canonical(&Value::Object(members)), expected);
        }
    }

    #[test]
    fn appends_to_existing_output() {
        let mut out = b"prefix:".to_vec();
        write_canonical(
            &Value::Array(vec![Value::Number(-0.0), Value::Number(1e21)]),
            &mut out,
        );
        assert_eq!(out, b"prefix:[0,1e+21]");
    }
}
