//! Finding the next byte of a string's text that JSON treats specially — a
//! quote, a backslash or a control character — eight bytes at a time. The
//! parser uses it to step over the plain runs of a string, the canonical
//! writer to copy them; both spent most of their time looking at such runs
//! one byte at a time.
//!
//! The word-at-a-time test is the classic "has a zero byte" bit trick, in
//! safe code: a word is read with `u64::from_le_bytes`, so its lowest byte
//! is the first in the text, and the lowest flagged byte of each test is
//! exact (the tests can flag bytes only after a real hit, through a borrow).

/// Bytes of a word.
const WORD_BYTES: usize = 8;

/// `0x01` in every byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;

/// `0x80` in every byte of a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Tells whether JSON text needs special handling of `byte` inside a
/// string: the closing quote, an escape's backslash, or a control
/// character (U+0000 to U+001F), which must be escaped.
pub(crate) const fn is_special_string_byte(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Returns the index of the first byte of `bytes` for which
/// [`is_special_string_byte`] holds, or `None` when there is none.
pub(crate) fn find_special_string_byte(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(WORD_BYTES);
    let mut word_start = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks_exact gives whole words"));
        let flags = zero_byte_flags(word ^ (ONES * u64::from(b'"')))
            | zero_byte_flags(word ^ (ONES * u64::from(b'\\')))
            | below_0x20_flags(word);
        if flags != 0 {
            // The lowest flag marks the first special byte.
            return Some(word_start + (flags.trailing_zeros() / 8) as usize);
        }
        word_start += WORD_BYTES;
    }
    // The last few bytes (all of them for most keys) one at a time, with a
    // table: cheaper per byte than the three comparisons.
    words
        .remainder()
        .iter()
        .position(|&byte| SPECIAL_STRING_BYTES[usize::from(byte)])
        .map(|byte_idx| word_start + byte_idx)
}

/// [`is_special_string_byte`] for every byte value.
const SPECIAL_STRING_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = is_special_string_byte(byte as u8);
        byte += 1;
    }
    table
};

/// Sets the high bit of the lowest zero byte of `word` (and possibly of
/// higher bytes, never of lower ones).
fn zero_byte_flags(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGH_BITS
}

/// Sets the high bit of the lowest byte of `word` that is below 0x20 (and
/// possibly of higher bytes, never of lower ones).
fn below_0x20_flags(word: u64) -> u64 {
    word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|&byte| is_special_string_byte(byte))
    }

    #[test]
    fn finds_the_first_special_byte_at_every_position() {
        // Every byte value at every position of texts up to three words long,
        // on a background of bytes close to the special ones.
        for background in [b'a', 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
            for length in 0..=24 {
                for position in 0..length {
                    for special in 0..=255u8 {
                        let mut text = vec![background; length];
                        text[position] = special;
                        assert_eq!(
                            find_special_string_byte(&text),
                            reference(&text),
                            "{text:?}"
                        );
                        // A second special byte later never hides the first.
                        if position + 1 < length {
                            text[length - 1] = b'"';
                            assert_eq!(find_special_string_byte(&text), reference(&text));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn finds_nothing_in_plain_text() {
        assert_eq!(find_special_string_byte(b""), None);
        assert_eq!(
            find_special_string_byte("plain text, é € 😂 \u{7f}!".as_bytes()),
            None
        );
        assert_eq!(find_special_string_byte(b"0123456789abcdef\""), Some(16));
    }
}
