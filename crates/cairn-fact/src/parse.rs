//! The strict JSON parser. It is written by hand, not taken from a general
//! JSON library, because a fact's identity depends on every detail of how
//! its text is read: which numbers are accepted, how escapes and surrogates
//! decode, that duplicate keys are refused rather than silently merged, and
//! that nesting is bounded without recursion (a megabyte of `[` must be an
//! error, not a stack overflow).
//!
//! It works on bytes with an index, validates UTF-8 once up front, and keeps
//! the open arrays and objects on an explicit heap stack. It is on the path
//! of every fact written, so it avoids work that the result does not need:
//! strings are scanned a word at a time ([`crate::scan`]), containers are
//! filled in place on the stack, integer literals are converted from the
//! digits already checked, and duplicate keys of small objects are found
//! without allocating.

use crate::canonical_number::is_beyond_safe_integer_notation;
use crate::excerpt::excerpt;
use crate::limits::INTEGER_LITERAL_MAGNITUDE_MAX;
use crate::scan::find_special_string_byte;
use crate::{JsonError, Value};

/// Longest excerpt of a rejected integer literal quoted back in an error.
const LITERAL_EXCERPT_CHARS_MAX: usize = 40;

/// Number of decimal digits of the largest accepted integer literal,
/// 9007199254740991; any longer literal (leading zeros being forbidden) is
/// out of range.
const INTEGER_LITERAL_DIGITS_MAX: usize = 16;

const _: () = assert!(INTEGER_LITERAL_MAGNITUDE_MAX == 9_007_199_254_740_991);

/// Parses one JSON document (RFC 8259, strictly) from `bytes`.
///
/// Rejects invalid UTF-8, any deviation from the grammar (trailing commas,
/// comments, leading zeros, `NaN`, text after the value, whitespace other
/// than space, tab, line feed and carriage return), raw control characters
/// in strings, unpaired surrogate escapes, duplicate object keys, nesting of
/// arrays and objects deeper than `depth_max`, numbers too large to be
/// finite doubles, integer literals beyond ±(2^53−1), and numbers written
/// any other way whose canonical form would be such an integer (magnitudes
/// from 2^53 to below 1e21, such as `1e20` or `9007199254740993.0`), so that
/// every canonical form this crate writes parses again.
pub fn parse_json(bytes: &[u8], depth_max: usize) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|error| JsonError::InvalidUtf8 {
        offset: error.valid_up_to(),
    })?;
    let mut parser = Parser {
        text,
        bytes,
        position: 0,
        depth_max,
    };
    parser.parse_document()
}

/// An array or object whose closing bracket has not been reached yet.
enum OpenContainer {
    Array(Vec<Value>),
    Object {
        members: Vec<(String, Value)>,
        /// Key of the member whose value is being parsed.
        pending_key: String,
    },
}

/// The parser's cursor over the input. `position` always lies on a
/// character boundary of `text`, because it only ever steps over ASCII
/// bytes or over whole string contents.
struct Parser<'input> {
    text: &'input str,
    bytes: &'input [u8],
    position: usize,
    depth_max: usize,
}

