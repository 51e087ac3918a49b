//! Check of the query-string parser every endpoint runs first
//! ([`QueryParams`]), against a simple model of the WHATWG
//! `application/x-www-form-urlencoded` parser and of the accessors'
//! contract: unknown names, repeats of single-valued names and numbers out
//! of range are errors with their stable codes, everything else decodes to
//! the values the model decodes.

use cairn_server::query::QueryParams;

/// The parameter names a fuzzed query may use (a mix of real ones), and a
/// name that is never allowed.
const ALLOWED_NAMES: [&str; 6] = ["after", "limit", "wait_ms", "without", "cause", "a b"];
const NEVER_ALLOWED_NAME: &str = "surprise";

/// The first byte of the input chooses the call; these are its bits.
const NO_QUERY_FLAG: u8 = 0b01;
const NO_NAMES_ALLOWED_FLAG: u8 = 0b10;

/// `(default, min, max)` bounds the integer accessor is checked with.
const INTEGER_BOUNDS: [(u64, u64, u64); 3] = [(7, 1, 1_000), (0, 0, u64::MAX), (5, 5, 5)];

/// Parses a query taken from `data` (the first byte chooses between no
/// query at all and which names are allowed; the rest is the query text)
/// and panics where [`QueryParams`] and the model disagree.
pub fn check_query_params(data: &[u8]) {
    let Some((&flags, query_bytes)) = data.split_first() else {
        return;
    };
    let Ok(query_text) = std::str::from_utf8(query_bytes) else {
        return;
    };
    let raw = (flags & NO_QUERY_FLAG == 0).then_some(query_text);
    let allowed: &[&str] = if flags & NO_NAMES_ALLOWED_FLAG == 0 {
        &ALLOWED_NAMES
    } else {
        &[]
    };
    let expected_pairs = model_pairs(raw.unwrap_or(""));
    let all_names_allowed = expected_pairs
        .iter()
        .all(|(name, _)| allowed.contains(&name.as_str()));
    let params = match QueryParams::parse(raw, allowed) {
        Ok(params) => {
            assert!(all_names_allowed, "{raw:?} accepted with unknown names");
            params
        }
        Err(error) => {
            assert!(!all_names_allowed, "{raw:?} refused: {}", error.message);
            assert_eq!(error.code.as_str(), "unknown_parameter");
            return;
        }
    };
    for name in ALLOWED_NAMES.iter().chain([&NEVER_ALLOWED_NAME]) {
        let expected_values: Vec<&str> = expected_pairs
            .iter()
            .filter(|(pair_name, _)| pair_name == name)
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(params.all(name), expected_values, "values of {name:?}");
        match (params.single(name), expected_values.as_slice()) {
            (Ok(None), []) => {}
            (Ok(Some(value)), [expected]) => assert_eq!(value, *expected),
            (Err(error), [_, _, ..]) => assert_eq!(error.code.as_str(), "invalid_parameter"),
            (result, _) => panic!(
                "single({name:?}) of {expected_values:?} gave {:?}",
                result.map_err(|error| error.code.as_str())
            ),
        }
        for (default, min, max) in INTEGER_BOUNDS {
            let actual = params
                .integer(name, default, min, max)
                .map_err(|error| error.code.as_str());
            let expected = model_integer(&expected_values, default, min, max);
            assert_eq!(actual, expected, "integer({name:?}) of {expected_values:?}");
        }
    }
}

/// The WHATWG urlencoded parser: split on `&`, drop empty pieces, split
/// each at its first `=`, turn `+` into a space, percent-decode, and decode
/// the bytes as UTF-8 with replacement characters.
fn model_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (model_decode(name), model_decode(value))
        })
        .collect()
}

/// Decodes `+` and `%XX` escapes; a `%` not followed by two hex digits
/// stays as it is.
fn model_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut byte_idx = 0;
    while byte_idx < bytes.len() {
        let escaped = bytes
            .get(byte_idx + 1..byte_idx + 3)
            .filter(|_| bytes[byte_idx] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .filter(|hex| hex.bytes().all(|digit| digit.is_ascii_hexdigit()))
            .map(|hex| u8::from_str_radix(hex, 16).expect("two hex digits are a byte"));
        match (escaped, bytes[byte_idx]) {
            (Some(byte), _) => {
                decoded.push(byte);
                byte_idx += 3;
            }
            (None, b'+') => {
                decoded.push(b' ');
                byte_idx += 1;
            }
            (None, byte) => {
                decoded.push(byte);
                byte_idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The integer accessor's contract: the default when absent, an error when
/// repeated, and otherwise a non-negative integer (decimal digits, with the
/// optional `+` that Rust's integer parsing allows) that fits in a `u64`
/// and lies within `min..=max`.
fn model_integer(values: &[&str], default: u64, min: u64, max: u64) -> Result<u64, &'static str> {
    let text = match values {
        [] => return Ok(default),
        [text] => text.strip_prefix('+').unwrap_or(text),
        _ => return Err("invalid_parameter"),
    };
    if text.is_empty() || !text.bytes().all(|digit| digit.is_ascii_digit()) {
        return Err("invalid_parameter");
    }
    let value = text
        .bytes()
        .try_fold(0u64, |value, digit| {
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })
        .ok_or("invalid_parameter")?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err("parameter_out_of_range")
    }
}
