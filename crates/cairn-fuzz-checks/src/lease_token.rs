//! Check of the lease token parser (tokens come back from consumers in ack,
//! nack and extend bodies and stream frames) against a simple model of
//! its grammar, `<seq hex>-<lease id hex>` with 1 to 16 hex digits each,
//! and of the round trip from a token to its text and back.

use cairn_delivery::LeaseToken;

/// Hex digits of one part of a token at most (a `u64`).
const PART_HEX_DIGITS_MAX: usize = 16;

/// Bytes of one `u64` when `data` is read as a token's raw parts.
const U64_BYTES: usize = 8;

/// Parses `data` as token text and compares with the model; also builds a
/// token from the first 16 bytes and checks that its text parses back to
/// it.
pub fn check_lease_token(data: &[u8]) {
    if let Some((seq_bytes, rest)) = data.split_first_chunk::<U64_BYTES>() {
        if let Some((lease_id_bytes, _)) = rest.split_first_chunk::<U64_BYTES>() {
            let token = LeaseToken {
                seq: u64::from_le_bytes(*seq_bytes),
                lease_id: u64::from_le_bytes(*lease_id_bytes),
            };
            assert_eq!(LeaseToken::parse(&token.to_string()), Some(token));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = LeaseToken::parse(text);
    assert_eq!(parsed, model_parse(text), "token {text:?}");
    if let Some(token) = parsed {
        assert_eq!(LeaseToken::parse(&token.to_string()), Some(token));
    }
}

/// The token grammar: two parts of 1 to 16 hex digits (either case), split
/// by the one `-`.
fn model_parse(text: &str) -> Option<LeaseToken> {
    let (seq_text, lease_id_text) = text.split_once('-')?;
    Some(LeaseToken {
        seq: model_hex(seq_text)?,
        lease_id: model_hex(lease_id_text)?,
    })
}

/// The value of 1 to 16 hex digits.
fn model_hex(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > PART_HEX_DIGITS_MAX {
        return None;
    }
    text.chars().try_fold(0u64, |value, digit| {
        Some(value << 4 | u64::from(digit.to_digit(16)?))
    })
}
