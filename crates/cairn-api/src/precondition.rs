//! Subscription generations as HTTP entity tags: the `ETag` a view is sent
//! with (`"3"`), and the `If-Match` precondition of a `PUT` that must find
//! one generation (or any) before it changes a definition.
//!
//! The server parses `If-Match` here and the SDK writes it here, so both
//! agree on the one accepted form. Cairn's entity tags are strong and
//! always a generation number, so the header must be `*` or one
//! generation, quoted as an entity tag (`"3"`) or bare (`3`, accepted
//! because that is what people type); weak tags (`W/"3"`), lists and
//! anything else are malformed, never silently unmatched.

/// The name of the header a `PUT` carries its precondition in.
pub const IF_MATCH_HEADER: &str = "if-match";
/// The name of the header a view is sent with.
pub const ETAG_HEADER: &str = "etag";
/// Longest `If-Match` value taken (a `u64` in quotes fits easily).
pub const IF_MATCH_BYTES_MAX: usize = 64;

/// What a `PUT` expects to find before it changes anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerationPrecondition {
    /// `If-Match: *`: the subscription must exist (any generation).
    Exists,
    /// `If-Match: "<generation>"`: the subscription must be at exactly
    /// this generation.
    Generation(u64),
}

/// Why an `If-Match` value was refused (answered `400 invalid_if_match`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedIfMatch(pub String);

impl GenerationPrecondition {
    /// Parses the value of an `If-Match` header.
    pub fn parse(value: &[u8]) -> Result<GenerationPrecondition, MalformedIfMatch> {
        let malformed = || {
            MalformedIfMatch(format!(
                "If-Match must be * or one subscription generation, such as \"3\" (quotes \
                 included) or 3, not {:?}",
                String::from_utf8_lossy(&value[..value.len().min(IF_MATCH_BYTES_MAX)])
            ))
        };
        if value.len() > IF_MATCH_BYTES_MAX {
            return Err(malformed());
        }
        let text = std::str::from_utf8(value)
            .map_err(|_| malformed())?
            .trim_matches(|c| c == ' ' || c == '\t');
        if text == "*" {
            return Ok(GenerationPrecondition::Exists);
        }
        let digits = text
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(text);
        // One spelling per generation: no sign, no leading zeros, no
        // spaces inside the quotes, so that a tag matches exactly the text
        // of the ETag the server sent.
        let canonical = !digits.is_empty()
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !canonical {
            return Err(malformed());
        }
        digits
            .parse::<u64>()
            .map(GenerationPrecondition::Generation)
            .map_err(|_| malformed())
    }

    /// The header value that states this precondition.
    pub fn header_value(self) -> String {
        match self {
            GenerationPrecondition::Exists => "*".to_string(),
            GenerationPrecondition::Generation(generation) => entity_tag(generation),
        }
    }

    /// Whether a subscription at `current` (`None`: there is none)
    /// satisfies the precondition.
    pub fn holds(self, current: Option<u64>) -> bool {
        match (self, current) {
            (_, None) => false,
            (GenerationPrecondition::Exists, Some(_)) => true,
            (GenerationPrecondition::Generation(expected), Some(current)) => expected == current,
        }
    }
}

/// The entity tag of a generation: the number in double quotes.
pub fn entity_tag(generation: u64) -> String {
    format!("\"{generation}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_star_and_one_generation_quoted_or_bare() {
        let parse = |text: &str| GenerationPrecondition::parse(text.as_bytes());
        assert_eq!(parse("*"), Ok(GenerationPrecondition::Exists));
        assert_eq!(parse("\"3\""), Ok(GenerationPrecondition::Generation(3)));
        assert_eq!(
            parse(" \"12\" "),
            Ok(GenerationPrecondition::Generation(12))
        );
        assert_eq!(parse("7"), Ok(GenerationPrecondition::Generation(7)));
        assert_eq!(parse("\"0\""), Ok(GenerationPrecondition::Generation(0)));
        assert_eq!(
            parse(&entity_tag(u64::MAX)),
            Ok(GenerationPrecondition::Generation(u64::MAX))
        );
        for malformed in [
            "",
            "\"\"",
            "W/\"3\"",
            "\"3\", \"4\"",
            "\"03\"",
            "-1",
            "+1",
            "\"3",
            "3\"",
            "\" 3\"",
            "abc",
            "\"abc\"",
            "18446744073709551616",
            "1.5",
            "**",
        ] {
            assert!(parse(malformed).is_err(), "{malformed:?}");
        }
        assert!(GenerationPrecondition::parse(&[0xff, b'1']).is_err());
        assert!(GenerationPrecondition::parse("1".repeat(100).as_bytes()).is_err());
    }

    #[test]
    fn header_values_parse_back_and_hold_as_stated() {
        for precondition in [
            GenerationPrecondition::Exists,
            GenerationPrecondition::Generation(1),
            GenerationPrecondition::Generation(41),
        ] {
            assert_eq!(
                GenerationPrecondition::parse(precondition.header_value().as_bytes()),
                Ok(precondition)
            );
        }
        assert!(GenerationPrecondition::Exists.holds(Some(5)));
        assert!(!GenerationPrecondition::Exists.holds(None));
        assert!(GenerationPrecondition::Generation(5).holds(Some(5)));
        assert!(!GenerationPrecondition::Generation(4).holds(Some(5)));
        assert!(!GenerationPrecondition::Generation(5).holds(None));
    }
}
