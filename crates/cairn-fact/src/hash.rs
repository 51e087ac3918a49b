//! The BLAKE3-256 hash that identifies facts (and blobs), with its one text
//! form: exactly 64 lowercase hexadecimal characters. Accepting only one
//! spelling keeps hashes comparable as strings everywhere they appear.

use std::fmt;
use std::str::FromStr;

use crate::excerpt::{excerpt, EXCERPT_CHARS_MAX};

/// Number of bytes in a [`Hash`].
const HASH_BYTES: usize = 32;

/// Number of characters in the hexadecimal text form of a [`Hash`].
const HASH_HEX_CHARS: usize = HASH_BYTES * 2;

const HEX_DIGITS_LOWERCASE: &[u8; 16] = b"0123456789abcdef";

/// A BLAKE3-256 hash. Ordering is byte order, which equals the order of the
/// lowercase hexadecimal text forms.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Returns the BLAKE3-256 hash of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Returns the 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Returns the hash as 64 lowercase hexadecimal characters.
    pub fn to_hex(&self) -> String {
        let mut text = Vec::with_capacity(HASH_HEX_CHARS);
        self.write_hex(&mut text);
        String::from_utf8(text).expect("hexadecimal digits are ASCII")
    }

    /// Appends the 64 lowercase hexadecimal characters of the hash to `out`.
    pub(crate) fn write_hex(&self, out: &mut Vec<u8>) {
        let mut text = [0u8; HASH_HEX_CHARS];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX_DIGITS_LOWERCASE[usize::from(byte >> 4)];
            pair[1] = HEX_DIGITS_LOWERCASE[usize::from(byte & 0x0f)];
        }
        out.extend_from_slice(&text);
    }

    /// Parses the text form of a hash. Accepts only exactly 64 lowercase
    /// hexadecimal characters: uppercase, prefixes and whitespace are
    /// rejected so that each hash has a single spelling.
    pub fn from_hex(text: &str) -> Result<Hash, HashParseError> {
        let text_bytes = text.as_bytes();
        if text_bytes.len() != HASH_HEX_CHARS {
            return Err(HashParseError::new(text));
        }
        let mut bytes = [0u8; HASH_BYTES];
        // Any byte that is not a lowercase digit maps to a value with high
        // bits set, so one test per pair finds them all.
        let mut stray_bits = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(text_bytes.chunks_exact(2)) {
            let high = LOWERCASE_HEX_DIGIT_VALUES[usize::from(pair[0])];
            let low = LOWERCASE_HEX_DIGIT_VALUES[usize::from(pair[1])];
            stray_bits |= (high | low) & NOT_A_DIGIT;
            *byte = (high << 4) | (low & 0x0f);
        }
        if stray_bits != 0 {
            return Err(HashParseError::new(text));
        }
        Ok(Hash(bytes))
    }
}

/// Marks a byte of [`LOWERCASE_HEX_DIGIT_VALUES`] that is not a digit.
const NOT_A_DIGIT: u8 = 0xf0;

/// The value of every byte read as a lowercase hexadecimal digit, or
/// [`NOT_A_DIGIT`] for any other byte (including uppercase digits).
const LOWERCASE_HEX_DIGIT_VALUES: [u8; 256] = {
    let mut values = [NOT_A_DIGIT; 256];
    let mut digit_value = 0;
    while digit_value < 16 {
        values[HEX_DIGITS_LOWERCASE[digit_value] as usize] = digit_value as u8;
        digit_value += 1;
    }
    values
};

impl fmt::Display for Hash {
    /// Writes the 64 lowercase hexadecimal characters of the hash.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl FromStr for Hash {
    type Err = HashParseError;

    /// Same as [`Hash::from_hex`].
    fn from_str(text: &str) -> Result<Hash, HashParseError> {
        Hash::from_hex(text)
    }
}

/// Text that is not a hash: not exactly 64 lowercase hexadecimal characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a hash is 64 lowercase hexadecimal characters, got {text_chars} characters: {text_excerpt:?}"
)]
pub struct HashParseError {
    /// The rejected text, cut short (with `…`) after 80 characters.
    pub text_excerpt: String,
    /// Number of characters in the whole rejected text.
    pub text_chars: usize,
}

impl HashParseError {
    fn new(text: &str) -> HashParseError {
        HashParseError {
            text_excerpt: excerpt(text, EXCERPT_CHARS_MAX),
            text_chars: text.chars().count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_matches_blake3() {
        let hash = Hash::of_bytes(b"cairn");
        let hex = hash.to_hex();
        assert_eq!(hex, blake3::hash(b"cairn").to_hex().as_str());
        assert_eq!(hex.len(), 64);
        assert_eq!(Hash::from_hex(&hex), Ok(hash));
        assert_eq!(hex.parse::<Hash>(), Ok(hash));
        assert_eq!(hash.to_string(), hex);
        assert_eq!(hash.as_bytes(), &hash.0);
    }

    #[test]
    fn rejects_every_other_spelling() {
        let hex = Hash::of_bytes(b"x").to_hex();
        let rejected = [
            hex.to_uppercase(),
            hex[..63].to_string(),
            format!("{hex}0"),
            format!(" {}", &hex[1..]),
            format!("0x{}", &hex[2..]),
            format!("{}g", &hex[..63]),
            String::new(),
            // 64 bytes but not 64 characters: a multi-byte character.
            format!("é{}", &hex[2..]),
        ];
        for text in rejected {
            let error = Hash::from_hex(&text).unwrap_err();
            assert!(error
                .to_string()
                .starts_with("a hash is 64 lowercase hexadecimal characters, got"));
        }
    }

    #[test]
    fn reads_exactly_the_lowercase_digits() {
        for byte in 0..=255u8 {
            let text = format!("{}{}", char::from(byte), "0".repeat(63));
            let expected = match byte {
                b'0'..=b'9' => Some(byte - b'0'),
                b'a'..=b'f' => Some(byte - b'a' + 10),
                _ => None,
            };
            // Not ASCII: the text is 65 bytes, refused for its length.
            let parsed = Hash::from_hex(&text).ok().map(|hash| hash.0[0] >> 4);
            assert_eq!(parsed, expected, "{byte:#x}");
            let text = format!("{}{}", "0".repeat(63), char::from(byte));
            let parsed = Hash::from_hex(&text).ok().map(|hash| hash.0[31]);
            assert_eq!(parsed, expected, "{byte:#x}");
        }
    }

    #[test]
    fn order_is_hex_order() {
        let mut hashes: Vec<Hash> = (0u8..50).map(|seed| Hash::of_bytes(&[seed])).collect();
        hashes.sort();
        let hexes: Vec<String> = hashes.iter().map(Hash::to_hex).collect();
        let mut sorted_hexes = hexes.clone();
        sorted_hexes.sort();
        assert_eq!(hexes, sorted_hexes);
    }
}
