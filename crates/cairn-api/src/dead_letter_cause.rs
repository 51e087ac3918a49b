//! Dead-letter causes (addition, issue 17): the error text of a dead letter
//! with what varies from one failure to the next (ids, hashes, numbers,
//! quoted values) replaced by placeholders, so that letters that died for
//! the same reason share one cause. The server answers it with every dead
//! letter, filters on it (`GET …/dead?cause=`) and groups by it
//! (`GET …/dead/causes`); it lives here, in the protocol crate, so that
//! clients compute the same cause from the same text.

use crate::limits::DEAD_LETTER_CAUSE_CHARS_MAX;

/// Placeholder of a UUID.
pub const UUID_PLACEHOLDER: &str = "<uuid>";
/// Placeholder of a 64-hex-digit hash.
pub const HASH_PLACEHOLDER: &str = "<hash>";
/// Placeholder of another run of 8 or more hex digits (or `0x…`).
pub const HEX_PLACEHOLDER: &str = "<hex>";
/// Placeholder of a number.
pub const NUMBER_PLACEHOLDER: &str = "<n>";
/// Placeholder of a quoted string.
pub const STRING_PLACEHOLDER: &str = "<str>";

/// The cause of a dead letter whose error text is `error` (`None`: it has
/// none, and its cause is `""`, which clients show as "(no error text)").
///
/// The rules, applied in one left-to-right pass:
///
/// 1. A quoted string — `'` or `"` not preceded by a letter or digit (so
///    the apostrophe of `don't` is not a quote), up to the next unescaped
///    (`\`) quote of the same kind — becomes `<str>`. A quote that is
///    never closed is kept as it is.
/// 2. A *word* is a maximal run of ASCII letters and digits. A UUID
///    (`8-4-4-4-12` hex digits, any case) starting at a word becomes
///    `<uuid>`.
/// 3. A word of exactly 64 hex digits becomes `<hash>`.
/// 4. A word of decimal digits, with a fraction (`.` and digits) if one
///    follows, becomes `<n>`.
/// 5. A word `0x` followed by hex digits, or of 8 or more hex digits,
///    becomes `<hex>`.
/// 6. In any other word, each run of decimal digits becomes `<n>`
///    (`3000ms` → `<n>ms`).
/// 7. Every run of whitespace and control characters becomes one space;
///    the result is trimmed, then cut to at most
///    [`DEAD_LETTER_CAUSE_CHARS_MAX`] characters (at a character
///    boundary) and trimmed again at its end.
///
/// Everything else is kept as it is. The function is pure and total: any
/// text has a cause, and the cause of a cause is itself.
pub fn dead_letter_cause(error: Option<&str>) -> String {
    let Some(error) = error else {
        return String::new();
    };
    let chars: Vec<char> = error.chars().collect();
    let mut out = String::with_capacity(error.len().min(4 * DEAD_LETTER_CAUSE_CHARS_MAX));
    let mut index = 0;
    // Only what fits is needed (a placeholder may be cut at the end).
    while index < chars.len() && out.chars().count() <= DEAD_LETTER_CAUSE_CHARS_MAX + 1 {
        let current = chars[index];
        let previous = index.checked_sub(1).map(|i| chars[i]);
        if (current == '\'' || current == '"')
            && !previous.is_some_and(|c| c.is_ascii_alphanumeric())
        {
            if let Some(end) = closing_quote(&chars, index) {
                out.push_str(STRING_PLACEHOLDER);
                index = end + 1;
                continue;
            }
            out.push(current);
            index += 1;
        } else if current.is_ascii_alphanumeric() {
            index = word(&chars, index, &mut out);
        } else if current.is_whitespace() || current.is_control() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            index += 1;
        } else {
            out.push(current);
            index += 1;
        }
    }
    let trimmed = out.trim();
    let cut: String = trimmed.chars().take(DEAD_LETTER_CAUSE_CHARS_MAX).collect();
    cut.trim_end().to_string()
}

/// The index of the quote closing the one at `open`, if there is one.
fn closing_quote(chars: &[char], open: usize) -> Option<usize> {
    let quote = chars[open];
    let mut index = open + 1;
    while index < chars.len() {
        match chars[index] {
            '\\' => index += 2,
            c if c == quote => return Some(index),
            _ => index += 1,
        }
    }
    None
}

