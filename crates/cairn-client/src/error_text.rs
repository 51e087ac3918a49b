//! [`error_text`]: one line of text for an error and its causes, bounded —
//! what a handler's nack, an outbox dead letter and a transport failure
//! report, so that the cause is never lost behind a generic message.

use std::error::Error as StdError;

use crate::limits;

/// The text of `error` and of each cause below it, joined by `": "`, at
/// most `text_bytes_max` bytes (cut on a character boundary, the cut marked
/// with `…`).
///
/// Many errors already print their cause in their own text (thiserror's
/// `#[error("...: {0}")]`, `io::Error` around a custom error); a cause whose
/// text is already there is skipped instead of repeated.
pub fn error_text(error: &(dyn StdError + 'static), text_bytes_max: usize) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    let mut n_causes = 0;
    while let Some(current) = cause {
        // A bounded walk: a chain longer than the limit cannot fit anyway,
        // and a faulty `source` could even loop.
        if n_causes == limits::HANDLER_ERROR_CAUSES_MAX || text.len() > text_bytes_max {
            break;
        }
        let cause_text = current.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        cause = current.source();
        n_causes += 1;
    }
    cut_to_bytes(text, text_bytes_max)
}

/// Marks a cut text.
const CUT_MARKER: char = '…';

/// `text` if it has at most `bytes_max` bytes, else its longest prefix that
/// ends on a character boundary and leaves room for [`CUT_MARKER`],
/// followed by the marker.
fn cut_to_bytes(mut text: String, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text;
    }
    let mut end = bytes_max.saturating_sub(CUT_MARKER.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(CUT_MARKER);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_on_character_boundaries_and_are_marked() {
        assert_eq!(cut_to_bytes("aébcd".to_string(), 5), "a…");
        assert_eq!(cut_to_bytes("abc".to_string(), 3), "abc");
        assert_eq!(cut_to_bytes("abcd".to_string(), 3), "…");
        for filler in ["x", "é", "💥"] {
            let cut = cut_to_bytes(filler.repeat(101), 100);
            assert!(cut.len() <= 100, "{filler}");
            assert!(cut.ends_with(CUT_MARKER));
        }
    }
}
