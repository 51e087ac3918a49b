//! Cutting user-supplied text short before quoting it in an error message,
//! so that a megabyte-long bad value cannot make a megabyte-long error.

/// Longest excerpt of user-supplied text quoted in an error, in characters.
pub(crate) const EXCERPT_CHARS_MAX: usize = 80;

/// Returns at most `chars_max` characters of `text`, marking a cut with `…`.
pub(crate) fn excerpt(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        Some((cut_offset, _)) => format!("{}…", &text[..cut_offset]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_long_text_on_a_character_boundary() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("exactly", 7), "exactly");
        assert_eq!(excerpt("ééééé", 2), "éé…");
        assert_eq!(excerpt("", 0), "");
    }
}
