//! Check of the lease token parser and verifier (tokens come back from
//! consumers in ack, nack and extend bodies and stream frames) against a
//! simple model of their grammar, `<seq hex>-<lease number hex>-<mac>`:
//! lowercase hex without leading zeros for the first two parts (1 to 16
//! digits), exactly 16 lowercase hex digits for the MAC; only the exact
//! text a key issued verifies.

use cairn_delivery::{LeaseToken, TokenKey};

/// Hex digits of one `u64` at most, and exactly of the MAC.
const U64_HEX_DIGITS: usize = 16;

/// Bytes of one `u64` when `data` is read as a token's raw parts.
const U64_BYTES: usize = 8;

/// The key tokens of this check are issued with.
fn key() -> TokenKey {
    TokenKey::from_seed(0x5eed)
}

/// Parses `data` as token text and compares with the model; checks that
/// only issued text verifies; also issues a token from the first 16 bytes
/// and checks that its text parses and verifies back to it.
pub fn check_lease_token(data: &[u8]) {
    let key = key();
    if let Some((seq_bytes, rest)) = data.split_first_chunk::<U64_BYTES>() {
        if let Some((lease_id_bytes, _)) = rest.split_first_chunk::<U64_BYTES>() {
            let token = key.issue(
                u64::from_le_bytes(*seq_bytes),
                u64::from_le_bytes(*lease_id_bytes),
            );
            let text = token.to_string();
            assert_eq!(LeaseToken::parse(&text), Some(token));
            assert_eq!(key.verify(&text), Some(token));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = LeaseToken::parse(text);
    assert_eq!(parsed, model_parse(text), "token {text:?}");
    if let Some(token) = parsed {
        assert_eq!(LeaseToken::parse(&token.to_string()), Some(token));
        let issued = key.issue(token.seq, token.lease_id);
        assert_eq!(
            key.verify(text).is_some(),
            issued == token,
            "token {text:?}"
        );
    }
}

/// The token grammar: three parts split by `-`, the first two canonical
/// lowercase hex numbers, the last exactly 16 lowercase hex digits.
fn model_parse(text: &str) -> Option<LeaseToken> {
    let parts: Vec<&str> = text.split('-').collect();
    let [seq_text, lease_id_text, mac_text] = parts.as_slice() else {
        return None;
    };
    let canonical = |part: &str| part == "0" || !part.starts_with('0');
    if !canonical(seq_text) || !canonical(lease_id_text) || mac_text.len() != U64_HEX_DIGITS {
        return None;
    }
    Some(LeaseToken {
        seq: model_hex(seq_text)?,
        lease_id: model_hex(lease_id_text)?,
        mac: model_hex(mac_text)?,
    })
}

/// The value of 1 to 16 lowercase hex digits.
fn model_hex(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > U64_HEX_DIGITS {
        return None;
    }
    text.chars().try_fold(0u64, |value, digit| {
        let lowercase_hex = digit.is_ascii_digit() || ('a'..='f').contains(&digit);
        lowercase_hex.then(|| value << 4 | u64::from(digit.to_digit(16).unwrap_or(0)))
    })
}