impl Parser<'_> {
    /// Parses the whole input as one value followed only by whitespace.
    fn parse_document(&mut self) -> Result<Value, JsonError> {
        let mut open_containers: Vec<OpenContainer> = Vec::new();
        'next_value: loop {
            self.skip_whitespace();
            let mut value = match self.peek() {
                Some(b'[') => {
                    self.enter_container(open_containers.len())?;
                    if self.peek() == Some(b']') {
                        self.position += 1;
                        Value::Array(Vec::new())
                    } else {
                        open_containers.push(OpenContainer::Array(Vec::new()));
                        continue 'next_value;
                    }
                }
                Some(b'{') => {
                    self.enter_container(open_containers.len())?;
                    if self.peek() == Some(b'}') {
                        self.position += 1;
                        Value::Object(Vec::new())
                    } else {
                        let pending_key = self.parse_member_key()?;
                        open_containers.push(OpenContainer::Object {
                            members: Vec::new(),
                            pending_key,
                        });
                        continue 'next_value;
                    }
                }
                _ => self.parse_scalar()?,
            };
            // A value is complete: hand it to its container (which stays in
            // place on the stack), closing every container that ends right
            // after it.
            loop {
                self.skip_whitespace();
                let Some(container) = open_containers.last_mut() else {
                    if self.position != self.bytes.len() {
                        return Err(self.syntax_error("unexpected text after the JSON value"));
                    }
                    return Ok(value);
                };
                match container {
                    OpenContainer::Array(items) => {
                        items.push(value);
                        match self.peek() {
                            Some(b',') => {
                                self.position += 1;
                                continue 'next_value;
                            }
                            Some(b']') => self.position += 1,
                            _ => {
                                return Err(
                                    self.syntax_error("expected ',' or ']' after an array item")
                                )
                            }
                        }
                    }
                    OpenContainer::Object {
                        members,
                        pending_key,
                    } => {
                        members.push((std::mem::take(pending_key), value));
                        match self.peek() {
                            Some(b',') => {
                                self.position += 1;
                                self.skip_whitespace();
                                *pending_key = self.parse_member_key()?;
                                continue 'next_value;
                            }
                            Some(b'}') => {
                                self.position += 1;
                                reject_duplicate_keys(members)?;
                            }
                            _ => {
                                return Err(
                                    self.syntax_error("expected ',' or '}' after an object member")
                                )
                            }
                        }
                    }
                }
                // The container just closed becomes the completed value.
                value = match open_containers.pop() {
                    Some(OpenContainer::Array(items)) => Value::Array(items),
                    Some(OpenContainer::Object { members, .. }) => Value::Object(members),
                    None => unreachable!("a container was open"),
                };
            }
        }
    }

    /// Steps over the opening bracket of a container nested inside
    /// `depth_open` others, refusing it when it would be too deep, and over
    /// the whitespace after it.
    fn enter_container(&mut self, depth_open: usize) -> Result<(), JsonError> {
        if depth_open >= self.depth_max {
            return Err(JsonError::TooDeep {
                depth_max: self.depth_max,
            });
        }
        self.position += 1;
        self.skip_whitespace();
        Ok(())
    }

    /// Parses an object member's key and the colon after it.
    fn parse_member_key(&mut self) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax_error("expected a string as an object key"));
        }
        let key = self.parse_string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.syntax_error("expected ':' after an object key"));
        }
        self.position += 1;
        Ok(key)
    }

    /// Parses a string, number or literal starting at the cursor.
    fn parse_scalar(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'"') => Ok(Value::String(self.parse_string()?)),
            Some(b't') => self.parse_literal("true", Value::Bool(true)),
            Some(b'f') => self.parse_literal("false", Value::Bool(false)),
            Some(b'n') => self.parse_literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.parse_number(),
            Some(_) => Err(self.syntax_error("expected a JSON value")),
            None => Err(self.syntax_error("unexpected end of input, expected a JSON value")),
        }
    }

    fn parse_literal(&mut self, literal: &str, value: Value) -> Result<Value, JsonError> {
        if self.bytes[self.position..].starts_with(literal.as_bytes()) {
            self.position += literal.len();
            Ok(value)
        } else {
            Err(self.syntax_error(&format!("expected the literal {literal}")))
        }
    }

    /// Parses a string whose opening quote is at the cursor.
    fn parse_string(&mut self) -> Result<String, JsonError> {
        self.position += 1;
        // Text is copied in runs between escapes; `decoded` stays empty (and
        // unallocated) for the common string without escapes, since every
        // escape adds at least one character to it.
        let mut decoded = String::new();
        let mut run_start = self.position;
        loop {
            let run_length = find_special_string_byte(&self.bytes[self.position..]);
            let Some(run_length) = run_length else {
                self.position = self.bytes.len();
                return Err(self.syntax_error("unterminated string"));
            };
            // The byte found is ASCII, so it sits on a character boundary.
            self.position += run_length;
            match self.bytes[self.position] {
                b'"' => {
                    let run = &self.text[run_start..self.position];
                    self.position += 1;
                    if decoded.is_empty() {
                        return Ok(run.to_owned());
                    }
                    decoded.push_str(run);
                    return Ok(decoded);
                }
                b'\\' => {
                    decoded.push_str(&self.text[run_start..self.position]);
                    self.parse_escape(&mut decoded)?;
                    run_start = self.position;
                }
                control => {
                    return Err(self.syntax_error(&format!(
                        "the control character U+{control:04X} must be escaped inside a string"
                    )))
                }
            }
        }
    }

    /// Decodes the escape whose backslash is at the cursor into `decoded`.
    fn parse_escape(&mut self, decoded: &mut String) -> Result<(), JsonError> {
        let escape_offset = self.position;
        let short_escape = match self.bytes.get(escape_offset + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let character = self.parse_unicode_escape()?;
                decoded.push(character);
                return Ok(());
            }
            Some(_) => {
                self.position += 1;
                return Err(self.syntax_error("invalid escape sequence in a string"));
            }
            None => {
                self.position = self.bytes.len();
                return Err(self.syntax_error("unterminated string"));
            }
        };
        decoded.push(short_escape);
        self.position += 2;
        Ok(())
    }

    /// Decodes a `\uXXXX` escape at the cursor, combined with the low
    /// surrogate escape that must follow a high surrogate one.
    fn parse_unicode_escape(&mut self) -> Result<char, JsonError> {
        let escape_offset = self.position;
        let code_unit = self.parse_hex4(escape_offset + 2)?;
        self.position = escape_offset + 6;
        let code_point = match code_unit {
            0xD800..=0xDBFF => {
                if !self.bytes[self.position..].starts_with(b"\\u") {
                    return Err(JsonError::LoneSurrogate {
                        offset: escape_offset,
                    });
                }
                let low_code_unit = self.parse_hex4(self.position + 2)?;
                if !(0xDC00..=0xDFFF).contains(&low_code_unit) {
                    return Err(JsonError::LoneSurrogate {
                        offset: escape_offset,
                    });
                }
                self.position += 6;
                0x10000 + ((code_unit - 0xD800) << 10) + (low_code_unit - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(JsonError::LoneSurrogate {
                    offset: escape_offset,
                })
            }
            _ => code_unit,
        };
        // Every value outside the surrogate range is a Unicode scalar value.
        char::from_u32(code_point).ok_or(JsonError::LoneSurrogate {
            offset: escape_offset,
        })
    }

    /// Reads four hexadecimal digits (either case) starting at `offset`.
    fn parse_hex4(&self, offset: usize) -> Result<u32, JsonError> {
        let digits = self.bytes.get(offset..offset + 4).unwrap_or(&[]);
        let mut code_unit = 0u32;
        for &digit in digits {
            let digit_value = char::from(digit)
                .to_digit(16)
                .ok_or_else(|| JsonError::Syntax {
                    offset,
                    message: "expected four hexadecimal digits after \\u".to_string(),
                })?;
            code_unit = code_unit * 16 + digit_value;
        }
        if digits.len() != 4 {
            return Err(JsonError::Syntax {
                offset,
                message: "expected four hexadecimal digits after \\u".to_string(),
            });
        }
        Ok(code_unit)
    }

    /// Parses a number at the cursor: checks the RFC 8259 grammar, then
    /// converts with the standard library's correctly rounded parser.
    fn parse_number(&mut self) -> Result<Value, JsonError> {
        let start = self.position;
        let mut is_integer_literal = true;
        if self.peek() == Some(b'-') {
            self.position += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.position += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.syntax_error("a number may not have leading zeros"));
                }
            }
            Some(b'1'..=b'9') => {
                self.skip_digits();
            }
            _ => return Err(self.syntax_error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            is_integer_literal = false;
            self.position += 1;
            if self.skip_digits() == 0 {
                return Err(self.syntax_error("expected a digit after the decimal point"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_integer_literal = false;
            self.position += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.position += 1;
            }
            if self.skip_digits() == 0 {
                return Err(self.syntax_error("expected a digit in the exponent"));
            }
        }
        let literal = &self.text[start..self.position];
        if is_integer_literal {
            let Some(magnitude) = integer_literal_magnitude(literal) else {
                return Err(JsonError::IntegerOutOfRange {
                    offset: start,
                    literal: excerpt(literal, LITERAL_EXCERPT_CHARS_MAX),
                });
            };
            // Exact: the magnitude is below 2^53. `-0` gives -0.0, as the
            // standard library's parser does.
            #[allow(clippy::cast_precision_loss)]
            let magnitude = magnitude as f64;
            let number = if literal.starts_with('-') {
                -magnitude
            } else {
                magnitude
            };
            return Ok(Value::Number(number));
        }
        let number = match short_decimal_value(literal) {
            Some(number) => number,
            None => literal.parse().map_err(|_| JsonError::Syntax {
                offset: start,
                message: "invalid number".to_string(),
            })?,
        };
        if !number.is_finite() {
            return Err(JsonError::NonFinite { offset: start });
        }
        if is_beyond_safe_integer_notation(number) {
            return Err(JsonError::IntegerOutOfRange {
                offset: start,
                literal: excerpt(literal, LITERAL_EXCERPT_CHARS_MAX),
            });
        }
        Ok(Value::Number(number))
    }

    /// Steps over decimal digits and returns how many there were.
    fn skip_digits(&mut self) -> usize {
        let digits_n = self.bytes[self.position..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        self.position += digits_n;
        digits_n
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.position += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    /// Builds a syntax error at the cursor, naming the character found there.
    fn syntax_error(&self, expectation: &str) -> JsonError {
        let found = self
            .text
            .get(self.position..)
            .and_then(|rest| rest.chars().next());
        let message = match found {
            Some(character) => format!("{expectation}, found {character:?}"),
            None if self.position >= self.bytes.len() => {
                format!("{expectation}, found the end of the input")
            }
            None => expectation.to_string(),
        };
        JsonError::Syntax {
            offset: self.position,
            message,
        }
    }
}

/// Returns the magnitude of an integer literal (optional `-`, then digits
/// without leading zeros), or `None` when it lies beyond ±(2^53−1).
fn integer_literal_magnitude(literal: &str) -> Option<u64> {
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if digits.len() > INTEGER_LITERAL_DIGITS_MAX {
        return None;
    }
    // At most 16 digits: no overflow of a u64.
    let magnitude = digits.bytes().fold(0u64, |magnitude, digit| {
        magnitude * 10 + u64::from(digit - b'0')
    });
    (magnitude <= INTEGER_LITERAL_MAGNITUDE_MAX).then_some(magnitude)
}

/// Exact powers of ten as doubles: 10^0 to 10^22, the largest that a
/// double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Most digits (integer and fraction parts together) of a literal that
/// [`short_decimal_value`] converts: their value stays below 10^15 < 2^53.
const SHORT_DECIMAL_DIGITS_MAX: usize = 15;

/// Most digits of an exponent that [`short_decimal_value`] reads.
const SHORT_DECIMAL_EXPONENT_DIGITS_MAX: usize = 4;

/// Converts a number literal that the grammar accepted, when it is short:
/// at most 15 digits in all and a power of ten, after moving the decimal
/// point, of at most ±22. Then the digits `m` and `10^k` are exact doubles,
/// and `m × 10^k` or `m / 10^k`, correctly rounded by IEEE-754, is the
/// double nearest to the literal (Clinger's fast path), which is also what
/// the standard library's parser returns. `None` for any other literal.
fn short_decimal_value(literal: &str) -> Option<f64> {
    let (is_negative, unsigned) = match literal.strip_prefix('-') {
        Some(unsigned) => (true, unsigned),
        None => (false, literal),
    };
    let (mantissa, exponent_text) = match unsigned.find(['e', 'E']) {
        Some(marker) => (&unsigned[..marker], Some(&unsigned[marker + 1..])),
        None => (unsigned, None),
    };
    let (integer_digits, fraction_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if integer_digits.len() + fraction_digits.len() > SHORT_DECIMAL_DIGITS_MAX {
        return None;
    }
    let significand = integer_digits
        .bytes()
        .chain(fraction_digits.bytes())
        .fold(0u64, |significand, digit| {
            significand * 10 + u64::from(digit - b'0')
        });
    let mut exponent = 0i64;
    if let Some(exponent_text) = exponent_text {
        let (is_exponent_negative, exponent_digits) = match exponent_text.as_bytes().first() {
            Some(b'-') => (true, &exponent_text[1..]),
            Some(b'+') => (false, &exponent_text[1..]),
            _ => (false, exponent_text),
        };
        if exponent_digits.len() > SHORT_DECIMAL_EXPONENT_DIGITS_MAX {
            return None;
        }
        let exponent_magnitude = exponent_digits.bytes().fold(0i64, |exponent, digit| {
            exponent * 10 + i64::from(digit - b'0')
        });
        exponent = if is_exponent_negative {
            -exponent_magnitude
        } else {
            exponent_magnitude
        };
    }
    exponent -= i64::try_from(fraction_digits.len()).ok()?;
    let power_of_ten = *EXACT_POWERS_OF_TEN.get(usize::try_from(exponent.unsigned_abs()).ok()?)?;
    #[allow(clippy::cast_precision_loss)]
    let significand = significand as f64;
    let magnitude = if exponent < 0 {
        significand / power_of_ten
    } else {
        significand * power_of_ten
    };
    Some(if is_negative { -magnitude } else { magnitude })
}

/// Objects with at most this many members are checked for duplicate keys
/// by comparing every pair, which for small objects is cheaper than
/// sorting a list of the keys.
const PAIRWISE_DUPLICATE_CHECK_MEMBERS_MAX: usize = 16;

/// Refuses an object in which two members share a key, naming the smallest
/// such key (in byte order) when there are several.
pub(crate) fn reject_duplicate_keys(members: &[(String, Value)]) -> Result<(), JsonError> {
    if members.len() < 2 {
        return Ok(());
    }
    let smallest_duplicate = if members.len() <= PAIRWISE_DUPLICATE_CHECK_MEMBERS_MAX {
        let mut smallest_duplicate: Option<&str> = None;
        for (member_idx, (key, _)) in members.iter().enumerate() {
            let repeats_an_earlier_key = members[..member_idx]
                .iter()
                .any(|(earlier_key, _)| earlier_key == key);
            if repeats_an_earlier_key
                && smallest_duplicate.is_none_or(|smallest| key.as_str() < smallest)
            {
                smallest_duplicate = Some(key);
            }
        }
        smallest_duplicate
    } else {
        let mut keys: Vec<&str> = members.iter().map(|(key, _)| key.as_str()).collect();
        keys.sort_unstable();
        keys.windows(2)
            .find(|pair| pair[0] == pair[1])
            .map(|pair| pair[0])
    };
    match smallest_duplicate {
        Some(key) => Err(JsonError::DuplicateKey {
            key: key.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::JSON_DEPTH_MAX;

    fn parse(text: &str) -> Result<Value, JsonError> {
        parse_json(text.as_bytes(), JSON_DEPTH_MAX)
    }

    fn error_code(text: &str) -> &'static str {
        match parse(text) {
            Ok(value) => panic!("{text:?} parsed as {value:?}, expected an error"),
            Err(error) => error.code(),
        }
    }

    fn string(text: &str) -> Value {
        Value::String(text.to_string())
    }

    #[test]
    fn parses_every_kind_of_value() {
        let value =
            parse(" {\"a\" : [1, -2.5e3, true, false, null, \"x\"],\r\n\t\"b\":{}} ").unwrap();
        assert_eq!(
            value,
            Value::Object(vec![
                (
                    "a".to_string(),
                    Value::Array(vec![
                        Value::Number(1.0),
                        Value::Number(-2500.0),
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Null,
                        string("x"),
                    ])
                ),
                ("b".to_string(), Value::Object(Vec::new())),
            ])
        );
        assert_eq!(parse("[]").unwrap(), Value::Array(Vec::new()));
        assert_eq!(parse("[ ]").unwrap(), Value::Array(Vec::new()));
        assert_eq!(parse("{ }").unwrap(), Value::Object(Vec::new()));
        assert_eq!(parse("[[],[[]]]").unwrap().as_array().unwrap().len(), 2);
        assert_eq!(parse("0").unwrap(), Value::Number(0.0));
        assert_eq!(parse("\"\"").unwrap(), string(""));
    }

    #[test]
    fn keeps_object_members_in_input_order() {
        let value = parse(r#"{"b":1,"a":2,"c":3}"#).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        assert_eq!(
            parse(r#""a\"b\\c\/d\be\ff\ng\rh\ti""#).unwrap(),
            string("a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti")
        );
        assert_eq!(parse(r#""\u20ac\u00E9\u0000""#).unwrap(), string("€é\u{0}"));
        assert_eq!(parse(r#""\ud83d\ude02""#).unwrap(), string("😂"));
        assert_eq!(parse(r#""x\uD83D\uDE02y""#).unwrap(), string("x😂y"));
        assert_eq!(
            parse("\"raw é 😂 \u{7f}\"").unwrap(),
            string("raw é 😂 \u{7f}")
        );
    }

    #[test]
    fn rejects_lone_surrogates() {
        for text in [
            r#""\ud83d""#,
            r#""\ud83dx""#,
            r#""\ude02""#,
            r#""\ud83d\u0041""#,
            r#""\ud83d\ud83d""#,
            r#""\ude02\ud83d""#,
        ] {
            assert_eq!(error_code(text), "invalid_unicode", "{text}");
        }
        assert_eq!(
            parse(r#"["\ud800"]"#),
            Err(JsonError::LoneSurrogate { offset: 2 })
        );
    }

    #[test]
    fn rejects_invalid_utf8() {
        for bytes in [
            &b"\"\xff\""[..],
            b"\"\xc3\"",
            b"[\"\xed\xa0\x80\"]",
            b"\xef\xbb\xbf{}",
        ] {
            let error = parse_json(bytes, JSON_DEPTH_MAX).unwrap_err();
            assert_eq!(
                error.code(),
                if bytes[0] == 0xef {
                    "malformed_json"
                } else {
                    "invalid_utf8"
                }
            );
        }
        assert_eq!(
            parse_json(b"[\"ok\", \"\xff\"]", JSON_DEPTH_MAX),
            Err(JsonError::InvalidUtf8 { offset: 8 })
        );
    }

    #[test]
    fn rejects_grammar_violations() {
        for text in [
            "",
            " ",
            "[1,]",
            "{\"a\":1,}",
            "[,1]",
            "{,}",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":}",
            "{a:1}",
            "{'a':1}",
            "{1:1}",
            "[1",
            "{\"a\":1",
            "\"abc",
            "\"abc\\",
            "// comment\n1",
            "/* comment */ 1",
            "[1] // comment",
            "NaN",
            "Infinity",
            "-Infinity",
            "nul",
            "True",
            "01",
            "-01",
            "00",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "1.e5",
            "0x10",
            "\u{a0}1",
            "\u{c}1",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"\\U0041\"",
            "[]]",
            "{}x",
            "1 2",
            "truefalse",
            "\"a\"\"b\"",
        ] {
            assert_eq!(error_code(text), "malformed_json", "{text:?}");
        }
    }

    #[test]
    fn rejects_raw_control_characters_in_strings() {
        for control in (0u8..0x20).map(char::from) {
            let text = format!("\"a{control}b\"");
            assert_eq!(error_code(&text), "malformed_json", "{text:?}");
        }
    }

    #[test]
    fn reports_where_trailing_text_begins() {
        assert_eq!(
            parse("[1] x"),
            Err(JsonError::Syntax {
                offset: 4,
                message: "unexpected text after the JSON value, found 'x'".to_string(),
            })
        );
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        assert_eq!(
            parse(r#"{"a":1,"b":2,"a":3}"#),
            Err(JsonError::DuplicateKey {
                key: "a".to_string()
            })
        );
        assert_eq!(error_code(r#"[{"x":{"k":1,"k":1}}]"#), "duplicate_key");
        // The same text written with an escape is the same key.
        assert_eq!(error_code(r#"{"é":1,"\u00e9":2}"#), "duplicate_key");
        // Keys that differ only in Unicode normalization are different keys.
        assert!(parse("{\"\u{e9}\":1,\"e\u{301}\":2}").is_ok());
        // Equal keys in different objects are fine.
        assert!(parse(r#"{"a":{"a":1},"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn bounds_nesting_depth() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&nested(JSON_DEPTH_MAX)).is_ok());
        assert_eq!(
            parse(&nested(JSON_DEPTH_MAX + 1)),
            Err(JsonError::TooDeep {
                depth_max: JSON_DEPTH_MAX
            })
        );
        assert_eq!(
            parse_json(b"{\"a\":{}}", 1).unwrap_err().code(),
            "nesting_too_deep"
        );
        assert!(parse_json(b"{\"a\":{}}", 2).is_ok());
        assert!(parse_json(b"1", 0).is_ok());
        assert_eq!(parse_json(b"[]", 0).unwrap_err().code(), "nesting_too_deep");
    }

    #[test]
    fn a_million_open_brackets_is_an_error_not_a_stack_overflow() {
        let open_brackets = vec![b'['; 1_000_000];
        assert_eq!(
            parse_json(&open_brackets, JSON_DEPTH_MAX),
            Err(JsonError::TooDeep {
                depth_max: JSON_DEPTH_MAX
            })
        );
        assert_eq!(
            parse_json(&open_brackets, usize::MAX).unwrap_err().code(),
            "malformed_json"
        );
        let open_objects = "{\"a\":".repeat(200_000);
        assert_eq!(parse(&open_objects).unwrap_err().code(), "nesting_too_deep");
    }

    #[test]
    fn parses_numbers_as_correctly_rounded_doubles() {
        let number = |text: &str| parse(text).unwrap().as_f64().unwrap();
        assert_eq!(number("1E30"), 1e30);
        assert_eq!(number("4.50"), 4.5);
        assert_eq!(number("-0").to_bits(), (-0.0f64).to_bits());
        assert_eq!(number("-0.0").to_bits(), (-0.0f64).to_bits());
        assert_eq!(number("333333333.33333329"), 333_333_333.333_333_3);
        assert_eq!(number("5e-324"), 5e-324);
        assert_eq!(number("1e-400"), 0.0);
        assert_eq!(number("1.7976931348623157e308"), f64::MAX);
        assert_eq!(number("9007199254740990.5"), 9_007_199_254_740_990.0);
        assert_eq!(number("12345678901234567890e3"), 1.2345678901234567e22);
    }

    #[test]
    fn short_decimals_read_as_the_standard_parser_reads_them() {
        let mut literals: Vec<String> = [
            "0.0",
            "-0.0",
            "0.5",
            "4.50",
            "1E30",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "123456e-3",
            "-1.5e-7",
            "0.1",
            "0.30000000000000004",
            "999999999999999.9",
            "99999999999999.9",
            "123456789012345",
            "1.7976931348623157e308",
            "5e-324",
            "12.34e+5",
            "0.000001",
            "1E0",
            "7e+0022",
            "7e-0022",
            "1.0000000000000002",
        ]
        .iter()
        .map(|literal| literal.to_string())
        .collect();
        // A fixed xorshift sequence of digits, points and exponents.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = (state % 10u64.pow(1 + (state >> 60) as u32 % 17)).to_string();
            let point = (state >> 40) as usize % (digits.len() + 1);
            let mut literal = digits[..point.max(1)].to_string();
            if point > 0 && point < digits.len() {
                literal = format!("{}.{}", &digits[..point], &digits[point..]);
            }
            if (state >> 20) % 2 == 0 {
                literal = format!("{literal}e{}", ((state >> 24) % 60) as i64 - 30);
            }
            literals.push(literal);
        }
        for literal in literals {
            if let Some(number) = short_decimal_value(&literal) {
                assert_eq!(
                    number.to_bits(),
                    literal.parse::<f64>().unwrap().to_bits(),
                    "{literal}"
                );
            }
            let negative = format!("-{}", literal.trim_start_matches('-'));
            if let Some(number) = short_decimal_value(&negative) {
                assert_eq!(
                    number.to_bits(),
                    negative.parse::<f64>().unwrap().to_bits(),
                    "{negative}"
                );
            }
        }
        assert_eq!(short_decimal_value("0.5"), Some(0.5));
        assert_eq!(short_decimal_value("1e23"), None);
        assert_eq!(short_decimal_value("1234567890123456.5"), None);
    }

    #[test]
    fn names_the_smallest_duplicate_key_whatever_the_object_size() {
        assert_eq!(
            parse(r#"{"b":1,"a":1,"b":2,"a":2}"#),
            Err(JsonError::DuplicateKey {
                key: "a".to_string()
            })
        );
        let members: Vec<String> = (0..40)
            .map(|member_idx| format!("\"k{}\":{member_idx}", 39 - member_idx % 20))
            .collect();
        assert_eq!(
            parse(&format!("{{{}}}", members.join(","))),
            Err(JsonError::DuplicateKey {
                key: "k20".to_string()
            })
        );
        let members: Vec<String> = (0..12)
            .map(|member_idx| format!("\"k{}\":{member_idx}", 19 - member_idx % 6))
            .collect();
        assert_eq!(
            parse(&format!("{{{}}}", members.join(","))),
            Err(JsonError::DuplicateKey {
                key: "k14".to_string()
            })
        );
    }

    #[test]
    fn rejects_non_finite_numbers() {
        assert_eq!(parse("1e400"), Err(JsonError::NonFinite { offset: 0 }));
        assert_eq!(parse("[-1e400]"), Err(JsonError::NonFinite { offset: 1 }));
        assert_eq!(error_code("1.8e308"), "non_finite_number");
    }

    #[test]
    fn bounds_integer_literals_by_two_to_the_53() {
        let number = |text: &str| parse(text).unwrap().as_f64().unwrap();
        assert_eq!(number("9007199254740991"), 9_007_199_254_740_991.0);
        assert_eq!(number("-9007199254740991"), -9_007_199_254_740_991.0);
        assert_eq!(
            parse("9007199254740992"),
            Err(JsonError::IntegerOutOfRange {
                offset: 0,
                literal: "9007199254740992".to_string(),
            })
        );
        assert_eq!(error_code("-9007199254740992"), "integer_out_of_range");
        assert_eq!(error_code("[18446744073709551616]"), "integer_out_of_range");
        assert_eq!(
            error_code("100000000000000000000000000000"),
            "integer_out_of_range"
        );
        let error = parse(&"9".repeat(1000)).unwrap_err();
        assert!(error.to_string().contains("send it as a string"), "{error}");
        assert!(error.to_string().len() < 300, "{error}");
        // Written as doubles, magnitudes whose canonical form would be such
        // an integer are refused too, so that canonical forms parse again.
        for text in [
            "9007199254740992.0",
            "9007199254740993.0",
            "9007199254740992e0",
            "1e20",
            "-1.5e16",
        ] {
            assert_eq!(error_code(text), "integer_out_of_range", "{text}");
        }
        assert!(parse("9007199254740991.0").is_ok());
        assert!(parse("1e21").is_ok());
        assert!(parse("-1e21").is_ok());
        assert!(parse("1E30").is_ok());
    }

    #[test]
    fn error_codes_are_stable() {
        let errors = [
            (JsonError::InvalidUtf8 { offset: 0 }, "invalid_utf8"),
            (
                JsonError::Syntax {
                    offset: 0,
                    message: String::new(),
                },
                "malformed_json",
            ),
            (JsonError::TooDeep { depth_max: 1 }, "nesting_too_deep"),
            (
                JsonError::IntegerOutOfRange {
                    offset: 0,
                    literal: String::new(),
                },
                "integer_out_of_range",
            ),
            (JsonError::NonFinite { offset: 0 }, "non_finite_number"),
            (JsonError::LoneSurrogate { offset: 0 }, "invalid_unicode"),
            (
                JsonError::DuplicateKey { key: String::new() },
                "duplicate_key",
            ),
        ];
        for (error, code) in errors {
            assert_eq!(error.code(), code);
        }
    }
}
