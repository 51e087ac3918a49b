//! The error of the strict JSON parser: one variant per way the input can be
//! refused, each with a stable snake_case code that the HTTP API shows to
//! users, and the byte offset where it helps them find the problem.

/// Why [`crate::parse_json`] refused its input. Offsets count bytes from the
/// start of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The input is not UTF-8.
    #[error("the input is not valid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
    },
    /// The input does not follow the JSON grammar of RFC 8259.
    #[error("malformed JSON at byte {offset}: {message}")]
    Syntax {
        /// Offset where the grammar was broken.
        offset: usize,
        /// What was expected or found there.
        message: String,
    },
    /// Arrays and objects are nested deeper than allowed.
    #[error("arrays and objects are nested more than {depth_max} levels deep")]
    TooDeep {
        /// The nesting depth allowed.
        depth_max: usize,
    },
    /// An integer literal (no fraction, no exponent) lies beyond ±(2^53−1),
    /// where a double would silently lose digits; or a number written
    /// otherwise would be canonically written as such an integer.
    #[error(
        "the number {literal} at byte {offset} is an integer beyond ±9007199254740991 (2^53−1) \
         and would lose digits as a double; send it as a string"
    )]
    IntegerOutOfRange {
        /// Offset of the literal, or 0 when the value was not parsed from text.
        offset: usize,
        /// The literal as written (cut short when very long).
        literal: String,
    },
    /// A number is too large in magnitude to be a finite double.
    #[error("the number at byte {offset} is too large to be a finite double")]
    NonFinite {
        /// Offset of the number, or 0 when the value was not parsed from text.
        offset: usize,
    },
    /// A `\u` escape is a UTF-16 surrogate without its partner, which encodes
    /// no Unicode character (RFC 8785 requires well-formed Unicode).
    #[error(
        "the \\u escape at byte {offset} is an unpaired UTF-16 surrogate, which is not a character"
    )]
    LoneSurrogate {
        /// Offset of the backslash of the unpaired escape.
        offset: usize,
    },
    /// An object has two members with the same key.
    #[error("the object key {key:?} appears more than once")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
}

impl JsonError {
    /// Returns the stable snake_case code of this error, as shown in API
    /// error responses.
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::InvalidUtf8 { .. } => "invalid_utf8",
            JsonError::Syntax { .. } => "malformed_json",
            JsonError::TooDeep { .. } => "nesting_too_deep",
            JsonError::IntegerOutOfRange { .. } => "integer_out_of_range",
            JsonError::NonFinite { .. } => "non_finite_number",
            JsonError::LoneSurrogate { .. } => "invalid_unicode",
            JsonError::DuplicateKey { .. } => "duplicate_key",
        }
    }
}
