//! Check of the hash text parser, which reads hashes from URL paths
//! (`/v1/facts/{hash}`, `/v1/blobs/{hash}`, dead letters), replay bodies
//! and subscription definitions: exactly 64 lowercase hex digits are a
//! hash and write back as the same text; nothing else is.

use cairn_fact::Hash;

/// Characters of a hash's text form.
const HASH_HEX_CHARS: usize = 64;

/// Parses `data` as hash text and compares with the one-spelling rule;
/// also checks that the hash whose bytes are the first 32 bytes of `data`
/// writes text that parses back to it.
pub fn check_hash_hex(data: &[u8]) {
    if let Some((hash_bytes, _)) = data.split_first_chunk::<32>() {
        let hash = Hash(*hash_bytes);
        assert_eq!(Hash::from_hex(&hash.to_hex()), Ok(hash));
        assert_eq!(hash.to_string(), hash.to_hex());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let is_one_spelling = text.len() == HASH_HEX_CHARS
        && text
            .bytes()
            .all(|digit| matches!(digit, b'0'..=b'9' | b'a'..=b'f'));
    match Hash::from_hex(text) {
        Ok(hash) => {
            assert!(is_one_spelling, "{text:?} accepted as a hash");
            assert_eq!(hash.to_hex(), text);
        }
        Err(_) => assert!(!is_one_spelling, "{text:?} refused as a hash"),
    }
}