fn is_hex(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// Whether a UUID starts at `start` and ends a word.
fn uuid_at(chars: &[char], start: usize) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut index = start;
    for (group_idx, length) in GROUPS.iter().enumerate() {
        if group_idx > 0 {
            if chars.get(index) != Some(&'-') {
                return false;
            }
            index += 1;
        }
        for _ in 0..*length {
            if !chars.get(index).copied().is_some_and(is_hex) {
                return false;
            }
            index += 1;
        }
    }
    !chars.get(index).is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Writes the normalised word starting at `start`; returns where the text
/// goes on.
fn word(chars: &[char], start: usize, out: &mut String) -> usize {
    if uuid_at(chars, start) {
        out.push_str(UUID_PLACEHOLDER);
        return start + 36;
    }
    let end = (start..chars.len())
        .find(|&i| !chars[i].is_ascii_alphanumeric())
        .unwrap_or(chars.len());
    let word = &chars[start..end];
    if word.len() == 64 && word.iter().copied().all(is_hex) {
        out.push_str(HASH_PLACEHOLDER);
        return end;
    }
    if word.iter().all(char::is_ascii_digit) {
        out.push_str(NUMBER_PLACEHOLDER);
        // A fraction belongs to the number.
        if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
            let fraction_end = (end + 1..chars.len())
                .find(|&i| !chars[i].is_ascii_digit())
                .unwrap_or(chars.len());
            return fraction_end;
        }
        return end;
    }
    let hex_prefixed =
        word.len() > 2 && word[0] == '0' && word[1] == 'x' && word[2..].iter().copied().all(is_hex);
    if hex_prefixed || (word.len() >= 8 && word.iter().copied().all(is_hex)) {
        out.push_str(HEX_PLACEHOLDER);
        return end;
    }
    let mut in_digits = false;
    for &c in word {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str(NUMBER_PLACEHOLDER);
                in_digits = true;
            }
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(text: &str) -> String {
        dead_letter_cause(Some(text))
    }

    #[test]
    fn absent_error_text_has_the_empty_cause() {
        assert_eq!(dead_letter_cause(None), "");
        assert_eq!(cause(""), "");
        assert_eq!(cause(" \t\n "), "");
    }

    #[test]
    fn identifiers_and_numbers_become_placeholders() {
        assert_eq!(
            cause("order 550e8400-E29B-41d4-a716-446655440000 not found"),
            "order <uuid> not found"
        );
        let hash = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        assert_eq!(
            cause(&format!("fact {hash} missing")),
            "fact <hash> missing"
        );
        assert_eq!(cause("request 3f2a9c01d4 failed"), "request <hex> failed");
        assert_eq!(cause("pointer 0x7ffe at fault"), "pointer <hex> at fault");
        assert_eq!(
            cause("timeout after 3000ms (attempt 2 of 5, 1.5 s)"),
            "timeout after <n>ms (attempt <n> of <n>, <n> s)"
        );
        assert_eq!(cause("HTTP 503"), "HTTP <n>");
        assert_eq!(cause("user_12 at v2"), "user_<n> at v<n>");
        // Short hex-looking words stay words.
        assert_eq!(cause("bad cafe"), "bad cafe");
    }

    #[test]
    fn quoted_strings_become_placeholders_but_apostrophes_stay() {
        assert_eq!(
            cause(r#"field "email" is 'not valid' here"#),
            "field <str> is <str> here"
        );
        assert_eq!(cause(r#"say "a \" b" now"#), "say <str> now");
        assert_eq!(cause("don't retry Bob's order"), "don't retry Bob's order");
        assert_eq!(cause("unclosed \"quote here"), "unclosed \"quote here");
    }

    #[test]
    fn whitespace_collapses_and_the_cause_is_trimmed() {
        assert_eq!(cause("  a \t\r\n  b\u{0}c  "), "a b c");
    }

    #[test]
    fn the_cause_is_cut_at_a_character_boundary() {
        let long = "é".repeat(500);
        let cut = cause(&long);
        assert_eq!(cut.chars().count(), DEAD_LETTER_CAUSE_CHARS_MAX);
        assert!(cut.chars().all(|c| c == 'é'));
        let spaced = format!("{} x", "z".repeat(DEAD_LETTER_CAUSE_CHARS_MAX - 1));
        assert_eq!(
            cause(&spaced).chars().count(),
            DEAD_LETTER_CAUSE_CHARS_MAX - 1,
            "no trailing space after the cut"
        );
    }

    #[test]
    fn failures_of_the_same_kind_share_a_cause() {
        let first = cause("payment 8c1e5f00 declined: amount 12.50 > limit 10 for 'alice'");
        let second = cause("payment 0d3f9a11 declined: amount 99 > limit 50 for 'bob'");
        assert_eq!(first, second);
        assert_eq!(
            first,
            "payment <hex> declined: amount <n> > limit <n> for <str>"
        );
    }

    #[test]
    fn a_cause_is_its_own_cause() {
        for text in [
            "payment 8c1e5f00 declined: amount 12.50 for 'alice'",
            "a <n> b <hash> <str> <uuid> <hex>",
            "  x\t\"y\"  z 0x12 ",
            &"9".repeat(1_000),
        ] {
            let once = cause(text);
            assert_eq!(cause(&once), once, "{text:?}");
        }
    }
}
