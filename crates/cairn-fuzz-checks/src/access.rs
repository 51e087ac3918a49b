//! Check of access control's two parsers that read network bytes: the
//! `Authorization` header (one value, `Bearer` and a token of Cairn's
//! shape) against a model of its grammar, and permission patterns, whose
//! matching is compared with a simple recursive model of `*` on every
//! name the input also spells.

use cairn_api::Pattern;
use cairn_server::auth::token::{parse_authorization, HeaderError};

/// Splits `data` at its first `\n` into a pattern and a name, and checks
/// both parsers.
pub fn check_access(data: &[u8]) {
    check_header(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern_text, name) = text.split_once('\n').unwrap_or((text, ""));
    match Pattern::parse(pattern_text) {
        Ok(pattern) => {
            // Normalization keeps the meaning and is idempotent.
            assert_eq!(Pattern::parse(pattern.as_str()).as_ref(), Ok(&pattern));
            assert_eq!(
                pattern.matches(name),
                model_matches(pattern_text.as_bytes(), name.as_bytes()),
                "pattern {pattern_text:?} name {name:?}"
            );
        }
        Err(_) => assert!(!model_valid_pattern(pattern_text), "{pattern_text:?}"),
    }
}

fn check_header(data: &[u8]) {
    let parsed = parse_authorization(std::iter::once(data));
    let expected = model_header(data);
    match (&parsed, &expected) {
        (Ok(token), Some(id)) => assert_eq!(&token.id, id),
        (Err(HeaderError::TooLong), None) => assert!(data.len() > 512),
        (Err(_), None) => {}
        _ => panic!("header {data:?}: parsed {parsed:?}, model {expected:?}"),
    }
}

/// `Bearer` (any case), one space, `cairn_`, 16 and 64 lowercase hex
/// digits joined by `_`; answers the id.
fn model_header(data: &[u8]) -> Option<String> {
    if data.len() > 512 {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let scheme = text.get(..7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let parts: Vec<&str> = text[7..].split('_').collect();
    let hex = |part: &str, len: usize| {
        part.len() == len
            && part
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    };
    match parts.as_slice() {
        ["cairn", id, secret] if hex(id, 16) && hex(secret, 64) => Some(id.to_string()),
        _ => None,
    }
}

fn model_valid_pattern(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*'))
}

/// `*` matches any run (possibly empty); everything else itself. The
/// textbook table: `matched[j]` says whether the pattern read so far
/// matches the first `j` bytes of the name (quadratic, never exponential).
fn model_matches(pattern: &[u8], name: &[u8]) -> bool {
    let mut matched = vec![false; name.len() + 1];
    matched[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        for j in 0..=name.len() {
            next[j] = if p == b'*' {
                matched[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && matched[j - 1] && name[j - 1] == p
            };
        }
        matched = next;
    }
    matched[name.len()]
}
