//! Every limit the fact model enforces, in one place, so that callers and
//! reviewers can see at a glance how large or deep an input may be.

/// Default maximum size of a fact's canonical form, in bytes (64 KiB).
///
/// Larger payloads belong in blobs. Servers may configure another maximum and
/// pass it to [`crate::CanonicalFact::from_value`].
pub const FACT_CANONICAL_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Maximum nesting depth of arrays and objects, counted from the outermost
/// value of the parsed document (the fact object itself is depth 1).
///
/// The parser never recurses, but the canonical writer and `Drop` of a
/// [`crate::Value`] do, so this bound also bounds their stack use.
pub const JSON_DEPTH_MAX: usize = 64;

/// Maximum length of a fact type name, in characters.
pub const TYPE_NAME_CHARS_MAX: usize = 200;

/// Maximum length of a predecessor role name, in characters.
pub const ROLE_NAME_CHARS_MAX: usize = 200;

/// Largest magnitude an integer literal may have: 2^53 − 1, the largest
/// integer that every IEEE-754 double between it and zero represents exactly.
pub const INTEGER_LITERAL_MAGNITUDE_MAX: u64 = (1 << 53) - 1;

// A fact nests at least its `fields` object inside the fact object, and a
// field value must have room for some structure of its own.
const _: () = assert!(JSON_DEPTH_MAX >= 3);
const _: () = assert!(TYPE_NAME_CHARS_MAX >= 1 && ROLE_NAME_CHARS_MAX >= 1);
// The smallest fact `{"fields":{},"predecessors":{},"type":"T"}` must fit.
const _: () = assert!(FACT_CANONICAL_BYTES_MAX_DEFAULT >= 64);
